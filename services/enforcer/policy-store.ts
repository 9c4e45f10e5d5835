/**
 * The enforcer's policy state, which it alone owns: the tracing policies
 * loaded on this node, their state and mode, and the sensor calls that put
 * them in the kernel (through SensorPolicyControl).
 *
 * A policy is known by domain, namespace and name, as in Tetragon (domain
 * "grpc" for the API, "static" for the policy directory; namespace empty for
 * a cluster-wide TracingPolicy). The sensor knows policies by name alone, so
 * a name is also unique on the node across domains and namespaces.
 *
 * A policy text is parsed and validated in a worker thread, within bounds
 * (compiler/parse.ts POLICY_LIMITS, compiler/parse-pool.ts
 * PARSE_WORKER_LIMITS), so that no text holds the event loop; it is
 * compiled and loaded here.
 *
 * Operations run one at a time (a promise queue), so API calls and directory
 * reloads never interleave; list() reads the current state at any time and
 * shows a policy being loaded or unloaded as such.
 *
 * With a state directory (policy-state-dir.ts), every text added through the
 * API (domain "grpc") is written there with its policies' mode and enabled
 * state, kept current on delete/enable/disable/mode changes, and restore()
 * loads them again at start, so API-added policies survive a restart. An add
 * whose state cannot be written is undone and refused: a policy that would
 * silently vanish at the next restart is not accepted.
 */
import type { Hook, PolicyMode, PolicyProgram } from '../lib/policy-program.js';
import { PolicyLoadError, type PolicyKernelStats, type SensorPolicyControl } from '../lib/sensor-control.js';
import { PolicyError, type CompileEnv } from './compiler/index.js';
import { loadPolicyTextOffThread } from './compiler/parse-pool.js';
import { PolicyStateDir, type PersistedText } from './policy-state-dir.js';

/** Tetragon's domain of policies added through the API. */
export const GRPC_DOMAIN = 'grpc';
/** Tetragon's domain of policies read from the policy directory. */
export const STATIC_DOMAIN = 'static';

/** Tetragon's TracingPolicyState, less the states Vigil never reaches (load_error, skipped, partially_enabled). */
export type PolicyState = 'enabled' | 'disabled' | 'error' | 'loading' | 'unloading';

export interface PolicyRef {
  name: string;
  /** Empty for a cluster-wide policy. */
  namespace: string;
  domain: string;
}

/** A hook of a policy, as Tetragon's HookStatus describes it. */
export interface PolicyHook {
  section: 'kprobes' | 'tracepoints' | 'uprobes' | 'lsmhooks' | 'loader' | 'usdts';
  /** Index of the hook within its section. */
  index: number;
  /** The call (kprobe), subsystem/event (tracepoint) or binary path (uprobe). */
  description: string;
}

export interface PolicyStatus extends PolicyRef {
  id: number;
  /** Where the policy came from: its file, or empty for the API. */
  info: string;
  /** Tetragon's sensor names for the policy's hook kinds (generic_kprobe, ...). */
  sensors: string[];
  hooks: PolicyHook[];
  enabled: boolean;
  state: PolicyState;
  /** What went wrong, for a policy in the error state. */
  error: string;
  mode: PolicyMode;
  /** Absent while the sensor has none (loading). */
  stats?: PolicyKernelStats;
}

/** What the store refuses: invalid → the policy text, exists/not_found → the name, refused → the sensor, state → enable/disable of a policy not in the other state. */
export type PolicyFailure = 'invalid' | 'exists' | 'not_found' | 'refused' | 'state';

export class PolicyStoreError extends Error {
  constructor(readonly kind: PolicyFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyStoreError';
  }
}

/** A policy text that does not parse or compile; the message is `[source:line: ]path: reason`. */
export class PolicyInvalidError extends PolicyStoreError {
  readonly path: string;
  readonly reason: string;
  readonly line?: number;
  readonly source?: string;

  constructor(fields: { path: string; reason: string; line?: number; source?: string }, options?: { cause?: unknown }) {
    const { path, reason, line, source } = fields;
    const where = source !== undefined ? (line !== undefined ? `${source}:${line}` : source) : line !== undefined ? `line ${line}` : undefined;
    super('invalid', [where, path, reason].filter((part) => part !== undefined && part !== '').join(': '), options);
    this.name = 'PolicyInvalidError';
    this.path = path;
    this.reason = reason;
    if (line !== undefined) this.line = line;
    if (source !== undefined) this.source = source;
  }
}

/** Tetragon's name of a policy in messages (its collection key). */
function policyKey(ref: PolicyRef): string {
  return ref.namespace === '' ? `${ref.domain}:${ref.name}` : `${ref.domain}:${ref.namespace}/${ref.name}`;
}

interface Entry extends PolicyRef {
  id: number;
  key: string;
  source: string;
  program: PolicyProgram;
  mode: PolicyMode;
  state: PolicyState;
  error: string;
  /** The state-directory file of the text it came with (API-added policies, with a state directory). */
  stateFile?: string;
}

export interface PolicyStoreOptions {
  /** Where API-added policies are kept across restarts (policy-state-dir.ts); none: they are not. */
  stateDir?: string;
}

const SENSOR_OF_KIND = { kprobe: 'generic_kprobe', tracepoint: 'generic_tracepoint', uprobe: 'generic_uprobe', lsm: 'generic_lsm', loader: 'loader', usdt: 'generic_usdt' } as const;
const SECTION_OF_KIND = { kprobe: 'kprobes', tracepoint: 'tracepoints', uprobe: 'uprobes', lsm: 'lsmhooks', loader: 'loader', usdt: 'usdts' } as const;

function hookDescription(hook: Hook): string {
  if (hook.attach.kind === 'uprobe') return hook.attach.path;
  if (hook.kind === 'tracepoint' && hook.subsystem !== undefined) return `${hook.subsystem}/${hook.name}`;
  return hook.name;
}

function hooksOf(program: PolicyProgram): PolicyHook[] {
  const seen = { kprobe: 0, tracepoint: 0, uprobe: 0, lsm: 0, loader: 0, usdt: 0 };
  return program.hooks.map((hook) => ({ section: SECTION_OF_KIND[hook.kind], index: seen[hook.kind]++, description: hookDescription(hook) }));
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class PolicyStore {
  /** By policyKey, in the order added (so by id). */
  private readonly entries = new Map<string, Entry>();
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly changeListeners: (() => void | Promise<void>)[] = [];
  private readonly state?: PolicyStateDir;
  /** Per state file: order and text, to rewrite it as its policies change. */
  private readonly stateTexts = new Map<string, Omit<PersistedText, 'policies'>>();
  private nextSeq = 1;

  constructor(
    private readonly control: SensorPolicyControl,
    private readonly env: CompileEnv,
    private readonly log: (line: string) => void = (line) => console.error(line),
    opts: PolicyStoreOptions = {},
  ) {
    if (opts.stateDir) this.state = new PolicyStateDir(opts.stateDir);
  }

  /**
   * Loads the API-added policies of the state directory again, in the order
   * they were added, with their mode and enabled state. A text that no longer
   * loads is logged and its file left in place. Returns the policies restored
   * and the state files that failed (unreadable, or no longer loading).
   */
  restore(): Promise<{ restored: PolicyRef[]; failed: string[] }> {
    return this.serialized(async () => {
      const state = this.state;
      const restored: PolicyRef[] = [];
      const failed: string[] = [];
      if (!state) return { restored, failed };
      const texts = state.read((file, err) => {
        failed.push(file);
        this.log(`policy state ${state.dir}/${file}: ${message(err)}; skipped`);
      });
      for (const text of texts) {
        this.nextSeq = Math.max(this.nextSeq, text.seq + 1);
        let refs: PolicyRef[];
        try {
          refs = await this.doAdd(text.yaml, text.source === '' ? undefined : text.source, GRPC_DOMAIN, text);
        } catch (err) {
          failed.push(text.file);
          this.log(`policy state ${state.dir}/${text.file}: could not be loaded again: ${message(err)}; the file is kept`);
          continue;
        }
        for (const ref of refs) {
          const entry = this.entries.get(policyKey(ref))!;
          const saved = text.policies.find((p) => p.name === ref.name && p.namespace === ref.namespace);
          try {
            if (saved === undefined) {
              // Deleted through the API after its text was added.
              await this.control.unloadPolicy(entry.name);
              this.entries.delete(entry.key);
              continue;
            }
            if (saved.mode !== entry.mode) {
              await this.control.setPolicyMode(entry.name, saved.mode);
              entry.mode = saved.mode;
            }
            if (!saved.enabled) {
              await this.control.setPolicyEnabled(entry.name, false);
              entry.state = 'disabled';
            }
          } catch (err) {
            this.log(`policy ${entry.key}: restoring its state failed: ${message(err)}`);
          }
          restored.push(ref);
          this.log(`policy ${entry.key} restored from ${state.dir}/${text.file}: ${entry.mode}, ${entry.state}`);
        }
        this.persistLogged(text.file);
      }
      return { restored, failed };
    });
  }

  /**
   * Parses, compiles and loads every document of a policy text, all or
   * nothing: when one fails, those loaded before it are unloaded again.
   * Throws PolicyInvalidError, PolicyStoreError (exists, refused).
   */
  add(yaml: string, source?: string, domain = GRPC_DOMAIN): Promise<PolicyRef[]> {
    return this.serialized(() => this.doAdd(yaml, source, domain));
  }

  delete(name: string, namespace = '', domain = GRPC_DOMAIN): Promise<void> {
    return this.serialized(async () => {
      const entry = this.lookup({ name, namespace, domain });
      const previous = entry.state;
      entry.state = 'unloading';
      try {
        await this.control.unloadPolicy(entry.name);
      } catch (err) {
        // The sensor's calls are all or nothing: the policy is still as it was.
        entry.state = previous;
        throw this.refusal(err);
      }
      this.entries.delete(entry.key);
      if (entry.stateFile !== undefined) this.persistLogged(entry.stateFile);
      this.log(`policy ${entry.key} deleted`);
    });
  }

  enable(name: string, namespace = '', domain = GRPC_DOMAIN): Promise<void> {
    return this.configure({ name, namespace, domain }, { enabled: true });
  }

  disable(name: string, namespace = '', domain = GRPC_DOMAIN): Promise<void> {
    return this.configure({ name, namespace, domain }, { enabled: false });
  }

  setMode(name: string, mode: PolicyMode, namespace = '', domain = GRPC_DOMAIN): Promise<void> {
    return this.configure({ name, namespace, domain }, { mode });
  }

  /** Switches the mode, then enables or disables, as Tetragon's ConfigureTracingPolicy; a failure leaves the changes before it applied. */
  configure(ref: PolicyRef, change: { mode?: PolicyMode; enabled?: boolean }): Promise<void> {
    return this.serialized(async () => {
      const entry = this.lookup(ref);
      if (change.mode !== undefined) {
        try {
          await this.control.setPolicyMode(entry.name, change.mode);
        } catch (err) {
          throw this.refusal(err);
        }
        if (entry.mode !== change.mode) this.log(`policy ${entry.key} set to mode ${change.mode}`);
        entry.mode = change.mode;
      }
      try {
        if (change.enabled !== undefined) await this.setEnabled(entry, change.enabled);
      } finally {
        if (entry.stateFile !== undefined) this.persistLogged(entry.stateFile);
      }
    });
  }

  list(): PolicyStatus[] {
    return [...this.entries.values()].map((entry) => {
      const kinds = new Set(entry.program.hooks.map((hook) => hook.kind));
      const status: PolicyStatus = {
        id: entry.id,
        name: entry.name,
        namespace: entry.namespace,
        domain: entry.domain,
        info: entry.source,
        sensors: (['kprobe', 'tracepoint', 'uprobe', 'loader', 'usdt'] as const).filter((kind) => kinds.has(kind)).map((kind) => SENSOR_OF_KIND[kind]),
        hooks: hooksOf(entry.program),
        enabled: entry.state === 'enabled',
        state: entry.state,
        error: entry.error,
        mode: entry.mode,
      };
      const stats = entry.state === 'loading' ? undefined : this.stats(entry);
      if (stats !== undefined) status.stats = stats;
      return status;
    });
  }

  /** The compiled program of a loaded policy, by name (names are unique on a node). */
  program(name: string): PolicyProgram | undefined {
    for (const entry of this.entries.values()) if (entry.name === name) return entry.program;
    return undefined;
  }

  /**
   * Loads every policy again into a sensor that lost them (it restarted), in
   * the order they were added, with their current mode, disabled ones
   * disabled; those the sensor still has are left alone. Returns the names it
   * could not load (also logged).
   */
  reapply(stillLoaded: ReadonlySet<string> = new Set()): Promise<string[]> {
    return this.serialized(async () => {
      const failed: string[] = [];
      for (const entry of this.entries.values()) {
        if ((entry.state !== 'enabled' && entry.state !== 'disabled') || stillLoaded.has(entry.name)) continue;
        try {
          await this.control.loadPolicy({ ...entry.program, mode: entry.mode });
          if (entry.state === 'disabled') await this.control.setPolicyEnabled(entry.name, false);
        } catch (err) {
          failed.push(entry.name);
          this.log(`policy ${entry.key}: could not be re-applied: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      return failed;
    });
  }

  private serialized<T>(op: () => Promise<T>): Promise<T> {
    // Listeners hear of every operation, done or failed (a failed one may have changed some policies), before its caller does.
    const result = this.queue.then(op).finally(() => this.changed());
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Calls `listener` after every operation that may have changed the loaded
   * policies; the operation's caller resumes once a promise it returns has
   * settled (a failure is logged).
   */
  onChange(listener: () => void | Promise<void>): void {
    this.changeListeners.push(listener);
  }

  private async changed(): Promise<void> {
    for (const listener of this.changeListeners) {
      try {
        await listener();
      } catch (err) {
        this.log(`after a policy change: ${message(err)}`);
      }
    }
  }

  /** Rewrites a state file from the entries of its text now. Throws when it cannot. */
  private persist(file: string): void {
    const text = this.stateTexts.get(file);
    if (!this.state || !text) return;
    const policies = [...this.entries.values()].filter((e) => e.stateFile === file)
      .map((e) => ({ name: e.name, namespace: e.namespace, mode: e.mode, enabled: e.state !== 'disabled' }));
    this.state.write({ ...text, policies });
    if (policies.length === 0) this.stateTexts.delete(file);
  }

  /** persist() where the kernel change is done already: a failure is logged, not thrown. */
  private persistLogged(file: string): void {
    try {
      this.persist(file);
    } catch (err) {
      this.log(`policy state ${this.state?.dir}/${file}: not updated (the change will not survive a restart): ${message(err)}`);
    }
  }

  /**
   * `restoring`: the state file the text comes from (restore()); otherwise a
   * text added through the API gets a new one when there is a state directory.
   */
  /** Whether a loaded policy asks for the kill-process-tree follow-up (followup.ts). */
  hasFollowUps(): boolean {
    for (const entry of this.entries.values()) if (entry.program.followUp === 'kill-process-tree') return true;
    return false;
  }

  /**
   * Parses and compiles a policy text without loading it (nothing changes);
   * returns its policies. Throws PolicyInvalidError.
   */
  async validate(yaml: string, source?: string, domain = GRPC_DOMAIN): Promise<PolicyRef[]> {
    const compiled = await this.compile(yaml, source);
    return compiled.map(({ document }) => ({ name: document.name, namespace: document.namespace ?? '', domain }));
  }

  private async compile(yaml: string, source: string | undefined): Promise<Awaited<ReturnType<typeof loadPolicyTextOffThread>>> {
    let compiled: Awaited<ReturnType<typeof loadPolicyTextOffThread>>;
    try {
      // Parsed and validated in a worker, bounded (POLICY_LIMITS, PARSE_WORKER_LIMITS); compiled here.
      compiled = await loadPolicyTextOffThread(yaml, this.env, source);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      const fields = { path: err.path, reason: err.reason, line: err.line, source: err.source ?? source };
      throw new PolicyInvalidError(fields, { cause: err });
    }
    if (compiled.length === 0) throw new PolicyInvalidError({ path: '', reason: 'no TracingPolicy or TracingPolicyNamespaced document', source });
    return compiled;
  }

  private async doAdd(yaml: string, source: string | undefined, domain: string, restoring?: PersistedText): Promise<PolicyRef[]> {
    const compiled = await this.compile(yaml, source);
    const refs = compiled.map(({ document }) => ({ name: document.name, namespace: document.namespace ?? '', domain }));
    refs.forEach((ref, i) => this.checkFree(ref, refs.slice(0, i)));

    const added: Entry[] = [];
    try {
      for (const [i, { program }] of compiled.entries()) {
        const ref = refs[i]!;
        const entry: Entry = { ...ref, id: this.nextId++, key: policyKey(ref), source: source ?? '', program, mode: program.mode, state: 'loading', error: '' };
        this.entries.set(entry.key, entry);
        added.push(entry);
        await this.control.loadPolicy(program);
        entry.state = 'enabled';
      }
    } catch (err) {
      // The failed load left nothing behind; undo the ones before it, last first.
      const failed = added.pop()!;
      this.entries.delete(failed.key);
      for (const entry of added.reverse()) await this.rollBack(entry, failed);
      throw this.refusal(err);
    }
    if (this.state && domain === GRPC_DOMAIN) {
      const file = restoring?.file ?? this.state.fileFor(refs[0]!.name);
      this.stateTexts.set(file, { file, seq: restoring?.seq ?? this.nextSeq++, yaml, source: source ?? '' });
      for (const entry of added) entry.stateFile = file;
      if (!restoring) {
        try {
          this.persist(file);
        } catch (err) {
          // Not kept across restarts: refuse it rather than lose it later without a word.
          this.stateTexts.delete(file);
          for (const entry of added.reverse()) await this.rollBack(entry, entry);
          throw new PolicyStoreError('refused', `policies ${refs.map(policyKey).join(', ')}: the state directory ${this.state.dir} cannot keep them: ${message(err)}`, { cause: err });
        }
      }
    }
    if (!restoring) {
      for (const entry of added) {
        this.log(`policy ${entry.key} added${source === undefined ? '' : ` from ${source}`}: ${entry.mode}, ${entry.program.hooks.length} hooks`);
      }
    }
    return refs;
  }

  /** Throws unless the policy can be added: its key is free and its name is not taken on the node (nor earlier in the same text). */
  private checkFree(ref: PolicyRef, sameText: PolicyRef[]): void {
    const key = policyKey(ref);
    if (this.entries.has(key) || sameText.some((other) => policyKey(other) === key)) {
      throw new PolicyStoreError('exists', `tracing policy ${key} already exists`);
    }
    const holder = [...this.entries.values(), ...sameText].find((other) => other.name === ref.name);
    if (holder !== undefined) {
      throw new PolicyStoreError('exists', `tracing policy ${key}: the name ${ref.name} is taken by ${policyKey(holder)} (policy names are unique on a node)`);
    }
  }

  private async rollBack(entry: Entry, failed: Entry): Promise<void> {
    try {
      await this.control.unloadPolicy(entry.name);
      this.entries.delete(entry.key);
    } catch (err) {
      // Still in the kernel: keep it visible so that it can be deleted.
      entry.state = 'error';
      entry.error = `left loaded when ${failed.key} failed: unloading it failed: ${message(err)}`;
      this.log(`policy ${entry.key}: ${entry.error}`);
    }
  }

  private async setEnabled(entry: Entry, enabled: boolean): Promise<void> {
    const [from, via, to] = enabled ? (['disabled', 'loading', 'enabled'] as const) : (['enabled', 'unloading', 'disabled'] as const);
    if (entry.state !== from) throw new PolicyStoreError('state', `tracing policy ${entry.key} is not ${from}`);
    entry.state = via;
    try {
      await this.control.setPolicyEnabled(entry.name, enabled);
    } catch (err) {
      entry.state = from;
      throw this.refusal(err);
    }
    entry.state = to;
    this.log(`policy ${entry.key} ${to}`);
  }

  private lookup(ref: PolicyRef): Entry {
    const key = policyKey(ref);
    const entry = this.entries.get(key);
    if (entry !== undefined) return entry;
    // Point at a policy of that name elsewhere, e.g. one from the policy directory (domain static).
    const other = [...this.entries.values()].find((e) => e.name === ref.name);
    throw new PolicyStoreError('not_found', `tracing policy ${key} does not exist${other === undefined ? '' : ` (there is ${other.key})`}`);
  }

  private stats(entry: Entry): PolicyKernelStats | undefined {
    try {
      return this.control.policyStats(entry.name);
    } catch {
      // Counters are informative: a policy the sensor cannot count for is still listed.
      return undefined;
    }
  }

  /** The sensor's refusal as a store error; other failures unchanged. */
  private refusal(err: unknown): unknown {
    return err instanceof PolicyLoadError ? new PolicyStoreError('refused', err.message, { cause: err }) : err;
  }
}
