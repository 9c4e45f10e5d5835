/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The Vigil kernel ABI: every record the kernel emits and every table the
 * kernel reads is declared here, once. BPF programs and the C reference
 * consumer include this file; TypeScript derives field offsets from the BTF
 * of the compiled objects (services/sensor/kernel/layout.ts), and every
 * numeric #define and enum value from this file through the C compiler
 * (scripts/gen-kernel-abi.mjs writes services/lib/kernel-abi.ts), never by hand.
 *
 * Records in the ring buffer are a fixed header plus bounded variable data.
 * Every record begins with struct vigil_record_header; `size` covers the
 * whole record including variable data.
 */
#ifndef VIGIL_H
#define VIGIL_H

#define VIGIL_COMM_LEN 16
#define VIGIL_CGROUP_NAME_LEN 128
/* Bounds of the variable data. */
#define VIGIL_ARGS_MAX 2048          /* argv bytes, NUL-separated */
#define VIGIL_PATH_MAX 2048          /* path components, leaf first */
#define VIGIL_PATH_DEPTH 48          /* components walked at most */
#define VIGIL_NAME_MAX 256           /* one path component incl. NUL */

enum vigil_record_kind {
	VIGIL_RECORD_EXEC = 1,
	VIGIL_RECORD_FORK = 2,
	VIGIL_RECORD_EXIT = 3,
	VIGIL_RECORD_POLICY = 4,
	VIGIL_RECORD_BENCH = 100, /* emitted only by test/bench objects */
};

/* Flags on struct vigil_process.flags */
enum vigil_process_flags {
	VIGIL_F_ARGS_TRUNCATED = 1 << 0,
	VIGIL_F_EXE_TRUNCATED = 1 << 1,  /* path deeper or longer than the bounds */
	VIGIL_F_CWD_TRUNCATED = 1 << 2,
	VIGIL_F_ARGS_UNREADABLE = 1 << 3, /* argv pages could not be read */
	VIGIL_F_ROOT_CWD = 1 << 4,        /* cwd is "/" */
};

struct vigil_record_header {
	__u32 kind;   /* enum vigil_record_kind */
	__u32 size;   /* bytes of the whole record */
	__u64 ktime;  /* bpf_ktime_get_boot_ns() when the record was made */
};

/* Credentials, capabilities and namespaces of a task: one snapshot. */
struct vigil_creds {
	__u32 uid, euid, suid, fsuid;
	__u32 gid, egid, sgid, fsgid;
	__u32 auid;                         /* loginuid; 4294967295 when unset */
	__u32 securebits;
	__u64 cap_effective, cap_permitted, cap_inheritable;
};

struct vigil_namespaces {
	__u32 uts, ipc, mnt, pid, pid_for_children, net;
	__u32 time, time_for_children, cgroup, user;
};

/* Identity of a process (a thread group) as the kernel sees it. */
struct vigil_process {
	__u32 pid;           /* tgid */
	__u32 tid;           /* the thread that triggered the record */
	__u32 ppid;          /* real_parent->tgid */
	__u32 nspid;         /* pid in its own pid namespace */
	__u64 start_boottime;/* task->start_boottime of the group leader, ns */
	__u64 cgroup_id;     /* default-hierarchy (cgroup2) cgroup id */
	__u32 flags;         /* enum vigil_process_flags */
	__u32 pad;
	struct vigil_creds creds;
	struct vigil_namespaces ns;
	char comm[VIGIL_COMM_LEN];
	char cgroup_name[VIGIL_CGROUP_NAME_LEN];    /* leaf of the cgroup2 path */
	char cgroup_v1_name[VIGIL_CGROUP_NAME_LEN]; /* leaf of the memory (v1) cgroup path */
};

/*
 * sched_process_exec. Variable data follows the fixed part, in this order:
 *   args:  args_len bytes, argv[0]..argv[n-1] each NUL-terminated
 *   exe:   exe_len bytes, components of mm->exe_file's path, LEAF FIRST,
 *          each NUL-terminated ("ls\0bin\0usr\0" is /usr/bin/ls)
 *   cwd:   cwd_len bytes, components of fs->pwd, leaf first, same form
 *          (cwd_len 0 with VIGIL_F_ROOT_CWD is "/")
 */
struct vigil_exec_record {
	struct vigil_record_header hdr;
	struct vigil_process proc;
	__u32 old_pid;       /* pid before exec (differs when a thread execs) */
	__u16 args_len;
	__u16 exe_len;
	__u16 cwd_len;
	__u16 pad;
	char data[];
};

/* sched_process_fork, only when a new thread group starts. */
struct vigil_fork_record {
	struct vigil_record_header hdr;
	struct vigil_process proc; /* the child */
};

/* sched_process_exit, only when the whole thread group is dead. */
struct vigil_exit_record {
	struct vigil_record_header hdr;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 exit_status;   /* wait(2) status: code << 8, or the signal in the low 7 bits */
	__u64 start_boottime;
};

/* Records emitted by test/bench objects: a header and `len` filler bytes. */
struct vigil_bench_record {
	struct vigil_record_header hdr;
	__u64 seq;
	char data[];
};


/* ==== Policies ====
 *
 * A TracingPolicy is compiled (services/enforcer) to hooks; the sensor writes
 * each hook's configuration into vigil_hooks at a free index, the hook id.
 * The generic program of a hook's kind is attached once per target (the
 * kernel refuses a second attachment of a program to a tracepoint: EEXIST),
 * with an attachment id as BPF cookie (syscall hooks: the attachment found
 * by syscall number in vigil_syscall_attachments); vigil_attachments[attachment id]
 * lists the hooks that attachment serves, so hooks of several policies can
 * share a syscall or tracepoint. Selectors are evaluated in BPF from these
 * tables only; enforce/monitor and enabled/disabled are one entry of
 * vigil_policies, so switching them never touches programs.
 */
#define VIGIL_MAX_HOOKS 256
#define VIGIL_MAX_ATTACHMENTS 256
#define VIGIL_ATTACHMENT_HOOKS 16  /* hooks one attachment serves */
#define VIGIL_MAX_SYSCALL_NR 512   /* syscall numbers vigil_syscall_attachments covers */
#define VIGIL_SYSCALL64_32BIT 0x80000000 /* in a syscall64 value: a 32-bit (compat) call's number (Tetragon's IS_32BIT) */
#define VIGIL_MAX_POLICIES 128
#define VIGIL_MAX_SELECTORS 5
#define VIGIL_MAX_HOOK_ARGS 5
#define VIGIL_MAX_MATCH_ARGS 5
#define VIGIL_MAX_MATCH_RETURN_ARGS 2
#define VIGIL_MAX_MATCH_VALUES 4
#define VIGIL_MAX_MATCH_NS 10
#define VIGIL_MAX_MATCH_CAPS 3
#define VIGIL_MAX_ACTIONS 3
#define VIGIL_MAX_FOLLOW_SLOTS 64
#define VIGIL_STRING_MAX 256       /* vigil_proc_state.exe, NUL included */
#define VIGIL_KEY_STRING_MAX 252   /* longest string value of the vigil_str_* tables */
#define VIGIL_POLICY_DATA_MAX 4096 /* argument bytes of one policy record */
#define VIGIL_NO_SLOT 0xff

enum vigil_hook_kind {
	VIGIL_HOOK_KPROBE = 1,     /* a syscall, served by syscalls:sys_enter_X / sys_exit_X */
	VIGIL_HOOK_TRACEPOINT = 2,
	VIGIL_HOOK_UPROBE = 3,
	VIGIL_HOOK_LSM = 4,        /* an LSM hook, served like a translated kprobe */
};

enum vigil_hook_flags {
	VIGIL_HOOKF_ACTIVE = 1 << 0,       /* slot in use */
	VIGIL_HOOKF_AT_EXIT = 1 << 1,      /* evaluate at sys_exit / uretprobe (args saved at sys_enter / uprobe) */
	VIGIL_HOOKF_RETURN = 1 << 2,       /* report the return value (`ret` spec) */
	VIGIL_HOOKF_EXEC_EVENT = 1 << 3,   /* hook on sched_process_exec: read the new exe from the task, not vigil_procs */
	VIGIL_HOOKF_RET_TRACK_SOCK = 1 << 4,   /* returnArgAction TrackSock: the returned sock, when a selector matches */
	VIGIL_HOOKF_RET_UNTRACK_SOCK = 1 << 5, /* returnArgAction UntrackSock */
	VIGIL_HOOKF_STACKS = 1 << 6,       /* a selector's Post asks for stack traces: take them when one matches */
	VIGIL_HOOKF_EXIT_ALONE = 1 << 7,   /* AT_EXIT syscall hook reading only the return value and constants:
	                                    * routed at sys_exit only, nothing saved at sys_enter */
};

enum vigil_arg_type {
	VIGIL_ARG_NONE = 0,
	VIGIL_ARG_INT = 1,        /* s32 */
	VIGIL_ARG_UINT32 = 2,
	VIGIL_ARG_INT64 = 3,
	VIGIL_ARG_UINT64 = 4,
	VIGIL_ARG_SIZE_T = 5,
	VIGIL_ARG_STRING = 6,     /* user char *, read at exit; or a tracepoint __data_loc string */
	VIGIL_ARG_CHAR_BUF = 7,   /* user buffer, length from args[size_arg] */
	VIGIL_ARG_FD = 8,         /* int fd, resolved to its file's path */
	VIGIL_ARG_FILE = 9,       /* a resolved fd path (fd/file/path policy types) */
	VIGIL_ARG_SOCKADDR = 10,  /* user struct sockaddr *, read at exit */
	VIGIL_ARG_CAP_SET = 11,   /* u64 capability mask */
	VIGIL_ARG_CRED = 12,      /* the current task's credentials when the event is taken: struct vigil_creds */
	VIGIL_ARG_USER_NS = 13,   /* a struct user_namespace * (kernel memory): struct vigil_user_ns */
	VIGIL_ARG_SOCK = 14,      /* a struct sock * (kernel memory): struct vigil_sock */
	VIGIL_ARG_SKB = 15,       /* a struct sk_buff * (kernel memory): struct vigil_skb */
};

/*
 * What the network operators of matchArgs (Family, Protocol, State, SPort,
 * DPort, SAddr, DAddr) test: the first bytes of a sock and an skb value.
 * A sockaddr (the raw user struct) is tested as if its address and port
 * were the source ones, as Tetragon's SAddr/SPort on a sockaddr do.
 * Addresses are 16 bytes, IPv4 as ::ffff:a.b.c.d, so that one table of
 * prefixes (vigil_addr_lpm) holds both families.
 */
struct vigil_net_tuple {
	__u16 family;   /* AF_INET 2, AF_INET6 10, ... */
	__u16 protocol; /* IPPROTO_* */
	__u16 sport;    /* host order */
	__u16 dport;
	__u8 state;     /* TCP state of a sock; 0 for an skb */
	__u8 pad[3];
	__u8 saddr[16];
	__u8 daddr[16];
};

struct vigil_sock {
	struct vigil_net_tuple t;
	__u16 type;     /* SOCK_STREAM 1, SOCK_DGRAM 2, ... */
	__u16 pad;
	__u32 mark;
	__u32 priority;
	__u32 pad2;
	__u64 cookie;   /* socket cookie; 0 until the kernel gave it one */
};

struct vigil_skb {
	struct vigil_net_tuple t;
	__u32 len;
	__u32 priority;
	__u32 mark;
	__u32 hash;
};

/* What a VIGIL_ARG_USER_NS argument reports of a user namespace. */
struct vigil_user_ns {
	__u32 level;  /* 0: the initial user namespace */
	__u32 owner;  /* kuid of its creator */
	__u32 group;
	__u32 inum;
};

enum vigil_arg_source {
	VIGIL_SRC_SYSCALL_ARG = 1, /* sys_enter args[index] */
	VIGIL_SRC_RETURN = 2,      /* sys_exit ret, uretprobe rc */
	VIGIL_SRC_TP_FIELD = 3,    /* tracepoint record bytes [offset, offset+size) */
	VIGIL_SRC_FUNCTION_ARG = 4, /* function argument `index`: a uprobe's (pt_regs), vigil_skb_ingress's (sock, skb) */
	VIGIL_SRC_CONST = 5,       /* the number in `offset`: what a translation knows from the syscall itself */
	VIGIL_SRC_USDT = 6,        /* a USDT argument: register `index` of struct pt_regs (8-byte slots), `size` bytes
	                            * of it, or with VIGIL_ARGF_USDT_MEMORY of user memory at it plus (s16)`offset` */
	VIGIL_SRC_BTF_ARG = 7,     /* argument `index` of a tp_btf program (kernel memory); with VIGIL_ARGF_RESOLVE,
	                            * the field vigil_resolve_paths[`offset`] names from it: `size` bytes of it
	                            * (signed with VIGIL_ARGF_SIGNED), or its address when size is 0 (a string) */
};

enum vigil_arg_flags {
	VIGIL_ARGF_RESOLVE_RET_FD = 1 << 0, /* string of open/openat/creat: the returned fd's resolved path when ret >= 0 */
	VIGIL_ARGF_SIGNED = 1 << 1,         /* tracepoint field is signed: sign-extend */
	VIGIL_ARGF_DATA_LOC = 1 << 2,       /* tracepoint __data_loc field: (len << 16 | offset) into the record */
	VIGIL_ARGF_FD_SOCK = 1 << 3,        /* sock: the value is an fd of the task; its socket's sock */
	VIGIL_ARGF_SKB_SOCK = 1 << 4,       /* sock: the value is an skb; the sock that owns it */
	VIGIL_ARGF_USDT_MEMORY = 1 << 5,    /* VIGIL_SRC_USDT: the value is in user memory at the register plus offset */
	VIGIL_ARGF_RESOLVE = 1 << 6,        /* VIGIL_SRC_BTF_ARG: follow vigil_resolve_paths[offset] (Tetragon's resolve) */
	VIGIL_ARGF_SYSCALL64 = 1 << 7,      /* a syscall number (Tetragon's syscall64): VIGIL_SYSCALL64_32BIT
	                                     * added when the task is in a 32-bit syscall */
};

/* Pointers one resolve path loads at most. */
#define VIGIL_RESOLVE_DEPTH 8

/*
 * vigil_resolve_paths[hook id * (VIGIL_MAX_HOOK_ARGS + 1) + argument position
 * (VIGIL_MAX_HOOK_ARGS: the return argument)]: a path of struct fields from a
 * kernel pointer, as byte offsets from the running kernel's BTF: load the
 * pointer at each of derefs[0..nderefs), then the field is at offset from the
 * last one.
 */
struct vigil_resolve_path {
	__u32 nderefs;
	__u32 offset;
	__u32 derefs[VIGIL_RESOLVE_DEPTH];
};

/* Hook programs that cannot be given a BPF cookie (a tp_btf program of its own
 * tracepoint, a cgroup program), each with its attachment in
 * vigil_cookieless_attachments[index] (1 + id; 0: none). */
enum vigil_cookieless_program {
	VIGIL_COOKIELESS_PREPARE_EXEC = 0, /* vigil_prepare_exec: sched_prepare_exec(task, bprm) */
	VIGIL_COOKIELESS_SKB_INGRESS = 1,  /* vigil_skb_ingress: cgroup_skb/ingress, in sk_filter_trim_cap(sk, skb) */
	VIGIL_COOKIELESS_PROGRAMS = 2,
};

struct vigil_arg_spec {
	__u8 type;     /* enum vigil_arg_type */
	__u8 source;   /* enum vigil_arg_source */
	__u8 index;    /* syscall or uprobe argument number; VIGIL_SRC_USDT: pt_regs slot */
	__u8 size_arg; /* char_buf: position in vigil_hook.args of its length, else VIGIL_NO_SLOT */
	__u16 offset;  /* tracepoint field offset; VIGIL_SRC_USDT: displacement */
	__u8 size;     /* tracepoint field or USDT argument size: 1, 2, 4 or 8 */
	__u8 flags;    /* enum vigil_arg_flags */
};

enum vigil_op {
	VIGIL_OP_EQUAL = 1,      /* In for pids/namespaces/binaries/capabilities */
	VIGIL_OP_NOT_EQUAL = 2,  /* NotIn */
	VIGIL_OP_PREFIX = 3,
	VIGIL_OP_NOT_PREFIX = 4,
	VIGIL_OP_POSTFIX = 5,
	VIGIL_OP_NOT_POSTFIX = 6,
	VIGIL_OP_GREATER = 7,
	VIGIL_OP_LESS = 8,
	VIGIL_OP_MASK = 9,       /* (value & v) != 0 for any v */
	VIGIL_OP_PRIV = 10,      /* a port below 1024 (SPortPriv, DPortPriv) */
	VIGIL_OP_NOT_PRIV = 11,
};

/* Which part of a network argument a matchArgs tests (struct vigil_net_tuple);
 * addresses with EQUAL (in one of the prefixes) or NOT_EQUAL, against vigil_addr_lpm. */
enum vigil_net_field {
	VIGIL_NET_NONE = 0,
	VIGIL_NET_FAMILY = 1,
	VIGIL_NET_PROTOCOL = 2,
	VIGIL_NET_STATE = 3,
	VIGIL_NET_SPORT = 4,
	VIGIL_NET_DPORT = 5,
	VIGIL_NET_SADDR = 6,
	VIGIL_NET_DADDR = 7,
};

enum vigil_pid_flags {
	VIGIL_PIDF_NAMESPACE = 1 << 0,    /* compare the pid in the process's own pid namespace */
	VIGIL_PIDF_FOLLOW_FORKS = 1 << 1, /* descendants match too (follow_slot) */
};

struct vigil_match_pids {
	__u8 op;          /* EQUAL (In) or NOT_EQUAL (NotIn) */
	__u8 flags;       /* enum vigil_pid_flags */
	__u8 nvalues;
	__u8 follow_slot; /* VIGIL_NO_SLOT unless FOLLOW_FORKS */
	__u32 values[VIGIL_MAX_MATCH_VALUES];
};

/* ns: index in struct vigil_namespaces order (uts 0, ipc 1, mnt 2, pid 3,
 * pid_for_children 4, net 5, time 6, time_for_children 7, cgroup 8, user 9). */
struct vigil_match_ns {
	__u8 ns;
	__u8 op;        /* EQUAL (In) or NOT_EQUAL (NotIn) */
	__u8 nvalues;
	__u8 pad;
	__u32 values[VIGIL_MAX_MATCH_VALUES];
};

/* Index of a capability set in vigil_match_caps.set and vigil_proc_state.exec_caps. */
enum vigil_cap_set {
	VIGIL_CAPS_EFFECTIVE = 0,
	VIGIL_CAPS_PERMITTED = 1,
	VIGIL_CAPS_INHERITABLE = 2,
};

/* set: enum vigil_cap_set. In: holds any cap of mask; NotIn: holds none.
 * As a change matcher, the caps compared are those that differ from the caps at exec. */
struct vigil_match_caps {
	__u8 set;
	__u8 op;
	__u8 is_ns_cap; /* only count caps when the process is not in the initial user namespace */
	__u8 pad[5];
	__u64 mask;
};

/* A matchArgs / matchReturnArgs entry. Numeric values inline; string values
 * live in the vigil_str_* maps under (hook, selector, matcher). */
struct vigil_match_arg {
	__u8 arg;       /* position in vigil_hook.args (matchReturnArgs: ignored, the return value) */
	__u8 op;        /* enum vigil_op */
	__u8 nvalues;   /* numeric values used */
	__u8 is_string;
	__u8 net_field; /* enum vigil_net_field: a network operator */
	__u8 pad[3];
	__u64 values[VIGIL_MAX_MATCH_VALUES];
};

/* Key of vigil_addr_lpm: an address prefix of a SAddr/DAddr matcher;
 * prefixlen counts bits from `hook` on (32 + bits of addr). */
struct vigil_addr_key {
	__u32 prefixlen;
	__u16 hook;
	__u8 selector;
	__u8 matcher;
	__u8 addr[16];
};

/* String matcher ids in vigil_string_key.matcher. */
#define VIGIL_MATCHER_RETURN_ARG_BASE 8
#define VIGIL_MATCHER_ARG(i) (i)           /* matchArgs[i], 0..4 */
#define VIGIL_MATCHER_RETURN_ARG(i) (VIGIL_MATCHER_RETURN_ARG_BASE + (i))
#define VIGIL_MATCHER_BINARIES 15

struct vigil_match_binaries {
	__u8 op;          /* EQUAL (In), NOT_EQUAL (NotIn), PREFIX, NOT_PREFIX, POSTFIX, NOT_POSTFIX */
	__u8 follow_slot; /* followChildren: VIGIL_NO_SLOT or the slot whose bit descendants inherit */
	__u8 pad[2];
};

enum vigil_action_kind {
	VIGIL_ACTION_POST = 1,
	VIGIL_ACTION_NOPOST = 2,
	VIGIL_ACTION_SIGKILL = 3,
	VIGIL_ACTION_SIGNAL = 4,
	VIGIL_ACTION_OVERRIDE = 5, /* the syscall fails with `error`: vigil_override, read by cgroup programs */
	VIGIL_ACTION_TRACK_SOCK = 6,   /* the sock of args[arg] is owned by this process: vigil_sock_owner */
	VIGIL_ACTION_UNTRACK_SOCK = 7, /* it is no longer tracked */
	VIGIL_ACTION_NOTIFY_ENFORCER = 8, /* Tetragon's NotifyEnforcer, served by sending `signal` at once: the
	                                   * compiler allows it only in a call the policy's enforcers cover */
};

struct vigil_action {
	__u8 kind;      /* enum vigil_action_kind */
	__u8 signal;    /* VIGIL_ACTION_SIGNAL, VIGIL_ACTION_NOTIFY_ENFORCER */
	__u8 arg;       /* VIGIL_ACTION_(UN)TRACK_SOCK: position in vigil_hook.args of the sock */
	__u8 stacks;    /* VIGIL_ACTION_POST: enum vigil_stack_flags, the stack traces the record carries */
	__u16 error;    /* VIGIL_ACTION_OVERRIDE: the errno the syscall returns */
	__u16 pad2;
	__u32 rate_limit_ms; /* posts of this selector by one process at most once per interval; 0: no limit */
};

enum vigil_stack_flags {
	VIGIL_STACK_KERNEL = 1 << 0, /* kernelStackTrace */
	VIGIL_STACK_USER = 1 << 1,   /* userStackTrace */
};
#define VIGIL_STACK_DEPTH 32 /* frames of one stack trace at most */

/* vigil_sock_owner[sock address]: the process a tracked sock belongs to. A
 * record of a hook whose sock (or skb's sock) is tracked names this process,
 * not the task that ran the hook (a state change in softirq, a packet's drop).
 * The entry holds for the socket it was made for (its inode): a sock freed
 * unseen and allocated again for another socket is not taken for it. */
struct vigil_sock_owner {
	__u32 tgid;
	__u32 tid;
	__u64 socket_ino; /* inode of sk->sk_socket when tracked */
	__u32 policy;     /* whose TrackSock made it: its entries go with it */
	__u32 pad;
};

struct vigil_selector {
	__u8 n_pids;        /* 0 or 1 */
	__u8 n_ns;
	__u8 n_caps;
	__u8 n_cap_changes;
	__u8 n_args;
	__u8 n_return_args;
	__u8 n_actions;
	__u8 has_binaries;
	__u8 has_ns_changes;
	__u8 ns_changes_op;     /* EQUAL (In: any listed changed) / NOT_EQUAL (NotIn: none changed) */
	__u16 ns_changes_mask;  /* bit i: namespace i as in vigil_match_ns */
	__u32 pad;
	struct vigil_match_pids pids;
	struct vigil_match_ns ns[VIGIL_MAX_MATCH_NS];
	struct vigil_match_caps caps[VIGIL_MAX_MATCH_CAPS];
	struct vigil_match_caps cap_changes[VIGIL_MAX_MATCH_CAPS];
	struct vigil_match_arg args[VIGIL_MAX_MATCH_ARGS];
	struct vigil_match_arg return_args[VIGIL_MAX_MATCH_RETURN_ARGS];
	struct vigil_match_binaries binaries;
	struct vigil_action actions[VIGIL_MAX_ACTIONS];
};

enum vigil_guard_op {
	VIGIL_GUARD_NONE = 0,
	VIGIL_GUARD_NONNEG = 1, /* the value is >= 0 (signed): a returned or passed fd, a success */
	VIGIL_GUARD_MASK = 2,   /* value & guard.value is not 0 */
	VIGIL_GUARD_EQUAL = 3,  /* value == guard.value */
	VIGIL_GUARD_TTY_FD = 4, /* the value is an fd of the task naming a tty (a character device of a tty major) */
	VIGIL_GUARD_BIT = 5,    /* value < 64 and bit `value` of guard.value is set: one of a set of states */
	VIGIL_GUARD_SOCK_PROTO = 6, /* the value is an fd of the task naming a socket of protocol guard.value */
	VIGIL_GUARD_SKB_IP = 7,     /* the value is an skb whose packet is of a kind (enum vigil_skb_ip) in guard.value */
};

/* Kinds of packet, as the kernel's output functions divide them: ip_output, ip_mc_output, ip6_output. */
enum vigil_skb_ip {
	VIGIL_SKB_IP4_UNICAST = 1 << 0,
	VIGIL_SKB_IP4_GROUP = 1 << 1, /* to a multicast or broadcast address (a group link-layer address) */
	VIGIL_SKB_IP6 = 1 << 2,
};

/* A condition an event must meet before the hook's selectors are evaluated:
 * what a kernel-function hook served by a syscall or tracepoint adds to it
 * (fd_install: the syscall returned an fd; create_user_ns: CLONE_NEWUSER). */
struct vigil_hook_guard {
	struct vigil_arg_spec arg;
	__u32 op;       /* enum vigil_guard_op */
	__u32 pad;
	__u64 value;
};

/* vigil_hooks[hook id]. No selectors: every call posts. */
struct vigil_hook {
	__u32 policy;       /* index in vigil_policies */
	__u8 kind;          /* enum vigil_hook_kind */
	__u8 flags;         /* enum vigil_hook_flags */
	__u8 nargs;
	__u8 nselectors;
	__u32 serial;       /* differs from that of every hook loaded before at this index */
	struct vigil_arg_spec args[VIGIL_MAX_HOOK_ARGS];
	struct vigil_arg_spec ret;
	struct vigil_hook_guard guard;
	struct vigil_selector selectors[VIGIL_MAX_SELECTORS];
};

/*
 * vigil_attachments[attachment id]: the hooks one attachment of a generic
 * program serves (vigil_sys_enter for openat, vigil_sys_exit for openat,
 * vigil_tracepoint on one tracepoint, vigil_uprobe on one function, ...), evaluated in this
 * order, each as if alone. Hooks whose policy is disabled are skipped; the
 * sensor detaches the program once the list is empty.
 */
struct vigil_attachment {
	__u32 nhooks;
	__u32 hooks[VIGIL_ATTACHMENT_HOOKS]; /* hook ids */
};

/*
 * vigil_syscall_attachments[syscall number]: the attachments of the hooks
 * on that syscall, 1 + their index in vigil_attachments (0: none), for the
 * programs of bpf/hook_syscall.bpf.c that serve it: the raw ones every
 * syscall runs, or those on the syscall's own tracepoints. Each program
 * looks its syscall up here by the number it is given, which costs no
 * helper call (a BPF cookie would).
 */
struct vigil_syscall_attachment {
	__u32 enter;     /* vigil_sys_enter's (raw sys_enter) */
	__u32 exit;      /* vigil_sys_exit's (raw sys_exit), for hooks that decide at exit */
	__u32 own_enter; /* vigil_sys_enter_one's, on syscalls:sys_enter_<name> */
	__u32 own_exit;  /* vigil_sys_exit_one's, on syscalls:sys_exit_<name> */
};

enum vigil_policy_mode {
	VIGIL_MODE_ENFORCE = 1,
	VIGIL_MODE_MONITOR = 2, /* Sigkill/Signal reported with applied = 0, not sent */
};

/* vigil_policies[policy]: the only entry touched to switch mode or enable. */
struct vigil_policy_state {
	__u32 enabled;
	__u32 mode;        /* enum vigil_policy_mode */
	__u32 scoped;      /* 1: only tasks whose cgroup2 id is in vigil_policy_cgroups for this policy */
	__u32 pad;
};

/* Key of vigil_policy_cgroups: a cgroup (v2 id, bpf_get_current_cgroup_id)
 * a scoped policy applies to — the containers of its namespace and selectors,
 * kept current by the sensor as containers come and go. */
struct vigil_scope_key {
	__u32 policy;
	__u32 pad;
	__u64 cgroup_id;
};

/* vigil_policy_stats[policy], per CPU. */
struct vigil_policy_stats {
	__u64 matched;
	__u64 actions_applied;
	__u64 actions_monitored;
	__u64 rate_limited;
};

/* Key of the string tables. vigil_str_equal (HASH, prefixlen 0) holds exact
 * values, NUL-padded; vigil_str_prefix and vigil_str_postfix (LPM_TRIE) hold
 * prefixes and reversed postfixes, prefixlen counting bits from `hook` on
 * (32 + 8 * length, no NUL). The kernel caps an LPM_TRIE key at 260 bytes,
 * so a value holds at most VIGIL_KEY_STRING_MAX bytes: longer policy strings
 * must be refused by the compiler. A subject longer than that is matched by
 * its first (Prefix) or last (Postfix) VIGIL_KEY_STRING_MAX bytes and never
 * equals a value. */
struct vigil_string_key {
	__u32 prefixlen;
	__u16 hook;
	__u8 selector;
	__u8 matcher;   /* VIGIL_MATCHER_* */
	char str[VIGIL_KEY_STRING_MAX];
};

/* vigil_procs[tgid]: what selectors need of a process beyond its task.
 * Written at fork/exec, deleted at exit; seeded by the sensor from /proc.
 * A process forked from one without an entry gets its exe from its task and
 * its current caps and namespaces as the "at exec" ones. */
struct vigil_proc_state {
	__u64 exec_caps[3];  /* effective, permitted, inheritable at exec */
	__u32 exec_ns[10];   /* namespace inodes at exec, vigil_match_ns order */
	__u64 follow;        /* bit i: follow slot i matched by this process or an ancestor */
	__u16 exe_len;       /* bytes of exe, NUL excluded */
	__u16 flags;         /* VIGIL_F_EXE_TRUNCATED: the path is longer than exe (it holds
	                      * the first exe_len bytes; 0 when its start is unknown) */
	__u16 pad[2];
	char exe[VIGIL_STRING_MAX]; /* executable path, forward, NUL-padded */
};

enum vigil_follow_kind {
	VIGIL_FOLLOW_NONE = 0,
	VIGIL_FOLLOW_BINARY = 1, /* set at exec when the new exe matches the selector's binaries */
	VIGIL_FOLLOW_PID = 2,    /* set at fork when the parent's pid is among pids */
};

/* vigil_follow_slots[slot]: what sets a follow bit. */
struct vigil_follow_slot {
	__u8 kind;      /* enum vigil_follow_kind */
	__u8 selector;
	__u16 hook;
	__u8 pid_flags; /* VIGIL_PIDF_NAMESPACE */
	__u8 nvalues;
	__u16 pad;
	__u32 pids[VIGIL_MAX_MATCH_VALUES];
};

/* Key of vigil_inflight: a syscall entered whose hook decides at exit. */
struct vigil_inflight_key {
	__u32 tid;
	__u32 hook;
};

struct vigil_inflight {
	__u64 args[6];
};

/* A selector of a hook, for one process: the key of vigil_ratelimit (last
 * post time) and of vigil_binaries_seen. */
struct vigil_process_selector_key {
	__u32 tgid;
	__u16 hook;
	__u8 selector;
	__u8 pad;
};

/*
 * vigil_binaries_seen: a selector's matchBinaries verdict on a process's
 * executable (follow bits aside), kept so that the process's next calls skip
 * the path lookup. It holds while the process (its leader's start time), its
 * exec (the task's self_exec_id) and the hook (its serial) are the same.
 */
struct vigil_binaries_verdict {
	__u64 start_time;
	__u64 exec_id;
	__u32 serial;
	__u32 match;
};

enum vigil_policy_record_flags {
	VIGIL_POLF_RETURN = 1 << 0,    /* ret is set */
	VIGIL_POLF_TRUNCATED = 1 << 1, /* an argument was cut to fit */
};

enum vigil_arg_value_flags {
	VIGIL_ARGV_TRUNCATED = 1 << 0,
	VIGIL_ARGV_LEAF_FIRST = 1 << 1, /* a resolved path as leaf-first NUL-terminated components */
	VIGIL_ARGV_ERROR = 1 << 2,      /* could not be read; no bytes */
};

/* Before each argument's bytes in vigil_policy_record.data. Integers are
 * 8 bytes little-endian (sign-extended for signed types); strings are raw
 * bytes without NUL; sockaddr is the raw struct (at most 128 bytes). */
struct vigil_arg_value {
	__u8 type;   /* enum vigil_arg_type */
	__u8 flags;  /* enum vigil_arg_value_flags */
	__u16 len;
};

/* A selector matched (and the action was not NoPost). Arguments follow in
 * vigil_hook.args order, then the return value if VIGIL_HOOKF_RETURN
 * (data_len bytes); then kstack_len bytes of kernel addresses and
 * ustack_len bytes of user addresses (u64 each, innermost frame first). */
struct vigil_policy_record {
	struct vigil_record_header hdr;
	__u32 pid;
	__u32 tid;
	__u16 hook;
	__u8 selector;   /* 0 when the hook has no selectors */
	__u8 action;     /* enum vigil_action_kind: the strongest of the selector's actions
	                  * (Post when it has none, or the hook no selectors) */
	__u8 applied;    /* Sigkill/Signal: 1 sent (enforce), 0 reported only (monitor, or the send failed) */
	__u8 signal;
	__u8 nargs;      /* argument values in data, return value included */
	__u8 flags;      /* enum vigil_policy_record_flags */
	__s64 ret;
	__u16 data_len;
	__u16 kstack_len;
	__u16 ustack_len;
	__u16 pad;
	char data[];
};

/* ---- Tables ---- */

/*
 * Maps (names are the ABI; defined once in bpf/maps.bpf.c):
 *   vigil_events        RINGBUF                             records
 *   vigil_lost          PERCPU_ARRAY[1] u64                 records the ring had no room for
 *   vigil_hooks         ARRAY[VIGIL_MAX_HOOKS] vigil_hook
 *   vigil_attachments   ARRAY[VIGIL_MAX_ATTACHMENTS] vigil_attachment   (index: the BPF cookie)
 *   vigil_syscall_attachments ARRAY[VIGIL_MAX_SYSCALL_NR] vigil_syscall_attachment (index: syscall number)
 *   vigil_cookieless_attachments ARRAY[VIGIL_COOKIELESS_PROGRAMS] u32  1 + attachment id (0: none)
 *   vigil_policies      ARRAY[VIGIL_MAX_POLICIES] vigil_policy_state
 *   vigil_policy_stats  PERCPU_ARRAY[VIGIL_MAX_POLICIES] vigil_policy_stats
 *   vigil_str_equal     HASH vigil_string_key -> u8
 *   vigil_str_prefix    LPM_TRIE vigil_string_key -> u8
 *   vigil_str_postfix   LPM_TRIE vigil_string_key (reversed strings) -> u8
 *   vigil_procs         HASH u32 tgid -> vigil_proc_state
 *   vigil_follow_slots  ARRAY[VIGIL_MAX_FOLLOW_SLOTS] vigil_follow_slot
 *   vigil_inflight      LRU_HASH vigil_inflight_key -> vigil_inflight  (LRU: a thread killed in the
 *                       syscall, or one whose tid changed by exec, never reaches sys_exit)
 *   vigil_ratelimit     LRU_HASH vigil_process_selector_key -> u64 last post (boot ns)
 *   vigil_binaries_seen LRU_HASH vigil_process_selector_key -> vigil_binaries_verdict
 *   vigil_policy_cgroups HASH vigil_scope_key -> u8       cgroups of scoped policies
 *   vigil_policy_lost   PERCPU_ARRAY[1] u64                 vigil_procs/vigil_inflight inserts that failed
 *   vigil_addr_lpm      LPM_TRIE vigil_addr_key -> u8       SAddr/DAddr prefixes
 *   vigil_sock_owner    LRU_HASH u64 sock address -> vigil_sock_owner  (TrackSock; LRU: a sock freed
 *                       unseen ages out)
 *   vigil_override      LRU_HASH u32 tid -> u32 errno        an Override decided at a call's entry, for
 *                       the cgroup program of the same call; cleared at its exit
 *   vigil_override_missed PERCPU_ARRAY[1] u64              Overrides no cgroup program took (the call went on)
 */
/* Per-CPU count of records the ring buffer had no room for. */
#define VIGIL_LOST_MAP vigil_lost
/* Ring buffer the sensor reads. */
#define VIGIL_EVENTS_MAP vigil_events

#endif /* VIGIL_H */
