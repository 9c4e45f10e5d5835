// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy hooks on system calls (VIGIL_HOOK_KPROBE), served one of two ways,
 * both for 64-bit syscalls only (a 32-bit (ia32) call's numbers are another
 * table, so such calls are passed over, as the syscalls:* tracepoints do):
 *
 * - vigil_sys_enter_one and vigil_sys_exit_one, attached to one syscall's
 *   syscalls:sys_enter_X or sys_exit_X. A syscall nobody hooks then pays
 *   only the kernel's test of its bit, but a hooked one pays the perf record
 *   the kernel fills before the program runs (about 75 ns here).
 * - vigil_sys_enter and vigil_sys_exit, on the raw sys_enter and sys_exit
 *   tracepoints, each attached once while some syscall is routed to it; a
 *   syscall no hook is on returns at its table entry (about 35 ns here, on
 *   every syscall of the node). Worth it for the syscalls a busy process
 *   makes most, where the record would cost more than everyone's lookups
 *   together: the sensor's list of them is
 *   services/sensor/policy-tables/syscall-dispatch.ts.
 *
 * Each finds its attachment by the syscall's number in
 * vigil_syscall_attachments, where each program has a field of its own. The
 * raw programs skip a 32-bit call by the task's TS_COMPAT, as the kernel's
 * in_ia32_syscall() tests (the code segment would miss `int $0x80` from
 * 64-bit code).
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
#include "lib/task.h"

/* Which program's attachment of a syscall: a field of struct vigil_syscall_attachment. */
enum syscall_route { ROUTE_RAW_ENTER, ROUTE_RAW_EXIT, ROUTE_OWN_ENTER, ROUTE_OWN_EXIT };

/* The attachment of syscall nr's hooks for the program `route` names, if any. */
static __always_inline const struct vigil_attachment *syscall_attachment(long nr, enum syscall_route route)
{
	const struct vigil_syscall_attachment *at;
	__u32 key = nr, id;

	if (nr < 0 || nr >= VIGIL_MAX_SYSCALL_NR)
		return NULL;
	at = bpf_map_lookup_elem(&vigil_syscall_attachments, &key);
	if (!at)
		return NULL;
	switch (route) {
	case ROUTE_RAW_ENTER: id = at->enter; break;
	case ROUTE_RAW_EXIT: id = at->exit; break;
	case ROUTE_OWN_ENTER: id = at->own_enter; break;
	default: id = at->own_exit; break;
	}
	if (!id)
		return NULL;
	/* The syscalls:* tracepoints pass 32-bit calls over themselves. */
	if ((route == ROUTE_RAW_ENTER || route == ROUTE_RAW_EXIT) && vigil_in_compat_syscall())
		return NULL;
	id--;
	return bpf_map_lookup_elem(&vigil_attachments, &id);
}

/* tp_btf/sys_enter: (struct pt_regs *regs, long id). */
static __always_inline const struct vigil_attachment *enter_attachment(__u64 *ctx)
{
	return syscall_attachment((long)ctx[1], ROUTE_RAW_ENTER);
}

/* tp_btf/sys_exit: (struct pt_regs *regs, long ret); the number is in orig_ax. */
static __always_inline const struct vigil_attachment *exit_attachment(__u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];

	return syscall_attachment(regs->orig_ax, ROUTE_RAW_EXIT);
}

/* syscalls:sys_enter_<name>: its record has the number. */
static __always_inline const struct vigil_attachment *own_enter_attachment(void *ctx)
{
	return syscall_attachment(((struct syscall_trace_enter *)ctx)->nr, ROUTE_OWN_ENTER);
}

static __always_inline const struct vigil_attachment *own_exit_attachment(void *ctx)
{
	return syscall_attachment(((struct syscall_trace_exit *)ctx)->nr, ROUTE_OWN_EXIT);
}

/* The registers of the current syscall, for a program on syscalls:sys_*_X (whose record does not point to them). */
static __always_inline struct pt_regs *current_syscall_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

static __always_inline void enter_hook(struct vigil_run *r, __u32 i, struct pt_regs *regs)
{
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

static __always_inline void raw_enter_hook(struct vigil_run *r, __u32 i)
{
	enter_hook(r, i, (struct pt_regs *)((__u64 *)r->ctx)[0]);
}

static __always_inline void one_enter_hook(struct vigil_run *r, __u32 i)
{
	enter_hook(r, i, current_syscall_regs());
}

VIGIL_HOOK_PROGRAM_FOR("tp_btf/sys_enter", vigil_sys_enter, __u64, VIGIL_SLOT_TRACEPOINT, raw_enter_hook, enter_attachment)
VIGIL_HOOK_PROGRAM_FOR("tp", vigil_sys_enter_one, void, VIGIL_SLOT_TRACEPOINT, one_enter_hook, own_enter_attachment)

static __always_inline void exit_hook(struct vigil_run *r, __u32 i, long ret)
{
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
	s->ret = ret;
	s->has_ret = 1;
	vigil_policy_run(r->ctx, VIGIL_SLOT_TRACEPOINT, s, hook, r->pid_tgid >> 32);
}

static __always_inline void raw_exit_hook(struct vigil_run *r, __u32 i)
{
	exit_hook(r, i, (long)((__u64 *)r->ctx)[1]);
}

static __always_inline void one_exit_hook(struct vigil_run *r, __u32 i)
{
	exit_hook(r, i, ((struct syscall_trace_exit *)r->ctx)->ret);
}

VIGIL_HOOK_PROGRAM_FOR("tp_btf/sys_exit", vigil_sys_exit, __u64, VIGIL_SLOT_TRACEPOINT, raw_exit_hook, exit_attachment)
VIGIL_HOOK_PROGRAM_FOR("tp", vigil_sys_exit_one, void, VIGIL_SLOT_TRACEPOINT, one_exit_hook, own_exit_attachment)
