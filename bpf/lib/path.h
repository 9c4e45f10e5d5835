/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Path of a struct path as its components, leaf first, each NUL-terminated,
 * by walking dentries in kernel memory (bpf_d_path is unavailable outside
 * iterators here). Mount points are crossed through struct mount, as the
 * kernel's d_path does; the walk stops at the task's root (so a chrooted or
 * containerised process gets the path it sees) or at its namespace's root.
 */
#ifndef VIGIL_PATH_H
#define VIGIL_PATH_H

#include "vigil.h"

struct vigil_path_walk {
	struct dentry *dentry;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct mount *root_mnt;
	char *buf;    /* holds VIGIL_PATH_MAX + VIGIL_NAME_MAX bytes */
	__u32 pos;    /* offset in buf of the next component */
	__u32 depth;  /* components written */
	__u32 done;   /* the root was reached */
};

static __always_inline struct mount *vigil_real_mount(struct vfsmount *vfsmnt)
{
	return (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
}

/* One bpf_loop step: cross a mount point or write one component. */
static long vigil_path_step(__u32 index, void *ctx)
{
	struct vigil_path_walk *w = ctx;
	struct dentry *dentry = w->dentry, *parent;
	struct mount *mnt = w->mnt, *mnt_parent;
	const unsigned char *name;
	__u32 pos = w->pos, len;
	long n;

	if (dentry == w->root_dentry && mnt == w->root_mnt)
		goto root;
	if (dentry == BPF_CORE_READ(mnt, mnt.mnt_root)) {
		mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (!mnt_parent || mnt_parent == mnt)
			goto root;
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mnt_parent;
		return 0;
	}
	if (w->depth >= VIGIL_PATH_DEPTH)
		return 1;

	len = BPF_CORE_READ(dentry, d_name.len);
	if (len >= VIGIL_NAME_MAX || pos + len + 1 > VIGIL_PATH_MAX)
		return 1;
	name = BPF_CORE_READ(dentry, d_name.name);
	if (pos >= VIGIL_PATH_MAX) /* bound for the verifier; implied above */
		return 1;
	n = bpf_probe_read_kernel_str(w->buf + pos, len + 1, name);
	if (n <= 0)
		return 1;
	w->pos = pos + n;
	w->depth++;
	parent = BPF_CORE_READ(dentry, d_parent);
	if (!parent || parent == dentry) /* disconnected, e.g. a memfd: its name is all there is */
		goto root;
	w->dentry = parent;
	return 0;
root:
	w->done = 1;
	return 1;
}

/*
 * Writes the components of `path` at buf[0..VIGIL_PATH_MAX) and returns the
 * bytes written; *truncated is set when the walk stopped before the root.
 * The budget of steps allows a mount crossing per component.
 */
static __always_inline __u32 vigil_path_components(const struct path *path,
						   const struct path *root,
						   char *buf, bool *truncated)
{
	struct vigil_path_walk w = {
		.dentry = BPF_CORE_READ(path, dentry),
		.mnt = vigil_real_mount(BPF_CORE_READ(path, mnt)),
		.root_dentry = BPF_CORE_READ(root, dentry),
		.root_mnt = vigil_real_mount(BPF_CORE_READ(root, mnt)),
		.buf = buf,
	};

	bpf_loop(2 * VIGIL_PATH_DEPTH, vigil_path_step, &w, 0);
	*truncated = !w.done;
	return w.pos;
}

#endif /* VIGIL_PATH_H */
