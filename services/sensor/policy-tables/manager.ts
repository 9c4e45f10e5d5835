/**
 * The sensor's side of policies: it owns the policy tables and the links of
 * the generic hook programs, and serves SensorPolicyControl. Loading writes
 * every table entry first and attaches last, so a hook never runs on a
 * half-written configuration; any failure undoes everything of that policy.
 * Mode and enabled are one vigil_policies entry each.
 *
 * The kernel allows one attachment of a program per tracepoint, so hooks of
 * several policies on one target share an attachment: its BPF cookie is an
 * index into vigil_attachments, which lists the hook ids it serves. A
 * syscall hook is served at the syscall's own tracepoint, or, for the
 * syscalls busy processes make most, by two programs every syscall runs,
 * which find a syscall's attachment by its number (syscall-dispatch.ts).
 */
import { decidedAtExitAlone, type Hook, type PolicyMode, type PolicyProgram } from '../../lib/policy-program.js';
import { PolicyLoadError, type PolicyKernelStats, type SensorPolicyControl } from '../../lib/sensor-control.js';
import { sumPerCpu, type BpfObject } from '../kernel/addon.js';
import { StructLayout, StructWriter } from '../kernel/layout.js';
import { MODE } from './encoding.js';
import { PolicyTables, type StringEntry } from './tables.js';
import { ScopeTables } from './scope.js';
import { OWN_TRACEPOINT_PROGRAMS, SYSCALL_PROGRAMS, SyscallDispatch, ownTracepoint, type SyscallSide } from './syscall-dispatch.js';
import type { ContainerRegistry } from '../containers/registry.js';
import { cgroup2Mount } from '../proc-walk.js';
import { CookielessProgram, MAX_ATTACHMENTS, MAX_FOLLOW_SLOTS, MAX_HOOKS, MAX_POLICIES } from '../../lib/kernel-abi.js';

/** Generic programs of bpf/hook_*.bpf.c, attached once per target (the syscall ones: syscall-dispatch.ts). */
export const HOOK_PROGRAMS = {
  tracepoint: 'vigil_tracepoint',
  uprobe: 'vigil_uprobe',
  uretprobe: 'vigil_uretprobe',
} as const;

/**
 * The tracepoints with a tp_btf program of their own (bpf/hook_tracepoint.bpf.c), by event: the program, its
 * index in vigil_cookieless_attachments, and the tracepoint's subsystem (not every kernel has it: the sensor leaves
 * the program unloaded then).
 */
export const BTF_TRACEPOINT_PROGRAMS: Readonly<Record<string, { program: string; index: number; subsystem: string }>> = {
  sched_prepare_exec: { program: 'vigil_prepare_exec', index: CookielessProgram.PREPARE_EXEC, subsystem: 'sched' },
};

/** The policy hook programs of bpf/hook_cgroup.bpf.c, attached at the cgroup v2 root: the program, its index in vigil_cookieless_attachments. */
const CGROUP_HOOK_PROGRAMS: Readonly<Record<string, { program: string; index: number }>> = {
  skb_ingress: { program: 'vigil_skb_ingress', index: CookielessProgram.SKB_INGRESS },
};

/** Programs of bpf/hook_cgroup.bpf.c that make each syscall of OVERRIDE_SYSCALLS fail for an Override. */
const OVERRIDE_PROGRAMS: Readonly<Record<string, readonly string[]>> = {
  connect: ['vigil_override_connect4', 'vigil_override_connect6'],
  bind: ['vigil_override_bind4', 'vigil_override_bind6'],
  sendto: ['vigil_override_sendmsg4', 'vigil_override_sendmsg6'],
  sendmsg: ['vigil_override_sendmsg4', 'vigil_override_sendmsg6'],
  socket: ['vigil_override_sock_create'],
};
/** At the exit of the call: removes (and counts) an Override no cgroup program took. */
const OVERRIDE_CLEAR = 'vigil_override_clear';

/** Where a generic program is attached: one per (program, target). `detach` undoes the attachment. */
interface Attachment { key: string; id: number; detach?: () => void; hooks: number[] }

interface AttachTarget {
  /** Attaches for attachment `id`; returns what detaches. */
  attach: (id: number) => () => void;
  key: string;
}

export interface LoadedHook { id: number; hook: Hook; attachments: string[] }

interface LoadedPolicy {
  program: PolicyProgram;
  index: number;
  hooks: LoadedHook[];
  strings: StringEntry[];
  followSlots: number[];
  enabled: boolean;
}

/** Which operators' values each string table holds (tables.ts stringEntry). */
const STRING_TABLE_OPERATORS: Record<StringEntry['map'], string> = {
  vigil_str_equal: 'Equal/NotEqual, matchBinaries In/NotIn',
  vigil_str_prefix: 'Prefix/NotPrefix',
  vigil_str_postfix: 'Postfix/NotPostfix',
  vigil_addr_lpm: 'SAddr/DAddr prefixes',
};

const fail = (message: string): never => { throw new Error(message); };

/** Whether a policy tracks socks (TrackSock in a selector, or as a returnArgAction). */
const tracksSocks = (p: PolicyProgram): boolean =>
  p.hooks.some((h) => h.returnArgAction === 'TrackSock' || h.selectors.some((s) => s.matchActions.some((a) => a.action === 'TrackSock')));

const u32Key = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

export class PolicyManager implements SensorPolicyControl {
  private readonly tables: PolicyTables;
  private readonly stateLayout: StructLayout;
  private readonly statsLayout: StructLayout;
  private readonly hookSize: number;
  private readonly followSize: number;
  private readonly policies = new Map<string, LoadedPolicy>();
  private readonly hooksById = new Map<number, { policy: string; hook: Hook }>();
  private readonly freeHooks = Array.from({ length: MAX_HOOKS }, (_, i) => i);
  /** vigil_hook.serial of the next hook loaded: what tells it from earlier hooks at its index. */
  private nextHookSerial = 1;
  private readonly freePolicies = Array.from({ length: MAX_POLICIES }, (_, i) => i);
  private readonly freeFollowSlots = Array.from({ length: MAX_FOLLOW_SLOTS }, (_, i) => i);
  private readonly freeAttachments = Array.from({ length: MAX_ATTACHMENTS }, (_, i) => i);
  private readonly attachments = new Map<string, Attachment>();
  private readonly attachmentLayout: StructLayout;

  private readonly scopes: ScopeTables;
  private readonly syscalls: SyscallDispatch;

  constructor(private readonly object: BpfObject, containers?: ContainerRegistry) {
    const btf = (name: string) => object.btfStruct(name);
    this.tables = new PolicyTables(btf);
    this.scopes = new ScopeTables(object, btf, containers);
    this.syscalls = new SyscallDispatch(object, btf);
    this.stateLayout = new StructLayout('vigil_policy_state', btf);
    this.statsLayout = new StructLayout('vigil_policy_stats', btf);
    this.hookSize = new StructLayout('vigil_hook', btf).size;
    this.followSize = new StructLayout('vigil_follow_slot', btf).size;
    this.attachmentLayout = new StructLayout('vigil_attachment', btf);
  }

  /** The hook behind a policy record's hook id. */
  hook(id: number): { policy: string; hook: Hook } | undefined {
    return this.hooksById.get(id);
  }

  loaded(): string[] {
    return [...this.policies.keys()];
  }

  async loadPolicy(program: PolicyProgram): Promise<void> {
    const name = program.name;
    if (this.policies.has(name)) throw new PolicyLoadError(name, 'a policy of that name is already loaded');
    if (program.hooks.length > this.freeHooks.length) {
      throw new PolicyLoadError(name, `${program.hooks.length} hooks, only ${this.freeHooks.length} of ${MAX_HOOKS} free`);
    }
    const index = this.freePolicies.shift();
    if (index === undefined) throw new PolicyLoadError(name, `${MAX_POLICIES} policies are loaded already`);
    const policy: LoadedPolicy = { program, index, hooks: [], strings: [], followSlots: [], enabled: true };
    this.policies.set(name, policy);
    try {
      if (program.scope) this.scopes.set(index, program.scope);
      this.writeState(policy, program.mode);
      for (const hook of program.hooks) {
        const id = this.freeHooks.shift()!;
        policy.hooks.push({ id, hook, attachments: [] });
        const entries = this.tables.encodeHook(hook, { hookId: id, serial: this.nextHookSerial++ >>> 0, policyIndex: index }, () => {
          const slot = this.freeFollowSlots.shift();
          if (slot === undefined) throw new PolicyLoadError(name, `all ${MAX_FOLLOW_SLOTS} follow slots (followChildren/followForks) are in use`);
          policy.followSlots.push(slot);
          return slot;
        });
        for (const s of entries.strings) {
          this.writeString(name, s);
          policy.strings.push(s);
        }
        for (const f of entries.follow) this.object.mapUpdate('vigil_follow_slots', u32Key(f.slot), f.value);
        for (const r of entries.resolvePaths) this.object.mapUpdate('vigil_resolve_paths', u32Key(r.key), r.value);
        this.object.mapUpdate('vigil_hooks', u32Key(id), entries.hook);
        this.hooksById.set(id, { policy: name, hook });
      }
      for (const loaded of policy.hooks) this.attach(loaded);
    } catch (err) {
      this.release(policy);
      if (err instanceof PolicyLoadError) throw err;
      throw new PolicyLoadError(name, err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  async unloadPolicy(name: string): Promise<void> {
    this.release(this.get(name));
  }

  async setPolicyMode(name: string, mode: PolicyMode): Promise<void> {
    const policy = this.get(name);
    this.writeState(policy, mode);
    policy.program = { ...policy.program, mode };
  }

  async setPolicyEnabled(name: string, enabled: boolean): Promise<void> {
    const policy = this.get(name);
    policy.enabled = enabled;
    this.writeState(policy, policy.program.mode);
  }

  policyStats(name: string): PolicyKernelStats {
    const policy = this.get(name);
    const perCpu = this.object.mapLookup('vigil_policy_stats', u32Key(policy.index));
    const field = (path: string): number => sumPerCpu(perCpu, this.statsLayout.size, this.statsLayout.offset(path, 8));
    return { matched: field('matched'), actionsApplied: field('actions_applied'), actionsMonitored: field('actions_monitored'), rateLimited: field('rate_limited') };
  }

  /** Detaches every policy; used when the sensor stops. */
  close(): void {
    for (const policy of [...this.policies.values()]) this.release(policy);
    this.scopes.close();
  }

  /** The cgroup2 ids a scoped policy covers now. */
  scopeCgroups(name: string): bigint[] {
    return this.scopes.cgroups(this.get(name).index);
  }

  private get(name: string): LoadedPolicy {
    const policy = this.policies.get(name);
    if (!policy) throw new PolicyLoadError(name, 'no such policy is loaded');
    return policy;
  }

  /**
   * One string value into its table. The string tables are node-wide: every
   * policy's values share them, one entry per value per hook, selector and
   * matcher; a full table refuses the update (E2BIG for the hash table,
   * ENOSPC for the LPM tries), which becomes a refusal naming the table.
   */
  private writeString(policyName: string, s: StringEntry): void {
    try {
      this.object.mapUpdate(s.map, s.key, Buffer.from([1]));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'E2BIG' && code !== 'ENOSPC') throw err;
      let size = '';
      try {
        size = `${this.object.mapInfo(s.map).maxEntries} `;
      } catch {
        // The size is informative; the refusal stands without it.
      }
      throw new PolicyLoadError(policyName, `the string table ${s.map} (${STRING_TABLE_OPERATORS[s.map]} values) is full: it holds ${size}entries `
        + 'for all policies on the node together, one per value per hook, selector and matcher; use fewer values (a Prefix can cover several) '
        + `or delete a policy that uses them (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
  }

  private writeState(policy: LoadedPolicy, mode: PolicyMode): void {
    const state = new StructWriter(this.stateLayout).set('enabled', policy.enabled ? 1 : 0).set('mode', MODE[mode])
      .set('scoped', policy.program.scope ? 1 : 0);
    this.object.mapUpdate('vigil_policies', u32Key(policy.index), state.buf);
  }

  /** Where a hook's programs run: entry, and exit too when it decides there. */
  private targets(hook: Hook): AttachTarget[] {
    const t = hook.attach;
    const linked = (link: number) => () => this.object.detach(link);
    const tracepoint = (program: string, category: string, name: string): AttachTarget => ({
      key: `${program} ${category}/${name}`,
      attach: (cookie) => linked(this.object.attachTracepoint(program, category, name, cookie)),
    });
    // A program without a BPF cookie: its attachment is named in vigil_cookieless_attachments before the program runs.
    const cookieless = (program: string, index: number, link: () => number): AttachTarget => ({
      key: program,
      attach: (id) => {
        this.object.mapUpdate('vigil_cookieless_attachments', u32Key(index), u32Key(id + 1));
        try {
          const linkId = link();
          return () => {
            this.object.detach(linkId);
            this.object.mapUpdate('vigil_cookieless_attachments', u32Key(index), u32Key(0));
          };
        } catch (err) {
          this.object.mapUpdate('vigil_cookieless_attachments', u32Key(index), u32Key(0));
          throw err;
        }
      },
    });
    const cgroupRoot = (): string => cgroup2Mount() ?? fail('a cgroup program needs the cgroup v2 hierarchy, and none is mounted');
    const btfTracepoint = (event: string): AttachTarget => {
      const typed = BTF_TRACEPOINT_PROGRAMS[event] ?? fail(`no typed (tp_btf) program serves the tracepoint ${event}`);
      return cookieless(typed.program, typed.index, () => this.object.attachTarget(typed.program));
    };
    const cgroupHook = (name: string): AttachTarget => {
      const program = CGROUP_HOOK_PROGRAMS[name] ?? fail(`no cgroup program ${name}`);
      return cookieless(program.program, program.index, () => this.object.attachCgroup(program.program, cgroupRoot()));
    };
    const syscall = (side: SyscallSide, name: string, nr: number): AttachTarget => {
      const own = ownTracepoint(side, name);
      return {
        key: own === undefined ? `${SYSCALL_PROGRAMS[side]} syscall ${nr}` : `${OWN_TRACEPOINT_PROGRAMS[side]} syscalls/${own}`,
        attach: (id) => this.syscalls.route(side, nr, id, own),
      };
    };
    const uprobe = (program: string, retprobe: boolean, path: string, symbol: string): AttachTarget => {
      const at = t.kind === 'uprobe' ? { offset: t.offset, refCtrOffset: t.refCtrOffset } : {};
      return {
        key: `${program} ${path}:${symbol}+${at.offset ?? 0}`,
        attach: (cookie) => linked(this.object.attachUprobe(program, path, symbol, {
          retprobe, cookie, ...(at.offset !== undefined && { offset: at.offset }), ...(at.refCtrOffset !== undefined && { refCtrOffset: at.refCtrOffset }),
        })),
      };
    };
    // The cgroup v2 root: programs there run for every process of the node.
    const cgroup = (program: string): AttachTarget => ({
      key: `${program} cgroup2 root`,
      attach: () => linked(this.object.attachCgroup(program, cgroupRoot())),
    });
    // Override (allowed by the compiler at the entry of OVERRIDE_SYSCALLS only): the cgroup programs that fail the call, shared by every such hook.
    const overridden = t.kind === 'syscall' && hook.selectors.some((s) => s.matchActions.some((a) => a.action === 'Override')) ? t.syscall : undefined;
    const overrides = overridden === undefined ? [] : [
      ...(OVERRIDE_PROGRAMS[overridden] ?? fail(`Override cannot make ${overridden} fail`)).map(cgroup),
      tracepoint(OVERRIDE_CLEAR, 'syscalls', `sys_exit_${overridden}`),
    ];
    switch (t.kind) {
      case 'syscall':
        return [...(decidedAtExitAlone(hook) ? [] : [syscall('enter', t.syscall, t.number)]), ...(hook.atExit ? [syscall('exit', t.syscall, t.number)] : []), ...overrides];
      case 'tracepoint':
        return [t.btf ? btfTracepoint(t.event) : tracepoint(HOOK_PROGRAMS.tracepoint, t.subsystem, t.event)];
      case 'uprobe':
        return [uprobe(HOOK_PROGRAMS.uprobe, false, t.file ?? t.path, t.symbol),
          ...(hook.atExit ? [uprobe(HOOK_PROGRAMS.uretprobe, true, t.file ?? t.path, t.symbol)] : [])];
      case 'cgroup':
        return [cgroupHook(t.program)];
    }
  }

  /** Adds the hook to the attachment of each of its targets, attaching the program where it is new. */
  private attach(loaded: LoadedHook): void {
    for (const target of this.targets(loaded.hook)) {
      let attachment = this.attachments.get(target.key);
      if (!attachment) {
        const id = this.freeAttachments.shift();
        if (id === undefined) throw new Error(`all ${MAX_ATTACHMENTS} hook attachments are in use`);
        attachment = { key: target.key, id, hooks: [] };
        this.attachments.set(target.key, attachment);
      }
      const max = this.attachmentLayout.field('hooks').size / 4;
      if (attachment.hooks.length >= max) {
        throw new Error(`${target.key} already serves ${max} hooks, the most one syscall, tracepoint or uprobe serves for all policies on the node together `
          + `(VIGIL_ATTACHMENT_HOOKS): merge this policy's hooks on it into one (selectors of a hook are ORed), or delete a policy that hooks it`);
      }
      attachment.hooks.push(loaded.id);
      loaded.attachments.push(target.key);
      this.writeAttachment(attachment);
      attachment.detach ??= target.attach(attachment.id);
    }
  }

  private detach(loaded: LoadedHook): void {
    for (const key of loaded.attachments) {
      const attachment = this.attachments.get(key);
      if (!attachment) continue;
      attachment.hooks = attachment.hooks.filter((id) => id !== loaded.id);
      if (attachment.hooks.length > 0) {
        this.writeAttachment(attachment);
        continue;
      }
      attachment.detach?.();
      this.object.mapUpdate('vigil_attachments', u32Key(attachment.id), Buffer.alloc(this.attachmentLayout.size));
      this.attachments.delete(key);
      this.freeAttachments.push(attachment.id);
    }
    loaded.attachments = [];
  }

  private writeAttachment(attachment: Attachment): void {
    const w = new StructWriter(this.attachmentLayout).set('nhooks', attachment.hooks.length);
    attachment.hooks.forEach((id, i) => w.set(`hooks[${i}]`, id));
    this.object.mapUpdate('vigil_attachments', u32Key(attachment.id), w.buf);
  }

  /** Forgets the socks a policy's TrackSock tracked: they name their owners no more. */
  private untrackSocks(index: number): void {
    const policyAt = new StructLayout('vigil_sock_owner', (name) => this.object.btfStruct(name)).offset('policy', 4);
    for (const key of this.object.mapKeys('vigil_sock_owner')) {
      const value = this.object.mapLookup('vigil_sock_owner', key);
      if (value?.readUInt32LE(policyAt) === index) this.object.mapDelete('vigil_sock_owner', key);
    }
  }

  /** Detaches and clears everything a (possibly half-loaded) policy wrote. */
  private release(policy: LoadedPolicy): void {
    for (const loaded of policy.hooks) {
      this.detach(loaded);
      const { id } = loaded;
      this.object.mapUpdate('vigil_hooks', u32Key(id), Buffer.alloc(this.hookSize));
      this.hooksById.delete(id);
      this.freeHooks.push(id);
    }
    for (const s of policy.strings) this.object.mapDelete(s.map, s.key);
    for (const slot of policy.followSlots) {
      this.object.mapUpdate('vigil_follow_slots', u32Key(slot), Buffer.alloc(this.followSize));
      this.freeFollowSlots.push(slot);
    }
    if (tracksSocks(policy.program)) this.untrackSocks(policy.index);
    this.object.mapUpdate('vigil_policies', u32Key(policy.index), Buffer.alloc(this.stateLayout.size));
    this.scopes.remove(policy.index);
    this.freePolicies.push(policy.index);
    this.policies.delete(policy.program.name);
  }
}
