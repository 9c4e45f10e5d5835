/**
 * Selectors to plain kernel values: operators checked against the argument
 * types, numbers parsed into the argument's range, names (capabilities,
 * namespaces, host_ns) resolved, actions checked against what this kernel can do.
 */
import type {
  Action, ActionKind, ArgMatch, ArgSpec, ArgType, BinaryMatch, CapabilityMatch, NamespaceChangeMatch, NamespaceKind, NamespaceMatch,
  NumericOp, PidMatch, Selector, StringOp,
} from '../../lib/policy-program.js';
import { netMatch } from './net-operators.js';
import type { FieldPath } from './errors.js';
import { capabilityNumber, MAX_SIGNAL, NAMESPACE_KINDS, namespaceKind } from './kernel-names.js';
import { KEY_STRING_MAX, MAX_MATCH_VALUES } from '../../lib/kernel-abi.js';
import type { ActionSelector, ArgSelector, CapabilitiesSelector, KProbeSelector } from './spec-types.js';

/** How selectors see an argument the hook reads. */
export interface ArgInfo {
  /** The policy's `index`: function argument or tracepoint field. */
  index: number;
  spec: ArgSpec;
  /** A string read through a user pointer at syscall entry (a raw sys_enter tracepoint): unreliable to match on. */
  userPointerAtEntry: boolean;
}

export interface SelectorContext {
  fail(path: FieldPath, reason: string): never;
  hostNamespaces: Record<NamespaceKind, number>;
  args: ArgInfo[];
  /** The return value, when the hook reads one. */
  returnArg?: ArgInfo;
  /**
   * Tracepoints: a matchArgs index that no declared arg has is the position in
   * args, as Tetragon reads it (it renumbers declared field indexes to positions).
   */
  indexMayBePosition?: boolean;
  /** The syscall numbers of a list of the policy (`InMap` values "list:NAME"), or undefined when there is none. */
  listNumbers?: (name: string) => bigint[] | undefined;
  /** Why the hook cannot make its call fail (Override); undefined: it can. */
  overrideRefused?: string;
  /** Why kernelStackTrace and userStackTrace are refused on this hook, when they are. */
  stacksRefused?: string;
}

export interface CompiledSelectors {
  selectors: Selector[];
  /** Positions in `args` that some matchArgs tests. */
  matchedArgs: Set<number>;
}

/**
 * Limits of the kernel side (bpf/vigil.h): VIGIL_MAX_MATCH_VALUES, and
 * VIGIL_KEY_STRING_MAX, the longest value the string tables' keys hold
 * (an LPM_TRIE key is at most 260 bytes). Count limits are the schema's.
 */
const MAX_NUMERIC_VALUES = MAX_MATCH_VALUES;
const MAX_STRING_BYTES = KEY_STRING_MAX;

const STRING_OPS: readonly StringOp[] = ['Equal', 'NotEqual', 'Prefix', 'NotPrefix', 'Postfix', 'NotPostfix'];
const NUMERIC_OPS: readonly NumericOp[] = ['Equal', 'NotEqual', 'GreaterThan', 'LessThan', 'Mask'];
/** Tetragon's spellings of operators Vigil evaluates as another: InMap is In over a (possibly list-given) set. */
const OPERATOR_ALIASES: Record<string, string> = {
  GT: 'GreaterThan', gt: 'GreaterThan', LT: 'LessThan', lt: 'LessThan', InMap: 'Equal', NotInMap: 'NotEqual',
};

export type ValueClass = 'numeric' | 'string' | 'net';

export function valueClass(type: ArgType): ValueClass {
  switch (type) {
    case 'string': case 'char_buf': case 'fd': case 'file': case 'path': return 'string';
    case 'sockaddr': case 'sock': case 'skb': return 'net';
    default: return 'numeric';
  }
}

const RANGES: Partial<Record<ArgType, [bigint, bigint]>> = {
  int: [-(1n << 31n), (1n << 31n) - 1n],
  uint32: [0n, (1n << 32n) - 1n],
  int64: [-(1n << 63n), (1n << 63n) - 1n],
};
const U64: [bigint, bigint] = [0n, (1n << 64n) - 1n];

/** An integer as Tetragon reads one: decimal, 0x hex, 0b binary, 0o or leading-0 octal, optional sign. */
function parseInteger(value: string | number): bigint | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : undefined;
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO]?[0-7]+|[1-9][0-9]*|0)$/.exec(value.trim());
  if (!m) return undefined;
  let digits = m[2]!;
  if (/^0[0-7]/.test(digits)) digits = `0o${digits.slice(1)}`;
  else if (/^0[oO]/.test(digits)) digits = `0o${digits.slice(2)}`;
  const n = BigInt(digits);
  return m[1] === '-' ? -n : n;
}

const RATE_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "100ms", "30s", "1m", "2h"; a bare number is seconds, as in Tetragon. */
function parseRateLimit(text: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h)?$/i.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * RATE_UNITS[(m[2] ?? 's').toLowerCase()]!;
}

const MAX_RATE_LIMIT_MS = 0xffff_ffff;
const ACTIONS: readonly ActionKind[] = ['Post', 'NoPost', 'Sigkill', 'Signal', 'NotifyEnforcer', 'Override', 'TrackSock', 'UntrackSock', 'DnsLookup', 'GetUrl'];
/** The argument each action takes beside its name, when it takes one of FOREIGN_ACTION_ARGS. */
const OWN_ACTION_ARG: Partial<Record<ActionKind, (typeof FOREIGN_ACTION_ARGS)[number]>> = { TrackSock: 'argSock', UntrackSock: 'argSock', DnsLookup: 'argFqdn', GetUrl: 'argUrl' };
/** A host name (RFC 1123 labels), as DnsLookup's argFqdn. */
const HOSTNAME = /^(?=.{1,253}\.?$)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.?$/;
const MAX_URL_BYTES = 2048;
const EPERM = 1;
const SIGKILL = 9;
/** The largest errno a syscall returns (linux/err.h MAX_ERRNO). */
const MAX_ERRNO = 4095;

/** Actions the kernel here cannot take, or Vigil does not yet: why, by name. */
const REFUSED_ACTIONS: Record<string, string> = {
  CleanupEnforcerNotification: 'has nothing to act on here: NotifyEnforcer leaves no notification behind (it signals at once, the enforcer program it would feed needs bpf_override_return or fmod_ret); remove the action',
  Set: 'writes the traced process\'s memory (bpf_probe_write_user), which this kernel\'s lockdown (integrity) forbids',
  FollowFD: 'was removed from Tetragon and is not supported by Vigil',
  UnfollowFD: 'was removed from Tetragon and is not supported by Vigil',
  CopyFD: 'was removed from Tetragon and is not supported by Vigil',
};

/** Arguments that belong to actions Vigil refuses; on a supported action they are a mistake. */
/**
 * Arguments of other actions, refused on these. argError is the exception: Tetragon's
 * own examples give it with Sigkill, where it means nothing, and Tetragon ignores it there.
 */
const FOREIGN_ACTION_ARGS = ['argUrl', 'argFqdn', 'argSock', 'argIndex', 'argValue', 'argRegs', 'argNewSymbol', 'argNewAddr', 'argNewOffset'] as const;

/** Selector fields of Tetragon that Vigil refuses when set. */
const REFUSED_SELECTOR_FIELDS = ['matchData', 'matchReturnActions', 'matchParentBinaries', 'matchWorkloads', 'macros'] as const;

/** Whether a policy field says something: not absent, empty, blank or false. */
export const isSet = (v: unknown): boolean => v !== undefined && v !== '' && v !== false && !(Array.isArray(v) && v.length === 0);

class SelectorCompiler {
  readonly matchedArgs = new Set<number>();

  constructor(private readonly ctx: SelectorContext) {}

  private fail(path: FieldPath, reason: string): never {
    return this.ctx.fail(path, reason);
  }

  selector(sel: KProbeSelector, at: FieldPath): Selector {
    for (const field of REFUSED_SELECTOR_FIELDS) {
      if (isSet(sel[field])) this.fail([...at, field], `${field} is not supported by Vigil yet`);
    }
    return {
      matchPIDs: this.pidMatch(sel.matchPIDs ?? [], [...at, 'matchPIDs']),
      matchArgs: (sel.matchArgs ?? []).map((m, i) => this.argMatch(m, [...at, 'matchArgs', i])),
      matchReturnArgs: (sel.matchReturnArgs ?? []).map((m, i) => this.returnMatch(m, [...at, 'matchReturnArgs', i])),
      matchBinaries: (sel.matchBinaries ?? []).map((b, i) => this.binaryMatch(b.operator, b.values, b.followChildren ?? false, [...at, 'matchBinaries', i])),
      matchNamespaces: (sel.matchNamespaces ?? []).map((n, i): NamespaceMatch => ({
        namespace: n.namespace, op: n.operator, values: n.values.map((v, k) => this.namespaceValue(n.namespace, v, [...at, 'matchNamespaces', i, 'values', k])),
      })),
      matchNamespaceChanges: (sel.matchNamespaceChanges ?? []).map((n, i): NamespaceChangeMatch => ({
        op: n.operator,
        namespaces: n.values.map((v, k) => namespaceKind(v) ?? this.fail([...at, 'matchNamespaceChanges', i, 'values', k], `unknown namespace "${v}" (one of ${NAMESPACE_KINDS.join(', ')})`)),
      })),
      matchCapabilities: (sel.matchCapabilities ?? []).map((c, i) => this.capabilityMatch(c, [...at, 'matchCapabilities', i])),
      matchCapabilityChanges: (sel.matchCapabilityChanges ?? []).map((c, i) => this.capabilityMatch(c, [...at, 'matchCapabilityChanges', i])),
      matchActions: this.actions(sel.matchActions ?? [], [...at, 'matchActions']),
    };
  }

  /**
   * Several matchPIDs must all hold; the kernel tests one, so they merge: NotIn
   * lists unite, In lists intersect (with the same namespace and follow flags).
   */
  private pidMatch(list: NonNullable<KProbeSelector['matchPIDs']>, at: FieldPath): PidMatch[] {
    const all = list.map((p): PidMatch => ({ op: p.operator, values: [...p.values], isNamespacePID: p.isNamespacePID ?? false, followForks: p.followForks ?? false }));
    if (all.length <= 1) return all;
    const [first, ...rest] = all as [PidMatch, ...PidMatch[]];
    rest.forEach((p, i) => {
      if (p.op !== first.op || p.isNamespacePID !== first.isNamespacePID || p.followForks !== first.followForks) {
        this.fail([...at, i + 1], 'several matchPIDs are merged into one test: they must share operator, isNamespacePID and followForks');
      }
    });
    const values = first.op === 'NotIn'
      ? [...new Set(all.flatMap((p) => p.values))]
      : first.values.filter((v) => rest.every((p) => p.values.includes(v)));
    if (values.length === 0) this.fail(at, 'the matchPIDs In lists have no pid in common: the selector could never match');
    return [{ ...first, values }];
  }

  private argMatch(m: ArgSelector, at: FieldPath): ArgMatch {
    const { args } = this.ctx;
    let position: number;
    if (m.args !== undefined && m.args.length > 0) {
      // `args` names the argument by its position in the hook's args list (Tetragon); it wins over index.
      if (m.args.length > 1) this.fail([...at, 'args'], `only one argument per matchArgs is supported (got ${m.args.length})`);
      position = m.args[0]!;
      if (position >= args.length) this.fail([...at, 'args', 0], `args has ${args.length} entries: there is no position ${position}`);
    } else {
      const index = m.index ?? 0;
      position = args.findIndex((a) => a.index === index);
      if (position < 0 && this.ctx.indexMayBePosition && index < args.length) position = index;
      if (position < 0) {
        const declared = args.length === 0 ? 'the hook declares no args' : `declared: ${args.map((a) => a.index).join(', ')}`;
        this.fail([...at, 'index'], `argument index ${index} is not among args (${declared})`);
      }
    }
    const arg = args[position]!;
    if (arg.userPointerAtEntry) {
      this.fail([...at, 'index'], 'matching a user-space string at syscall entry is unreliable (the page may not be faulted in yet): '
        + 'use a kprobe with syscall: true, which matches at the syscall\'s exit');
    }
    this.matchedArgs.add(position);
    return this.valueMatch(m, at, position, arg, `argument index ${arg.index}`);
  }

  /** Values with each "list:NAME" replaced by the list's syscall numbers; each with the index it came from. */
  private listExpanded(values: readonly (string | number)[], at: FieldPath): [string | number | bigint, number][] {
    return values.flatMap((v, k): [string | number | bigint, number][] => {
      if (typeof v !== 'string' || !v.startsWith('list:')) return [[v, k]];
      const numbers = this.ctx.listNumbers?.(v.slice('list:'.length)) ?? this.fail([...at, 'values', k], `no list "${v.slice('list:'.length)}" in spec.lists`);
      return numbers.map((n): [bigint, number] => [n, k]);
    });
  }

  private returnMatch(m: ArgSelector, at: FieldPath): ArgMatch {
    const ret = this.ctx.returnArg ?? this.fail(at, 'matchReturnArgs needs return: true and a returnArg');
    if (m.args !== undefined) this.fail([...at, 'args'], 'matchReturnArgs tests the one return value: leave args out');
    if ((m.index ?? 0) !== 0) this.fail([...at, 'index'], 'matchReturnArgs tests the one return value: index must be 0');
    return this.valueMatch(m, at, 0, ret, 'the return value');
  }

  private valueMatch(m: ArgSelector, at: FieldPath, argIndex: number, arg: ArgInfo, what: string): ArgMatch {
    const op = OPERATOR_ALIASES[m.operator] ?? m.operator;
    const values = m.values ?? [];
    const type = arg.spec.type;
    const cls = valueClass(type);
    if (cls === 'net') return netMatch(m, argIndex, type, arg.spec.wireType ?? type, what, (field, reason) => this.fail([...at, ...field], reason));
    const isString = (STRING_OPS as readonly string[]).includes(op);
    const isNumeric = (NUMERIC_OPS as readonly string[]).includes(op);
    if (!isString && !isNumeric) this.fail([...at, 'operator'], `operator "${m.operator}" is not supported by Vigil yet`);
    if (values.length === 0) this.fail([...at, 'values'], 'needs at least one value');
    if (cls === 'string') {
      if (!isString || (op !== m.operator && m.operator.endsWith('InMap'))) this.fail([...at, 'operator'], `operator "${m.operator}" compares numbers, but ${what} is ${type}`);
      return {
        argIndex, kind: 'string', op: op as StringOp, values: values.map((v, k) => {
          const s = String(v);
          const bytes = Buffer.byteLength(s);
          if (bytes > MAX_STRING_BYTES) this.fail([...at, 'values', k], `value is ${bytes} bytes long (at most ${MAX_STRING_BYTES})`);
          return s;
        }),
      };
    }
    if (!isNumeric) this.fail([...at, 'operator'], `operator "${m.operator}" compares strings, but ${what} is ${type}`);
    const count = this.listExpanded(values, at).length;
    if (count > MAX_NUMERIC_VALUES) {
      this.fail([...at, 'values'], `too many values: ${count} (at most ${MAX_NUMERIC_VALUES} for a numeric argument)`);
    }
    const [min, max] = RANGES[type] ?? U64;
    return {
      argIndex, kind: 'numeric', op: op as NumericOp, values: this.listExpanded(values, at).map(([v, k]) => {
        if (typeof v === 'bigint') return v;
        const n = parseInteger(v);
        if (n === undefined) this.fail([...at, 'values', k], `${JSON.stringify(v)} is not an integer`);
        if (n < min || n > max) this.fail([...at, 'values', k], `${String(v)} is out of range for ${type} (${min} to ${max})`);
        return n;
      }),
    };
  }

  private binaryMatch(op: BinaryMatch['op'], values: string[], followChildren: boolean, at: FieldPath): BinaryMatch {
    if (followChildren && op !== 'In' && op !== 'NotIn') this.fail([...at, 'followChildren'], `followChildren works with In and NotIn only, not ${op}`);
    values.forEach((v, k) => {
      const bytes = Buffer.byteLength(v);
      if (bytes > MAX_STRING_BYTES) this.fail([...at, 'values', k], `value is ${bytes} bytes long (at most ${MAX_STRING_BYTES})`);
    });
    return { op, values: [...values], followChildren };
  }

  private namespaceValue(kind: NamespaceKind, value: string | number, at: FieldPath): number {
    if (value === 'host_ns') {
      const inode = this.ctx.hostNamespaces[kind];
      if (!inode) this.fail(at, `this kernel has no ${kind} namespaces`);
      return inode;
    }
    const n = parseInteger(value);
    if (n === undefined || n < 0n || n > 0xffff_ffffn) this.fail(at, `expected a namespace inode number or host_ns, got ${JSON.stringify(value)}`);
    return Number(n);
  }

  private capabilityMatch(c: CapabilitiesSelector, at: FieldPath): CapabilityMatch {
    let mask = 0n;
    c.values.forEach((v, k) => {
      const bit = capabilityNumber(v) ?? this.fail([...at, 'values', k], `unknown capability "${v}"`);
      mask |= 1n << BigInt(bit);
    });
    return { type: c.type, op: c.operator, mask, isNamespaceCapability: c.isNamespaceCapability ?? false };
  }

  private actions(list: ActionSelector[], at: FieldPath): Action[] {
    // A selector without actions posts, as in Tetragon; the program says so explicitly.
    if (list.length === 0) return [{ action: 'Post' }];
    const out = list.map((a, i) => this.action(a, [...at, i]));
    const kinds = new Set(out.map((a) => a.action));
    if (kinds.has('Post') && kinds.has('NoPost')) this.fail(at, 'Post and NoPost contradict each other');
    return out;
  }

  private canaryFqdn(fqdn: string | undefined, at: FieldPath): string {
    if (fqdn === undefined) this.fail(at, 'DnsLookup needs argFqdn, the name to resolve');
    if (!HOSTNAME.test(fqdn)) this.fail(at, `${JSON.stringify(fqdn)} is not a host name`);
    return fqdn;
  }

  private canaryUrl(url: string | undefined, at: FieldPath): string {
    if (url === undefined) this.fail(at, 'GetUrl needs argUrl, the URL to fetch');
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) this.fail(at, `${JSON.stringify(url)} is not an http or https URL`);
    if (Buffer.byteLength(url) > MAX_URL_BYTES) this.fail(at, `the URL is ${Buffer.byteLength(url)} bytes long (at most ${MAX_URL_BYTES})`);
    return url;
  }

  /** The position of the sock argument `index` names (Tetragon's argSock: the argument's index). */
  private sockArgPosition(index: number, at: FieldPath): number {
    const position = this.ctx.args.findIndex((a) => a.index === index);
    if (position < 0 || this.ctx.args[position]!.spec.type !== 'sock') this.fail(at, `argSock ${index} names no sock argument of this hook`);
    return position;
  }

  /**
   * The errno of an Override: argError -N is errno N, as the kernel function
   * would return it; a positive one is taken as the errno too (Tetragon would
   * return it as is, which the caller reads as success); none or 0 is EPERM,
   * what a cgroup program's refusal gives.
   */
  private overrideErrno(argError: number | undefined, at: FieldPath): number {
    if (this.ctx.overrideRefused !== undefined) this.fail(at.slice(0, -1).concat('action'), `action "Override" ${this.ctx.overrideRefused}`);
    const error = Math.abs(argError ?? 0) || EPERM;
    if (!Number.isInteger(error) || error > MAX_ERRNO) this.fail(at, `argError ${String(argError)} is not an errno (-1 to -${MAX_ERRNO})`);
    return error;
  }

  private action(a: ActionSelector, at: FieldPath): Action {
    const name = a.action;
    const refused = REFUSED_ACTIONS[name];
    if (refused !== undefined) this.fail([...at, 'action'], `action "${name}" ${refused}`);
    if (!(ACTIONS as readonly string[]).includes(name)) this.fail([...at, 'action'], `unknown action "${name}"`);
    const kind = name as ActionKind;
    for (const field of FOREIGN_ACTION_ARGS) {
      if (a[field] !== undefined && OWN_ACTION_ARG[kind] !== field) this.fail([...at, field], `does not apply to action "${name}"`);
    }
    const out: Action = { action: kind };
    if (kind === 'TrackSock' || kind === 'UntrackSock') out.argSock = this.sockArgPosition(a.argSock ?? 0, [...at, 'argSock']);
    if (kind === 'DnsLookup') out.fqdn = this.canaryFqdn(a.argFqdn, [...at, 'argFqdn']);
    if (kind === 'GetUrl') out.url = this.canaryUrl(a.argUrl, [...at, 'argUrl']);
    if (name === 'Override') out.error = this.overrideErrno(a.argError, [...at, 'argError']);
    if (name === 'Signal' || name === 'NotifyEnforcer') {
      const why = name === 'Signal' ? '' : ' here: the enforcer cannot make its call fail on this kernel (no bpf_override_return or fmod_ret), only signal';
      if (a.argSig === undefined) this.fail([...at, 'argSig'], `the ${name} action needs argSig (a signal number, 1 to ${MAX_SIGNAL})${why}`);
      if (a.argSig < 1 || a.argSig > MAX_SIGNAL) this.fail([...at, 'argSig'], `signal ${a.argSig} is out of range (1 to ${MAX_SIGNAL})`);
      out.signal = a.argSig;
    } else if (a.argSig !== undefined) {
      this.fail([...at, 'argSig'], `does not apply to action "${name}" (only to Signal and NotifyEnforcer)`);
    }
    // SIGKILL ends the process before its call returns to it: the error it would have seen goes unseen.
    if (name === 'NotifyEnforcer' && a.argError !== undefined && a.argError !== 0 && a.argSig !== SIGKILL) {
      this.fail([...at, 'argError'], `the enforcer cannot make its call fail on this kernel (no bpf_override_return or fmod_ret); argError is accepted only with argSig ${SIGKILL}, where the process dies before the call returns to it`);
    }
    if (a.rateLimit !== undefined) {
      if (name !== 'Post') this.fail([...at, 'rateLimit'], `rate limiting applies to the Post action only, not ${name}`);
      const ms = parseRateLimit(a.rateLimit);
      if (ms === undefined) this.fail([...at, 'rateLimit'], `invalid rateLimit "${a.rateLimit}" (expected a number with ms, s, m or h, e.g. "30s")`);
      if (ms === 0 || ms > MAX_RATE_LIMIT_MS) this.fail([...at, 'rateLimit'], `rateLimit "${a.rateLimit}" is out of range (1ms to ${MAX_RATE_LIMIT_MS}ms)`);
      out.rateLimitMs = ms;
    }
    if (a.rateLimitScope !== undefined) {
      if (a.rateLimit === undefined) this.fail([...at, 'rateLimitScope'], 'rateLimitScope needs a rateLimit');
      // The kernel keeps one timestamp per process and selector (vigil_process_selector_key), whatever the scope asked.
      if (a.rateLimitScope !== 'process') this.fail([...at, 'rateLimitScope'], `rateLimitScope "${a.rateLimitScope}" is not supported by Vigil (rate limits count per process)`);
    }
    for (const field of ['kernelStackTrace', 'userStackTrace'] as const) {
      if (a[field] === true && name !== 'Post') this.fail([...at, field], `${field} applies to the Post action only, not ${name}`);
      if (a[field] === true && this.ctx.stacksRefused !== undefined) this.fail([...at, field], `${field}: ${this.ctx.stacksRefused}`);
      if (a[field] === true) out[field] = true;
    }
    if (a.imaHash === true) this.fail([...at, 'imaHash'], 'imaHash is not supported by Vigil (this kernel has no BPF-LSM, which the IMA helpers need)');
    return out;
  }
}

export function compileSelectors(list: KProbeSelector[], at: FieldPath, ctx: SelectorContext): CompiledSelectors {
  const c = new SelectorCompiler(ctx);
  const selectors = list.map((s, i) => c.selector(s, [...at, i]));
  return { selectors, matchedArgs: c.matchedArgs };
}
