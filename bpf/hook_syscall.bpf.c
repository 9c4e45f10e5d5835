// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy hooks on system calls (VIGIL_HOOK_KPROBE): vigil_sys_enter is
 * attached to syscalls:sys_enter_X for the hooks on syscall X, and
 * vigil_sys_exit to syscalls:sys_exit_X for those that decide at exit
 * (VIGIL_HOOKF_AT_EXIT); the BPF cookie names the attachment.
 *
 * Deciding at exit: sys_enter runs the selectors' process conditions only
 * and, if one could still match, saves the arguments in vigil_inflight;
 * sys_exit takes them back and evaluates everything with the return value,
 * when user strings are resident and the returned fd can be resolved. A
 * Sigkill there lands after the syscall has fully happened (KERNEL.md).
 *
 * The arguments are read from the record with bpf_probe_read_kernel, and
 * only once needed: attaching refuses a program that reads ctx past the
 * record of the syscall (getpid's has none), and a call its selectors reject
 * without looking at them should not pay the copy. The record sits in the
 * perf trace buffer, so the bytes past a shorter one are there to read.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "vigil.h"
#include "lib/hook.h"

static __always_inline void enter_hook(struct vigil_run *r, __u32 i)
{
	struct trace_event_raw_sys_enter *ctx = r->ctx;
	struct vigil_eval *s = r->s;
	const struct vigil_hook *hook;
	__u64 pid_tgid;
	__u32 id;

	if (!(hook = vigil_active_hook(r->att, i, &id)))
		return;
	pid_tgid = vigil_run_pid_tgid(r);
	s->hook_id = id;
	s->has_ret = 0;
	s->regs_at = (__u64)ctx->args;
	vigil_hook_enter(ctx, VIGIL_SLOT_TRACEPOINT, s, hook, id, pid_tgid, ctx->args);
}

VIGIL_HOOK_PROGRAM("tp", vigil_sys_enter, struct trace_event_raw_sys_enter, VIGIL_SLOT_TRACEPOINT, enter_hook)

static __always_inline void exit_hook(struct vigil_run *r, __u32 i)
{
	struct trace_event_raw_sys_exit *ctx = r->ctx;
	struct vigil_eval *s = r->s;
	const struct vigil_hook *hook;
	__u32 id;

	if (i >= r->att->nhooks || i >= VIGIL_ATTACHMENT_HOOKS)
		return;
	id = r->att->hooks[VIGIL_BOUND(i, VIGIL_ATTACHMENT_HOOKS)];
	if (!vigil_inflight_take(id, (__u32)vigil_run_pid_tgid(r), s->regs) ||
	    !(hook = vigil_active_hook(r->att, i, &id)))
		return;
	s->hook_id = id;
	s->regs_at = 0;
	s->ret = ctx->ret;
	s->has_ret = 1;
	vigil_policy_run(ctx, VIGIL_SLOT_TRACEPOINT, s, hook, r->pid_tgid >> 32);
}

VIGIL_HOOK_PROGRAM("tp", vigil_sys_exit, struct trace_event_raw_sys_exit, VIGIL_SLOT_TRACEPOINT, exit_hook)
