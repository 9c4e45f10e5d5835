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

/* One iteration of a load, on its state. */
typedef void (*bench_step)(void *state);

/*
 * n iterations of step after a warm-up of n/10, timed in chunks of `chunk`;
 * returns ns per iteration in the fastest chunk (on a shared machine, the
 * one no other task preempted: the figure to compare) and sets *mean_ns to
 * ns per iteration over the whole run.
 */
static inline double bench_best_ns(bench_step step, void *state, unsigned long long n,
				   unsigned long long chunk, double *mean_ns)
{
	unsigned long long i, done, len;
	double start, t, ns, best = 1e300;

	for (i = 0; i < (n / 10 ? n / 10 : 1); i++)
		step(state);
	start = now_ns();
	for (done = 0; done < n; done += len) {
		len = n - done < chunk ? n - done : chunk;
		t = now_ns();
		for (i = 0; i < len; i++)
			step(state);
		ns = (now_ns() - t) / len;
		if (ns < best)
			best = ns;
	}
	*mean_ns = (now_ns() - start) / n;
	return best;
}

#endif
