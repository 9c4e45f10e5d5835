/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Path of a struct path as its components, leaf first, each NUL-terminated,
 * by walking dentries in kernel memory (bpf_d_path is unavailable outside
 * iterators here). Mount points are crossed through struct mount, as the
 * kernel's d_path does; the walk stops at the task's root (so a chrooted or
 * containerised process gets the path it sees) or at its namespace's root.
 *
 * As d_path names them: a file with no parent (a memfd: "memfd:NAME") and an
 * unlinked one carry " (deleted)" on their leaf. One case differs from d_path
 * on purpose: a file bind-mounted on itself and detached (runc re-executes
 * itself so) is unreachable from any root and d_path says "/"; the walk
 * names it by its path within its own filesystem instead.
 */
#ifndef VIGIL_PATH_H
#define VIGIL_PATH_H

#include "vigil.h"
#include "lib/bound.h"

/* A path as leaf-first components. */
struct vigil_path_info {
	__u32 len;      /* bytes written, NULs included */
	__u32 depth;    /* components written */
	bool truncated; /* the walk stopped before the root */
};

struct vigil_path_walk {
	struct dentry *dentry;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct mount *root_mnt;
	char *buf;    /* holds limit + VIGIL_NAME_MAX bytes */
	__u16 *ends;  /* VIGIL_PATH_DEPTH entries: offset of each component's NUL */
	__u32 limit;  /* bytes the components may take, at most VIGIL_PATH_MAX */
	__u32 pos;    /* offset in buf of the next component */
	__u32 depth;  /* components written */
	__u32 done;   /* the root was reached */
};

static __always_inline struct mount *vigil_real_mount(struct vfsmount *vfsmnt)
{
	return (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
}

static const char deleted_suffix[] = " (deleted)";

/* One bpf_loop step: cross a mount point or write one component. */
static long vigil_path_step(__u32 index, void *ctx)
{
	struct vigil_path_walk *w = ctx;
	struct dentry *dentry = w->dentry, *parent;
	struct mount *mnt = w->mnt, *mnt_parent;
	const unsigned char *name;
	__u32 pos = w->pos, depth = w->depth, len;
	long n;

	if (dentry == w->root_dentry && mnt == w->root_mnt)
		goto root;
	parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == BPF_CORE_READ(mnt, mnt.mnt_root)) {
		mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt_parent && mnt_parent != mnt) {
			w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			w->mnt = mnt_parent;
			return 0;
		}
		/* A parentless mount: the namespace's root, or a detached file mount
		 * whose file is the leaf (then its own filesystem names it). */
		if (depth || parent == dentry)
			goto root;
	} else if (parent == dentry && depth) {
		goto root; /* the top of a detached file mount's filesystem */
	}
	if (depth >= VIGIL_PATH_DEPTH)
		return 1;

	len = BPF_CORE_READ(dentry, d_name.len);
	if (len >= VIGIL_NAME_MAX || pos + len + 1 + sizeof(deleted_suffix) > w->limit)
		return 1;
	name = BPF_CORE_READ(dentry, d_name.name);
	if (pos >= VIGIL_PATH_MAX) /* bound for the verifier; implied above */
		return 1;
	n = bpf_probe_read_kernel_str(w->buf + pos, len + 1, name);
	if (n <= 0)
		return 1;
	/* The leaf of a parentless file (memfd) or an unlinked one: " (deleted)", as d_path. */
	if (!depth && (parent == dentry || !BPF_CORE_READ(dentry, d_hash.pprev))) {
		bpf_probe_read_kernel(w->buf + VIGIL_BOUND(n - 1, VIGIL_NAME_MAX), sizeof(deleted_suffix),
				      deleted_suffix);
		n += sizeof(deleted_suffix) - 1;
	}
	w->pos = pos + n;
	w->ends[depth] = pos + n - 1;
	w->depth = depth + 1;
	if (!parent || parent == dentry) /* a memfd: its name is all there is */
		goto root;
	w->dentry = parent;
	return 0;
root:
	w->done = 1;
	return 1;
}

/*
 * Writes the components of `path` at buf[0..limit) (limit at most
 * VIGIL_PATH_MAX; buf has VIGIL_NAME_MAX bytes more) and the offset of each
 * one's NUL in ends[]. A walk stopped by the limit keeps the leaf side.
 * The budget of steps allows a mount crossing per component.
 */
static __always_inline void vigil_path_components(const struct path *path,
						  const struct path *root,
						  char *buf, __u32 limit, __u16 *ends,
						  struct vigil_path_info *out)
{
	struct vigil_path_walk w = {
		.dentry = BPF_CORE_READ(path, dentry),
		.mnt = vigil_real_mount(BPF_CORE_READ(path, mnt)),
		.root_dentry = BPF_CORE_READ(root, dentry),
		.root_mnt = vigil_real_mount(BPF_CORE_READ(root, mnt)),
		.buf = buf,
		.ends = ends,
		.limit = limit,
	};

	bpf_loop(2 * VIGIL_PATH_DEPTH, vigil_path_step, &w, 0);
	out->len = w.pos;
	out->depth = w.depth;
	out->truncated = !w.done;
}

struct vigil_forward {
	const char *lf;
	const __u16 *ends;
	char *out;
	__u32 len;
	__u32 depth;
	__u32 cap;
};

/* One bpf_loop step of vigil_path_forward: the k-th component from the root. */
static long vigil_forward_step(__u32 k, void *ctx)
{
	struct vigil_forward *f = ctx;
	__u32 i = f->depth - 1 - k, start, end, slash, n;

	if (i >= VIGIL_PATH_DEPTH)
		return 1;
	end = f->ends[i];
	start = i ? f->ends[VIGIL_BOUND(i - 1, VIGIL_PATH_DEPTH)] + 1 : 0;
	if (end >= f->len || start > end)
		return 1;
	slash = f->len - 1 - end; /* forward offset of the '/' before this component */
	if (slash >= f->cap)
		return 1;
	slash = VIGIL_BOUND(slash, VIGIL_NAME_MAX);
	f->out[slash] = '/';
	n = end - start;
	if (n > f->cap - 1 - slash)
		n = f->cap - 1 - slash;
	bpf_probe_read_kernel(f->out + slash + 1, VIGIL_BOUND(n, VIGIL_NAME_MAX), f->lf + start);
	return 0;
}

/*
 * Writes the first min(len, cap) bytes of the forward form of leaf-first
 * components ("ls\0bin\0usr\0" is "/usr/bin/ls", as long as its leaf-first
 * form) at out and returns their count; cap is below VIGIL_NAME_MAX and out
 * has 2 * VIGIL_NAME_MAX bytes of room (as far as the verifier can tell,
 * each write starts below VIGIL_NAME_MAX and is as long).
 * One copy per component, root side first, until cap is reached.
 */
static __always_inline __u32 vigil_path_forward(const char *lf, __u32 len, const __u16 *ends,
						__u32 depth, char *out, __u32 cap)
{
	struct vigil_forward f = {
		.lf = lf,
		.ends = ends,
		.out = out,
		.len = len,
		.depth = depth,
		.cap = cap,
	};

	bpf_loop(depth, vigil_forward_step, &f, 0);
	return len < cap ? len : cap;
}

/*
 * The executable of a process as struct vigil_proc_state keeps it: the first
 * VIGIL_STRING_MAX - 1 bytes of its forward path, NUL-padded, from a
 * leaf-first walk. A walk that stopped before the root leaves only the flag.
 */
static __always_inline void vigil_exe_state(struct vigil_proc_state *state, const char *lf,
					    const __u16 *ends, const struct vigil_path_info *info)
{
	__builtin_memset(state->exe, 0, sizeof(state->exe));
	state->exe_len = 0;
	state->flags = VIGIL_F_EXE_TRUNCATED;
	if (info->truncated)
		return;
	state->exe_len = vigil_path_forward(lf, info->len, ends, info->depth, state->exe,
					    VIGIL_STRING_MAX - 1);
	if (info->len < VIGIL_STRING_MAX)
		state->flags = 0;
}

/* vigil_exe_state of `task`'s mm->exe_file, walked into buf (VIGIL_PATH_MAX +
 * VIGIL_NAME_MAX bytes) and ends (VIGIL_PATH_DEPTH). */
static __always_inline void vigil_task_exe(struct task_struct *task, char *buf, __u16 *ends,
					   struct vigil_proc_state *state)
{
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	struct vigil_path_info info;
	struct path root;

	BPF_CORE_READ_INTO(&root, task, fs, root);
	vigil_path_components(&exe->f_path, &root, buf, VIGIL_PATH_MAX, ends, &info);
	vigil_exe_state(state, buf, ends, &info);
}

#endif /* VIGIL_PATH_H */
