/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Snapshot of a task's identity (struct vigil_process), read with CO-RE so the
 * object loads on any kernel with BTF. A field a kernel lacks reads as 0.
 */
#ifndef VIGIL_TASK_H
#define VIGIL_TASK_H

#include "vigil.h"

/* Not in BTF (a #define in linux/sched/signal.h); stable since 2.6. */
#define VIGIL_SIGNAL_GROUP_EXIT 0x00000004

/* thread_info.status: the task is in a 32-bit syscall (x86 TS_COMPAT, what in_ia32_syscall() tests). */
#define VIGIL_TS_COMPAT 0x0002

static __always_inline bool vigil_in_compat_syscall(void)
{
	return bpf_get_current_task_btf()->thread_info.status & VIGIL_TS_COMPAT;
}

/* The upid at `pid->level`: the pid as its own namespace numbers it. */
static __always_inline void vigil_read_upid(struct pid *pid, struct upid *out)
{
	__u32 level = BPF_CORE_READ(pid, level);
	void *numbers = (void *)pid + bpf_core_field_offset(struct pid, numbers);

	bpf_probe_read_kernel(out, sizeof(*out),
			      numbers + (__u64)level * bpf_core_type_size(struct upid));
}

static __always_inline void vigil_read_user_ns(const struct user_namespace *ns, struct vigil_user_ns *out)
{
	out->level = BPF_CORE_READ(ns, level);
	out->owner = BPF_CORE_READ(ns, owner.val);
	out->group = BPF_CORE_READ(ns, group.val);
	out->inum = BPF_CORE_READ(ns, ns.inum);
}

static __always_inline void vigil_read_creds(struct task_struct *task,
					     struct vigil_creds *c)
{
	/* Direct loads through the task's BTF pointer (`task` is one: from a
	 * tp_btf argument or bpf_get_current_task_btf), as for the namespaces. */
	const struct cred *cred = task->cred;

	c->uid = cred->uid.val;
	c->euid = cred->euid.val;
	c->suid = cred->suid.val;
	c->fsuid = cred->fsuid.val;
	c->gid = cred->gid.val;
	c->egid = cred->egid.val;
	c->sgid = cred->sgid.val;
	c->fsgid = cred->fsgid.val;
	c->securebits = cred->securebits;
	c->cap_effective = cred->cap_effective.val;
	c->cap_permitted = cred->cap_permitted.val;
	c->cap_inheritable = cred->cap_inheritable.val;
	c->auid = 4294967295u; /* what the kernel reports without CONFIG_AUDIT */
	if (bpf_core_field_exists(task->loginuid))
		c->auid = task->loginuid.val;
}

/* `task`: a BTF pointer, as for vigil_read_creds. */
static __always_inline void vigil_read_namespaces(struct task_struct *task,
						  struct pid_namespace *active_pid_ns,
						  struct vigil_namespaces *ns)
{
	/* Direct loads through the task's BTF pointers (each fault-safe, a NULL
	 * nsproxy of an exiting task reads as 0): a probe-read helper call each
	 * cost ten times as much, on every exec, fork and matchNamespaces. */
	struct nsproxy *nsp = task->nsproxy;

	ns->uts = nsp->uts_ns->ns.inum;
	ns->ipc = nsp->ipc_ns->ns.inum;
	ns->mnt = nsp->mnt_ns->ns.inum;
	ns->pid = BPF_CORE_READ(active_pid_ns, ns.inum);
	ns->pid_for_children = nsp->pid_ns_for_children->ns.inum;
	ns->net = nsp->net_ns->ns.inum;
	if (bpf_core_field_exists(nsp->time_ns)) {
		ns->time = nsp->time_ns->ns.inum;
		ns->time_for_children = nsp->time_ns_for_children->ns.inum;
	}
	ns->cgroup = nsp->cgroup_ns->ns.inum;
	ns->user = task->cred->user_ns->ns.inum;
}

/* Name of the memory controller's cgroup: on cgroup v1 hosts the one that names the container. */
static __always_inline void vigil_read_memcg_name(struct css_set *cgroups, char *out)
{
	struct cgroup_subsys_state *css = NULL;
	__u32 id, slots;

	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return;
	id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	slots = bpf_core_field_size(cgroups->subsys) / sizeof(void *);
	if (id >= slots)
		return;
	bpf_probe_read_kernel(&css, sizeof(css),
			      (void *)cgroups + bpf_core_field_offset(cgroups->subsys) +
				      id * sizeof(void *));
	if (css)
		bpf_probe_read_kernel_str(out, VIGIL_CGROUP_NAME_LEN,
					  BPF_CORE_READ(css, cgroup, kn, name));
}

/* Fills `p` for the thread group of `task`; flags start at 0. */
static __always_inline void vigil_fill_process(struct task_struct *task,
					       struct vigil_process *p)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	struct css_set *cgroups = BPF_CORE_READ(task, cgroups);
	struct upid upid = {};

	/* Scratch buffers are reused: clear the tail bytes strings leave behind. */
	__builtin_memset(p, 0, sizeof(*p));
	p->pid = BPF_CORE_READ(task, tgid);
	p->tid = BPF_CORE_READ(task, pid);
	p->ppid = BPF_CORE_READ(task, real_parent, tgid);
	/* The leader's pid is the tgid, as namespaces number it too. */
	vigil_read_upid(BPF_CORE_READ(leader, thread_pid), &upid);
	p->nspid = upid.nr;
	p->start_boottime = BPF_CORE_READ(leader, start_boottime);
	p->cgroup_id = BPF_CORE_READ(cgroups, dfl_cgrp, kn, id);
	vigil_read_creds(task, &p->creds);
	vigil_read_namespaces(task, upid.ns, &p->ns);
	BPF_CORE_READ_STR_INTO(&p->comm, task, comm);
	bpf_probe_read_kernel_str(p->cgroup_name, sizeof(p->cgroup_name),
				  BPF_CORE_READ(cgroups, dfl_cgrp, kn, name));
	vigil_read_memcg_name(cgroups, p->cgroup_v1_name);
}

#endif /* VIGIL_TASK_H */
