/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every policy hook program does: find its attachment (the BPF cookie
 * indexes vigil_attachments) and, for each hook listed there that is active
 * and whose policy is enabled, run the selectors (vigil_policy_run), or, at
 * the entry of a call whose hook decides at exit, the process conditions
 * only (vigil_policy_prefilter), carrying the arguments to the exit in
 * vigil_inflight. The selector loop is inlined here, so that a call the
 * pids of a selector reject costs no call beyond the cookie and the tgid.
 */
#ifndef VIGIL_HOOK_H
#define VIGIL_HOOK_H

#include "vigil.h"
#include "lib/maps.h"
#include "lib/binaries.h"

static __always_inline const struct vigil_attachment *vigil_attachment(void *ctx)
{
	__u32 id = bpf_get_attach_cookie(ctx);

	return bpf_map_lookup_elem(&vigil_attachments, &id);
}

/* The attachment of a program that has no BPF cookie (enum vigil_cookieless_program). */
static __always_inline const struct vigil_attachment *vigil_cookieless_attachment(__u32 program)
{
	const __u32 *at = bpf_map_lookup_elem(&vigil_cookieless_attachments, &program);
	__u32 id;

	if (!at || !*at)
		return NULL;
	id = *at - 1;
	return bpf_map_lookup_elem(&vigil_attachments, &id);
}

/* Whether a scoped policy applies to the current task: its cgroup is in the policy's set. */
static __always_inline bool vigil_in_scope(const struct vigil_policy_state *pol, __u32 policy)
{
	struct vigil_scope_key key = { .policy = policy };

	if (!pol->scoped)
		return true;
	key.cgroup_id = bpf_get_current_cgroup_id();
	return bpf_map_lookup_elem(&vigil_policy_cgroups, &key) != NULL;
}

/* Hook i of an attachment (its id in *id), when it is active, its policy enabled and in scope. */
static __always_inline const struct vigil_hook *vigil_active_hook(const struct vigil_attachment *att,
								   __u32 i, __u32 *id)
{
	const struct vigil_policy_state *pol;
	const struct vigil_hook *hook;

	if (i >= att->nhooks || i >= VIGIL_ATTACHMENT_HOOKS)
		return NULL;
	*id = att->hooks[VIGIL_BOUND(i, VIGIL_ATTACHMENT_HOOKS)];
	hook = bpf_map_lookup_elem(&vigil_hooks, id);
	if (!hook || !(hook->flags & VIGIL_HOOKF_ACTIVE))
		return NULL;
	pol = bpf_map_lookup_elem(&vigil_policies, &hook->policy);
	if (!pol || !pol->enabled || !vigil_in_scope(pol, hook->policy))
		return NULL;
	return hook;
}

static __always_inline struct vigil_eval *vigil_eval_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&vigil_eval_scratch, &slot);
}

/* One run of a hook program: its attachment, and what its hooks share. */
struct vigil_run {
	void *ctx;
	const struct vigil_attachment *att;
	struct vigil_eval *s;
	__u64 pid_tgid; /* 0 until a hook needs it */
};

static __always_inline bool vigil_run_init(struct vigil_run *r, void *ctx,
					   const struct vigil_attachment *att, __u32 slot)
{
	r->ctx = ctx;
	r->att = att;
	r->pid_tgid = 0;
	return att && (r->s = vigil_eval_slot(slot));
}

/* bpf_get_current_pid_tgid()'s value, read from the task: this kernel inlines
 * bpf_get_current_task_btf() and not that helper, and a hook's path is short. */
static __always_inline __u64 vigil_run_pid_tgid(struct vigil_run *r)
{
	struct task_struct *task;

	if (!r->pid_tgid) {
		task = bpf_get_current_task_btf();
		r->pid_tgid = (__u64)task->tgid << 32 | (__u32)task->pid;
	}
	return r->pid_tgid;
}

/* Hook i of the run when it is active, its event's inputs set but the
 * arguments and the return value (0): `ctx` is what tracepoint fields are read from. */
static __always_inline const struct vigil_hook *vigil_hook_begin(struct vigil_run *r, __u32 i, __u64 ctx)
{
	const struct vigil_hook *hook;
	__u32 id;

	if (!(hook = vigil_active_hook(r->att, i, &id)))
		return NULL;
	r->s->hook_id = id;
	r->s->ctx = ctx;
	r->s->regs_at = 0;
	r->s->ret = 0;
	return hook;
}

/*
 * Hooks 1.. of the attachment, through bpf_loop: `next(i)` handles hook
 * i + 1. A program handles hook 0 itself, inline, so that a lone hook costs
 * no call, and the verifier checks the hook body twice, not once per hook.
 */
static __always_inline void vigil_run_rest(struct vigil_run *r, long (*next)(__u32, void *))
{
	__u32 n = r->att->nhooks;

	if (n > VIGIL_ATTACHMENT_HOOKS)
		n = VIGIL_ATTACHMENT_HOOKS;
	if (n > 1)
		bpf_loop(n - 1, next, r, 0);
}

/* At entry: the arguments of a call whose hook decides at exit. */
static __always_inline void vigil_inflight_save(__u32 id, __u32 tid, const __u64 *regs)
{
	struct vigil_inflight_key key = { .tid = tid, .hook = id };

	if (bpf_map_update_elem(&vigil_inflight, &key, regs, BPF_ANY))
		vigil_count_policy_lost();
}

/* At exit: takes them back into regs (even if the policy was disabled
 * meanwhile, so that none lingers); false when there were none. */
static __always_inline bool vigil_inflight_take(__u32 id, __u32 tid, __u64 *regs)
{
	struct vigil_inflight_key key = { .tid = tid, .hook = id };
	struct vigil_inflight *saved = bpf_map_lookup_elem(&vigil_inflight, &key);

	if (!saved)
		return false;
	__builtin_memcpy(regs, saved->args, sizeof(saved->args));
	bpf_map_delete_elem(&vigil_inflight, &key);
	return true;
}

/* Clears what the engine loads per event. */
static __always_inline void vigil_eval_reset(struct vigil_eval *s, __u32 tgid)
{
	s->loaded = 0;
	s->subjects_ready = 0;
	s->nread = 0;
	s->data_len = 0;
	s->proc_found = 0;
	s->tgid = tgid;
	s->out.rec.nargs = 0;
	s->out.rec.flags = 0;
}

/* A selector whose plain pids (no namespace pid, no follow) reject this
 * process: the cheap first condition, decided here without calling the engine. */
static __always_inline bool vigil_pids_reject(const struct vigil_selector *x, __u32 tgid)
{
	const struct vigil_match_pids *m = &x->pids;
	bool in;

	if (!x->n_pids || (m->flags & (VIGIL_PIDF_NAMESPACE | VIGIL_PIDF_FOLLOW_FORKS)))
		return false;
	in = vigil_u32_in(tgid, m->values, m->nvalues);
	return m->op == VIGIL_OP_NOT_EQUAL ? in : !in;
}

/* Whether a kept verdict says selector `sel`'s matchBinaries rejects. A call
 * of its own: its stack is not added to that of the engine's calls. */
static __noinline bool vigil_binaries_rejected(struct vigil_eval *s, const struct vigil_hook *hook, __u32 sel)
{
	return vigil_binaries_kept(s, hook->serial, sel) == 0;
}

/* A selector whose process conditions reject this process before the
 * engine evaluates it: its plain pids, or a kept matchBinaries verdict that
 * no follow bit can overrule. */
static __always_inline bool vigil_rejects_early(struct vigil_eval *s, const struct vigil_hook *hook, __u32 i)
{
	const struct vigil_selector *x = &hook->selectors[VIGIL_BOUND(i, VIGIL_MAX_SELECTORS)];

	if (vigil_pids_reject(x, s->tgid))
		return true;
	return x->has_binaries && x->binaries.follow_slot == VIGIL_NO_SLOT && vigil_binaries_rejected(s, hook, i);
}

/* Whether every selector of the hook rejects early (false for a hook without selectors). */
static __always_inline bool vigil_all_reject_early(struct vigil_eval *s, const struct vigil_hook *hook)
{
	__u32 i, n = hook->nselectors;

	for (i = 0; i < VIGIL_MAX_SELECTORS; i++) {
		if (i >= n)
			break;
		if (!vigil_rejects_early(s, hook, i))
			return false;
	}
	return n > 0;
}

/* The stacks of the task the hook runs in, for a selector that asks for them (taken at a match only). */
static __always_inline void vigil_take_stacks(void *ctx, struct vigil_eval *s)
{
	s->kstack_len = bpf_get_stack(ctx, s->kstack, sizeof(s->kstack), 0);
	s->ustack_len = bpf_get_stack(ctx, s->ustack, sizeof(s->ustack), BPF_F_USER_STACK);
}

/*
 * Evaluates the hook's selectors for the event in `slot` (its inputs set)
 * and acts on the first that matches (no selectors: always). `ctx`: the
 * program's, for the stack traces a selector may ask for.
 */
static __always_inline void vigil_policy_run(void *ctx, __u32 slot, struct vigil_eval *s,
					     const struct vigil_hook *hook, __u32 tgid)
{
	__u32 i, n = hook->nselectors;

	vigil_eval_reset(s, tgid);
	if (hook->guard.op != VIGIL_GUARD_NONE && !vigil_hook_guard(slot))
		return;
	if (!n) {
		vigil_policy_act(slot, 0, 0);
		return;
	}
	for (i = 0; i < VIGIL_MAX_SELECTORS; i++) {
		if (i >= n)
			break;
		if (vigil_rejects_early(s, hook, i))
			continue;
		if (vigil_selector_process(slot, i) && vigil_selector_args(slot, i)) {
			if (slot != VIGIL_SLOT_SKB && (hook->flags & VIGIL_HOOKF_STACKS))
				vigil_take_stacks(ctx, s);
			vigil_policy_act(slot, i, 1);
			return;
		}
	}
}

/* At the entry of a call whose hook decides at exit: whether some selector
 * passes its process conditions (or there are none), i.e. could still match. */
static __always_inline bool vigil_policy_prefilter(__u32 slot, struct vigil_eval *s,
						   const struct vigil_hook *hook, __u32 tgid)
{
	__u32 i, n = hook->nselectors;

	vigil_eval_reset(s, tgid);
	if (!n)
		return true;
	for (i = 0; i < VIGIL_MAX_SELECTORS; i++) {
		if (i >= n)
			break;
		if (!vigil_rejects_early(s, hook, i) && vigil_selector_process(slot, i))
			return true;
	}
	return false;
}

/*
 * A hook at the entry of a call: decide now, or, when the hook decides at
 * exit, keep the arguments in vigil_inflight if some selector could still
 * match. `syscall_regs`: the registers of a syscall to copy them from first
 * (NULL when s->regs has them).
 */
static __always_inline void vigil_hook_enter(void *ctx, __u32 slot, struct vigil_eval *s, const struct vigil_hook *hook,
					     __u32 id, __u64 pid_tgid, const struct pt_regs *syscall_regs)
{
	if (!(hook->flags & VIGIL_HOOKF_AT_EXIT)) {
		vigil_policy_run(ctx, slot, s, hook, pid_tgid >> 32);
		return;
	}
	if (!vigil_policy_prefilter(slot, s, hook, pid_tgid >> 32))
		return;
	if (syscall_regs)
		vigil_syscall_args(s->regs, syscall_regs);
	vigil_inflight_save(id, (__u32)pid_tgid, s->regs);
}

/*
 * Defines the program `name` (section `sec`, context `ctx_type`): it runs
 * `each(run, i)` for the first hook of the attachment `find(ctx)` gives
 * inline and for the others through bpf_loop, which keeps every program's
 * verification small, and returns `verdict` (what a cgroup program lets pass).
 */
#define VIGIL_HOOK_PROGRAM_RETURNING(sec, name, ctx_type, slot, each, find, verdict) \
	static long name##_next(__u32 i, void *r)		\
	{							\
		each(r, i + 1);					\
		return 0;					\
	}							\
	SEC(sec)						\
	int name(ctx_type *ctx)					\
	{							\
		struct vigil_run r;				\
								\
		if (!vigil_run_init(&r, ctx, find(ctx), slot))	\
			return verdict;				\
		each(&r, 0);					\
		vigil_run_rest(&r, name##_next);		\
		return verdict;					\
	}

#define VIGIL_HOOK_PROGRAM_FOR(sec, name, ctx_type, slot, each, find) \
	VIGIL_HOOK_PROGRAM_RETURNING(sec, name, ctx_type, slot, each, find, 0)

/* A program whose BPF cookie names its attachment. */
#define VIGIL_HOOK_PROGRAM(sec, name, ctx_type, slot, each) \
	VIGIL_HOOK_PROGRAM_FOR(sec, name, ctx_type, slot, each, vigil_attachment)

#endif /* VIGIL_HOOK_H */
