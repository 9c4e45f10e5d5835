/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every benchmark program needs: a fatal error that names the program,
 * and a monotonic clock in nanoseconds. Needs _GNU_SOURCE (for
 * program_invocation_short_name) before the first include.
 */
#ifndef VIGIL_BENCH_COMMON_H
#define VIGIL_BENCH_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* err is an errno value, or a libbpf error (its negation). */
static inline void die(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(err < 0 ? -err : err));
	exit(1);
}

static inline double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

#endif
