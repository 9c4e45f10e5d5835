/**
 * Kernel functions and LSM hooks served without kprobes: for each Tetragon
 * hook, what on this kernel sees the same moment (syscall entries and exits,
 * the kernel's own tracepoints), where each of its arguments comes from
 * there, and what differs. docs/architecture.md carries the same table
 * (a unit test checks that every row is there). A hook missing from
 * TRANSLATIONS is refused: by the reason in REFUSED when there is one.
 */
import type { ArgSource, ArgSpec, ArgType, Hook, HookGuard } from '../../lib/policy-program.js';
import { syscallAttach, type CompileEnv } from './env.js';
import { PATH_ARGS } from './kernel-names.js';
import { SkbIp } from '../../lib/kernel-abi.js';

/** Where one of the function's arguments comes from here, and what Vigil reads there. */
export interface ServedArg { source: ArgSource; reads: ArgType; sockFrom?: ArgSpec['sockFrom'] }

/** A buffer: its bytes, with their length read from another place (a hidden argument when the policy declares none). */
export interface ServedBuffer extends ServedArg { reads: 'char_buf'; length: ArgSource }

/** One syscall or tracepoint serving the hook. */
export interface Target {
  attach: Hook['attach'];
  /** The event is taken at the syscall's exit (a returned fd, a path the kernel has read). */
  atExit: boolean;
  /** By the function's argument index. */
  args: Record<number, ServedArg | ServedBuffer>;
  guard?: HookGuard;
  /** Where the return value comes from when not the syscall's (a tracepoint's field). */
  ret?: ServedArg;
}

export interface Translation {
  /** The Tetragon types each argument index may be declared with; an index not listed has no value here. */
  args: Record<number, readonly string[]>;
  /** The targets on this kernel (syscalls it lacks are left out). */
  targets(env: CompileEnv): Target[];
  /** `return: true` reports the serving syscall's return value. */
  returns: boolean;
  /** The types a returnArg may be declared with when the function returns more than a number (its targets' `ret` reads it). */
  returnTypes?: readonly string[];
  /** What differs from a kprobe on the function, for the docs and the closing refusal messages. */
  differs: string;
  /** The function's name in newer kernels, when it was renamed and the same moment is still served. */
  renamedTo?: string;
  /** Where the function's arguments are at hand as the kernel objects it is given, for `resolve`. */
  typed?: TypedTarget;
}

/**
 * A tracepoint whose typed (tp_btf) program sees the kernel objects a
 * function is given: per argument index, the position of a pointer in the
 * tracepoint's prototype, the struct it points to, the fields leading from it
 * to the argument (`via`), and the field an argument read without `resolve`
 * is (as the translation's own target reports it).
 */
export interface TypedTarget {
  attach: Extract<Hook['attach'], { kind: 'tracepoint' }>;
  args: Record<number, { position: number; struct: string; via?: string; plain?: string }>;
}

const FILE = ['file', 'fd'] as const;
const PATH = ['path', 'dentry', 'string'] as const;
const NUMBER = ['int', 'uint32', 'int64', 'uint64', 'long', 'ulong', 'size_t', 'sint32', 'int32', 'sint64'] as const;

const arg = (index: number, reads: ArgType): ServedArg => ({ source: { kind: 'syscall_arg', index }, reads });
const returned = (reads: ArgType): ServedArg => ({ source: { kind: 'return' }, reads });
const constant = (value: number): ServedArg => ({ source: { kind: 'constant', value }, reads: 'int' });
const nonNegative = (source: ArgSource): HookGuard => ({ arg: { source, type: 'int64' }, op: 'nonNegative', value: 0 });
const hasFlag = (index: number, flag: number): HookGuard => ({ arg: { source: { kind: 'syscall_arg', index }, type: 'uint64' }, op: 'mask', value: flag });

/** The syscalls of `names` this kernel has, each as a target. */
function syscalls(names: readonly string[], target: (syscall: string) => Omit<Target, 'attach'>): (env: CompileEnv) => Target[] {
  return (env) => names.filter((n) => env.syscallExists(n)).map((syscall) => ({ attach: syscallAttach(env, syscall), ...target(syscall) }));
}

/** Syscalls that return a new descriptor installed in the caller's table. */
const FD_INSTALLING = [
  'open', 'openat', 'openat2', 'creat', 'open_by_handle_at', 'dup', 'dup2', 'dup3', 'socket', 'accept', 'accept4',
  'memfd_create', 'memfd_secret', 'eventfd', 'eventfd2', 'signalfd', 'signalfd4', 'timerfd_create', 'epoll_create',
  'epoll_create1', 'inotify_init', 'inotify_init1', 'fanotify_init', 'pidfd_open', 'pidfd_getfd', 'userfaultfd',
  'io_uring_setup', 'perf_event_open', 'fsopen', 'fsmount', 'fspick', 'open_tree', 'mq_open', 'landlock_create_ruleset',
] as const;
const OPENS = ['open', 'openat', 'openat2', 'creat', 'open_by_handle_at'] as const;
const READS = ['read', 'readv', 'pread64', 'preadv', 'preadv2'] as const;
const WRITES = ['write', 'writev', 'pwrite64', 'pwritev', 'pwritev2'] as const;
const MAY_WRITE = 0x2;
const MAY_READ = 0x4;
const CLONE_NEWUSER = 0x10000000;

/** The path argument of a path-taking syscall, read at its exit. */
const pathArg = (syscall: string, nth = 0): ServedArg => arg(PATH_ARGS[syscall]![nth]!, 'string');

/** A format field of a tracepoint as a served argument. */
function tpField(env: CompileEnv, subsystem: string, event: string, name: string, reads: ArgType): ServedArg | undefined {
  const f = env.tracepointFormat(subsystem, event).fields.find((x) => x.name === name);
  const dataLoc = f?.type.startsWith('__data_loc') ?? false;
  return f && { source: { kind: 'tracepoint_field', offset: f.offset, size: f.size, signed: f.signed, ...(dataLoc && { dataLoc }) }, reads };
}

/** Syscalls that change the caller's credentials (through commit_creds) when they succeed. */
const CREDS_CHANGING = ['setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid', 'setfsuid', 'setfsgid', 'setgroups', 'capset'] as const;

/** The first `bytes` bytes of a user struct a syscall argument points to, read at exit (after the kernel copied it). */
const userStruct = (index: number, bytes: number): ServedBuffer => ({ source: { kind: 'syscall_arg', index }, reads: 'char_buf', length: { kind: 'constant', value: bytes } });
const isCommand = (index: number, cmd: number): HookGuard => ({ arg: { source: { kind: 'syscall_arg', index }, type: 'int' }, op: 'equal', value: cmd });
const BPF_MAP_CREATE = 0;
const BPF_PROG_LOAD = 5;
/** union bpf_attr up to prog_name (BPF_PROG_LOAD) and map_name (BPF_MAP_CREATE); struct perf_event_attr up to config2. */
const BPF_ATTR_BYTES = 64;
const PERF_EVENT_ATTR_BYTES = 72;

const bpfMapCreate: Translation = {
  args: { 0: ['bpf_map'] },
  targets: syscalls(['bpf'], () => ({ atExit: true, args: { 0: userStruct(1, BPF_ATTR_BYTES) }, guard: isCommand(0, BPF_MAP_CREATE) })),
  returns: false,
  differs: 'the exit of bpf(BPF_MAP_CREATE), with the map\'s type, sizes and name from the attributes the caller passed',
};

/** A function of the new program at exec, before the point of no return: sched_prepare_exec's filename. */
function atPrepareExec(env: CompileEnv, index: number): Target[] {
  const filename = env.tracepointFormat('sched', 'sched_prepare_exec').fields.find((f) => f.name === 'filename');
  if (filename === undefined) return [];
  const source: ArgSource = { kind: 'tracepoint_field', offset: filename.offset, size: filename.size, signed: false, dataLoc: true };
  return [{ attach: { kind: 'tracepoint', subsystem: 'sched', event: 'sched_prepare_exec' }, atExit: false, args: { [index]: { source, reads: 'string' } } }];
}

const fileOpened: Translation = {
  args: { 0: FILE },
  targets: syscalls(OPENS, () => ({ atExit: true, args: { 0: returned('file') }, guard: nonNegative({ kind: 'return' }) })),
  returns: false,
  differs: 'taken when the open has succeeded (an open the kernel refuses later is not seen); the file is the one the returned fd names',
};

/** sched_prepare_exec(task, bprm) typed: the binprm (argument 0 of the bprm hooks) and its file. */
const PREPARE_EXEC_TYPED: TypedTarget = {
  attach: { kind: 'tracepoint', subsystem: 'sched', event: 'sched_prepare_exec', btf: true },
  args: { 0: { position: 1, struct: 'linux_binprm', plain: 'filename' }, 1: { position: 1, struct: 'linux_binprm', via: 'file' } },
};

const bprm = (index: number, types: readonly string[]): Translation => ({
  args: { [index]: types },
  targets: (env) => atPrepareExec(env, index),
  returns: false,
  differs: 'sched:sched_prepare_exec, before the point of no return; the path is the one given to execve (not resolved); a Sigkill there means the new program runs no instruction; '
    + 'with resolve, its typed program (tp_btf), where the linux_binprm is at hand',
  typed: { attach: PREPARE_EXEC_TYPED.attach, args: { [index]: PREPARE_EXEC_TYPED.args[index]! } },
});

/** TCP states (net/tcp_states.h), as inet_sock_set_state's newstate carries them. */
const TCP_SYN_RECV = 3;
const TCP_FIN_WAIT1 = 4;
const TCP_LAST_ACK = 9;
const TCP_LISTEN = 10;
const IPPROTO_TCP = 6;
/** enum cgroup_bpf_attach_type: __cgroup_bpf_run_filter_skb's type of an incoming and an outgoing packet. */
const CGROUP_INET_INGRESS = 0;
const CGROUP_INET_EGRESS = 1;

/** A tracepoint's field as an argument of a translated hook; the target is dropped when this kernel's format lacks it. */
type FieldReads = Record<number, { field: string; reads: ArgType; sockFrom?: ArgSpec['sockFrom'] } | { constant: number }>;

/** One tracepoint target: its fields by argument index, and a guard on one of its fields. */
function atTracepoint(env: CompileEnv, subsystem: string, event: string, fields: FieldReads,
  guard?: { field: string; op: HookGuard['op']; value: number; reads?: ArgType }): Target[] {
  const args: Record<number, ServedArg> = {};
  for (const [index, f] of Object.entries(fields)) {
    if ('constant' in f) {
      args[Number(index)] = constant(f.constant);
      continue;
    }
    const served = tpField(env, subsystem, event, f.field, f.reads);
    if (served === undefined) return [];
    args[Number(index)] = { ...served, ...(f.sockFrom && { sockFrom: f.sockFrom }) };
  }
  let hookGuard: HookGuard | undefined;
  if (guard) {
    const g = tpField(env, subsystem, event, guard.field, guard.reads ?? 'int');
    if (g === undefined) return [];
    hookGuard = { arg: { source: g.source, type: g.reads }, op: guard.op, value: guard.value };
  }
  return [{ attach: { kind: 'tracepoint', subsystem, event }, atExit: false, args, ...(hookGuard && { guard: hookGuard }) }];
}

/** A sock changing state (sock:inet_sock_set_state) into one of `states`. */
const stateChange = (states: number[]) => (env: CompileEnv): Target[] => atTracepoint(env, 'sock', 'inet_sock_set_state', { 0: { field: 'skaddr', reads: 'sock' } },
  states.length === 1 ? { field: 'newstate', op: 'equal', value: states[0]! } : { field: 'newstate', op: 'bit', value: states.reduce((m, st) => m | (1 << st), 0) });

/**
 * A packet queued to its device (net:net_dev_queue): the sock that sent it at `sockAt`, the skb at `skbAt`;
 * with `kinds` (enum vigil_skb_ip bits), only packets of those kinds.
 */
const queued = (sockAt: number | undefined, skbAt: number, more: FieldReads = {}, kinds?: number) => (env: CompileEnv): Target[] => atTracepoint(env, 'net', 'net_dev_queue', {
  ...(sockAt !== undefined && { [sockAt]: { field: 'skbaddr', reads: 'sock', sockFrom: 'skb' } }), [skbAt]: { field: 'skbaddr', reads: 'skb' }, ...more,
}, kinds === undefined ? undefined : { field: 'skbaddr', op: 'skbIp', value: kinds, reads: 'uint64' });

const SOCK = ['sock'] as const;

/** The cgroup_skb/ingress program sk_filter_trim_cap runs (through __cgroup_bpf_run_filter_skb): the receiving sock, the packet, and `more`. */
const skbIngress = (more: Record<number, ServedArg> = {}): Target => ({
  attach: { kind: 'cgroup', program: 'skb_ingress' }, atExit: false,
  args: { 0: { source: { kind: 'function_arg', index: 0 }, reads: 'sock' }, 1: { source: { kind: 'function_arg', index: 1 }, reads: 'skb' }, ...more },
});

/** The sock of an fd argument (a socket's). */
const fdSock = (index: number): ServedArg => ({ source: { kind: 'syscall_arg', index }, reads: 'sock', sockFrom: 'fd' });

/** security_socket_X (socket, sockaddr, addrlen) at the entry of syscall X(fd, addr, addrlen), which Override can make fail. */
const socketAddressCall = (syscall: string, programs: string, when: string): Translation => ({
  args: { 0: ['socket', 'sock'], 1: ['sockaddr'], 2: NUMBER },
  targets: syscalls([syscall], () => ({ atExit: false, args: { 0: fdSock(0), 1: arg(1, 'sockaddr'), 2: arg(2, 'int') } })),
  returns: false,
  differs: `the entry of ${syscall}(2): the socket of the fd, the address as the caller passed it; Override makes the ${syscall} fail (cgroup ${programs} programs: IPv4 and IPv6 sockets)${when}`,
});
const SKB = ['skb'] as const;
const PACKET_TIMING = 'in the sending process for packets a process sends (a TCP ack or retransmission sent from softirq names whichever process was interrupted, as a kprobe there would)';

export const TRANSLATIONS: Readonly<Record<string, Translation>> = {
  fd_install: {
    args: { 0: NUMBER, 1: FILE },
    targets: syscalls(FD_INSTALLING, () => ({ atExit: true, args: { 0: returned('int'), 1: returned('file') }, guard: nonNegative({ kind: 'return' }) })),
    returns: false,
    differs: 'taken at the exit of every syscall that returns a new fd, once the fd is installed (the process never uses it if killed); fds that pipe, pipe2, socketpair, fcntl(F_DUPFD), recvmsg(SCM_RIGHTS) and bpf install are not seen',
  },
  security_file_open: fileOpened,
  'lsm:file_open': fileOpened,
  security_file_permission: {
    args: { 0: FILE, 1: NUMBER },
    targets: (env) => [
      ...syscalls(READS, () => ({ atExit: false, args: { 0: arg(0, 'file'), 1: constant(MAY_READ) } }))(env),
      ...syscalls(WRITES, () => ({ atExit: false, args: { 0: arg(0, 'file'), 1: constant(MAY_WRITE) } }))(env),
    ],
    returns: true,
    differs: 'the read and write families at entry (a write killed there writes nothing to a file); the mask is MAY_READ or MAY_WRITE by syscall; the return value is the syscall\'s; sendfile, splice and copy_file_range are not seen',
  },
  security_mmap_file: {
    args: { 0: FILE, 1: NUMBER, 2: NUMBER },
    targets: syscalls(['mmap'], () => ({ atExit: false, args: { 0: arg(4, 'file'), 1: arg(2, 'uint32'), 2: arg(3, 'uint64') }, guard: nonNegative({ kind: 'syscall_arg', index: 4 }) })),
    returns: true,
    differs: 'mmap of a file (fd >= 0) at entry; the return value is the syscall\'s',
  },
  security_path_truncate: {
    args: { 0: PATH },
    targets: (env) => [
      ...syscalls(['truncate'], (s) => ({ atExit: true, args: { 0: pathArg(s) } }))(env),
      ...syscalls(['ftruncate'], () => ({ atExit: false, args: { 0: arg(0, 'file') } }))(env),
    ],
    returns: true,
    differs: 'truncate at exit (the path as given) and ftruncate at entry (the fd\'s path)',
  },
  security_file_truncate: {
    args: { 0: FILE },
    targets: syscalls(['ftruncate'], () => ({ atExit: false, args: { 0: arg(0, 'file') } })),
    returns: true,
    differs: 'ftruncate at entry',
  },
  security_path_chmod: {
    args: { 0: PATH, 1: NUMBER },
    targets: (env) => [
      ...syscalls(['chmod', 'fchmodat', 'fchmodat2'], (s) => ({ atExit: true, args: { 0: pathArg(s), 1: arg(PATH_ARGS[s]![0]! + 1, 'uint32') } }))(env),
      ...syscalls(['fchmod'], () => ({ atExit: false, args: { 0: arg(0, 'file'), 1: arg(1, 'uint32') } }))(env),
    ],
    returns: true,
    differs: 'chmod and fchmodat at exit (the path as given), fchmod at entry',
  },
  security_inode_mkdir: {
    args: { 1: PATH, 2: NUMBER },
    targets: syscalls(['mkdir', 'mkdirat'], (s) => ({ atExit: true, args: { 1: pathArg(s), 2: arg(PATH_ARGS[s]![0]! + 1, 'uint32') } })),
    returns: true,
    differs: 'mkdir and mkdirat at exit; the dentry is the path as given; the parent inode (index 0) has no value',
  },
  security_inode_unlink: {
    args: { 1: PATH },
    targets: syscalls(['unlink', 'unlinkat'], (s) => ({ atExit: true, args: { 1: pathArg(s) } })),
    returns: true,
    differs: 'unlink and unlinkat at exit (unlinkat with AT_REMOVEDIR too); the dentry is the path as given; the parent inode (index 0) has no value',
  },
  security_inode_rename: {
    args: { 1: PATH, 3: PATH },
    targets: syscalls(['rename', 'renameat', 'renameat2'], (s) => ({ atExit: true, args: { 1: pathArg(s, 0), 3: pathArg(s, 1) } })),
    returns: true,
    differs: 'rename, renameat and renameat2 at exit; the dentries are the paths as given; the inodes (0, 2) have no value',
  },
  security_inode_link: {
    args: { 0: PATH, 2: PATH },
    targets: syscalls(['link', 'linkat'], (s) => ({ atExit: true, args: { 0: pathArg(s, 0), 2: pathArg(s, 1) } })),
    returns: true,
    differs: 'link and linkat at exit; the dentries are the paths as given; the inode (1) has no value',
  },
  security_inode_symlink: {
    args: { 1: PATH, 2: ['string'] },
    targets: syscalls(['symlink', 'symlinkat'], (s) => ({ atExit: true, args: { 1: pathArg(s, 1), 2: pathArg(s, 0) } })),
    returns: true,
    differs: 'symlink and symlinkat at exit; the new link\'s dentry is its path as given; the inode (0) has no value',
  },
  security_bprm_check: bprm(0, ['linux_binprm']),
  security_bprm_creds_for_exec: bprm(0, ['linux_binprm']),
  security_bprm_committing_creds: bprm(0, ['linux_binprm']),
  security_bprm_creds_from_file: bprm(1, FILE),
  'lsm:bprm_check_security': bprm(0, ['linux_binprm']),
  commit_creds: {
    args: { 0: ['cred'] },
    targets: syscalls(CREDS_CHANGING, () => ({ atExit: true, args: { 0: { source: { kind: 'constant', value: 0 }, reads: 'cred' } }, guard: nonNegative({ kind: 'return' }) })),
    returns: false,
    differs: 'the exit of the set*id family, setgroups and capset when they succeeded, with the caller\'s credentials then; credentials an execve of a set-id program or unshare(CLONE_NEWUSER) commits are not seen',
  },
  cap_capable: {
    args: { 1: ['user_namespace'], 2: ['capability', 'int'] },
    targets: (env) => {
      const [ns, cap, ret] = [tpField(env, 'capability', 'cap_capable', 'target_ns', 'user_ns'), tpField(env, 'capability', 'cap_capable', 'cap', 'int'), tpField(env, 'capability', 'cap_capable', 'ret', 'int')];
      if (!ns || !cap || !ret) return [];
      return [{ attach: { kind: 'tracepoint', subsystem: 'capability', event: 'cap_capable' }, atExit: false, args: { 1: ns, 2: cap }, ret }];
    },
    returns: true,
    differs: 'capability:cap_capable, after the check (its result is the return value); the options argument (3) has no value',
  },
  tty_write: {
    args: { 0: ['file', 'kiocb'], 1: ['char_buf', 'iov_iter'], 2: NUMBER },
    targets: syscalls(['write'], () => ({
      atExit: false,
      args: { 0: arg(0, 'file'), 1: { source: { kind: 'syscall_arg', index: 1 }, reads: 'char_buf', length: { kind: 'syscall_arg', index: 2 } }, 2: arg(2, 'size_t') },
      guard: { arg: { source: { kind: 'syscall_arg', index: 0 }, type: 'int' }, op: 'ttyFd', value: 0 },
    })),
    returns: true,
    differs: 'write(2) to an fd naming a tty (the tty, console and pts majors), at entry; writev and pwrite to a tty are not seen; the bytes are those the write was given, up to the record\'s size',
  },
  bpf_check: {
    args: { 1: ['bpf_attr'] },
    targets: syscalls(['bpf'], () => ({ atExit: true, args: { 1: userStruct(1, BPF_ATTR_BYTES) }, guard: isCommand(0, BPF_PROG_LOAD) })),
    returns: false,
    differs: 'the exit of bpf(BPF_PROG_LOAD), loaded or refused by the verifier; the program\'s type, instruction count and name from the attributes the caller passed',
  },
  security_bpf_map_create: bpfMapCreate,
  security_bpf_map_alloc: bpfMapCreate,
  security_perf_event_alloc: {
    args: { 0: ['perf_event'] },
    targets: syscalls(['perf_event_open'], () => ({ atExit: true, args: { 0: userStruct(0, PERF_EVENT_ATTR_BYTES) } })),
    returns: false,
    differs: 'the exit of perf_event_open, with the type, config and probe offset the caller passed; the kprobe function name is not read',
  },
  tcp_connect: {
    args: { 0: SOCK },
    targets: syscalls(['connect'], () => ({
      atExit: true, args: { 0: fdSock(0) },
      guard: { arg: { source: { kind: 'syscall_arg', index: 0 }, type: 'int' }, op: 'sockProtocol', value: IPPROTO_TCP },
    })),
    returns: false,
    differs: 'the exit of connect(2) on a TCP socket, when its sock has both ports (the kernel picks the source port after the SYN_SENT state change): its state is then SYN_SENT, ESTABLISHED, or CLOSE for a refused connect, which is seen too; the SYN has left (a Sigkill does not stop it; Override on sys_connect or security_socket_connect does)',
  },
  tcp_close: {
    args: { 0: SOCK },
    targets: stateChange([TCP_FIN_WAIT1, TCP_LAST_ACK]),
    returns: false,
    differs: 'sock:inet_sock_set_state into FIN_WAIT1 or LAST_ACK: the closing process ending a connection (shutdown(SHUT_WR) too); a socket closed before it connected, or reset, is not seen',
  },
  tcp_sendmsg: {
    args: { 0: SOCK, 2: NUMBER },
    targets: (env) => atTracepoint(env, 'sock', 'sock_send_length', { 0: { field: 'sk', reads: 'sock' }, 2: { field: 'ret', reads: 'int' } }, { field: 'protocol', op: 'equal', value: IPPROTO_TCP }),
    returns: false,
    differs: 'sock:sock_send_length of TCP sockets, after the send: the size is the bytes sent (or the negative errno), not those asked for; sendfile and splice are not seen',
  },
  tcp_set_state: {
    args: { 0: SOCK, 1: NUMBER },
    targets: (env) => atTracepoint(env, 'sock', 'inet_sock_set_state', { 0: { field: 'skaddr', reads: 'sock' }, 1: { field: 'newstate', reads: 'int' } }),
    returns: false,
    differs: 'sock:inet_sock_set_state (SCTP sockets changing state too); the sock\'s own state is still the old one; changes made in softirq (a handshake completing, a FIN arriving) name whichever process was interrupted, unless the sock is tracked (TrackSock)',
  },
  inet_csk_listen_start: {
    args: { 0: SOCK },
    targets: stateChange([TCP_LISTEN]),
    returns: false,
    differs: 'sock:inet_sock_set_state into LISTEN, in the listening process',
  },
  tcp_create_openreq_child: {
    args: { 0: SOCK },
    // The new sock is the listener's copy, given the connection's addresses before its state is set: sock:inet_sock_set_state LISTEN → SYN_RECV.
    targets: (env) => atTracepoint(env, 'sock', 'inet_sock_set_state', { 0: { field: 'skaddr', reads: 'sock' } }, { field: 'newstate', op: 'equal', value: TCP_SYN_RECV })
      .map((t) => ({ ...t, ret: t.args[0] })),
    returns: true,
    returnTypes: SOCK,
    differs: 'sock:inet_sock_set_state into SYN_RECV: the new sock, a copy of its listener given the connection\'s addresses, as the kernel makes it; the listener (argument 0) is not at hand there, so the new sock stands for it: the listener\'s family, protocol, port and state (LISTEN), '
      + 'but the local address the connection came to (not a wildcard the listener is bound to) and the peer\'s address and port; the returned sock\'s state still reads LISTEN (SYN_RECV is set just after); a simultaneous open (SYN_SENT to SYN_RECV) is seen too; '
      + 'in softirq, so the process is whichever was interrupted (on loopback, the connecting one), as with the kprobe',
  },
  sk_filter_trim_cap: {
    args: { 0: SOCK, 1: SKB },
    targets: () => [skbIngress()],
    returns: false,
    differs: 'the cgroup_skb/ingress program the kernel runs in sk_filter_trim_cap, attached at the cgroup v2 root: a packet about to be queued to an IPv4 or IPv6 socket, the socket and the packet; '
      + 'packets to other sockets (unix, netlink) are not seen, nor those below a cgroup whose own ingress program was attached without BPF_F_ALLOW_MULTI; '
      + 'in softirq, the process is whichever was interrupted (on loopback, the sender), as with the kprobe; no stack traces (a cgroup program cannot take them)',
  },
  sk_alloc: {
    args: { 1: NUMBER },
    targets: syscalls(['socket'], () => ({
      atExit: true, args: { 1: arg(0, 'int') }, ret: { source: { kind: 'return' }, reads: 'sock', sockFrom: 'fd' }, guard: nonNegative({ kind: 'return' }),
    })),
    returns: true,
    returnTypes: SOCK,
    differs: 'the exit of socket(2) when it made one: the family asked for, the new sock of the returned fd; socks the kernel allocates for itself are not seen (an accepted connection is a clone of its listener, not an sk_alloc)',
  },
  __sk_free: {
    args: { 0: SOCK },
    targets: (env) => atTracepoint(env, 'tcp', 'tcp_destroy_sock', { 0: { field: 'skaddr', reads: 'sock' } }),
    returns: false,
    differs: 'tcp:tcp_destroy_sock, when the kernel is done with a TCP sock; other socks are freed unseen (a tracked one then ages out of the LRU table of tracked socks)',
  },
  inet_csk_accept: {
    args: { 0: SOCK },
    targets: syscalls(['accept', 'accept4'], () => ({
      atExit: true,
      args: { 0: fdSock(0) },
      ret: { source: { kind: 'return' }, reads: 'sock', sockFrom: 'fd' },
      guard: nonNegative({ kind: 'return' }),
    })),
    returns: true,
    returnTypes: SOCK,
    differs: 'the exit of accept and accept4 when they returned a connection: the listening sock of the fd, the new one of the returned fd (its state ESTABLISHED)',
  },
  security_socket_connect: socketAddressCall('connect', 'connect4/connect6', ' before any packet leaves'),
  security_socket_bind: socketAddressCall('bind', 'bind4/bind6', ''),
  security_socket_create: {
    args: { 0: NUMBER, 1: NUMBER, 2: NUMBER },
    targets: syscalls(['socket'], () => ({ atExit: false, args: { 0: arg(0, 'int'), 1: arg(1, 'int'), 2: arg(2, 'int') } })),
    returns: false,
    differs: 'the entry of socket(2): family, type and protocol as asked (kern, index 3, has no value: the kernel\'s own sockets are not seen); Override makes it fail for IPv4 and IPv6 sockets (cgroup sock_create program)',
  },
  ip_output: {
    args: { 1: SOCK, 2: SKB },
    targets: queued(1, 2, {}, SkbIp.IP4_UNICAST),
    returns: false,
    differs: `net:net_dev_queue, IPv4 packets to one host, as the packet is queued to its device (after netfilter; its length counts the link-layer header), ${PACKET_TIMING}; the net namespace (0) has no value`,
  },
  ip_mc_output: {
    args: { 1: SOCK, 2: SKB },
    targets: queued(1, 2, {}, SkbIp.IP4_GROUP),
    returns: false,
    differs: `net:net_dev_queue, IPv4 packets to a group: a multicast address, 255.255.255.255, or a group link-layer address (a subnet's broadcast on Ethernet; one over a device without link-layer addresses, such as lo, is taken for ip_output), `
      + `as the packet is queued to its device (the copy looped back to this host is not seen), ${PACKET_TIMING}; the net namespace (0) has no value`,
  },
  ip6_output: {
    args: { 1: SOCK, 2: SKB },
    targets: queued(1, 2, {}, SkbIp.IP6),
    returns: false,
    differs: `net:net_dev_queue, IPv6 packets, as the packet is queued to its device (after netfilter; its length counts the link-layer header), ${PACKET_TIMING}; the net namespace (0) has no value`,
  },
  dev_queue_xmit: {
    args: { 0: SKB },
    targets: queued(undefined, 0),
    returns: false,
    differs: `net:net_dev_queue, ${PACKET_TIMING}`,
  },
  dev_hard_start_xmit: {
    args: { 0: SKB, 1: ['net_device'] },
    targets: (env) => atTracepoint(env, 'net', 'net_dev_start_xmit', { 0: { field: 'skbaddr', reads: 'skb' }, 1: { field: 'name', reads: 'string' } }),
    returns: false,
    differs: `net:net_dev_start_xmit, once for each packet the driver is handed; the device is its name, ${PACKET_TIMING}`,
  },
  kfree_skb_reason: {
    args: { 0: SKB, 1: NUMBER },
    targets: (env) => atTracepoint(env, 'skb', 'kfree_skb', { 0: { field: 'skbaddr', reads: 'skb' }, 1: { field: 'reason', reads: 'int' } }),
    returns: false,
    differs: 'skb:kfree_skb, every packet dropped, with the reason (this kernel names the function sk_skb_reason_drop); often in softirq, where the process is whichever was interrupted',
    renamedTo: 'sk_skb_reason_drop',
  },
  __cgroup_bpf_run_filter_skb: {
    args: { 0: SOCK, 1: SKB, 2: NUMBER },
    targets: (env) => [...queued(0, 1, { 2: { constant: CGROUP_INET_EGRESS } })(env), skbIngress({ 2: constant(CGROUP_INET_INGRESS) })],
    returns: false,
    differs: `outgoing packets (type 1, egress) from net:net_dev_queue, ${PACKET_TIMING}; incoming ones (type 0, ingress) from the cgroup_skb/ingress program this function runs (as for sk_filter_trim_cap); `
      + 'no stack traces (the ingress program cannot take them)',
  },
  create_user_ns: {
    args: {},
    targets: (env) => [
      ...syscalls(['unshare'], () => ({ atExit: false, args: {}, guard: hasFlag(0, CLONE_NEWUSER) }))(env),
      ...syscalls(['clone'], () => ({ atExit: false, args: {}, guard: hasFlag(0, CLONE_NEWUSER) }))(env),
    ],
    returns: false,
    differs: 'unshare and clone with CLONE_NEWUSER, at entry (a Sigkill there kills the caller before it returns); clone3 keeps its flags in user memory and is not seen',
  },
};

/** Raw tracepoints Vigil serves, by subsystem/event: raw argument index → the format field carrying the same. */
export const RAW_TRACEPOINTS: Readonly<Record<string, { args: Record<number, { field: string; types: readonly string[] }>; differs: string }>> = {
  'sched/sched_process_exec': {
    args: { 2: { field: 'filename', types: ['linux_binprm'] } },
    differs: 'the tracepoint\'s own record: linux_binprm (argument 2) is the filename given to execve',
  },
};

/** Kernel functions no hook here observes, and why: refused by name. */
export const REFUSED: Readonly<Record<string, string>> = {
  security_kernel_module_request: 'this kernel has no loadable module support (CONFIG_MODULES is off), so modules are never requested',
  security_kernel_read_file: 'this kernel has no loadable module support (CONFIG_MODULES is off); init_module and finit_module fail',
  security_kernel_load_data: 'this kernel has no loadable module support (CONFIG_MODULES is off); init_module and finit_module fail',
  do_init_module: 'this kernel has no loadable module support (CONFIG_MODULES is off)',
  free_module: 'this kernel has no loadable module support (CONFIG_MODULES is off)',
  find_module_sections: 'this kernel has no loadable module support (CONFIG_MODULES is off)',
  security_inode_follow_link: 'symlinks are followed inside path walks, which no tracepoint shows; hook the syscalls that take the path',
  security_inode_copy_up_xattr: 'overlayfs copy-up happens inside the kernel, which no tracepoint shows',
  override_creds: 'override_creds is the kernel borrowing credentials internally, which no tracepoint shows',
  revert_creds: 'revert_creds is the kernel borrowing credentials internally, which no tracepoint shows',
};
