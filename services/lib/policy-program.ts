/**
 * What the enforcer hands the sensor for one policy: the policy compiled to
 * kernel terms — which hooks to attach, how to read each argument, and each
 * selector as plain values — but not yet to bytes. The sensor turns it into
 * the tables of bpf/vigil.h (whose layout only the sensor knows, from BTF).
 * This is the in-process form of the future vigil.v1 control API message.
 *
 * Limits are bpf/vigil.h's (VIGIL_MAX_SELECTORS, VIGIL_MAX_MATCH_ARGS,
 * VIGIL_MAX_MATCH_VALUES numeric values, strings up to VIGIL_KEY_STRING_MAX
 * bytes), enforced by the schema and the compiler; string values live in
 * hash/LPM tables.
 */

export type PolicyMode = 'enforce' | 'monitor';

/** Where an argument's value comes from at run time. */
export type ArgSource =
  | { kind: 'syscall_arg'; index: number }          // sys_enter args[index]
  | { kind: 'return' }                              // sys_exit ret / uretprobe
  | { kind: 'tracepoint_field'; offset: number; size: number; signed: boolean; /** __data_loc: the field holds (length << 16 | offset) of the bytes */ dataLoc?: boolean }
  /** Argument `index` of the hooked function: a uprobe's (pt_regs, x86-64 calling convention), or sk_filter_trim_cap's sock and skb (its cgroup_skb program's). */
  | { kind: 'function_arg'; index: number }
  | { kind: 'constant'; value: number }             // what a translated hook knows from its syscall (a mask, 0 to 65535)
  /** A USDT argument: `size` bytes of a register (its pt_regs slot), or of user memory at it plus `displacement`. */
  | { kind: 'usdt'; register: number; size: number; signed: boolean; displacement?: number }
  /** Argument `index` of a tracepoint's typed prototype (a kernel pointer); with `field`, what Tetragon's `resolve` names through it. */
  | { kind: 'btf_arg'; index: number; field?: ResolvedField };

/**
 * A field reached from a kernel pointer by a path of struct fields, in the
 * running kernel's layout: the pointers loaded on the way (each at a byte
 * offset from the previous one), then the field at `offset` from the last.
 */
export interface ResolvedField {
  derefs: number[];
  offset: number;
  /** Bytes of the number to read there; 0 for a string (a char array there, or a char pointer loaded last). */
  size: number;
  signed: boolean;
}

/**
 * How an argument is read and reported. `string` of a path-taking syscall and
 * `fd` are resolved by the kernel at exit (see bpf/vigil.h); `file`/`path` are
 * the resolved path of an fd.
 */
export type ArgType = 'int' | 'uint32' | 'int64' | 'uint64' | 'size_t' | 'string' | 'char_buf' | 'fd' | 'file' | 'path' | 'sockaddr' | 'cap_set'
  /** The current task's credentials; a struct user_namespace pointer (kernel): what translated hooks read. */
  | 'cred' | 'user_ns'
  /** A struct sock or struct sk_buff pointer (kernel): the network arguments of translated hooks. */
  | 'sock' | 'skb';

export interface ArgSpec {
  source: ArgSource;
  type: ArgType;
  /** char_buf: the argument (by position in `args`) holding the byte count. */
  sizeArgIndex?: number;
  /** string args of syscalls that return an fd (open, openat, openat2, creat): report the opened file's resolved path. */
  resolveFromReturnedFd?: boolean;
  label?: string;
  /**
   * The type the policy declared, when it is not the one read (a translated
   * hook reads the path string of a `file`, `path` or `linux_binprm`): it
   * chooses the argument's form in events, as Tetragon sends that type.
   */
  wireType?: string;
  /** Read for another argument's sake (a translated buffer's length), not reported. */
  hidden?: boolean;
  /** sock: the value is an fd (its socket's sock) or an skb (the sock owning it), not the sock itself. */
  sockFrom?: 'fd' | 'skb';
}

/** A condition an event must meet before the selectors run (bpf/vigil.h struct vigil_hook_guard). */
export interface HookGuard {
  arg: ArgSpec;
  /**
   * nonNegative: a returned or passed fd, a success; mask: arg & value is not 0; equal: arg == value;
   * ttyFd: arg is an fd naming a tty; bit: bit `arg` of value is set (one of a set of states);
   * sockProtocol: arg is an fd naming a socket of protocol `value`; skbIp: arg is an skb whose packet is of a kind
   * in `value` (IPv4 to one host, IPv4 to a group, IPv6: enum vigil_skb_ip).
   */
  op: 'nonNegative' | 'mask' | 'equal' | 'ttyFd' | 'bit' | 'sockProtocol' | 'skbIp';
  value: number;
}

export type StringOp = 'Equal' | 'NotEqual' | 'Prefix' | 'NotPrefix' | 'Postfix' | 'NotPostfix';
export type NumericOp = 'Equal' | 'NotEqual' | 'GreaterThan' | 'LessThan' | 'Mask';

/** What a network operator tests of a sock, skb or sockaddr argument (a sockaddr's address and port count as the source ones). */
export type NetField = 'Family' | 'Protocol' | 'State' | 'SPort' | 'DPort';
export type AddressField = 'SAddr' | 'DAddr';

export type ArgMatch =
  | { argIndex: number; kind: 'numeric'; op: NumericOp; values: bigint[] }
  | { argIndex: number; kind: 'string'; op: StringOp; values: string[] }
  /** Equal/NotEqual: among the values or not; Priv/NotPriv: a port below 1024 or not. */
  | { argIndex: number; kind: 'net'; field: NetField; op: 'Equal' | 'NotEqual' | 'Priv' | 'NotPriv'; values: bigint[] }
  /** In one of the prefixes or in none; each prefix an IPv6 address (IPv4 as ::ffff:a.b.c.d) and its length in bits. */
  | { argIndex: number; kind: 'address'; field: AddressField; op: 'Equal' | 'NotEqual'; prefixes: { address: number[]; bits: number }[] };

export interface PidMatch { op: 'In' | 'NotIn'; values: number[]; isNamespacePID: boolean; followForks: boolean }

export type NamespaceKind = 'Uts' | 'Ipc' | 'Mnt' | 'Pid' | 'PidForChildren' | 'Net' | 'Time' | 'TimeForChildren' | 'Cgroup' | 'User';
/** Values are namespace inode numbers; the compiler resolves `host_ns` to the host's. */
export interface NamespaceMatch { namespace: NamespaceKind; op: 'In' | 'NotIn'; values: number[] }

export type CapabilitySet = 'Effective' | 'Inheritable' | 'Permitted';
/** mask: bit n set for capability number n. In = holds any of them; NotIn = holds none. */
export interface CapabilityMatch { type: CapabilitySet; op: 'In' | 'NotIn'; mask: bigint; isNamespaceCapability: boolean }

/** Namespaces that differ from those the process had at its exec. */
export interface NamespaceChangeMatch { op: 'In' | 'NotIn'; namespaces: NamespaceKind[] }

export type BinaryOp = 'In' | 'NotIn' | 'Prefix' | 'NotPrefix' | 'Postfix' | 'NotPostfix';
export interface BinaryMatch { op: BinaryOp; values: string[]; followChildren: boolean }

/**
 * The syscalls an Override can make fail: those a cgroup program runs in
 * (bpf/hook_cgroup.bpf.c), for IPv4 and IPv6 sockets — connect, bind,
 * socket, and sendto/sendmsg of a datagram to a given address.
 */
export const OVERRIDE_SYSCALLS: readonly string[] = ['connect', 'bind', 'socket', 'sendto', 'sendmsg'];

export type ActionKind = 'Post' | 'NoPost' | 'Sigkill' | 'Signal' | 'NotifyEnforcer' | 'Override' | 'TrackSock' | 'UntrackSock' | 'DnsLookup' | 'GetUrl';
/**
 * Override: the call fails with errno `error` (served by cgroup programs: bpf/hook_cgroup.bpf.c).
 * TrackSock/UntrackSock: the sock of the argument at position `argSock` belongs to this process, or no longer
 * (records of hooks on a tracked sock name its owner).
 * DnsLookup/GetUrl: the event posts, and the sensor resolves `fqdn` or fetches `url` (a canary: who watches
 * that name or URL learns the policy fired, as with Tetragon).
 */
export interface Action {
  action: ActionKind; signal?: number; error?: number; argSock?: number; fqdn?: string; url?: string; rateLimitMs?: number;
  /** Post: the record carries the kernel's and the process's stack at the hook. */
  kernelStackTrace?: boolean; userStackTrace?: boolean;
}

export interface Selector {
  matchPIDs: PidMatch[];
  matchArgs: ArgMatch[];
  matchReturnArgs: ArgMatch[];
  matchBinaries: BinaryMatch[];
  matchNamespaces: NamespaceMatch[];
  matchNamespaceChanges: NamespaceChangeMatch[];
  matchCapabilities: CapabilityMatch[];
  matchCapabilityChanges: CapabilityMatch[];
  matchActions: Action[];
}

/**
 * lsm: an LSM hook (`lsmhooks`), served like a translated kernel function and reported as process_lsm;
 * loader: `loader: true`, executable file mappings reported as process_loader;
 * usdt: a USDT probe (a uprobe at its address), reported as process_usdt.
 */
export type HookKind = 'kprobe' | 'tracepoint' | 'uprobe' | 'lsm' | 'loader' | 'usdt';

export interface Hook {
  kind: HookKind;
  /** As the policy names it, reported as function_name (kprobe), event (tracepoint) or symbol (uprobe). */
  name: string;
  /** How to attach: the syscall (entry, and exit too with atExit), the tracepoint or the uprobe target. */
  attach:
    | { kind: 'syscall'; syscall: string /* e.g. "openat" */; number: number /* of this machine's ABI (raw_syscalls' id) */ }
    /** btf: served by a tp_btf program of the tracepoint's own (typed arguments, `btf_arg` sources). */
    | { kind: 'tracepoint'; subsystem: string; event: string; btf?: boolean }
    /**
     * path: the policy's, which events carry; file: what the agent opens when that differs (/procRoot/… read as /proc/…).
     * offset: from the symbol, or from the file's start when symbol is '' (a USDT probe, whose semaphore is at refCtrOffset).
     */
    | { kind: 'uprobe'; path: string; file?: string; symbol: string; return: boolean; offset?: number; refCtrOffset?: number }
    /** A cgroup program at the cgroup v2 root: skb_ingress, the cgroup_skb/ingress program sk_filter_trim_cap runs. */
    | { kind: 'cgroup'; program: 'skb_ingress' };
  args: ArgSpec[];
  /** Report the return value (kprobe `return: true`, uretprobe). */
  returnArg?: ArgSpec;
  /** Track or untrack the returned sock when a selector matches (Tetragon's returnArgAction). */
  returnArgAction?: 'TrackSock' | 'UntrackSock';
  /** Evaluate selectors at syscall exit (needed for return values and kernel-resolved paths). */
  atExit: boolean;
  /** A kernel function served by a syscall or tracepoint: the condition that makes the event one of it. */
  guard?: HookGuard;
  /** No selectors: every call posts. */
  selectors: Selector[];
  /** Tracepoint events: subsystem, for the event's `subsys`; USDT probes: the provider. */
  subsystem?: string;
  /**
   * A hook on every syscall (a generated_syscalls list), served by raw_syscalls/sys_enter: the
   * syscall names by number (index), for the event's function name; args[0] (hidden) is the number.
   */
  syscallNames?: string[];
  /** Message and tags from the policy, reported with events. */
  message?: string;
  tags?: string[];
}

/**
 * Whether a syscall hook decided at exit needs nothing from the call's entry:
 * every value it reads (arguments, return argument, guard) is the return
 * value or a constant, as for fd_install or commit_creds. Such a hook is
 * routed at the syscall's exit only: the syscalls it serves pay no entry
 * program, and its selectors' process conditions are judged once, at exit
 * (a hook with entry reads judges them at entry and again at exit).
 */
export function decidedAtExitAlone(hook: Hook): boolean {
  const specs = [...hook.args, ...(hook.returnArg ? [hook.returnArg] : []), ...(hook.guard ? [hook.guard.arg] : [])];
  return hook.attach.kind === 'syscall' && hook.atExit && specs.every((a) => a.source.kind === 'return' || a.source.kind === 'constant');
}

/**
 * What the enforcer does in user space after the kernel killed a process for
 * the policy (option `followup-action`): kill-process-tree also kills every
 * descendant of the killed process that is still running.
 */
export type FollowUpAction = 'kill-process-tree';

/** A Kubernetes label selector (matchLabels ANDed with matchExpressions). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/**
 * Which containers a policy applies to; absent: every process of the node.
 * namespace (TracingPolicyNamespaced) and podSelector pick pods, containerSelector
 * picks containers of them by the label `name` (the container's name), as in
 * Tetragon. The sensor keeps the matching containers' cgroups in a kernel table.
 */
export interface PolicyScope {
  namespace?: string;
  podSelector?: LabelSelector;
  containerSelector?: LabelSelector;
}

export interface PolicyProgram {
  name: string;
  namespace?: string;   // TracingPolicyNamespaced
  mode: PolicyMode;
  hooks: Hook[];
  followUp?: FollowUpAction;
  scope?: PolicyScope;
}
