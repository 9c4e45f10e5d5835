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
 * binary) and attaches its programs that return at once to
 * syscalls:sys_enter_dup and sys_exit_dup for the duration of the loop.
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
#include <time.h>
#include <unistd.h>
#include "bench-common.h"

#define CHUNK 10000ULL

static double ns_per_iteration(int fd, unsigned long long n)
{
	double start = now_ns();

	for (unsigned long long i = 0; i < n; i++) {
		int copy = dup(fd);

		if (copy < 0)
			die("dup", errno);
		close(copy);
	}
	return (now_ns() - start) / n;
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
	struct bpf_link *enter = NULL, *exit_link = NULL;
	struct bpf_object *obj = NULL;
	char dir[PATH_MAX], path[PATH_MAX + 32];
	unsigned long long n, done, chunk;
	double ns, start, best = 1e300;
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
		enter = attach(obj, "hookcost_dup_enter");
		exit_link = attach(obj, "hookcost_dup_exit");
	}

	ns_per_iteration(fd, n / 10 ? n / 10 : 1); /* warm up */
	start = now_ns();
	for (done = 0; done < n; done += chunk) {
		chunk = n - done < CHUNK ? n - done : CHUNK;
		ns = ns_per_iteration(fd, chunk);
		if (ns < best)
			best = ns;
	}
	printf("{\"meanNs\":%.1f,\"bestNs\":%.1f}\n", (now_ns() - start) / n, best);

	bpf_link__destroy(exit_link);
	bpf_link__destroy(enter);
	bpf_object__close(obj);
	return 0;
}
