/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef VIGIL_BOUND_H
#define VIGIL_BOUND_H

/*
 * idx, forced below max (to 0 otherwise) in the very register the access
 * then uses: a bounds check the compiler made on another copy of an index
 * is lost to the verifier. Callers check the range first; this only states it.
 */
#define VIGIL_BOUND(idx, max)                                              \
	({                                                                 \
		__u64 __idx = (idx);                                       \
		asm volatile("if %[i] < %[m] goto +1\n\t%[i] = 0"          \
			     : [i] "+r"(__idx)                             \
			     : [m] "i"(max));                              \
		__idx;                                                     \
	})

#endif /* VIGIL_BOUND_H */
