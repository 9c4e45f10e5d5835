/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ring buffer every Vigil object writes to, and the one way to write it.
 *
 * Wakeups are batched (a default wakeup is a self-IPI that traps to the
 * hypervisor): a record is submitted without a wakeup unless it is the one
 * that brings the pending bytes to `vigil_wakeup_bytes`; the reader also
 * polls with a short timeout, and keeps reading while records are there,
 * so a quiet ring is still drained promptly, and a reader gone idle is woken by
 * the first record (vigil_reader_idle).
 * A record the ring has no room for is counted per CPU in vigil_lost.
 */
#ifndef VIGIL_RING_H
#define VIGIL_RING_H

#include "vigil.h"

#define VIGIL_RING_BYTES (16 * 1024 * 1024)

/*
 * In the vigil object, linked from several files, lib/maps.h sets VIGIL_MAP
 * to `extern` in every file but maps.bpf.c, which defines the maps. A
 * standalone object (test/bench) leaves it unset and owns its ring.
 */
#ifndef VIGIL_MAP
#define VIGIL_MAP
#define VIGIL_MAPS_DEFINE
#endif

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, VIGIL_RING_BYTES);
} vigil_events SEC(".maps");

VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} vigil_lost SEC(".maps");

/*
 * vigil_reader_idle[0]: set by the reader when it turns to long idle polls;
 * the next record forces a wakeup and clears it, so the first record after a
 * quiet spell is read at once (native RingReader's idleWakeMap).
 */
VIGIL_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} vigil_reader_idle SEC(".maps");

/* Pending bytes that trigger a wakeup; set before load (rodata). */
#ifdef VIGIL_MAPS_DEFINE
const volatile __u64 vigil_wakeup_bytes = 256 * 1024;
#else
extern const volatile __u64 vigil_wakeup_bytes;
#endif

static __always_inline void vigil_count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&vigil_lost, &zero);

	if (lost)
		*lost += 1; /* per-CPU slot: no other writer */
}

/* Copies `size` bytes of `record` into the ring. Returns 0 or a negative error. */
static __always_inline long vigil_emit(void *record, __u64 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u32 zero = 0, *idle = bpf_map_lookup_elem(&vigil_reader_idle, &zero);
	__u64 pending;
	long err;

	/* Two CPUs may both find it set: one wakeup too many, no harm. */
	if (idle && *idle) {
		*idle = 0;
		flags = BPF_RB_FORCE_WAKEUP;
	} else {
		/* Only the record that takes the ring across the mark wakes the
		 * reader: records after it would each pay a self-IPI for a reader
		 * already woken, or for one that is frozen and cannot read. */
		pending = bpf_ringbuf_query(&vigil_events, BPF_RB_AVAIL_DATA);
		if (pending < vigil_wakeup_bytes && pending + size >= vigil_wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	err = bpf_ringbuf_output(&vigil_events, record, size, flags);
	if (err)
		vigil_count_lost();
	return err;
}

#endif /* VIGIL_RING_H */
