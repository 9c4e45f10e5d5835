/**
 * The numbers of bpf/vigil.h's policy enums and #defines (services/lib/kernel-abi.ts,
 * generated from the header) by the names policy programs use.
 */
import type { ActionKind, AddressField, ArgType, CapabilitySet, HookKind, NamespaceKind, NetField } from '../../lib/policy-program.js';
import * as abi from '../../lib/kernel-abi.js';
import { NAMESPACE_NAMES } from '../kernel/records.js';

export const HOOK_KIND: Record<HookKind, number> = { kprobe: abi.HookKind.KPROBE, tracepoint: abi.HookKind.TRACEPOINT, uprobe: abi.HookKind.UPROBE, lsm: abi.HookKind.LSM, loader: abi.HookKind.KPROBE, usdt: abi.HookKind.UPROBE };

export const HOOK_FLAG = {
  active: abi.HookFlags.ACTIVE, atExit: abi.HookFlags.AT_EXIT, return: abi.HookFlags.RETURN, execEvent: abi.HookFlags.EXEC_EVENT,
  TrackSock: abi.HookFlags.RET_TRACK_SOCK, UntrackSock: abi.HookFlags.RET_UNTRACK_SOCK, stacks: abi.HookFlags.STACKS,
  exitAlone: abi.HookFlags.EXIT_ALONE,
} as const;

export const STACK = { kernel: abi.StackFlags.KERNEL, user: abi.StackFlags.USER } as const;

const T = abi.ArgType;
export const ARG_TYPE: Record<ArgType, number> = {
  int: T.INT, uint32: T.UINT32, int64: T.INT64, uint64: T.UINT64, size_t: T.SIZE_T, string: T.STRING, char_buf: T.CHAR_BUF,
  fd: T.FD, file: T.FILE, path: T.FILE, sockaddr: T.SOCKADDR, cap_set: T.CAP_SET, cred: T.CRED, user_ns: T.USER_NS,
  sock: T.SOCK, skb: T.SKB,
};

export const ARG_SOURCE = {
  syscall_arg: abi.ArgSource.SYSCALL_ARG, return: abi.ArgSource.RETURN, tracepoint_field: abi.ArgSource.TP_FIELD, function_arg: abi.ArgSource.FUNCTION_ARG,
  constant: abi.ArgSource.CONST, usdt: abi.ArgSource.USDT, btf_arg: abi.ArgSource.BTF_ARG,
} as const;

export const GUARD_OP = { nonNegative: abi.GuardOp.NONNEG, mask: abi.GuardOp.MASK, equal: abi.GuardOp.EQUAL, ttyFd: abi.GuardOp.TTY_FD, bit: abi.GuardOp.BIT, sockProtocol: abi.GuardOp.SOCK_PROTO, skbIp: abi.GuardOp.SKB_IP } as const;

export const ARG_FLAG = { resolveRetFd: abi.ArgFlags.RESOLVE_RET_FD, signed: abi.ArgFlags.SIGNED, dataLoc: abi.ArgFlags.DATA_LOC, fdSock: abi.ArgFlags.FD_SOCK, skbSock: abi.ArgFlags.SKB_SOCK,
  usdtMemory: abi.ArgFlags.USDT_MEMORY, resolve: abi.ArgFlags.RESOLVE, syscall64: abi.ArgFlags.SYSCALL64,
} as const;

export const ARG_VALUE_FLAG = { truncated: abi.ArgValueFlags.TRUNCATED, leafFirst: abi.ArgValueFlags.LEAF_FIRST, error: abi.ArgValueFlags.ERROR } as const;

/** Operators: In/NotIn of pids, namespaces, binaries and capabilities share Equal/NotEqual. */
export const OP: Record<string, number> = {
  Equal: abi.Op.EQUAL, In: abi.Op.EQUAL, NotEqual: abi.Op.NOT_EQUAL, NotIn: abi.Op.NOT_EQUAL, Prefix: abi.Op.PREFIX, NotPrefix: abi.Op.NOT_PREFIX,
  Postfix: abi.Op.POSTFIX, NotPostfix: abi.Op.NOT_POSTFIX, GreaterThan: abi.Op.GREATER, LessThan: abi.Op.LESS, Mask: abi.Op.MASK,
  Priv: abi.Op.PRIV, NotPriv: abi.Op.NOT_PRIV,
};

export const NET_FIELD: Record<NetField | AddressField, number> = {
  Family: abi.NetField.FAMILY, Protocol: abi.NetField.PROTOCOL, State: abi.NetField.STATE, SPort: abi.NetField.SPORT, DPort: abi.NetField.DPORT,
  SAddr: abi.NetField.SADDR, DAddr: abi.NetField.DADDR,
};

/** A namespace kind's position in struct vigil_namespaces (its field order, which records.ts NAMESPACE_NAMES follows: a test checks it against BTF). */
export const NAMESPACE_INDEX = Object.fromEntries(NAMESPACE_NAMES.map((name, i) => [
  name.split('_').map((w) => w[0]!.toUpperCase() + w.slice(1)).join(''), i,
])) as Record<NamespaceKind, number>;

export const CAP_SET: Record<CapabilitySet, number> = { Effective: abi.CapSet.EFFECTIVE, Permitted: abi.CapSet.PERMITTED, Inheritable: abi.CapSet.INHERITABLE };

export const ACTION: Record<ActionKind, number> = {
  Post: abi.ActionKind.POST, NoPost: abi.ActionKind.NOPOST, Sigkill: abi.ActionKind.SIGKILL, Signal: abi.ActionKind.SIGNAL,
  NotifyEnforcer: abi.ActionKind.NOTIFY_ENFORCER, Override: abi.ActionKind.OVERRIDE, TrackSock: abi.ActionKind.TRACK_SOCK, UntrackSock: abi.ActionKind.UNTRACK_SOCK,
  // The kernel posts; the sensor resolves or fetches (policy-actions.ts).
  DnsLookup: abi.ActionKind.POST, GetUrl: abi.ActionKind.POST,
};

export const MODE = { enforce: abi.PolicyMode.ENFORCE, monitor: abi.PolicyMode.MONITOR } as const;

export const PID_FLAG = { namespace: abi.PidFlags.NAMESPACE, followForks: abi.PidFlags.FOLLOW_FORKS } as const;

export const FOLLOW_KIND = { binary: abi.FollowKind.BINARY, pid: abi.FollowKind.PID } as const;

export const MATCHER = { arg: (i: number) => i, returnArg: (i: number) => abi.MATCHER_RETURN_ARG_BASE + i, binaries: abi.MATCHER_BINARIES } as const;

export const NO_SLOT = abi.NO_SLOT;
