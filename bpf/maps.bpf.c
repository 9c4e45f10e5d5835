// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The maps of the vigil object and its rodata (vigil_wakeup_bytes), defined
 * once here; the other files of the object declare them extern (lib/maps.h).
 * The object's license is stated here too: there is one per linked object.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define VIGIL_MAPS_DEFINE
#include "lib/maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The argument values the engine writes as bytes through casts (vigil.h:
 * vigil_sock, vigil_skb), named once so that their layouts are in the
 * object's BTF, from which user space reads them. Never read or written. */
const volatile struct {
	struct vigil_sock sock;
	struct vigil_skb skb;
} vigil_arg_layouts = {};
