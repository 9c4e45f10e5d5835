// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Programs the kernel runs in a call on a cgroup's behalf.
 *
 * Policy hooks on sk_filter_trim_cap (vigil_skb_ingress): the kernel runs a
 * cgroup's cgroup_skb/ingress programs from sk_filter_trim_cap(sk, skb), as
 * a packet is about to be queued to an IPv4 or IPv6 socket, with skb->sk
 * set to that socket; function arguments 0 and 1 are the sock and the skb.
 * It lets every packet pass: it only observes. Usually in softirq, so it
 * has a scratch slot of its own, and takes no stacks (no bpf_get_stack).
 *
 * Override without bpf_override_return: a call whose entry hook decided an
 * Override (vigil_policy_act wrote the errno under the thread's id in
 * vigil_override) fails in the cgroup program the kernel runs later in the
 * same call — connect4/6 for connect, bind4/6 for bind, sendmsg4/6 for
 * sendto and sendmsg, sock_create for socket — before any packet leaves.
 * They are attached to the cgroup v2 root, so they see every process; a
 * thread with no entry costs one hash lookup. vigil_override_clear, at the
 * syscall's exit, removes an entry no cgroup program took and counts it in
 * vigil_override_missed: a call these programs never see (a socket other
 * than IPv4/IPv6, a TCP or connected UDP send, a call failing before them).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "vigil.h"
#include "lib/hook.h"

/* A cgroup_skb program's verdict: let the packet through. */
#define VIGIL_SKB_PASS 1

static __always_inline const struct vigil_attachment *skb_ingress_attachment(struct __sk_buff *ctx)
{
	return vigil_cookieless_attachment(VIGIL_COOKIELESS_SKB_INGRESS);
}

static __always_inline void skb_ingress_hook(struct vigil_run *r, __u32 i)
{
	struct __sk_buff *skb = r->ctx;
	const struct vigil_hook *hook = vigil_hook_begin(r, i, 0);

	if (!hook)
		return;
	r->s->has_ret = 0;
	/* The context is the kernel's sk_buff itself; skb->sk is the socket it is for. */
	r->s->regs[0] = (__u64)skb->sk;
	r->s->regs[1] = (__u64)skb;
	vigil_policy_run(skb, VIGIL_SLOT_SKB, r->s, hook, vigil_run_pid_tgid(r) >> 32);
}

VIGIL_HOOK_PROGRAM_RETURNING("cgroup_skb/ingress", vigil_skb_ingress, struct __sk_buff, VIGIL_SLOT_SKB,
			     skb_ingress_hook, skb_ingress_attachment, VIGIL_SKB_PASS)

static __always_inline int override_verdict(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 *error = bpf_map_lookup_elem(&vigil_override, &tid);
	int err;

	if (!error)
		return 1;
	err = -(int)*error;
	bpf_map_delete_elem(&vigil_override, &tid);
	bpf_set_retval(err);
	return 0;
}

#define VIGIL_OVERRIDE_PROGRAM(sec, name, ctx_type)	\
	SEC(sec)					\
	int name(ctx_type *ctx)				\
	{						\
		return override_verdict();		\
	}

VIGIL_OVERRIDE_PROGRAM("cgroup/connect4", vigil_override_connect4, struct bpf_sock_addr)
VIGIL_OVERRIDE_PROGRAM("cgroup/connect6", vigil_override_connect6, struct bpf_sock_addr)
VIGIL_OVERRIDE_PROGRAM("cgroup/bind4", vigil_override_bind4, struct bpf_sock_addr)
VIGIL_OVERRIDE_PROGRAM("cgroup/bind6", vigil_override_bind6, struct bpf_sock_addr)
VIGIL_OVERRIDE_PROGRAM("cgroup/sendmsg4", vigil_override_sendmsg4, struct bpf_sock_addr)
VIGIL_OVERRIDE_PROGRAM("cgroup/sendmsg6", vigil_override_sendmsg6, struct bpf_sock_addr)
VIGIL_OVERRIDE_PROGRAM("cgroup/sock_create", vigil_override_sock_create, struct bpf_sock)

SEC("tp")
int vigil_override_clear(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0;
	__u64 *missed;

	if (bpf_map_delete_elem(&vigil_override, &tid))
		return 0;
	missed = bpf_map_lookup_elem(&vigil_override_missed, &zero);
	if (missed)
		__sync_fetch_and_add(missed, 1);
	return 0;
}
