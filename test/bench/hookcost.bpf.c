// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The reference of test/bench/hook-cost.c: a program on
 * syscalls:sys_enter_getpid that returns at once, so that what it adds to
 * getpid(2) is the price of the tracepoint itself, which any hook pays.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp/syscalls/sys_enter_getpid")
int hookcost_getpid(void *ctx)
{
	return 0;
}
