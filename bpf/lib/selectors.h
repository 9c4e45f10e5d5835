/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The process conditions of a selector (pids, namespaces, capabilities,
 * their changes since exec, binaries) and numeric argument matching. What
 * they read of the task is loaded once per event into struct vigil_eval;
 * the costlier loads are global functions of policy.bpf.c (verified once),
 * which is why the matchers take the slot of the vigil_eval they are given.
 */
#ifndef VIGIL_SELECTORS_H
#define VIGIL_SELECTORS_H

#include "vigil.h"
#include "lib/maps.h"
#include "lib/task.h"
#include "lib/path.h"
#include "lib/strmatch.h"
#include "lib/binaries.h"

#define VIGIL_NS_COUNT 10 /* struct vigil_namespaces, as __u32[] */

static __always_inline struct task_struct *vigil_current(void)
{
	return bpf_get_current_task_btf();
}

/* The process's pid in its own pid namespace. */
static __always_inline void vigil_load_nspid(struct vigil_eval *s)
{
	struct upid upid = {};

	if (s->loaded & VIGIL_LOADED_PID)
		return;
	vigil_read_upid(BPF_CORE_READ(vigil_current(), group_leader, thread_pid), &upid);
	s->nspid = upid.nr;
	s->loaded |= VIGIL_LOADED_PID;
}

/* The task's namespaces now (the pid one is the namespace it lives in). */
static __always_inline void vigil_read_ns(struct vigil_eval *s)
{
	struct task_struct *task = vigil_current();
	struct upid upid = {};

	vigil_read_upid(BPF_CORE_READ(task, thread_pid), &upid);
	vigil_read_namespaces(task, upid.ns, &s->ns);
}

/* Global functions of policy.bpf.c: vigil_read_ns and vigil_read_proc into
 * the slot's vigil_eval, once per event; vigil_proc_load returns proc_found. */
extern int vigil_ns_load(__u32 slot);
extern int vigil_proc_load(__u32 slot);

static __always_inline void vigil_load_ns(struct vigil_eval *s, __u32 slot)
{
	if (!(s->loaded & VIGIL_LOADED_NS))
		vigil_ns_load(slot);
}

static __always_inline bool vigil_load_proc(struct vigil_eval *s, __u32 slot)
{
	if (s->loaded & VIGIL_LOADED_PROC)
		return s->proc_found;
	return vigil_proc_load(slot);
}

static __always_inline void vigil_load_caps(struct vigil_eval *s)
{
	const struct cred *cred;

	if (s->loaded & VIGIL_LOADED_CAPS)
		return;
	cred = BPF_CORE_READ(vigil_current(), cred);
	s->caps[VIGIL_CAPS_EFFECTIVE] = BPF_CORE_READ(cred, cap_effective.val);
	s->caps[VIGIL_CAPS_PERMITTED] = BPF_CORE_READ(cred, cap_permitted.val);
	s->caps[VIGIL_CAPS_INHERITABLE] = BPF_CORE_READ(cred, cap_inheritable.val);
	s->user_ns_level = BPF_CORE_READ(cred, user_ns, level);
	s->loaded |= VIGIL_LOADED_CAPS;
}

static __always_inline __u32 vigil_ns_inum(const struct vigil_namespaces *ns, __u32 i)
{
	return ((const __u32 *)ns)[i];
}

/*
 * This process's vigil_procs state into s->proc; false without an entry.
 * On sched_process_exec (VIGIL_HOOKF_EXEC_EVENT) the lifecycle program may
 * not have run yet: the exe comes from the task, and the state at exec is
 * the present one (so no change matcher sees a change); follow bits, which
 * exec keeps, still come from the entry.
 */
static __always_inline bool vigil_read_proc(struct vigil_eval *s, const struct vigil_hook *hook)
{
	const struct vigil_proc_state *p = bpf_map_lookup_elem(&vigil_procs, &s->tgid);
	__u32 i;

	if (hook->flags & VIGIL_HOOKF_EXEC_EVENT) {
		vigil_task_exe(vigil_current(), s->walk, s->walk_ends, &s->proc);
		vigil_load_caps(s);
		if (!(s->loaded & VIGIL_LOADED_NS)) {
			vigil_read_ns(s);
			s->loaded |= VIGIL_LOADED_NS;
		}
		for (i = 0; i < 3; i++)
			s->proc.exec_caps[i] = s->caps[i];
		for (i = 0; i < VIGIL_NS_COUNT; i++)
			s->proc.exec_ns[i] = vigil_ns_inum(&s->ns, i);
		s->proc.follow = p ? p->follow : 0;
		return true;
	}
	if (!p)
		return false;
	__builtin_memcpy(&s->proc, p, sizeof(s->proc));
	return true;
}

static __always_inline bool vigil_follows(const struct vigil_eval *s, __u8 slot)
{
	return slot < VIGIL_MAX_FOLLOW_SLOTS && ((s->proc.follow >> slot) & 1);
}

static __always_inline bool vigil_match_pids(struct vigil_eval *s, __u32 slot,
					     const struct vigil_match_pids *m)
{
	__u32 pid = s->tgid;
	bool in;

	if (m->flags & VIGIL_PIDF_NAMESPACE) {
		vigil_load_nspid(s);
		pid = s->nspid;
	}
	in = vigil_u32_in(pid, m->values, m->nvalues);
	if (m->op == VIGIL_OP_NOT_EQUAL)
		return !in;
	if (!in && (m->flags & VIGIL_PIDF_FOLLOW_FORKS) && vigil_load_proc(s, slot))
		in = vigil_follows(s, m->follow_slot);
	return in;
}

static __always_inline bool vigil_match_ns(struct vigil_eval *s, __u32 slot,
					   const struct vigil_match_ns *m)
{
	__u32 i = m->ns;
	bool in;

	if (i >= VIGIL_NS_COUNT)
		return false;
	vigil_load_ns(s, slot);
	in = vigil_u32_in(vigil_ns_inum(&s->ns, i), m->values, m->nvalues);
	return m->op == VIGIL_OP_NOT_EQUAL ? !in : in;
}

/* matchCapabilities, or with `change` matchCapabilityChanges: the caps
 * compared are those that differ from the caps at exec. */
static __always_inline bool vigil_match_caps(struct vigil_eval *s, __u32 slot,
					     const struct vigil_match_caps *m, bool change)
{
	__u32 set = m->set;
	__u64 caps;

	if (set >= 3)
		return false;
	if (change && !vigil_load_proc(s, slot))
		return false;
	vigil_load_caps(s);
	caps = s->caps[set];
	if (change)
		caps ^= s->proc.exec_caps[set];
	if (m->is_ns_cap && !s->user_ns_level)
		caps = 0;
	return m->op == VIGIL_OP_NOT_EQUAL ? !(caps & m->mask) : (caps & m->mask) != 0;
}

static __always_inline bool vigil_match_ns_changes(struct vigil_eval *s, __u32 slot,
						   const struct vigil_selector *x)
{
	bool changed = false;
	__u32 i;

	if (!vigil_load_proc(s, slot))
		return false;
	vigil_load_ns(s, slot);
	for (i = 0; i < VIGIL_NS_COUNT; i++)
		if (((x->ns_changes_mask >> i) & 1) && vigil_ns_inum(&s->ns, i) != s->proc.exec_ns[i])
			changed = true;
	return x->ns_changes_op == VIGIL_OP_NOT_EQUAL ? !changed : changed;
}

/*
 * matchBinaries of selector `sel` of the hook whose serial is `serial`: the
 * verdict kept (lib/binaries.h), else the path looked up and the verdict
 * kept. Follow bits are read each time (an ancestor's
 * exec may set them).
 */
static __always_inline bool vigil_match_binaries(struct vigil_eval *s, __u32 slot, __u32 sel, __u32 serial,
						 const struct vigil_match_binaries *m)
{
	struct vigil_subject *subj = &s->subjects[VIGIL_EXE_SUBJECT];
	__u8 op = m->op;
	bool match;
	int kept;

	/* followChildren: descendants of a matching exec match In, Prefix and Postfix. */
	if (m->follow_slot != VIGIL_NO_SLOT && (op == VIGIL_OP_EQUAL || op == VIGIL_OP_PREFIX || op == VIGIL_OP_POSTFIX)) {
		if (!vigil_load_proc(s, slot))
			return false;
		if (vigil_follows(s, m->follow_slot))
			return true;
	}
	kept = vigil_binaries_kept(s, serial, sel);
	if (kept >= 0)
		return kept;
	if (!vigil_load_proc(s, slot))
		return false;
	if (!(s->subjects_ready & (1 << VIGIL_EXE_SUBJECT))) {
		vigil_exe_subject(subj, &s->proc);
		s->subjects_ready |= 1 << VIGIL_EXE_SUBJECT;
	}
	match = vigil_binaries_match(subj, &s->proc, s->tmp, op, s->hook_id, sel);
	vigil_binaries_keep(s, sel, match);
	return match;
}

/* The process conditions of a selector, cheapest first. */
static __always_inline bool vigil_selector_process_match(struct vigil_eval *s, __u32 slot,
							 const struct vigil_hook *hook,
							 __u32 sel)
{
	const struct vigil_selector *x = &hook->selectors[VIGIL_BOUND(sel, VIGIL_MAX_SELECTORS)];
	__u32 i;

	if (x->n_pids && !vigil_match_pids(s, slot, &x->pids))
		return false;
	for (i = 0; i < VIGIL_MAX_MATCH_NS; i++) {
		if (i >= x->n_ns)
			break;
		if (!vigil_match_ns(s, slot, &x->ns[i]))
			return false;
	}
	for (i = 0; i < VIGIL_MAX_MATCH_CAPS; i++) {
		if (i >= x->n_caps)
			break;
		if (!vigil_match_caps(s, slot, &x->caps[i], false))
			return false;
	}
	for (i = 0; i < VIGIL_MAX_MATCH_CAPS; i++) {
		if (i >= x->n_cap_changes)
			break;
		if (!vigil_match_caps(s, slot, &x->cap_changes[i], true))
			return false;
	}
	if (x->has_ns_changes && !vigil_match_ns_changes(s, slot, x))
		return false;
	if (x->has_binaries && !vigil_match_binaries(s, slot, sel, hook->serial, &x->binaries))
		return false;
	return true;
}

/* A numeric matchArgs / matchReturnArgs entry. */
static __always_inline bool vigil_number_match(__u64 v, bool is_signed,
					       const struct vigil_match_arg *m)
{
	__u32 n = m->nvalues, i;

	switch (m->op) {
	case VIGIL_OP_EQUAL:
	case VIGIL_OP_NOT_EQUAL:
		for (i = 0; i < VIGIL_MAX_MATCH_VALUES; i++)
			if (i < n && m->values[i] == v)
				return m->op == VIGIL_OP_EQUAL;
		return m->op == VIGIL_OP_NOT_EQUAL;
	case VIGIL_OP_GREATER:
		if (!n)
			return false;
		return is_signed ? (__s64)v > (__s64)m->values[0] : v > m->values[0];
	case VIGIL_OP_LESS:
		if (!n)
			return false;
		return is_signed ? (__s64)v < (__s64)m->values[0] : v < m->values[0];
	case VIGIL_OP_MASK:
		for (i = 0; i < VIGIL_MAX_MATCH_VALUES; i++)
			if (i < n && (v & m->values[i]))
				return true;
		return false;
	default:
		return false;
	}
}

#endif /* VIGIL_SELECTORS_H */
