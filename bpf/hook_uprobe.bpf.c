// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy hooks on user functions (VIGIL_HOOK_UPROBE): vigil_uprobe is
 * attached at the function's entry, vigil_uretprobe at its return, the BPF
 * cookie naming the attachment. Arguments are the function's
 * (VIGIL_SRC_FUNCTION_ARG, x86-64 calling convention), the return value its
 * rax. A hook that decides at exit (VIGIL_HOOKF_AT_EXIT) must be on both:
 * the entry saves the arguments in vigil_inflight as vigil_sys_enter does
 * and the return evaluates; a hook on the return alone has the return value
 * but no arguments (they read as 0).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "vigil.h"
#include "lib/hook.h"

static __always_inline void uprobe_hook(struct vigil_run *r, __u32 i)
{
	struct pt_regs *ctx = r->ctx;
	struct vigil_eval *s = r->s;
	/* ctx: the registers USDT arguments are read from */
	const struct vigil_hook *hook = vigil_hook_begin(r, i, (__u64)ctx);
	__u64 pid_tgid;

	if (!hook)
		return;
	pid_tgid = vigil_run_pid_tgid(r);
	s->has_ret = 0;
	s->regs[0] = PT_REGS_PARM1(ctx);
	s->regs[1] = PT_REGS_PARM2(ctx);
	s->regs[2] = PT_REGS_PARM3(ctx);
	s->regs[3] = PT_REGS_PARM4(ctx);
	s->regs[4] = PT_REGS_PARM5(ctx);
	s->regs[5] = ctx->r9; /* the sixth integer argument; libbpf 1.1 has no PT_REGS_PARM6 */
	vigil_hook_enter(ctx, VIGIL_SLOT_UPROBE, s, hook, s->hook_id, pid_tgid, NULL);
}

VIGIL_HOOK_PROGRAM("uprobe", vigil_uprobe, struct pt_regs, VIGIL_SLOT_UPROBE, uprobe_hook)

static __always_inline void uretprobe_hook(struct vigil_run *r, __u32 i)
{
	struct pt_regs *ctx = r->ctx;
	struct vigil_eval *s = r->s;
	const struct vigil_hook *hook;
	__u32 id;

	if (i >= r->att->nhooks || i >= VIGIL_ATTACHMENT_HOOKS)
		return;
	id = r->att->hooks[VIGIL_BOUND(i, VIGIL_ATTACHMENT_HOOKS)];
	if (!(hook = bpf_map_lookup_elem(&vigil_hooks, &id)))
		return;
	__builtin_memset(s->regs, 0, sizeof(s->regs));
	if ((hook->flags & VIGIL_HOOKF_AT_EXIT) &&
	    !vigil_inflight_take(id, (__u32)vigil_run_pid_tgid(r), s->regs))
		return;
	if (!(hook = vigil_active_hook(r->att, i, &id)))
		return;
	s->hook_id = id;
	s->regs_at = 0;
	s->ret = PT_REGS_RC(ctx);
	s->has_ret = 1;
	vigil_policy_run(ctx, VIGIL_SLOT_UPROBE, s, hook, vigil_run_pid_tgid(r) >> 32);
}

VIGIL_HOOK_PROGRAM("uretprobe", vigil_uretprobe, struct pt_regs, VIGIL_SLOT_UPROBE, uretprobe_hook)
