// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The references of the hook-cost rows of `npm run bench`: programs that
 * return at once, so that what they add to a system call is the price of the
 * tracepoints themselves, which any hook there pays.
 *   hookcost_getpid: syscalls:sys_enter_getpid (test/bench/hook-cost.c);
 *   hookcost_dup_enter: syscalls:sys_enter_dup, the traced syscall path a
 *     getpid pays while dup is hooked (test/bench/hook-cost.c);
 *   hookcost_dup_exit: syscalls:sys_exit_dup, where the translated
 *     fd_install hook on dup is served (test/bench/dup-load.c -b).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp/syscalls/sys_enter_getpid")
int hookcost_getpid(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_enter_dup")
int hookcost_dup_enter(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_exit_dup")
int hookcost_dup_exit(void *ctx)
{
	return 0;
}
