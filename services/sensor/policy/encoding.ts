/**
 * The numbers of bpf/vigil.h's policy enums and #defines, by the names policy
 * programs use. test/kernel/abi.test.ts checks every enum here against the
 * compiled object's BTF, so the two cannot drift apart.
 */
import type { ActionKind, ArgType, CapabilitySet, HookKind, NamespaceKind } from '../../lib/policy-program.js';

export const HOOK_KIND: Record<HookKind, number> = { kprobe: 1, tracepoint: 2, uprobe: 3 };

export const HOOK_FLAG = { active: 1, atExit: 2, return: 4, execEvent: 8 } as const;

export const ARG_TYPE: Record<ArgType, number> = {
  int: 1, uint32: 2, int64: 3, uint64: 4, size_t: 5, string: 6, char_buf: 7, fd: 8, file: 9, path: 9, sockaddr: 10, cap_set: 11,
};

export const ARG_SOURCE = { syscall_arg: 1, return: 2, tracepoint_field: 3, uprobe_arg: 4 } as const;

export const ARG_FLAG = { resolveRetFd: 1, signed: 2, dataLoc: 4 } as const;

export const ARG_VALUE_FLAG = { truncated: 1, leafFirst: 2, error: 4 } as const;

/** Operators: In/NotIn of pids, namespaces, binaries and capabilities share Equal/NotEqual. */
export const OP: Record<string, number> = {
  Equal: 1, In: 1, NotEqual: 2, NotIn: 2, Prefix: 3, NotPrefix: 4, Postfix: 5, NotPostfix: 6, GreaterThan: 7, LessThan: 8, Mask: 9,
};

export const NAMESPACE_INDEX: Record<NamespaceKind, number> = {
  Uts: 0, Ipc: 1, Mnt: 2, Pid: 3, PidForChildren: 4, Net: 5, Time: 6, TimeForChildren: 7, Cgroup: 8, User: 9,
};

export const CAP_SET: Record<CapabilitySet, number> = { Effective: 0, Permitted: 1, Inheritable: 2 };

export const ACTION: Record<ActionKind, number> = { Post: 1, NoPost: 2, Sigkill: 3, Signal: 4 };

export const MODE = { enforce: 1, monitor: 2 } as const;

export const PID_FLAG = { namespace: 1, followForks: 2 } as const;

export const FOLLOW_KIND = { binary: 1, pid: 2 } as const;

export const MATCHER = { arg: (i: number) => i, returnArg: (i: number) => 8 + i, binaries: 15 } as const;

export const NO_SLOT = 0xff;
