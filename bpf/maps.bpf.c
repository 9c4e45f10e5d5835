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
