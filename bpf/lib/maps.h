/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map shared by the files of the vigil object (vigil.h lists the ABI
 * ones). maps.bpf.c defines them (VIGIL_MAPS_DEFINE); every other file sees
 * them `extern`, and the linker (bpftool gen object) checks that the
 * declarations agree. Sizes are defaults the sensor may change before load.
 */
#ifndef VIGIL_MAPS_H
#define VIGIL_MAPS_H

#include "vigil.h"
#include "lib/eval.h"

#ifdef VIGIL_MAPS_DEFINE
#define VIGIL_MAP
#else
#define VIGIL_MAP extern
#endif

#include "lib/ring.h"

#define VIGIL_STRING_ENTRIES 16384
#define VIGIL_PROCS_ENTRIES 32768
#define VIGIL_INFLIGHT_ENTRIES 16384
#define VIGIL_RATELIMIT_ENTRIES 8192
#define VIGIL_BINARIES_SEEN_ENTRIES 16384
#define VIGIL_SCOPE_ENTRIES 16384
#define VIGIL_ADDR_ENTRIES 4096
#define VIGIL_OVERRIDE_ENTRIES 4096
#define VIGIL_SOCK_OWNER_ENTRIES 16384

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIGIL_SCOPE_ENTRIES);
	__type(key, struct vigil_scope_key);
	__type(value, __u8);
} vigil_policy_cgroups SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct vigil_hook);
} vigil_hooks SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_ATTACHMENTS);
	__type(key, __u32);
	__type(value, struct vigil_attachment);
} vigil_attachments SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_SYSCALL_NR);
	__type(key, __u32);
	__type(value, struct vigil_syscall_attachment);
} vigil_syscall_attachments SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_COOKIELESS_PROGRAMS);
	__type(key, __u32);
	__type(value, __u32);
} vigil_cookieless_attachments SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_HOOKS * (VIGIL_MAX_HOOK_ARGS + 1));
	__type(key, __u32);
	__type(value, struct vigil_resolve_path);
} vigil_resolve_paths SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_POLICIES);
	__type(key, __u32);
	__type(value, struct vigil_policy_state);
} vigil_policies SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_MAX_POLICIES);
	__type(key, __u32);
	__type(value, struct vigil_policy_stats);
} vigil_policy_stats SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIGIL_STRING_ENTRIES);
	__type(key, struct vigil_string_key);
	__type(value, __u8);
} vigil_str_equal SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VIGIL_STRING_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vigil_string_key);
	__type(value, __u8);
} vigil_str_prefix SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VIGIL_STRING_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vigil_string_key);
	__type(value, __u8);
} vigil_str_postfix SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIGIL_PROCS_ENTRIES);
	__type(key, __u32);
	__type(value, struct vigil_proc_state);
} vigil_procs SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_FOLLOW_SLOTS);
	__type(key, __u32);
	__type(value, struct vigil_follow_slot);
} vigil_follow_slots SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIGIL_INFLIGHT_ENTRIES);
	__type(key, struct vigil_inflight_key);
	__type(value, struct vigil_inflight);
} vigil_inflight SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIGIL_RATELIMIT_ENTRIES);
	__type(key, struct vigil_process_selector_key);
	__type(value, __u64);
} vigil_ratelimit SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIGIL_BINARIES_SEEN_ENTRIES);
	__type(key, struct vigil_process_selector_key);
	__type(value, struct vigil_binaries_verdict);
} vigil_binaries_seen SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} vigil_policy_lost SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VIGIL_ADDR_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vigil_addr_key);
	__type(value, __u8);
} vigil_addr_lpm SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIGIL_OVERRIDE_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} vigil_override SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} vigil_override_missed SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIGIL_SOCK_OWNER_ENTRIES);
	__type(key, __u64);
	__type(value, struct vigil_sock_owner);
} vigil_sock_owner SEC(".maps");

/* Not ABI: the policy engine's per-event state, one per VIGIL_SLOT_*. */
VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_EVAL_SLOTS);
	__type(key, __u32);
	__type(value, struct vigil_eval);
} vigil_eval_scratch SEC(".maps");

static __always_inline void vigil_count_policy_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&vigil_policy_lost, &zero);

	if (lost)
		__sync_fetch_and_add(lost, 1); /* uprobe programs may be preempted mid-update */
}

#endif /* VIGIL_MAPS_H */
