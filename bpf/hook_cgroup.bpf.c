// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
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
#include "lib/maps.h"

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
