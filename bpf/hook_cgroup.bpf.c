// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Override without bpf_override_return: a connect whose entry hook decided
 * an Override (vigil_policy_act wrote the errno under the thread's id in
 * vigil_override) fails in the cgroup connect programs, which the kernel
 * runs later in the same call, before any packet leaves. They are attached
 * to the cgroup v2 root, so they see every process; a thread with no entry
 * costs one hash lookup. vigil_override_clear, at the syscall's exit,
 * removes an entry no cgroup program took (a connect on a socket these
 * programs never see, such as AF_UNIX, or one that failed before them).
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

SEC("cgroup/connect4")
int vigil_override_connect4(struct bpf_sock_addr *ctx)
{
	return override_verdict();
}

SEC("cgroup/connect6")
int vigil_override_connect6(struct bpf_sock_addr *ctx)
{
	return override_verdict();
}

SEC("tp")
int vigil_override_clear(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&vigil_override, &tid);
	return 0;
}
