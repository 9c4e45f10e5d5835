// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy hooks on any tracepoint (VIGIL_HOOK_TRACEPOINT): vigil_tracepoint
 * is attached to category:name for the hooks there, the BPF cookie naming
 * the attachment; arguments are fields of the tracepoint's record
 * (VIGIL_SRC_TP_FIELD), read by offset. On sched:sched_process_exec
 * (VIGIL_HOOKF_EXEC_EVENT) a Sigkill means not one instruction of the new
 * program runs (KERNEL.md).
 *
 * A tracepoint whose arguments a hook reads as kernel objects (Tetragon's
 * `resolve`) has a tp_btf program of its own, since a tp_btf program is
 * bound to one tracepoint when it is loaded: vigil_prepare_exec on
 * sched_prepare_exec (task, bprm), attached while a hook needs it, its
 * attachment in vigil_cookieless_attachments; arguments are VIGIL_SRC_BTF_ARG.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "vigil.h"
#include "lib/hook.h"

static __always_inline void tracepoint_hook(struct vigil_run *r, __u32 i)
{
	const struct vigil_hook *hook = vigil_hook_begin(r, i, (__u64)r->ctx);

	if (!hook)
		return;
	/* A translated hook may take its return value from a field (cap_capable's ret): the ret spec reads it. */
	r->s->has_ret = !!(hook->flags & VIGIL_HOOKF_RETURN);
	vigil_policy_run(r->ctx, VIGIL_SLOT_TRACEPOINT, r->s, hook, vigil_run_pid_tgid(r) >> 32);
}

VIGIL_HOOK_PROGRAM("tp", vigil_tracepoint, void, VIGIL_SLOT_TRACEPOINT, tracepoint_hook)

static __always_inline const struct vigil_attachment *prepare_exec_attachment(__u64 *ctx)
{
	return vigil_cookieless_attachment(VIGIL_COOKIELESS_PREPARE_EXEC);
}

VIGIL_HOOK_PROGRAM_FOR("tp_btf/sched_prepare_exec", vigil_prepare_exec, __u64, VIGIL_SLOT_TRACEPOINT, tracepoint_hook, prepare_exec_attachment)
