// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The policy engine: evaluates a hook's selectors from the tables of vigil.h
 * for one event and acts on the first that matches. The hook programs
 * (hook_*.bpf.c) fill a vigil_eval slot and run the selector loop of
 * lib/hook.h, which calls the global functions here.
 *
 * Selectors are ORed, the first match wins; a selector's conditions are
 * ANDed, cheapest first: process conditions (lib/selectors.h), then args,
 * then return args. Arguments are read into the record lazily, in record
 * order, only as far as a string matcher or the record needs them.
 *
 * Limitations: a uprobe program may be preempted, and another uprobe event
 * on the same CPU then reuses VIGIL_SLOT_UPROBE, which can mix the two
 * records; string matching sees at most VIGIL_KEY_STRING_MAX bytes of either
 * end of a string (vigil.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "vigil.h"
#include "lib/maps.h"
#include "lib/args.h"
#include "lib/selectors.h"

#define VIGIL_SIGKILL 9
#define VIGIL_NSEC_PER_MSEC 1000000ULL

static __always_inline struct vigil_eval *eval_get(__u32 slot)
{
	return bpf_map_lookup_elem(&vigil_eval_scratch, &slot);
}

static __always_inline const struct vigil_hook *hook_get(const struct vigil_eval *s)
{
	return bpf_map_lookup_elem(&vigil_hooks, &s->hook_id);
}

/* The syscall arguments, when the program left them to be read on first use. */
static __always_inline void load_regs(struct vigil_eval *s)
{
	if (s->loaded & VIGIL_LOADED_REGS)
		return;
	if (s->regs_at)
		vigil_syscall_args(s->regs, (const struct pt_regs *)s->regs_at);
	s->loaded |= VIGIL_LOADED_REGS;
}

/* Position of args[k] in the record: the hook's args, then the return value. */
static __always_inline __u32 record_pos(const struct vigil_hook *hook, __u32 k)
{
	return k == VIGIL_RET_SLOT ? hook->nargs : k;
}

/* Reads the next argument, in record order, into the record data.
 * Returns 0 once every argument has been read. */
__noinline int vigil_read_next_arg(__u32 slot)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_arg_spec *spec;
	const struct vigil_hook *hook;
	struct vigil_arg_state *a;
	__u32 off, room, len, k;
	__u8 flags = 0;
	char *data;

	if (!s || !(hook = hook_get(s)))
		return 0;
	k = s->nread;
	if (k > hook->nargs ||
	    (k == hook->nargs && (!(hook->flags & VIGIL_HOOKF_RETURN) || !s->has_ret)))
		return 0;
	if (k == hook->nargs)
		k = VIGIL_RET_SLOT;
	if (!(spec = vigil_arg_spec(hook, k)))
		return 0;
	s->nread++;
	a = &s->args[VIGIL_BOUND(k, VIGIL_ARG_SLOTS)];
	a->head.type = spec->type;
	a->head.len = 0;
	off = s->data_len;
	if (off + sizeof(a->head) > VIGIL_POLICY_DATA_MAX) {
		a->head.flags = VIGIL_ARGV_ERROR | VIGIL_ARGV_TRUNCATED;
		s->out.rec.flags |= VIGIL_POLF_TRUNCATED;
		return 1;
	}
	room = VIGIL_POLICY_DATA_MAX - sizeof(a->head) - off;
	if (room > VIGIL_ARG_BYTES_MAX)
		room = VIGIL_ARG_BYTES_MAX;
	data = s->out.rec.data + off;
	len = vigil_arg_bytes(s, hook, spec, a, data + sizeof(a->head), room, &flags);
	if (len > room) /* never: the bound the verifier needs for data_len */
		return 1;
	a->head.flags = flags;
	a->head.len = len;
	a->off = off + sizeof(a->head);
	__builtin_memcpy(data, &a->head, sizeof(a->head));
	s->data_len = off + sizeof(a->head) + len;
	s->out.rec.nargs++;
	if (flags & VIGIL_ARGV_TRUNCATED)
		s->out.rec.flags |= VIGIL_POLF_TRUNCATED;
	return 1;
}

/* Reads the record's arguments up to position `pos` (inclusive; VIGIL_ARG_SLOTS: all). */
static __always_inline void read_args_to(__u32 slot, struct vigil_eval *s, __u32 pos)
{
	__u32 i;

	for (i = 0; i < VIGIL_ARG_SLOTS; i++) {
		if (s->nread > pos || !vigil_read_next_arg(slot))
			break;
	}
}

/* subjects[k] from args[k]'s bytes in the record. */
static __always_inline void subject_from_arg(struct vigil_subject *subj,
					     const struct vigil_arg_state *a, const char *bytes)
{
	__builtin_memset(subj->fwd.str, 0, sizeof(subj->fwd.str));
	subj->len = a->head.len;
	subj->rev_ready = 0;
	if (!(a->head.flags & VIGIL_ARGV_LEAF_FIRST)) {
		subj->head_ok = 1;
		subj->tail_ok = !(a->head.flags & VIGIL_ARGV_TRUNCATED);
		bpf_probe_read_kernel(subj->fwd.str, vigil_key_bytes(subj->len), bytes);
		return;
	}
	/* A path: the walk keeps the leaf side, so a cut one still knows its end. */
	subj->head_ok = !(a->head.flags & VIGIL_ARGV_TRUNCATED);
	subj->tail_ok = 1;
	if (!a->depth) {
		/* no component: the root itself */
		subj->fwd.str[0] = '/';
		subj->rev.str[0] = '/';
		subj->len = 1;
		subj->rev_ready = 1;
		return;
	}
	vigil_path_forward(bytes, subj->len, a->ends, a->depth, subj->fwd.str,
			   VIGIL_KEY_STRING_MAX);
}

/*
 * Prepares subjects[k] from args[k] once per event and, with `reversed`
 * (for Postfix), its reversed tail. Returns 0 when the argument has no
 * bytes to match.
 */
__noinline int vigil_arg_subject(__u32 slot, __u32 k, __u32 reversed)
{
	struct vigil_eval *s = eval_get(slot);
	struct vigil_subject *subj;
	struct vigil_arg_state *a;
	const char *bytes;

	if (!s || k >= VIGIL_ARG_SLOTS)
		return 0;
	k = VIGIL_BOUND(k, VIGIL_ARG_SLOTS);
	subj = &s->subjects[k];
	a = &s->args[k];
	if ((a->head.flags & VIGIL_ARGV_ERROR) || !vigil_arg_is_bytes(a->head.type))
		return 0;
	bytes = s->out.rec.data + a->off;
	if (!(s->subjects_ready & (1 << k))) {
		subject_from_arg(subj, a, bytes);
		s->subjects_ready |= 1 << k;
	}
	if (!reversed || subj->rev_ready || !subj->tail_ok)
		return 1;
	if (a->head.flags & VIGIL_ARGV_LEAF_FIRST)
		vigil_subject_reverse_leaf_first(subj, bytes, a->ends, a->depth, s->tmp);
	else
		vigil_subject_reverse(subj, bytes, s->tmp);
	return 1;
}

/* A network operator (m->net_field) on args[k]: the argument is read into the record first. */
static __always_inline bool net_match(__u32 slot, struct vigil_eval *s, const struct vigil_hook *hook,
				      const struct vigil_match_arg *m, __u32 k, __u32 sel, __u32 matcher)
{
	const struct vigil_arg_state *a;
	__u64 v;

	read_args_to(slot, s, record_pos(hook, k));
	a = &s->args[VIGIL_BOUND(k, VIGIL_ARG_SLOTS)];
	if (s->nread <= record_pos(hook, k) || (a->head.flags & VIGIL_ARGV_ERROR) ||
	    a->off >= VIGIL_POLICY_DATA_MAX ||
	    !vigil_net_tuple_of(a->head.type, s->out.rec.data + VIGIL_BOUND(a->off, VIGIL_POLICY_DATA_MAX),
				a->head.len, &s->net))
		return false;
	switch (m->net_field) {
	case VIGIL_NET_SADDR:
	case VIGIL_NET_DADDR:
		v = vigil_addr_in(m->net_field == VIGIL_NET_SADDR ? s->net.saddr : s->net.daddr,
				  s->hook_id, sel, matcher);
		return m->op == VIGIL_OP_NOT_EQUAL ? !v : v;
	case VIGIL_NET_FAMILY:
		v = s->net.family;
		break;
	case VIGIL_NET_PROTOCOL:
		v = s->net.protocol;
		break;
	case VIGIL_NET_STATE:
		v = s->net.state;
		break;
	case VIGIL_NET_SPORT:
		v = s->net.sport;
		break;
	default:
		v = s->net.dport;
		break;
	}
	if (m->op == VIGIL_OP_PRIV || m->op == VIGIL_OP_NOT_PRIV)
		return (v < VIGIL_PRIV_PORTS) == (m->op == VIGIL_OP_PRIV);
	return vigil_number_match(v, false, m);
}

/* One matchArgs (matcher < 8) or matchReturnArgs (VIGIL_MATCHER_RETURN_ARG) entry. */
__noinline int vigil_arg_match(__u32 slot, __u32 sel, __u32 matcher)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_arg_spec *spec;
	const struct vigil_match_arg *m;
	const struct vigil_selector *x;
	const struct vigil_hook *hook;
	struct vigil_subject *subj;
	__u32 k;

	if (!s || !(hook = hook_get(s)) || sel >= VIGIL_MAX_SELECTORS)
		return 0;
	x = &hook->selectors[VIGIL_BOUND(sel, VIGIL_MAX_SELECTORS)];
	if (matcher >= VIGIL_MATCHER_RETURN_ARG(0)) {
		if (matcher >= VIGIL_MATCHER_RETURN_ARG(VIGIL_MAX_MATCH_RETURN_ARGS) || !s->has_ret)
			return 0;
		m = &x->return_args[VIGIL_BOUND(matcher - VIGIL_MATCHER_RETURN_ARG(0),
						VIGIL_MAX_MATCH_RETURN_ARGS)];
		k = VIGIL_RET_SLOT;
	} else {
		if (matcher >= VIGIL_MAX_MATCH_ARGS)
			return 0;
		m = &x->args[VIGIL_BOUND(matcher, VIGIL_MAX_MATCH_ARGS)];
		k = m->arg;
		if (k >= hook->nargs)
			return 0;
	}
	if (!(spec = vigil_arg_spec(hook, k)))
		return 0;
	if (m->net_field != VIGIL_NET_NONE)
		return net_match(slot, s, hook, m, k, sel, matcher);
	if (!m->is_string && k == VIGIL_RET_SLOT && spec->source != VIGIL_SRC_RETURN)
		return vigil_number_match(s->ret, true, m); /* no `ret` spec: the raw return value */
	if (!m->is_string)
		return vigil_number_match(vigil_arg_number(s, spec), vigil_arg_signed(spec), m);

	/* A string matcher on the return value needs it in the record. */
	if (k == VIGIL_RET_SLOT && !(hook->flags & VIGIL_HOOKF_RETURN))
		return 0;
	read_args_to(slot, s, record_pos(hook, k));
	if (!vigil_arg_subject(slot, k, vigil_op_is_postfix(m->op)))
		return 0;
	subj = &s->subjects[VIGIL_BOUND(k, VIGIL_ARG_SLOTS)];
	return vigil_subject_matches(subj, m->op, s->hook_id, sel, matcher);
}

__noinline int vigil_ns_load(__u32 slot)
{
	struct vigil_eval *s = eval_get(slot);

	if (!s)
		return 0;
	vigil_read_ns(s);
	s->loaded |= VIGIL_LOADED_NS;
	return 1;
}

__noinline int vigil_proc_load(__u32 slot)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_hook *hook;

	if (!s || !(hook = hook_get(s)))
		return 0;
	s->proc_found = vigil_read_proc(s, hook);
	s->loaded |= VIGIL_LOADED_PROC;
	return s->proc_found;
}

__noinline __u64 vigil_resolve(__u32 key, __u64 ptr, __u32 size, __u32 sign)
{
	const struct vigil_resolve_path *path = bpf_map_lookup_elem(&vigil_resolve_paths, &key);
	__u32 i;

	if (!path)
		return 0;
	for (i = 0; i < VIGIL_RESOLVE_DEPTH; i++) {
		if (i >= path->nderefs)
			break;
		if (!ptr || bpf_probe_read_kernel(&ptr, sizeof(ptr), (const void *)(ptr + path->derefs[i])))
			return 0;
	}
	if (!ptr)
		return 0;
	ptr += path->offset;
	/* Each read's size a constant, which the verifier bounds. */
	switch (size) {
	case 0:
		return ptr;
	case 1:
		return vigil_read_sized((const void *)ptr, 1, sign, false);
	case 2:
		return vigil_read_sized((const void *)ptr, 2, sign, false);
	case 4:
		return vigil_read_sized((const void *)ptr, 4, sign, false);
	default:
		return vigil_read_sized((const void *)ptr, 8, sign, false);
	}
}

__noinline int vigil_hook_guard(__u32 slot)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_hook *hook;
	__u64 v;

	if (!s || !(hook = hook_get(s)))
		return 0;
	load_regs(s);
	v = vigil_arg_number(s, &hook->guard.arg);
	switch (hook->guard.op) {
	case VIGIL_GUARD_NONNEG:
		return (__s64)v >= 0;
	case VIGIL_GUARD_MASK:
		return (v & hook->guard.value) != 0;
	case VIGIL_GUARD_EQUAL:
		return v == hook->guard.value;
	case VIGIL_GUARD_TTY_FD:
		return vigil_fd_is_tty((__s64)v);
	case VIGIL_GUARD_BIT:
		return v < 64 && ((hook->guard.value >> v) & 1);
	case VIGIL_GUARD_SOCK_PROTO:
		return vigil_fd_is_protocol((__s64)v, hook->guard.value);
	case VIGIL_GUARD_SKB_IP:
		return (vigil_skb_ip_kind((const struct sk_buff *)v) & hook->guard.value) != 0;
	default:
		return 1;
	}
}

__noinline int vigil_selector_process(__u32 slot, __u32 sel)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_hook *hook;

	if (!s || !(hook = hook_get(s)) || sel >= VIGIL_MAX_SELECTORS)
		return 0;
	return vigil_selector_process_match(s, slot, hook, sel);
}

__noinline int vigil_selector_args(__u32 slot, __u32 sel)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_selector *x;
	const struct vigil_hook *hook;
	__u32 i;

	if (!s || !(hook = hook_get(s)) || sel >= VIGIL_MAX_SELECTORS)
		return 0;
	x = &hook->selectors[VIGIL_BOUND(sel, VIGIL_MAX_SELECTORS)];
	if (x->n_args || x->n_return_args)
		load_regs(s);
	for (i = 0; i < VIGIL_MAX_MATCH_ARGS; i++) {
		if (i >= x->n_args)
			break;
		if (!vigil_arg_match(slot, sel, VIGIL_MATCHER_ARG(i)))
			return 0;
	}
	for (i = 0; i < VIGIL_MAX_MATCH_RETURN_ARGS; i++) {
		if (i >= x->n_return_args)
			break;
		if (!vigil_arg_match(slot, sel, VIGIL_MATCHER_RETURN_ARG(i)))
			return 0;
	}
	return 1;
}

/* Whether this post is within the selector's rate limit (and, if so, takes it). */
static __always_inline bool rate_limit_allows(const struct vigil_eval *s, __u32 sel,
					      __u32 limit_ms, __u64 now)
{
	struct vigil_process_selector_key key = {
		.tgid = s->tgid,
		.hook = s->hook_id,
		.selector = sel,
	};
	__u64 *last = bpf_map_lookup_elem(&vigil_ratelimit, &key);

	if (last && now - *last < limit_ms * VIGIL_NSEC_PER_MSEC)
		return false;
	bpf_map_update_elem(&vigil_ratelimit, &key, &now, BPF_ANY);
	return true;
}

static __always_inline __u32 action_rank(__u8 kind)
{
	switch (kind) {
	case VIGIL_ACTION_SIGKILL:
		return 4;
	case VIGIL_ACTION_OVERRIDE:
		return 3;
	case VIGIL_ACTION_SIGNAL:
	case VIGIL_ACTION_NOTIFY_ENFORCER:
		return 2;
	case VIGIL_ACTION_POST:
		return 1;
	default:
		return 0;
	}
}

/*
 * Override: the errno this thread's syscall is to fail with, for the cgroup
 * program that runs later in the same call (bpf/hook_cgroup.bpf.c). Only
 * hooks at the entry of a call a cgroup program sees carry it (the compiler
 * allows it there alone).
 */
static __always_inline bool override_set(__u32 error)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	return !bpf_map_update_elem(&vigil_override, &tid, &error, BPF_ANY);
}

/* TrackSock/UntrackSock of the sock args[k] names (VIGIL_RET_SLOT: the return value).
 * Global, so that its locals do not add to vigil_policy_act's stack frame. */
__noinline int vigil_sock_track(__u32 slot, __u32 k, __u32 track)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_arg_spec *spec;
	const struct vigil_hook *hook;
	struct vigil_sock_owner owner;
	__u64 pid_tgid, sk;

	if (!s || !(hook = hook_get(s)) || !(spec = vigil_arg_spec(hook, k)))
		return 0;
	load_regs(s);
	sk = (__u64)vigil_arg_sock(s, spec);
	if (!sk)
		return 0;
	if (!track)
		return !bpf_map_delete_elem(&vigil_sock_owner, &sk);
	pid_tgid = bpf_get_current_pid_tgid();
	owner.tgid = pid_tgid >> 32;
	owner.tid = (__u32)pid_tgid;
	owner.socket_ino = vigil_sock_ino((const struct sock *)sk);
	owner.policy = hook->policy;
	owner.pad = 0;
	return !bpf_map_update_elem(&vigil_sock_owner, &sk, &owner, BPF_ANY);
}

/* The owner of the first tracked sock among the hook's sock and skb arguments, whom the
 * record names: tgid << 32 | tid, or 0 when none is tracked. */
__noinline __u64 vigil_sock_owner_of(__u32 slot)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_sock_owner *owner;
	const struct vigil_arg_spec *spec;
	const struct vigil_hook *hook;
	__u32 k;
	__u64 sk;

	if (!s || !(hook = hook_get(s)))
		return 0;
	for (k = 0; k < VIGIL_MAX_HOOK_ARGS; k++) {
		if (k >= hook->nargs)
			break;
		spec = &hook->args[k];
		if (spec->type != VIGIL_ARG_SOCK && spec->type != VIGIL_ARG_SKB)
			continue;
		sk = (__u64)vigil_arg_sock(s, spec);
		if (sk && (owner = bpf_map_lookup_elem(&vigil_sock_owner, &sk)) &&
		    owner->socket_ino == vigil_sock_ino((const struct sock *)sk))
			return (__u64)owner->tgid << 32 | owner->tid;
	}
	return 0;
}

/* Appends the stack traces a Post asked for (taken at the match: vigil_take_stacks) after the
 * arguments. Global, so that its locals do not add to vigil_policy_act's stack frame. */
__noinline int vigil_append_stacks(__u32 slot, __u32 stacks)
{
	struct vigil_eval *s = eval_get(slot);
	__u32 at, len;

	if (!s)
		return 0;
	at = s->data_len;
	if (at > VIGIL_POLICY_DATA_MAX)
		return 0;
	if ((stacks & VIGIL_STACK_KERNEL) && s->kstack_len > 0) {
		len = VIGIL_BOUND(s->kstack_len, sizeof(s->kstack) + 1);
		bpf_probe_read_kernel(s->out.rec.data + at, len, s->kstack);
		s->out.rec.kstack_len = len;
		at += len;
	}
	if ((stacks & VIGIL_STACK_USER) && s->ustack_len > 0 && at <= VIGIL_POLICY_DATA_MAX + sizeof(s->kstack)) {
		len = VIGIL_BOUND(s->ustack_len, sizeof(s->ustack) + 1);
		bpf_probe_read_kernel(s->out.rec.data + at, len, s->ustack);
		s->out.rec.ustack_len = len;
	}
	return 1;
}

/* What vigil_take_actions returns, packed into one scalar (a global function returns one). */
#define VIGIL_TAKEN_POST 1ULL        /* the record is to be posted */
#define VIGIL_TAKEN_STACKS_SHIFT 1   /* enum vigil_stack_flags asked for */
#define VIGIL_TAKEN_RATE_SHIFT 32    /* the selector's rate limit, ms */

/*
 * Takes the first n actions of selector `sel` (signals, override, sock
 * tracking, counted in the policy's stats) and sets the record's action,
 * applied and signal to the strongest one's. Global, so that its locals do
 * not add to vigil_policy_act's stack frame (the verifier bounds the frames
 * of a call chain together).
 */
__noinline __u64 vigil_take_actions(__u32 slot, __u32 sel, __u32 n)
{
	struct vigil_eval *s = eval_get(slot);
	const struct vigil_policy_state *pol;
	struct vigil_policy_stats *stats;
	const struct vigil_selector *x;
	const struct vigil_action *act;
	const struct vigil_hook *hook;
	__u8 kind = VIGIL_ACTION_POST, sig = 0, applied = 0, signal, stacks = 0;
	__u32 i, rate_ms = 0;
	bool post = true, enforce, sent;

	if (!s || !(hook = hook_get(s)) || sel >= VIGIL_MAX_SELECTORS)
		return 0;
	pol = bpf_map_lookup_elem(&vigil_policies, &hook->policy);
	stats = bpf_map_lookup_elem(&vigil_policy_stats, &hook->policy);
	if (!pol || !stats)
		return 0;
	enforce = pol->mode == VIGIL_MODE_ENFORCE;
	__sync_fetch_and_add(&stats->matched, 1);
	x = &hook->selectors[VIGIL_BOUND(sel, VIGIL_MAX_SELECTORS)];
	for (i = 0; i < VIGIL_MAX_ACTIONS; i++) {
		if (i >= n)
			break;
		act = &x->actions[i];
		if (act->rate_limit_ms > rate_ms)
			rate_ms = act->rate_limit_ms;
		if (act->kind == VIGIL_ACTION_NOPOST)
			post = false;
		stacks |= act->stacks;
		if (act->kind == VIGIL_ACTION_TRACK_SOCK || act->kind == VIGIL_ACTION_UNTRACK_SOCK)
			vigil_sock_track(slot, act->arg, act->kind == VIGIL_ACTION_TRACK_SOCK);
		if (act->kind == VIGIL_ACTION_SIGKILL || act->kind == VIGIL_ACTION_SIGNAL ||
		    act->kind == VIGIL_ACTION_NOTIFY_ENFORCER || act->kind == VIGIL_ACTION_OVERRIDE) {
			signal = act->kind == VIGIL_ACTION_SIGKILL ? VIGIL_SIGKILL : act->signal;
			if (act->kind == VIGIL_ACTION_OVERRIDE)
				sent = enforce && override_set(act->error);
			else
				sent = enforce && !bpf_send_signal(signal);
			if (sent)
				__sync_fetch_and_add(&stats->actions_applied, 1);
			else if (!enforce)
				__sync_fetch_and_add(&stats->actions_monitored, 1);
			if (action_rank(act->kind) > action_rank(kind)) {
				kind = act->kind;
				sig = signal;
				applied = sent;
			}
		}
	}
	if ((hook->flags & (VIGIL_HOOKF_RET_TRACK_SOCK | VIGIL_HOOKF_RET_UNTRACK_SOCK)) && s->has_ret)
		vigil_sock_track(slot, VIGIL_RET_SLOT, !!(hook->flags & VIGIL_HOOKF_RET_TRACK_SOCK));
	s->out.rec.action = kind;
	s->out.rec.applied = applied;
	s->out.rec.signal = sig;
	return (post ? VIGIL_TAKEN_POST : 0) | (__u64)stacks << VIGIL_TAKEN_STACKS_SHIFT |
	       (__u64)rate_ms << VIGIL_TAKEN_RATE_SHIFT;
}

/* The selector `sel` matched (no selectors: has_selectors 0): act, then post. */
__noinline int vigil_policy_act(__u32 slot, __u32 sel, __u32 has_selectors)
{
	struct vigil_eval *s = eval_get(slot);
	struct vigil_policy_record *rec;
	struct vigil_policy_stats *stats;
	const struct vigil_hook *hook;
	__u32 policy, rate_ms, size;
	__u64 now, owner, taken;
	__u8 stacks;

	if (!s || !(hook = hook_get(s)) || sel >= VIGIL_MAX_SELECTORS)
		return 0;
	taken = vigil_take_actions(slot, sel,
				   has_selectors ? hook->selectors[VIGIL_BOUND(sel, VIGIL_MAX_SELECTORS)].n_actions : 0);
	if (!(taken & VIGIL_TAKEN_POST))
		return 1;
	stacks = (taken >> VIGIL_TAKEN_STACKS_SHIFT) & (VIGIL_STACK_KERNEL | VIGIL_STACK_USER);
	rate_ms = taken >> VIGIL_TAKEN_RATE_SHIFT;
	now = bpf_ktime_get_boot_ns();
	if (rate_ms && !rate_limit_allows(s, sel, rate_ms, now)) {
		policy = hook->policy;
		stats = bpf_map_lookup_elem(&vigil_policy_stats, &policy);
		if (stats)
			__sync_fetch_and_add(&stats->rate_limited, 1);
		return 1;
	}

	load_regs(s);
	read_args_to(slot, s, VIGIL_ARG_SLOTS);
	rec = &s->out.rec;
	rec->hdr.kind = VIGIL_RECORD_POLICY;
	rec->hdr.ktime = now;
	rec->pid = s->tgid;
	rec->tid = (__u32)bpf_get_current_pid_tgid();
	owner = vigil_sock_owner_of(slot);
	if (owner) {
		rec->pid = owner >> 32;
		rec->tid = (__u32)owner;
	}
	rec->hook = s->hook_id;
	rec->selector = sel;
	rec->ret = 0;
	if ((hook->flags & VIGIL_HOOKF_RETURN) && s->has_ret) {
		rec->ret = s->ret;
		rec->flags |= VIGIL_POLF_RETURN;
	}
	rec->data_len = s->data_len;
	rec->kstack_len = 0;
	rec->ustack_len = 0;
	if (stacks && (hook->flags & VIGIL_HOOKF_STACKS))
		vigil_append_stacks(slot, stacks);
	size = __builtin_offsetof(struct vigil_policy_record, data) + s->data_len + rec->kstack_len +
	       rec->ustack_len;
	if (size > sizeof(s->out))
		return 1;
	size = VIGIL_BOUND(size, sizeof(s->out) + 1);
	rec->hdr.size = size;
	vigil_emit(rec, size);
	return 1;
}
