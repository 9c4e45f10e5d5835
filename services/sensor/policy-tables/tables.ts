/**
 * Turns a compiled policy's hooks into the bytes of bpf/vigil.h's tables:
 * one vigil_hook entry per hook, keys of the string tables, and follow slots.
 * Layouts come from the object's BTF; limits are the header's.
 */
import { decidedAtExitAlone, type ArgMatch, type ArgSpec, type Hook, type Selector } from '../../lib/policy-program.js';
import { StructLayout, StructWriter, type BtfSource } from '../kernel/layout.js';
import {
  ACTION, ARG_FLAG, ARG_SOURCE, ARG_TYPE, CAP_SET, FOLLOW_KIND, GUARD_OP, HOOK_FLAG, HOOK_KIND, MATCHER, NAMESPACE_INDEX, NET_FIELD, NO_SLOT, OP, PID_FLAG, STACK,
} from './encoding.js';
import { MAX_HOOK_ARGS, RESOLVE_DEPTH } from '../../lib/kernel-abi.js';

/** The tables of values that do not fit a selector: strings, and the address prefixes of SAddr/DAddr (vigil_addr_lpm). */
export type StringTable = 'vigil_str_equal' | 'vigil_str_prefix' | 'vigil_str_postfix' | 'vigil_addr_lpm';
export interface StringEntry { map: StringTable; key: Buffer }
export interface FollowEntry { slot: number; value: Buffer }
/** vigil_resolve_paths[key]: the field path of one argument (bpf/vigil.h struct vigil_resolve_path). */
export interface ResolveEntry { key: number; value: Buffer }
export interface HookEntries { hook: Buffer; strings: StringEntry[]; follow: FollowEntry[]; resolvePaths: ResolveEntry[] }

/** Thrown for a policy the tables cannot hold; the message names the hook and selector. */
export class TableLimitError extends Error {}

export class PolicyTables {
  private readonly hookLayout: StructLayout;
  private readonly keyLayout: StructLayout;
  private readonly addrKeyLayout: StructLayout;
  private readonly followLayout: StructLayout;
  private readonly resolveLayout: StructLayout;
  /** Longest string value the string tables hold (vigil_string_key.str). */
  private readonly stringMax: number;

  constructor(btf: BtfSource) {
    this.hookLayout = new StructLayout('vigil_hook', btf);
    this.keyLayout = new StructLayout('vigil_string_key', btf);
    this.addrKeyLayout = new StructLayout('vigil_addr_key', btf);
    this.followLayout = new StructLayout('vigil_follow_slot', btf);
    this.resolveLayout = new StructLayout('vigil_resolve_path', btf);
    this.stringMax = this.keyLayout.field('str').size;
  }

  /** Encodes one hook; `allocateFollowSlot` hands out node-wide follow bits. */
  encodeHook(hook: Hook, at: { hookId: number; serial: number; policyIndex: number }, allocateFollowSlot: () => number): HookEntries {
    const { hookId, policyIndex } = at;
    const w = new StructWriter(this.hookLayout);
    const strings: StringEntry[] = [];
    const follow: FollowEntry[] = [];
    let flags = HOOK_FLAG.active;
    if (hook.atExit) flags |= HOOK_FLAG.atExit;
    if (decidedAtExitAlone(hook)) flags |= HOOK_FLAG.exitAlone;
    if (hook.returnArg) flags |= HOOK_FLAG.return;
    if (hook.returnArgAction) flags |= HOOK_FLAG[hook.returnArgAction];
    if (hook.selectors.some((s) => s.matchActions.some((a) => a.kernelStackTrace || a.userStackTrace))) flags |= HOOK_FLAG.stacks;
    if (hook.attach.kind === 'tracepoint' && hook.attach.subsystem === 'sched' && hook.attach.event === 'sched_process_exec') flags |= HOOK_FLAG.execEvent;
    w.set('policy', policyIndex).set('serial', at.serial).set('kind', HOOK_KIND[hook.kind]).set('flags', flags)
      .set('nargs', hook.args.length).set('nselectors', hook.selectors.length);
    const resolvePaths: ResolveEntry[] = [];
    // Each argument's path has the entry of its hook and position; the return argument's is the last.
    const resolveKey = (position: number): number => hookId * (MAX_HOOK_ARGS + 1) + position;
    hook.args.forEach((arg, i) => this.writeArg(w, `args[${i}]`, arg, resolveKey(i), resolvePaths));
    if (hook.returnArg) this.writeArg(w, 'ret', hook.returnArg, resolveKey(MAX_HOOK_ARGS), resolvePaths);
    if (hook.guard) {
      this.writeArg(w, 'guard.arg', hook.guard.arg, undefined, resolvePaths);
      w.set('guard.op', GUARD_OP[hook.guard.op]).set('guard.value', hook.guard.value);
    }

    hook.selectors.forEach((selector, s) => {
      const where = `hook ${hook.name} selector ${s}`;
      const at = (path: string): string => `selectors[${s}].${path}`;
      const addStrings = (matcher: number, op: string, values: string[]): void => {
        for (const value of values) strings.push(this.stringEntry(op, hookId, s, matcher, value, where));
      };
      this.writeSelectorHead(w, selector, at, where);

      const addValues = (matcher: number, m: ArgMatch) => (): void => {
        if (m.kind === 'string') addStrings(matcher, m.op, m.values);
        if (m.kind === 'address') for (const p of m.prefixes) strings.push(this.addressEntry(hookId, s, matcher, p));
      };
      selector.matchArgs.forEach((m, i) => this.writeArgMatch(w, at(`args[${i}]`), m, hook, addValues(MATCHER.arg(i), m)));
      selector.matchReturnArgs.forEach((m, i) => this.writeArgMatch(w, at(`return_args[${i}]`), m, hook, addValues(MATCHER.returnArg(i), m)));

      const binaries = selector.matchBinaries[0];
      if (binaries) {
        let slot = NO_SLOT;
        if (binaries.followChildren) {
          slot = allocateFollowSlot();
          follow.push({ slot, value: new StructWriter(this.followLayout).set('kind', FOLLOW_KIND.binary).set('hook', hookId).set('selector', s).buf });
        }
        w.set(at('has_binaries'), 1).set(at('binaries.op'), OP[binaries.op]!).set(at('binaries.follow_slot'), slot);
        addStrings(MATCHER.binaries, binaries.op, binaries.values);
      }

      const pids = selector.matchPIDs[0];
      if (pids) {
        let slot = NO_SLOT;
        const pidFlags = (pids.isNamespacePID ? PID_FLAG.namespace : 0) | (pids.followForks ? PID_FLAG.followForks : 0);
        if (pids.followForks) {
          slot = allocateFollowSlot();
          const fw = new StructWriter(this.followLayout).set('kind', FOLLOW_KIND.pid).set('hook', hookId).set('selector', s)
            .set('pid_flags', pidFlags & PID_FLAG.namespace).set('nvalues', pids.values.length);
          pids.values.forEach((v, i) => fw.set(`pids[${i}]`, v));
          follow.push({ slot, value: fw.buf });
        }
        w.set(at('n_pids'), 1).set(at('pids.op'), OP[pids.op]!).set(at('pids.flags'), pidFlags)
          .set(at('pids.nvalues'), pids.values.length).set(at('pids.follow_slot'), slot);
        pids.values.forEach((v, i) => w.set(at(`pids.values[${i}]`), v));
      }
    });
    return { hook: w.buf, strings, follow, resolvePaths };
  }

  private writeArg(w: StructWriter, path: string, arg: ArgSpec, resolveKey: number | undefined, resolvePaths: ResolveEntry[]): void {
    const source = arg.source;
    let flags = arg.resolveFromReturnedFd ? ARG_FLAG.resolveRetFd : 0;
    if (arg.sockFrom === 'fd') flags |= ARG_FLAG.fdSock;
    if (arg.sockFrom === 'skb') flags |= ARG_FLAG.skbSock;
    if (arg.wireType === 'syscall64') flags |= ARG_FLAG.syscall64;
    w.set(`${path}.type`, ARG_TYPE[arg.type]).set(`${path}.source`, ARG_SOURCE[source.kind])
      .set(`${path}.size_arg`, arg.sizeArgIndex ?? NO_SLOT);
    if (source.kind === 'syscall_arg' || source.kind === 'function_arg') w.set(`${path}.index`, source.index);
    if (source.kind === 'constant') w.set(`${path}.offset`, source.value);
    if (source.kind === 'usdt') {
      if (source.signed) flags |= ARG_FLAG.signed;
      if (source.displacement !== undefined) flags |= ARG_FLAG.usdtMemory;
      w.set(`${path}.index`, source.register).set(`${path}.size`, source.size).set(`${path}.offset`, (source.displacement ?? 0) & 0xffff);
    }
    if (source.kind === 'tracepoint_field') {
      if (source.signed) flags |= ARG_FLAG.signed;
      if (source.dataLoc) flags |= ARG_FLAG.dataLoc;
      w.set(`${path}.offset`, source.offset).set(`${path}.size`, source.size);
    }
    if (source.kind === 'btf_arg') {
      w.set(`${path}.index`, source.index);
      const field = source.field;
      if (field) {
        if (resolveKey === undefined) throw new TableLimitError(`${path}: a resolved field cannot be read here`);
        if (field.derefs.length > RESOLVE_DEPTH) throw new TableLimitError(`${path}: resolve loads ${field.derefs.length} pointers (at most ${RESOLVE_DEPTH})`);
        flags |= ARG_FLAG.resolve | (field.signed ? ARG_FLAG.signed : 0);
        w.set(`${path}.offset`, resolveKey).set(`${path}.size`, field.size);
        const r = new StructWriter(this.resolveLayout).set('nderefs', field.derefs.length).set('offset', field.offset);
        field.derefs.forEach((d, k) => r.set(`derefs[${k}]`, d));
        resolvePaths.push({ key: resolveKey, value: r.buf });
      }
    }
    w.set(`${path}.flags`, flags);
  }

  /** The matchers whose values live inline: counts, namespaces, capabilities, changes, actions. */
  private writeSelectorHead(w: StructWriter, selector: Selector, at: (p: string) => string, where: string): void {
    const limit = (what: string, n: number, max: number): void => {
      if (n > max) throw new TableLimitError(`${where}: ${n} ${what} (at most ${max})`);
    };
    limit('matchPIDs', selector.matchPIDs.length, 1);
    limit('matchBinaries', selector.matchBinaries.length, 1);
    limit('matchNamespaces', selector.matchNamespaces.length, 10);
    limit('matchCapabilities', selector.matchCapabilities.length, 3);
    limit('matchCapabilityChanges', selector.matchCapabilityChanges.length, 3);
    limit('matchArgs', selector.matchArgs.length, 5);
    limit('matchReturnArgs', selector.matchReturnArgs.length, 2);
    limit('matchNamespaceChanges', selector.matchNamespaceChanges.length, 1);
    limit('matchActions', selector.matchActions.length, 3);
    w.set(at('n_ns'), selector.matchNamespaces.length).set(at('n_caps'), selector.matchCapabilities.length)
      .set(at('n_cap_changes'), selector.matchCapabilityChanges.length).set(at('n_args'), selector.matchArgs.length)
      .set(at('n_return_args'), selector.matchReturnArgs.length).set(at('n_actions'), selector.matchActions.length);
    selector.matchNamespaces.forEach((m, i) => {
      limit('namespace values', m.values.length, 4);
      w.set(at(`ns[${i}].ns`), NAMESPACE_INDEX[m.namespace]).set(at(`ns[${i}].op`), OP[m.op]!).set(at(`ns[${i}].nvalues`), m.values.length);
      m.values.forEach((v, j) => w.set(at(`ns[${i}].values[${j}]`), v));
    });
    const caps = (field: 'caps' | 'cap_changes', list: Selector['matchCapabilities']): void => list.forEach((m, i) => {
      w.set(at(`${field}[${i}].set`), CAP_SET[m.type]).set(at(`${field}[${i}].op`), OP[m.op]!)
        .set(at(`${field}[${i}].is_ns_cap`), m.isNamespaceCapability ? 1 : 0).set(at(`${field}[${i}].mask`), m.mask);
    });
    caps('caps', selector.matchCapabilities);
    caps('cap_changes', selector.matchCapabilityChanges);
    const nsChanges = selector.matchNamespaceChanges[0];
    if (nsChanges) {
      const mask = nsChanges.namespaces.reduce((acc, ns) => acc | (1 << NAMESPACE_INDEX[ns]), 0);
      w.set(at('has_ns_changes'), 1).set(at('ns_changes_op'), OP[nsChanges.op]!).set(at('ns_changes_mask'), mask);
    }
    selector.matchActions.forEach((a, i) => {
      w.set(at(`actions[${i}].kind`), ACTION[a.action]).set(at(`actions[${i}].signal`), a.signal ?? 0).set(at(`actions[${i}].error`), a.error ?? 0)
        .set(at(`actions[${i}].arg`), a.argSock ?? 0)
        .set(at(`actions[${i}].stacks`), (a.kernelStackTrace ? STACK.kernel : 0) | (a.userStackTrace ? STACK.user : 0))
        .set(at(`actions[${i}].rate_limit_ms`), a.rateLimitMs ?? 0);
    });
  }

  private writeArgMatch(w: StructWriter, path: string, m: ArgMatch, hook: Hook, addStrings: () => void): void {
    w.set(`${path}.arg`, m.argIndex).set(`${path}.op`, OP[m.op]!);
    if (m.argIndex >= hook.args.length && !path.includes('return_args')) {
      throw new TableLimitError(`hook ${hook.name}: matchArgs refers to argument ${m.argIndex}, the hook has ${hook.args.length}`);
    }
    if (m.kind === 'string' || m.kind === 'address') {
      if (m.kind === 'string') w.set(`${path}.is_string`, 1);
      else w.set(`${path}.net_field`, NET_FIELD[m.field]);
      addStrings();
      return;
    }
    if (m.kind === 'net') w.set(`${path}.net_field`, NET_FIELD[m.field]);
    if (m.values.length > 4) throw new TableLimitError(`hook ${hook.name}: ${m.values.length} values in a matchArgs (at most 4)`);
    w.set(`${path}.nvalues`, m.values.length);
    m.values.forEach((v, i) => w.set(`${path}.values[${i}]`, v));
  }

  /** An address prefix of a SAddr/DAddr matcher: vigil_addr_lpm's key (prefixlen counts from `hook`). */
  private addressEntry(hookId: number, selector: number, matcher: number, p: { address: number[]; bits: number }): StringEntry {
    const k = new StructWriter(this.addrKeyLayout).set('prefixlen', 32 + p.bits).set('hook', hookId).set('selector', selector).set('matcher', matcher)
      .setBytes('addr', Buffer.from(p.address));
    return { map: 'vigil_addr_lpm', key: k.buf };
  }

  private stringEntry(op: string, hookId: number, selector: number, matcher: number, value: string, where: string): StringEntry {
    const bytes = Buffer.from(value);
    if (bytes.length > this.stringMax) throw new TableLimitError(`${where}: "${value.slice(0, 40)}…" is ${bytes.length} bytes (at most ${this.stringMax})`);
    const base = op.replace(/^Not/, '');
    const map: StringTable = base === 'Prefix' ? 'vigil_str_prefix' : base === 'Postfix' ? 'vigil_str_postfix' : 'vigil_str_equal';
    const k = new StructWriter(this.keyLayout).set('hook', hookId).set('selector', selector).set('matcher', matcher);
    if (map === 'vigil_str_equal') return { map, key: k.setBytes('str', bytes).buf };
    const stored = map === 'vigil_str_postfix' ? Buffer.from(bytes).reverse() : bytes;
    return { map, key: k.set('prefixlen', 32 + 8 * bytes.length).setBytes('str', stored).buf };
  }
}
