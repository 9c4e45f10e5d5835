// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Process lifecycle: exec, fork (new thread groups only) and exit (whole
 * thread group only), reported as records and kept in vigil_procs for the
 * policy engine: a child starts with its parent's state plus the follow bits
 * of FOLLOW_PID slots naming the parent; an exec records the new exe, caps
 * and namespaces and sets the bits of FOLLOW_BINARY slots the exe matches;
 * exit deletes the entry. The sched_process_* tracepoints run with
 * preemption disabled, so one per-CPU scratch serves all three programs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "vigil.h"
#include "lib/maps.h"
#include "lib/task.h"
#include "lib/path.h"
#include "lib/strmatch.h"

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

struct process_scratch {
	struct vigil_proc_state state; /* the vigil_procs entry being written */
	char tmp[VIGIL_REVERSE_TMP];   /* reversals; and the room vigil_path_forward needs after state.exe */
	struct vigil_subject exe;
	__u16 ends[VIGIL_PATH_DEPTH];  /* of the leaf-first exe */
	union scratch rec;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct process_scratch);
} vigil_process_scratch SEC(".maps");

static __always_inline struct process_scratch *scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&vigil_process_scratch, &zero);
}

static __always_inline void procs_write(__u32 tgid, const struct vigil_proc_state *state)
{
	if (bpf_map_update_elem(&vigil_procs, &tgid, state, BPF_ANY))
		vigil_count_policy_lost();
}

static __always_inline void state_at_exec(struct vigil_proc_state *state, const struct vigil_process *p)
{
	state->exec_caps[0] = p->creds.cap_effective;
	state->exec_caps[1] = p->creds.cap_permitted;
	state->exec_caps[2] = p->creds.cap_inheritable;
	__builtin_memcpy(state->exec_ns, &p->ns, sizeof(state->exec_ns));
}

/* The key is a copy: a loop counter whose address is taken is kept as 4
 * bytes of stack, and the verifier loses its value there. */
static __always_inline const struct vigil_follow_slot *follow_slot(__u32 key)
{
	return bpf_map_lookup_elem(&vigil_follow_slots, &key);
}

/* Whether the exe of the scratch state matches follow slot i's binaries. */
__noinline int vigil_follow_binary(__u32 i)
{
	struct process_scratch *s = scratch_get();
	const struct vigil_follow_slot *slot = bpf_map_lookup_elem(&vigil_follow_slots, &i);
	const struct vigil_selector *x;
	const struct vigil_hook *hook;
	__u32 hook_id, sel;

	if (!s || !slot)
		return 0;
	hook_id = slot->hook;
	sel = slot->selector;
	hook = bpf_map_lookup_elem(&vigil_hooks, &hook_id);
	if (!hook || sel >= VIGIL_MAX_SELECTORS)
		return 0;
	x = &hook->selectors[VIGIL_BOUND(sel, VIGIL_MAX_SELECTORS)];
	return x->has_binaries &&
	       vigil_binaries_match(&s->exe, &s->state, s->tmp, x->binaries.op, hook_id, sel);
}

/* vigil_procs at exec: follow bits kept, the rest anew. */
static __always_inline void procs_exec(struct process_scratch *s, const struct vigil_process *p,
				       const char *exe_lf, const struct vigil_path_info *exe)
{
	struct vigil_proc_state *state = &s->state;
	const struct vigil_proc_state *old = bpf_map_lookup_elem(&vigil_procs, &p->pid);
	const struct vigil_follow_slot *slot;
	__u32 i;

	state->follow = old ? old->follow : 0;
	state_at_exec(state, p);
	vigil_exe_state(state, exe_lf, s->ends, exe);
	vigil_exe_subject(&s->exe, state);
	for (i = 0; i < VIGIL_MAX_FOLLOW_SLOTS; i++) {
		slot = follow_slot(i);
		if (slot && slot->kind == VIGIL_FOLLOW_BINARY && vigil_follow_binary(i))
			state->follow |= 1ULL << i;
	}
	procs_write(p->pid, state);
}

/*
 * vigil_procs at fork: the parent's entry, or without one what the child's
 * task tells (its exe; its present caps and namespaces as those at exec),
 * plus the FOLLOW_PID slots whose pids name the parent.
 */
static __always_inline void procs_fork(struct process_scratch *s, struct task_struct *parent,
				       const struct vigil_process *child, struct task_struct *task)
{
	struct vigil_proc_state *state = &s->state;
	__u32 ptgid = BPF_CORE_READ(parent, tgid), pid, i, j;
	const struct vigil_proc_state *pstate = bpf_map_lookup_elem(&vigil_procs, &ptgid);
	const struct vigil_follow_slot *slot;
	struct upid upid = {};

	if (pstate) {
		__builtin_memcpy(state, pstate, sizeof(*state));
	} else {
		vigil_task_exe(task, s->rec.bytes, s->ends, state);
		state_at_exec(state, child);
		state->follow = 0;
	}
	vigil_read_upid(BPF_CORE_READ(parent, group_leader, thread_pid), &upid);
	for (i = 0; i < VIGIL_MAX_FOLLOW_SLOTS; i++) {
		slot = follow_slot(i);
		if (!slot || slot->kind != VIGIL_FOLLOW_PID)
			continue;
		pid = (slot->pid_flags & VIGIL_PIDF_NAMESPACE) ? upid.nr : ptgid;
		for (j = 0; j < VIGIL_MAX_MATCH_VALUES; j++)
			if (j < slot->nvalues && slot->pids[j] == pid)
				state->follow |= 1ULL << i;
	}
	procs_write(child->pid, state);
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
	struct process_scratch *s = scratch_get();
	struct vigil_path_info exe_info, cwd_info;
	struct vigil_exec_record *rec;
	struct fs_struct *fs;
	struct file *exe;
	struct path root, pwd;
	__u32 args_len, exe_len, cwd_len;
	__u64 size; /* 64-bit so the bound check and the use are the same register */
	char *data;

	if (!s)
		return 0;
	rec = &s->rec.exec;
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
	vigil_path_components(&exe->f_path, &root, data + args_len, VIGIL_PATH_MAX, s->ends,
			      &exe_info);
	exe_len = exe_info.len;
	if (exe_info.truncated)
		rec->proc.flags |= VIGIL_F_EXE_TRUNCATED;
	if (exe_len > VIGIL_PATH_MAX)
		return 0;
	procs_exec(s, &rec->proc, data + args_len, &exe_info);

	/* s->ends is free again: vigil_procs has the exe. */
	vigil_path_components(&pwd, &root, data + args_len + exe_len, VIGIL_PATH_MAX, s->ends,
			      &cwd_info);
	cwd_len = cwd_info.len;
	if (cwd_info.truncated)
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
	struct process_scratch *s;
	struct vigil_fork_record *rec;

	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* a thread, not a process */
	s = scratch_get();
	if (!s)
		return 0;
	rec = &s->rec.fork;
	vigil_fill_process(child, &rec->proc);
	header_init(&rec->hdr, VIGIL_RECORD_FORK, sizeof(*rec));
	vigil_emit(rec, sizeof(*rec));
	procs_fork(s, parent, &rec->proc, child);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vigil_exit, struct task_struct *p, bool group_dead)
{
	struct process_scratch *s;
	struct vigil_exit_record *rec;
	struct signal_struct *signal;
	__u32 tgid;

	if (!group_dead)
		return 0;
	tgid = BPF_CORE_READ(p, tgid);
	bpf_map_delete_elem(&vigil_procs, &tgid);
	s = scratch_get();
	if (!s)
		return 0;
	rec = &s->rec.exit;
	/* What wait(2) reports (wait_task_zombie): the group's code once a group exit began. */
	signal = BPF_CORE_READ(p, signal);
	if (BPF_CORE_READ(signal, flags) & VIGIL_SIGNAL_GROUP_EXIT)
		rec->exit_status = BPF_CORE_READ(signal, group_exit_code);
	else
		rec->exit_status = BPF_CORE_READ(p, exit_code);
	rec->pid = tgid;
	rec->tid = BPF_CORE_READ(p, pid);
	rec->ppid = BPF_CORE_READ(p, real_parent, tgid);
	rec->start_boottime = BPF_CORE_READ(p, group_leader, start_boottime);
	header_init(&rec->hdr, VIGIL_RECORD_EXIT, sizeof(*rec));
	vigil_emit(rec, sizeof(*rec));
	return 0;
}
