// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy hooks on system calls (VIGIL_HOOK_KPROBE): vigil_sys_enter runs on
 * the raw sys_enter tracepoint and vigil_sys_exit on sys_exit, each attached
 * once while some hook needs it, for every syscall; the syscall's number
 * finds its attachment in vigil_syscall_attachments, and a syscall no hook
 * is on returns there. One program for all costs a hooked call less than a
 * program on syscalls:sys_enter_X, which the kernel runs only after filling
 * the call's perf record (about 75 ns a call here).
 *
 * Like the syscalls:* tracepoints, these see 64-bit syscalls only: a 32-bit
 * (ia32) call's numbers are another table, so such calls are passed over:
 * the task's TS_COMPAT, as the kernel's in_ia32_syscall() tests (the code
 * segment would miss `int $0x80` from 64-bit code).
 *
 * Deciding at exit: sys_enter runs the selectors' process conditions only
 * and, if one could still match, saves the arguments in vigil_inflight;
 * sys_exit takes them back and evaluates everything with the return value,
 * when user strings are resident and the returned fd can be resolved. A
 * Sigkill there lands after the syscall has fully happened (KERNEL.md).
 * A hook that reads nothing of the call's arguments (VIGIL_HOOKF_EXIT_ALONE:
 * fd_install, commit_creds, ...) is routed at sys_exit only and judged there
 * alone, so the syscalls it serves pay no sys_enter program and no
 * vigil_inflight round trip.
 *
 * The arguments are read from the syscall's pt_regs only once needed: a
 * call its selectors reject without looking at them does not pay the copy.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "vigil.h"
#include "lib/hook.h"

/* thread_info.status: the task is in a 32-bit syscall (x86 TS_COMPAT). */
#define TS_COMPAT 0x0002

/* The attachment of syscall nr's hooks (vigil_syscall_attachment.enter or .exit), if any. */
static __always_inline const struct vigil_attachment *syscall_attachment(long nr, bool at_exit)
{
	const struct vigil_syscall_attachment *at;
	__u32 key = nr, id;

	if (nr < 0 || nr >= VIGIL_MAX_SYSCALL_NR)
		return NULL;
	at = bpf_map_lookup_elem(&vigil_syscall_attachments, &key);
	if (!at)
		return NULL;
	id = at_exit ? at->exit : at->enter;
	if (!id || (bpf_get_current_task_btf()->thread_info.status & TS_COMPAT))
		return NULL;
	id--;
	return bpf_map_lookup_elem(&vigil_attachments, &id);
}

/* tp_btf/sys_enter: (struct pt_regs *regs, long id). */
static __always_inline const struct vigil_attachment *enter_attachment(__u64 *ctx)
{
	return syscall_attachment((long)ctx[1], false);
}

/* tp_btf/sys_exit: (struct pt_regs *regs, long ret); the number is in orig_ax. */
static __always_inline const struct vigil_attachment *exit_attachment(__u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];

	return syscall_attachment(regs->orig_ax, true);
}

static __always_inline void enter_hook(struct vigil_run *r, __u32 i)
{
	struct pt_regs *regs = (struct pt_regs *)((__u64 *)r->ctx)[0];
	struct vigil_eval *s = r->s;
	const struct vigil_hook *hook;
	__u64 pid_tgid;
	__u32 id;

	if (!(hook = vigil_active_hook(r->att, i, &id)))
		return;
	pid_tgid = vigil_run_pid_tgid(r);
	s->hook_id = id;
	s->has_ret = 0;
	s->regs_at = (__u64)regs;
	vigil_hook_enter(r->ctx, VIGIL_SLOT_TRACEPOINT, s, hook, id, pid_tgid, regs);
}

VIGIL_HOOK_PROGRAM_FOR("tp_btf/sys_enter", vigil_sys_enter, __u64, VIGIL_SLOT_TRACEPOINT, enter_hook, enter_attachment)

static __always_inline void exit_hook(struct vigil_run *r, __u32 i)
{
	__u64 *ctx = r->ctx;
	struct vigil_eval *s = r->s;
	const struct vigil_hook *hook;
	__u32 id;

	if (i >= r->att->nhooks || i >= VIGIL_ATTACHMENT_HOOKS)
		return;
	id = r->att->hooks[VIGIL_BOUND(i, VIGIL_ATTACHMENT_HOOKS)];
	if (!(hook = bpf_map_lookup_elem(&vigil_hooks, &id)))
		return;
	/* What rejects early here rejected at entry too, which then saved nothing. */
	s->hook_id = id;
	s->tgid = vigil_run_pid_tgid(r) >> 32;
	if (vigil_all_reject_early(s, hook) ||
	    (!(hook->flags & VIGIL_HOOKF_EXIT_ALONE) &&
	     !vigil_inflight_take(id, (__u32)vigil_run_pid_tgid(r), s->regs)) ||
	    !(hook = vigil_active_hook(r->att, i, &id)))
		return;
	s->hook_id = id;
	s->regs_at = 0;
	s->ret = (long)ctx[1];
	s->has_ret = 1;
	vigil_policy_run(ctx, VIGIL_SLOT_TRACEPOINT, s, hook, r->pid_tgid >> 32);
}

VIGIL_HOOK_PROGRAM_FOR("tp_btf/sys_exit", vigil_sys_exit, __u64, VIGIL_SLOT_TRACEPOINT, exit_hook, exit_attachment)
