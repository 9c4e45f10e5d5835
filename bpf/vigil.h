/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The Vigil kernel ABI: every record the kernel emits and every table the
 * kernel reads is declared here, once. BPF programs and the C reference
 * consumer include this file; TypeScript derives field offsets from the BTF
 * of the compiled objects (services/sensor/kernel/layout.ts), never by hand.
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

/* ---- Tables ---- */

/* Per-CPU count of records the ring buffer had no room for. */
#define VIGIL_LOST_MAP vigil_lost
/* Ring buffer the sensor reads. */
#define VIGIL_EVENTS_MAP vigil_events

#endif /* VIGIL_H */
