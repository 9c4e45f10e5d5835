// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Process lifecycle: exec, fork (new thread groups only) and exit (whole
 * thread group only). The sched_process_* tracepoints run with preemption
 * disabled, so one per-CPU scratch record serves all three programs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "vigil.h"
#include "lib/ring.h"
#include "lib/task.h"
#include "lib/path.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EXEC_DATA_OFF __builtin_offsetof(struct vigil_exec_record, data)
/* exe and cwd start anywhere up to ARGS_MAX + PATH_MAX; a component may overshoot by NAME_MAX. */
#define EXEC_DATA_CAP (VIGIL_ARGS_MAX + 2 * VIGIL_PATH_MAX + VIGIL_NAME_MAX)
#define EXEC_RECORD_MAX (EXEC_DATA_OFF + VIGIL_ARGS_MAX + 2 * VIGIL_PATH_MAX)

/*
 * One record being built, in any of its shapes. Being the map's value type,
 * it also puts every record type of vigil.h into this object's BTF, where
 * the sensor reads their layouts.
 */
union scratch {
	enum vigil_record_kind kind;
	struct vigil_exec_record exec;
	struct vigil_fork_record fork;
	struct vigil_exit_record exit;
	char bytes[EXEC_DATA_OFF + EXEC_DATA_CAP];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union scratch);
} vigil_process_scratch SEC(".maps");

static __always_inline union scratch *scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&vigil_process_scratch, &zero);
}

static __always_inline void header_init(struct vigil_record_header *hdr, __u32 kind, __u32 size)
{
	hdr->kind = kind;
	hdr->size = size;
	hdr->ktime = bpf_ktime_get_boot_ns();
}

/* argv as the kernel just laid it out on the new stack; returns its length. */
static __always_inline __u32 read_args(struct task_struct *task, char *buf, __u32 *flags)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long len = BPF_CORE_READ(mm, arg_end) - start;

	if (len > VIGIL_ARGS_MAX) {
		len = VIGIL_ARGS_MAX;
		*flags |= VIGIL_F_ARGS_TRUNCATED;
	}
	if (!len)
		return 0;
	if (bpf_probe_read_user(buf, len, (void *)start)) {
		*flags |= VIGIL_F_ARGS_UNREADABLE;
		return 0;
	}
	buf[(len - 1) & (VIGIL_ARGS_MAX - 1)] = 0; /* a cut argument still ends in NUL */
	return len;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	union scratch *s = scratch_get();
	struct vigil_exec_record *rec;
	struct fs_struct *fs;
	struct file *exe;
	struct path root, pwd;
	__u32 args_len, exe_len, cwd_len;
	__u64 size; /* 64-bit so the bound check and the use are the same register */
	bool truncated;
	char *data;

	if (!s)
		return 0;
	rec = &s->exec;
	data = rec->data;
	vigil_fill_process(p, &rec->proc);
	rec->old_pid = old_pid;
	rec->pad = 0;

	/* The length checks below never fail: they give the verifier its bounds. */
	args_len = read_args(p, data, &rec->proc.flags);
	if (args_len > VIGIL_ARGS_MAX)
		return 0;

	fs = BPF_CORE_READ(p, fs);
	BPF_CORE_READ_INTO(&root, fs, root);
	BPF_CORE_READ_INTO(&pwd, fs, pwd);

	exe = BPF_CORE_READ(p, mm, exe_file);
	exe_len = vigil_path_components(&exe->f_path, &root, data + args_len, &truncated);
	if (truncated)
		rec->proc.flags |= VIGIL_F_EXE_TRUNCATED;
	if (exe_len > VIGIL_PATH_MAX)
		return 0;

	cwd_len = vigil_path_components(&pwd, &root, data + args_len + exe_len, &truncated);
	if (truncated)
		rec->proc.flags |= VIGIL_F_CWD_TRUNCATED;
	else if (!cwd_len)
		rec->proc.flags |= VIGIL_F_ROOT_CWD;
	if (cwd_len > VIGIL_PATH_MAX)
		return 0;

	rec->args_len = args_len;
	rec->exe_len = exe_len;
	rec->cwd_len = cwd_len;
	size = EXEC_DATA_OFF + args_len + exe_len + cwd_len;
	if (size > EXEC_RECORD_MAX)
		return 0;
	header_init(&rec->hdr, VIGIL_RECORD_EXEC, size);
	vigil_emit(rec, size);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(vigil_fork, struct task_struct *parent, struct task_struct *child)
{
	union scratch *s;
	struct vigil_fork_record *rec;

	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* a thread, not a process */
	s = scratch_get();
	if (!s)
		return 0;
	rec = &s->fork;
	vigil_fill_process(child, &rec->proc);
	header_init(&rec->hdr, VIGIL_RECORD_FORK, sizeof(*rec));
	vigil_emit(rec, sizeof(*rec));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vigil_exit, struct task_struct *p, bool group_dead)
{
	union scratch *s;
	struct vigil_exit_record *rec;
	struct signal_struct *signal;

	if (!group_dead)
		return 0;
	s = scratch_get();
	if (!s)
		return 0;
	rec = &s->exit;
	/* What wait(2) reports (wait_task_zombie): the group's code once a group exit began. */
	signal = BPF_CORE_READ(p, signal);
	if (BPF_CORE_READ(signal, flags) & VIGIL_SIGNAL_GROUP_EXIT)
		rec->exit_status = BPF_CORE_READ(signal, group_exit_code);
	else
		rec->exit_status = BPF_CORE_READ(p, exit_code);
	rec->pid = BPF_CORE_READ(p, tgid);
	rec->tid = BPF_CORE_READ(p, pid);
	rec->ppid = BPF_CORE_READ(p, real_parent, tgid);
	rec->start_boottime = BPF_CORE_READ(p, group_leader, start_boottime);
	header_init(&rec->hdr, VIGIL_RECORD_EXIT, sizeof(*rec));
	vigil_emit(rec, sizeof(*rec));
	return 0;
}
