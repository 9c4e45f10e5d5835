/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kept matchBinaries verdicts: a selector's verdict on a process's
 * executable is looked up once per process, exec and hook, then kept in
 * vigil_binaries_seen, and the last one used on this CPU in the slot's
 * vigil_eval too (a process's calls come in runs, and that copy costs no
 * hashing). The path lookup costs more than the call it judges, and the
 * processes a hook sees are few.
 */
#ifndef VIGIL_BINARIES_H
#define VIGIL_BINARIES_H

#include <bpf/bpf_core_read.h>
#include "vigil.h"
#include "lib/eval.h"
#include "lib/maps.h"

/* Key and verdict in one word, so that the per-CPU copy reads them together. */
static __always_inline __u64 vigil_binaries_tag(__u32 tgid, __u32 hook, __u32 sel, __u32 match)
{
	return (__u64)tgid << 32 | (hook & 0xffff) << 16 | (sel & 0xff) << 8 | (match & 1);
}

/* s->binaries_now (its match set) as the last verdict used on this CPU. */
static __always_inline void vigil_binaries_remember(struct vigil_eval *s, __u32 sel)
{
	s->binaries_last = s->binaries_now;
	s->binaries_last_tag = vigil_binaries_tag(s->tgid, s->hook_id, sel, s->binaries_now.match);
}

/*
 * The verdict of matchBinaries selector `sel` of the hook being evaluated
 * (its serial) on the current process, if one is kept: 1 or 0, else -1. Sets
 * what vigil_binaries_keep needs: s->binaries_key and s->binaries_now.
 */
static __always_inline int vigil_binaries_kept(struct vigil_eval *s, __u32 serial, __u32 sel)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vigil_binaries_verdict *now = &s->binaries_now;
	const struct vigil_binaries_verdict *seen;
	__u64 tag;

	now->start_time = task->group_leader->start_time;
	now->exec_id = task->self_exec_id;
	now->serial = serial;
	tag = s->binaries_last_tag;
	if ((tag & ~1ULL) == vigil_binaries_tag(s->tgid, s->hook_id, sel, 0) &&
	    s->binaries_last.start_time == now->start_time && s->binaries_last.exec_id == now->exec_id &&
	    s->binaries_last.serial == serial)
		return tag & 1;
	s->binaries_key.tgid = s->tgid;
	s->binaries_key.hook = s->hook_id;
	s->binaries_key.selector = sel;
	s->binaries_key.pad = 0;
	seen = bpf_map_lookup_elem(&vigil_binaries_seen, &s->binaries_key);
	if (!seen || seen->start_time != now->start_time || seen->exec_id != now->exec_id || seen->serial != serial)
		return -1;
	now->match = seen->match;
	vigil_binaries_remember(s, sel);
	return now->match;
}

/*
 * Keeps the verdict `match` that vigil_binaries_kept found none for, unless
 * the task is in the middle of an exec: from its new exec_id to
 * sched_process_exec, vigil_procs still has the old executable, and a verdict
 * on that must not be kept for the new one. A kernel without in_execve cannot
 * say: nothing is kept there. (Read here, not on the path of a kept verdict.)
 */
static __always_inline void vigil_binaries_keep(struct vigil_eval *s, __u32 sel, bool match)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!bpf_core_field_exists(task->in_execve) || BPF_CORE_READ_BITFIELD(task, in_execve))
		return;
	s->binaries_now.match = match;
	bpf_map_update_elem(&vigil_binaries_seen, &s->binaries_key, &s->binaries_now, BPF_ANY);
	vigil_binaries_remember(s, sel);
}

#endif /* VIGIL_BINARIES_H */
