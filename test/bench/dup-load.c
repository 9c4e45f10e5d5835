// SPDX-License-Identifier: Apache-2.0
/*
 * dup-load [-b] N: N iterations of dup(2) of an open fd then close(2) of the
 * new one, pinned to the CPU it starts on (after a warm-up of N/10), timed in
 * chunks of CHUNK iterations; prints {"meanNs":…,"bestNs":…}, ns per
 * iteration over the whole run and in its fastest chunk. On a shared machine
 * the best chunk is the one no other task preempted: the figure to compare.
 * The load of the translated-hook rows of `npm run bench`: dup is one of the
 * syscalls that serve fd_install.
 * With -b, the reference: it first loads hookcost.bpf.o (found next to this
 * binary) and attaches its program that returns at once to
 * syscalls:sys_exit_dup, where fd_install is served, for the duration of
 * the loop.
 */
#define _GNU_SOURCE
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench-common.h"

#define CHUNK 10000ULL

static void dup_close(void *state)
{
	int copy = dup(*(int *)state);

	if (copy < 0)
		die("dup", errno);
	close(copy);
}

static struct bpf_link *attach(struct bpf_object *obj, const char *name)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, name);
	struct bpf_link *link;

	if (!prog)
		die(name, ENOENT);
	link = bpf_program__attach(prog);
	if (!link)
		die(name, errno);
	return link;
}

int main(int argc, char **argv)
{
	int bare = argc == 3 && strcmp(argv[1], "-b") == 0;
	struct bpf_link *exit_link = NULL;
	struct bpf_object *obj = NULL;
	char dir[PATH_MAX], path[PATH_MAX + 32];
	unsigned long long n;
	double mean, best;
	cpu_set_t cpu;
	char *end;
	ssize_t len;
	int fd, err;

	if (argc != 2 + bare) {
		fprintf(stderr, "usage: dup-load [-b] N\n");
		return 2;
	}
	n = strtoull(argv[1 + bare], &end, 10);
	if (*end || !n) {
		fprintf(stderr, "dup-load: N must be a positive number, got %s\n", argv[1 + bare]);
		return 2;
	}
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("/dev/null", errno);
	CPU_ZERO(&cpu);
	CPU_SET(sched_getcpu(), &cpu);
	if (sched_setaffinity(0, sizeof(cpu), &cpu))
		die("sched_setaffinity", errno);

	if (bare) {
		len = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
		if (len < 0)
			die("readlink /proc/self/exe", errno);
		dir[len] = 0;
		dirname(dir);
		snprintf(path, sizeof(path), "%s/hookcost.bpf.o", dir);
		obj = bpf_object__open_file(path, NULL);
		if (!obj)
			die(path, errno);
		err = bpf_object__load(obj);
		if (err)
			die(path, err);
		exit_link = attach(obj, "hookcost_dup_exit");
	}

	best = bench_best_ns(dup_close, &fd, n, CHUNK, &mean);
	printf("{\"meanNs\":%.1f,\"bestNs\":%.1f}\n", mean, best);

	bpf_link__destroy(exit_link);
	bpf_object__close(obj);
	return 0;
}
