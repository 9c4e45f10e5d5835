// SPDX-License-Identifier: Apache-2.0
/*
 * hook-cost [CALLS [RUNS]]: what a policy hook costs a system call its
 * selectors reject. Measures ns per getpid(2) (CALLS calls through syscall(2),
 * pinned to one CPU; the median of RUNS runs, the three cases interleaved)
 *   bare:      nothing of ours attached to syscalls:sys_enter_getpid;
 *   reference: hookcost.bpf.o's program there, which returns at once;
 *   vigil:     vigil.bpf.o's vigil_sys_enter (on the raw sys_enter
 *              tracepoint, for every syscall, as the sensor attaches it)
 *              with getpid routed to a hook whose one selector rejects
 *              every call (matchPIDs In [0]);
 * and, for a getpid no hook is on while another syscall's is:
 *   elsewhereReference: hookcost.bpf.o's program on syscalls:sys_enter_dup,
 *              which sends every syscall down the kernel's traced path;
 *   elsewhereVigil: the same hook on dup as the sensor serves it,
 *              vigil_sys_enter_one on syscalls:sys_enter_dup, which getpid
 *              does not run;
 *   elsewhereRawVigil: the hook on read, one of the syscalls the sensor
 *              routes through vigil_sys_enter, which runs for every syscall
 *              and returns at its routing table;
 * and prints one JSON line {"bareNs":…,"referenceNs":…,"vigilNs":…,
 * "elsewhereReferenceNs":…,"elsewhereVigilNs":…,"elsewhereRawVigilNs":…}.
 * The objects are found next to this binary (build/bench) and in ../bpf.
 * Defaults: 2000000 calls, 7 runs.
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>

#include "vigil.h"
#include "bench-common.h"

#define HOOK_ID 0
#define ATTACHMENT 0
#define POLICY 0
#define MAX_RUNS 101

static double ns_per_call(unsigned long long calls)
{
	double start = now_ns();

	for (unsigned long long i = 0; i < calls; i++)
		syscall(SYS_getpid);
	return (now_ns() - start) / calls;
}

static int compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), compare);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct bpf_object *load(const char *path)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	int err;

	if (!obj)
		die(path, errno);
	err = bpf_object__load(obj);
	if (err)
		die(path, err);
	return obj;
}

static void update(struct bpf_object *obj, const char *map, __u32 key, const void *value)
{
	int err = bpf_map_update_elem(bpf_object__find_map_fd_by_name(obj, map), &key, value, BPF_ANY);

	if (err)
		die(map, err);
}

/* A hook on getpid whose one selector matches pid 0, which makes no system calls. */
static void reject_all(struct bpf_object *obj)
{
	struct vigil_policy_state policy = { .enabled = 1, .mode = VIGIL_MODE_ENFORCE };
	struct vigil_attachment attachment = { .nhooks = 1, .hooks = { HOOK_ID } };
	struct vigil_syscall_attachment route = { .enter = ATTACHMENT + 1 };
	static struct vigil_hook hook;
	struct vigil_selector *sel = &hook.selectors[0];

	hook.policy = POLICY;
	hook.kind = VIGIL_HOOK_KPROBE;
	hook.flags = VIGIL_HOOKF_ACTIVE;
	hook.nselectors = 1;
	sel->n_pids = 1;
	sel->pids.op = VIGIL_OP_EQUAL;
	sel->pids.nvalues = 1;
	sel->pids.follow_slot = VIGIL_NO_SLOT;
	sel->binaries.follow_slot = VIGIL_NO_SLOT;
	sel->n_actions = 1;
	sel->actions[0].kind = VIGIL_ACTION_POST;
	update(obj, "vigil_policies", POLICY, &policy);
	update(obj, "vigil_hooks", HOOK_ID, &hook);
	update(obj, "vigil_attachments", ATTACHMENT, &attachment);
	update(obj, "vigil_syscall_attachments", SYS_getpid, &route);
}

/* getpid's route moved to read, with the same hook, which dup's own program finds too. */
static void route_elsewhere(struct bpf_object *obj)
{
	struct vigil_syscall_attachment none = { 0 }, raw = { .enter = ATTACHMENT + 1 }, own = { .own_enter = ATTACHMENT + 1 };

	update(obj, "vigil_syscall_attachments", SYS_getpid, &none);
	update(obj, "vigil_syscall_attachments", SYS_read, &raw);
	update(obj, "vigil_syscall_attachments", SYS_dup, &own);
}

/* Each program where its section says: syscalls:sys_enter_getpid, or the raw sys_enter tracepoint. */
static struct bpf_link *attach(struct bpf_object *obj, const char *prog_name)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, prog_name);
	struct bpf_link *link;

	if (!prog)
		die(prog_name, ENOENT);
	link = bpf_program__attach(prog);
	if (!link)
		die(prog_name, errno);
	return link;
}

static double measure_link(struct bpf_link *link, unsigned long long calls)
{
	double ns = ns_per_call(calls);

	bpf_link__destroy(link);
	return ns;
}

static double measure(struct bpf_object *obj, const char *prog_name, unsigned long long calls)
{
	return measure_link(obj ? attach(obj, prog_name) : NULL, calls);
}

/* The hook on dup as the sensor serves it: vigil_sys_enter_one on dup's own tracepoint. */
static struct bpf_link *attach_on_dup(struct bpf_object *obj)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "vigil_sys_enter_one");
	struct bpf_link *link;

	if (!prog)
		die("vigil_sys_enter_one", ENOENT);
	link = bpf_program__attach_tracepoint(prog, "syscalls", "sys_enter_dup");
	if (!link)
		die("vigil_sys_enter_one on syscalls:sys_enter_dup", errno);
	return link;
}

int main(int argc, char **argv)
{
	unsigned long long calls = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
	int runs = argc > 2 ? atoi(argv[2]) : 7;
	double bare[MAX_RUNS], reference[MAX_RUNS], vigil[MAX_RUNS], elsewhere_ref[MAX_RUNS], elsewhere_vigil[MAX_RUNS],
		elsewhere_raw[MAX_RUNS];
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct bpf_object *ref_obj, *vigil_obj;
	cpu_set_t cpu;
	ssize_t len;

	if (argc > 3 || !calls || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: hook-cost [CALLS [RUNS (1-%d)]]\n", MAX_RUNS);
		return 2;
	}
	len = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (len < 0)
		die("readlink /proc/self/exe", errno);
	dir[len] = 0;
	dirname(dir);

	CPU_ZERO(&cpu);
	CPU_SET(sched_getcpu(), &cpu);
	if (sched_setaffinity(0, sizeof(cpu), &cpu))
		die("sched_setaffinity", errno);

	snprintf(path, sizeof(path), "%s/hookcost.bpf.o", dir);
	ref_obj = load(path);
	snprintf(path, sizeof(path), "%s/../bpf/vigil.bpf.o", dir);
	vigil_obj = load(path);
	reject_all(vigil_obj);

	ns_per_call(calls / 10); /* warm up */
	for (int i = 0; i < runs; i++) {
		bare[i] = measure(NULL, NULL, calls);
		reference[i] = measure(ref_obj, "hookcost_getpid", calls);
		vigil[i] = measure(vigil_obj, "vigil_sys_enter", calls);
	}
	route_elsewhere(vigil_obj);
	for (int i = 0; i < runs; i++) {
		elsewhere_ref[i] = measure(ref_obj, "hookcost_dup_enter", calls);
		elsewhere_vigil[i] = measure_link(attach_on_dup(vigil_obj), calls);
		elsewhere_raw[i] = measure(vigil_obj, "vigil_sys_enter", calls);
	}
	printf("{\"bareNs\":%.1f,\"referenceNs\":%.1f,\"vigilNs\":%.1f,\"elsewhereReferenceNs\":%.1f,\"elsewhereVigilNs\":%.1f,"
	       "\"elsewhereRawVigilNs\":%.1f}\n",
	       median(bare, runs), median(reference, runs), median(vigil, runs), median(elsewhere_ref, runs),
	       median(elsewhere_vigil, runs), median(elsewhere_raw, runs));
	bpf_object__close(vigil_obj);
	bpf_object__close(ref_obj);
	return 0;
}
