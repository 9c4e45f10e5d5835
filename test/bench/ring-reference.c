// SPDX-License-Identifier: Apache-2.0
/*
 * ring-reference N: the reference ring-buffer consumer the addon is measured
 * against. Loads ringload.bpf.o (next to this binary) for a child running
 * `getpid-load -w N`, releases the child once the program is attached, reads
 * the ring the way the addon's thread does (native/src/ring_reader.cc:
 * ring_buffer__poll with a 10 ms timeout, then ring_buffer__consume, since
 * wakeups are batched in the kernel; a 100 us pause after a cycle that read
 * less than 64 KiB) until the child has exited and the ring is empty, and
 * prints one JSON line:
 * {"records":…,"bytes":…,"lost":…,"ordered":…,"seconds":…,"recordsPerSecond":…}
 */
#define _GNU_SOURCE
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>

#include "vigil.h"
#include "bench-common.h"

#define POLL_TIMEOUT_MS 10
/* As in the addon: after a poll cycle that read less than this, pause a moment. */
#define COALESCE_BYTES (64 * 1024)
#define COALESCE_SLEEP_NS 100000

struct counts {
	unsigned long long records, bytes, last_seq;
	int ordered;
};

static int on_sample(void *ctx, void *data, size_t size)
{
	struct counts *c = ctx;
	const struct vigil_bench_record *rec = data;

	/* Read the sequence number like the JS consumer does, so both touch every record. */
	if (size >= sizeof(*rec)) {
		if (c->records && rec->seq <= c->last_seq)
			c->ordered = 0;
		c->last_seq = rec->seq;
	}
	c->records++;
	c->bytes += size;
	return 0;
}

/*
 * Writes a u32 `const volatile` global before load: finds it in the .rodata
 * datasec, then replaces the section's initial value with a patched copy.
 */
static void set_rodata_u32(struct bpf_object *obj, const char *name, __u32 value)
{
	const struct btf *btf = bpf_object__btf(obj);
	const struct btf_type *sec;
	const struct btf_var_secinfo *vsi;
	struct bpf_map *map, *rodata = NULL;
	const void *initial;
	size_t size;
	char *copy;
	int id, i;

	bpf_object__for_each_map(map, obj) {
		const char *map_name = bpf_map__name(map);
		size_t len = strlen(map_name);

		if (bpf_map__is_internal(map) && len >= 7 && strcmp(map_name + len - 7, ".rodata") == 0)
			rodata = map;
	}
	id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -ENOENT;
	if (!rodata || id < 0)
		die("find .rodata", ENOENT);
	initial = bpf_map__initial_value(rodata, &size);
	sec = btf__type_by_id(btf, id);
	vsi = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vsi++) {
		const struct btf_type *var = btf__type_by_id(btf, vsi->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), name) != 0)
			continue;
		if (vsi->size != sizeof(value) || vsi->offset + sizeof(value) > size)
			die(name, EINVAL);
		copy = malloc(size);
		if (!copy)
			die("malloc", ENOMEM);
		memcpy(copy, initial, size);
		memcpy(copy + vsi->offset, &value, sizeof(value));
		if (bpf_map__set_initial_value(rodata, copy, size))
			die("set .rodata", errno);
		free(copy);
		return;
	}
	die(name, ENOENT);
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct counts counts = { .ordered = 1 };
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct ring_buffer *rb;
	unsigned long long lost = 0;
	__u64 *per_cpu;
	__u32 zero = 0;
	int go[2], ncpus, status, err, i;
	ssize_t len;
	pid_t child;
	double start, seconds;

	if (argc != 2 || strspn(argv[1], "0123456789") != strlen(argv[1]) || !*argv[1]) {
		fprintf(stderr, "usage: ring-reference N\n");
		return 2;
	}
	len = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (len < 0)
		die("readlink /proc/self/exe", errno);
	dir[len] = 0;
	dirname(dir);

	if (pipe(go))
		die("pipe", errno);
	child = fork();
	if (child < 0)
		die("fork", errno);
	if (child == 0) {
		/* getpid-load -w blocks on stdin until the program is attached. */
		dup2(go[0], 0);
		close(go[0]);
		close(go[1]);
		snprintf(path, sizeof(path), "%s/getpid-load", dir);
		execl(path, "getpid-load", "-w", argv[1], (char *)NULL);
		perror("ring-reference: exec getpid-load");
		_exit(127);
	}
	close(go[0]);

	snprintf(path, sizeof(path), "%s/ringload.bpf.o", dir);
	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		die(path, errno);
	set_rodata_u32(obj, "bench_tgid", child);
	err = bpf_object__load(obj);
	if (err)
		die("load", err);
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog))
			die(bpf_program__name(prog), errno);
	}
	rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "vigil_events"), on_sample, &counts, NULL);
	if (!rb)
		die("ring_buffer__new", errno);

	start = now_ns();
	if (write(go[1], "x", 1) != 1)
		die("release the child", errno);
	for (;;) {
		unsigned long long cycle_start = counts.bytes;

		err = ring_buffer__poll(rb, POLL_TIMEOUT_MS);
		if (err < 0 && err != -EINTR)
			die("ring_buffer__poll", err);
		ring_buffer__consume(rb);
		if (counts.bytes > cycle_start && counts.bytes - cycle_start < COALESCE_BYTES) {
			struct timespec pause = { 0, COALESCE_SLEEP_NS };

			nanosleep(&pause, NULL);
		}
		if (waitpid(child, &status, WNOHANG) == child)
			break;
	}
	ring_buffer__consume(rb); /* what the child wrote before it exited */
	seconds = (now_ns() - start) / 1e9;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "ring-reference: getpid-load failed (status %d)\n", status);
		return 1;
	}

	ncpus = libbpf_num_possible_cpus();
	per_cpu = calloc(ncpus, sizeof(*per_cpu));
	if (!per_cpu || ncpus < 0)
		die("libbpf_num_possible_cpus", ENOMEM);
	err = bpf_map__lookup_elem(bpf_object__find_map_by_name(obj, "vigil_lost"), &zero, sizeof(zero),
				   per_cpu, ncpus * sizeof(*per_cpu), 0);
	if (err)
		die("lookup vigil_lost", err);
	for (i = 0; i < ncpus; i++)
		lost += per_cpu[i];

	printf("{\"records\":%llu,\"bytes\":%llu,\"lost\":%llu,\"ordered\":%s,\"seconds\":%.6f,\"recordsPerSecond\":%.0f}\n",
	       counts.records, counts.bytes, lost, counts.ordered ? "true" : "false", seconds,
	       counts.records / seconds);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	free(per_cpu);
	return 0;
}
