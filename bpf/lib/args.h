/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading a hook's arguments (struct vigil_arg_spec) for one event: their
 * integer values, and the bytes a policy record reports.
 *
 * User memory is read when the engine runs: at sys_exit for hooks that
 * decide at exit, after the kernel itself has read the strings, so their
 * pages are resident (KERNEL.md: at sys_enter such a read can fail).
 * Paths are resolved from the task's file table and dentries, all kernel
 * memory, and reported leaf first.
 */
#ifndef VIGIL_ARGS_H
#define VIGIL_ARGS_H

#include "vigil.h"
#include "lib/eval.h"
#include "lib/path.h"
#include "lib/task.h"
#include "lib/net.h"

#define VIGIL_SOCKADDR_MAX 128

static __always_inline const struct vigil_arg_spec *vigil_arg_spec(const struct vigil_hook *hook,
								    __u32 k)
{
	if (k == VIGIL_RET_SLOT)
		return &hook->ret;
	if (k >= VIGIL_MAX_HOOK_ARGS)
		return NULL;
	return &hook->args[VIGIL_BOUND(k, VIGIL_MAX_HOOK_ARGS)];
}

/* `size` (1, 2, 4 or 8) bytes at `at`, kernel or user memory, sign-extended when flagged. */
static __always_inline __u64 vigil_read_sized(const void *at, __u8 size, bool sign, bool user)
{
	__u64 v = 0;

	if (size > 8)
		size = 8;
	if (user)
		bpf_probe_read_user(&v, size, at);
	else
		bpf_probe_read_kernel(&v, size, at);
	switch (size) {
	case 1:
		return sign ? (__u64)(__s64)(__s8)v : (__u8)v;
	case 2:
		return sign ? (__u64)(__s64)(__s16)v : (__u16)v;
	case 4:
		return sign ? (__u64)(__s64)(__s32)v : (__u32)v;
	default:
		return v;
	}
}

/* A tracepoint field of 1, 2, 4 or 8 bytes, sign-extended when flagged. */
static __always_inline __u64 vigil_tp_field(const struct vigil_eval *s,
					    const struct vigil_arg_spec *spec)
{
	return vigil_read_sized((const void *)(s->ctx + spec->offset), spec->size,
				spec->flags & VIGIL_ARGF_SIGNED, false);
}

/* A USDT argument: a register of the probe's pt_regs (s->ctx), or user memory it points to. */
static __always_inline __u64 vigil_usdt_arg(const struct vigil_eval *s,
					    const struct vigil_arg_spec *spec)
{
	bool sign = spec->flags & VIGIL_ARGF_SIGNED;
	__u64 reg = 0;

	bpf_probe_read_kernel(&reg, sizeof(reg), (const void *)(s->ctx + spec->index * sizeof(reg)));
	if (spec->flags & VIGIL_ARGF_USDT_MEMORY)
		return vigil_read_sized((const void *)(reg + (__s16)spec->offset), spec->size, sign, true);
	return vigil_read_sized(&reg, spec->size, sign, false);
}

/* The field resolve path `key` names from kernel pointer `ptr`: `size`
 * bytes of it, or its address when size is 0 (policy.bpf.c). */
extern __u64 vigil_resolve(__u32 key, __u64 ptr, __u32 size, __u32 sign);

/* Argument `index` of a tp_btf program (s->ctx: its u64 arguments), resolved when flagged. */
static __always_inline __u64 vigil_btf_arg(const struct vigil_eval *s,
					   const struct vigil_arg_spec *spec)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), (const void *)(s->ctx + (spec->index & 7) * sizeof(v)));
	if (spec->flags & VIGIL_ARGF_RESOLVE)
		v = vigil_resolve(spec->offset, v, spec->size, spec->flags & VIGIL_ARGF_SIGNED);
	return v;
}

/* The integer an argument holds (a pointer for strings and buffers),
 * sign-extended for int and fd. */
static __always_inline __u64 vigil_arg_number(const struct vigil_eval *s,
					      const struct vigil_arg_spec *spec)
{
	__u32 index = spec->index;
	__u64 raw = 0;

	switch (spec->source) {
	case VIGIL_SRC_SYSCALL_ARG:
	case VIGIL_SRC_FUNCTION_ARG:
		if (index < 6)
			raw = s->regs[index];
		break;
	case VIGIL_SRC_RETURN:
		raw = s->ret;
		break;
	case VIGIL_SRC_TP_FIELD:
		raw = vigil_tp_field(s, spec);
		break;
	case VIGIL_SRC_CONST:
		raw = spec->offset;
		break;
	case VIGIL_SRC_USDT:
		raw = vigil_usdt_arg(s, spec);
		break;
	case VIGIL_SRC_BTF_ARG:
		raw = vigil_btf_arg(s, spec);
		break;
	}
	if ((spec->flags & VIGIL_ARGF_SYSCALL64) && vigil_in_compat_syscall())
		raw |= VIGIL_SYSCALL64_32BIT;
	switch (spec->type) {
	case VIGIL_ARG_INT:
	case VIGIL_ARG_FD:
		return (__s64)(__s32)raw;
	case VIGIL_ARG_UINT32:
		return (__u32)raw;
	default:
		return raw;
	}
}

static __always_inline bool vigil_arg_signed(const struct vigil_arg_spec *spec)
{
	return spec->type == VIGIL_ARG_INT || spec->type == VIGIL_ARG_INT64 ||
	       spec->type == VIGIL_ARG_FD ||
	       (spec->source == VIGIL_SRC_TP_FIELD && (spec->flags & VIGIL_ARGF_SIGNED));
}

/* Whether the record reports the argument as bytes (a string, a buffer, a path). */
static __always_inline bool vigil_arg_is_bytes(__u8 type)
{
	return type == VIGIL_ARG_STRING || type == VIGIL_ARG_CHAR_BUF || type == VIGIL_ARG_FD ||
	       type == VIGIL_ARG_FILE || type == VIGIL_ARG_SOCKADDR || type == VIGIL_ARG_CRED ||
	       type == VIGIL_ARG_USER_NS || type == VIGIL_ARG_SOCK || type == VIGIL_ARG_SKB;
}

/* The current task's file `fd`, or NULL. */
static __always_inline struct file *vigil_fd_file(__s64 fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file = NULL;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), fds + fd))
		return NULL;
	return file;
}

/* Not in BTF (#defines of linux/stat.h, linux/major.h). */
#define VIGIL_S_IFCHR 0020000
#define VIGIL_TTY_MAJOR 4
#define VIGIL_TTYAUX_MAJOR 5
#define VIGIL_PTS_MAJOR_FIRST 136
#define VIGIL_PTS_MAJOR_LAST 143

/* Whether fd names a tty: a character device of the tty, auxiliary tty or pts majors. */
static __always_inline bool vigil_fd_is_tty(__s64 fd)
{
	struct file *file = vigil_fd_file(fd);
	struct inode *inode;
	__u32 major;

	if (!file)
		return false;
	inode = BPF_CORE_READ(file, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & VIGIL_S_IFMT) != VIGIL_S_IFCHR)
		return false;
	major = BPF_CORE_READ(inode, i_rdev) >> 20;
	return major == VIGIL_TTY_MAJOR || major == VIGIL_TTYAUX_MAJOR ||
	       (major >= VIGIL_PTS_MAJOR_FIRST && major <= VIGIL_PTS_MAJOR_LAST);
}

/* Whether fd names a socket of that protocol (IPPROTO_*). */
static __always_inline bool vigil_fd_is_protocol(__s64 fd, __u64 protocol)
{
	const struct sock *sk = vigil_fd_sock(vigil_fd_file(fd));

	return sk && BPF_CORE_READ(sk, sk_protocol) == protocol;
}

/* The path of the current task's file `fd`, leaf first, at buf[0..limit). */
static __always_inline __u32 vigil_fd_path(__s64 fd, char *buf, __u32 limit,
					   struct vigil_arg_state *a, __u8 *flags)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct vigil_path_info info;
	struct file *file = vigil_fd_file(fd);
	struct path root;

	if (!file)
		goto error;
	BPF_CORE_READ_INTO(&root, task, fs, root);
	vigil_path_components(&file->f_path, &root, buf, limit, a->ends, &info);
	a->depth = info.depth;
	*flags |= VIGIL_ARGV_LEAF_FIRST;
	if (info.truncated)
		*flags |= VIGIL_ARGV_TRUNCATED;
	return info.len;
error:
	*flags |= VIGIL_ARGV_ERROR;
	return 0;
}

/* A NUL-terminated string, reported without its NUL; `user` or kernel memory. */
static __always_inline __u32 vigil_read_str(char *buf, __u32 room, const void *src, bool user,
					    __u8 *flags)
{
	long n = user ? bpf_probe_read_user_str(buf, room, src)
		      : bpf_probe_read_kernel_str(buf, room, src);

	if (n <= 0) {
		*flags |= VIGIL_ARGV_ERROR;
		return 0;
	}
	if (n == room)
		*flags |= VIGIL_ARGV_TRUNCATED; /* or exactly room - 1 long: not told apart */
	return n - 1;
}

/* `size` bytes of user memory, cut to room. */
static __always_inline __u32 vigil_read_user_bytes(char *buf, __u32 room, const void *src,
						   __u64 size, __u8 *flags)
{
	if (size > room) {
		size = room;
		*flags |= VIGIL_ARGV_TRUNCATED;
	}
	if (bpf_probe_read_user(buf, size, src)) {
		*flags |= VIGIL_ARGV_ERROR;
		return 0;
	}
	return size;
}

/* A struct sockaddr: its length from the hook's size argument, else from its family. */
static __always_inline __u32 vigil_read_sockaddr(const struct vigil_eval *s,
						 const struct vigil_hook *hook,
						 const struct vigil_arg_spec *spec, char *buf,
						 __u32 room, const void *src, __u8 *flags)
{
	const struct vigil_arg_spec *size_spec = vigil_arg_spec(hook, spec->size_arg);
	__u64 size = VIGIL_SOCKADDR_MAX;
	__u16 family = 0;

	if (spec->size_arg != VIGIL_NO_SLOT && size_spec) {
		size = vigil_arg_number(s, size_spec);
	} else {
		if (bpf_probe_read_user(&family, sizeof(family), src)) {
			*flags |= VIGIL_ARGV_ERROR;
			return 0;
		}
		if (family == VIGIL_AF_INET)
			size = bpf_core_type_size(struct sockaddr_in);
		else if (family == VIGIL_AF_INET6)
			size = bpf_core_type_size(struct sockaddr_in6);
		else if (family == VIGIL_AF_UNIX)
			size = bpf_core_type_size(struct sockaddr_un);
	}
	if (size > VIGIL_SOCKADDR_MAX)
		size = VIGIL_SOCKADDR_MAX;
	return vigil_read_user_bytes(buf, room, src, size, flags);
}

/* The struct sock a sock argument names (from an fd or an skb when flagged), or an skb's own sock. */
static __always_inline const struct sock *vigil_arg_sock(const struct vigil_eval *s,
							 const struct vigil_arg_spec *spec)
{
	__u64 v = vigil_arg_number(s, spec);

	if (spec->type == VIGIL_ARG_SOCK && (spec->flags & VIGIL_ARGF_FD_SOCK))
		return vigil_fd_sock(vigil_fd_file((__s64)v));
	if (v && (spec->type == VIGIL_ARG_SKB || (spec->flags & VIGIL_ARGF_SKB_SOCK)))
		return BPF_CORE_READ((const struct sk_buff *)v, sk);
	return (const struct sock *)v;
}

/*
 * Writes the bytes the record reports for an argument at buf (room bytes
 * at most, below VIGIL_ARG_BYTES_MAX; buf has VIGIL_NAME_MAX more for a
 * path walk) and returns their count; *flags gets vigil_arg_value_flags.
 * Paths have one call site, so that the verifier checks the walk once.
 */
static __always_inline __u32 vigil_arg_bytes(const struct vigil_eval *s,
					     const struct vigil_hook *hook,
					     const struct vigil_arg_spec *spec,
					     struct vigil_arg_state *a, char *buf, __u32 room,
					     __u8 *flags)
{
	const struct vigil_arg_spec *size_spec;
	__u64 v = vigil_arg_number(s, spec);
	__s64 fd = (__s64)v;
	__u32 loc;

	switch (spec->type) {
	case VIGIL_ARG_STRING:
		if ((spec->flags & VIGIL_ARGF_RESOLVE_RET_FD) && s->has_ret && s->ret >= 0) {
			fd = s->ret;
			break;
		}
		if (spec->source == VIGIL_SRC_TP_FIELD && (spec->flags & VIGIL_ARGF_DATA_LOC)) {
			/* Its length, NUL included, is known: one byte more tells it was whole. */
			loc = v;
			if ((loc >> 16) < room)
				room = (loc >> 16) + 1;
			return vigil_read_str(buf, room, (const void *)(s->ctx + (loc & 0xffff)),
					      false, flags);
		}
		/* A string a tp_btf argument leads to is kernel memory. */
		return vigil_read_str(buf, room, (const void *)v, spec->source != VIGIL_SRC_BTF_ARG, flags);
	case VIGIL_ARG_FD:
	case VIGIL_ARG_FILE:
		break;
	case VIGIL_ARG_CHAR_BUF:
		size_spec = vigil_arg_spec(hook, spec->size_arg);
		if (spec->size_arg == VIGIL_NO_SLOT || !size_spec) {
			*flags |= VIGIL_ARGV_ERROR;
			return 0;
		}
		return vigil_read_user_bytes(buf, room, (const void *)v,
					     vigil_arg_number(s, size_spec), flags);
	case VIGIL_ARG_SOCKADDR:
		return vigil_read_sockaddr(s, hook, spec, buf, room, (const void *)v, flags);
	case VIGIL_ARG_CRED:
		if (room < sizeof(struct vigil_creds)) {
			*flags |= VIGIL_ARGV_TRUNCATED | VIGIL_ARGV_ERROR;
			return 0;
		}
		vigil_read_creds(bpf_get_current_task_btf(), (struct vigil_creds *)buf);
		return sizeof(struct vigil_creds);
	case VIGIL_ARG_SOCK:
		if (room < sizeof(struct vigil_sock)) {
			*flags |= VIGIL_ARGV_TRUNCATED | VIGIL_ARGV_ERROR;
			return 0;
		}
		v = (__u64)vigil_arg_sock(s, spec);
		if (!v) {
			*flags |= VIGIL_ARGV_ERROR;
			return 0;
		}
		vigil_read_sock((const struct sock *)v, (struct vigil_sock *)buf);
		return sizeof(struct vigil_sock);
	case VIGIL_ARG_SKB:
		if (room < sizeof(struct vigil_skb) || !v) {
			*flags |= VIGIL_ARGV_ERROR;
			return 0;
		}
		vigil_read_skb((const struct sk_buff *)v, (struct vigil_skb *)buf);
		return sizeof(struct vigil_skb);
	case VIGIL_ARG_USER_NS:
		if (room < sizeof(struct vigil_user_ns) || !v) {
			*flags |= VIGIL_ARGV_ERROR;
			return 0;
		}
		vigil_read_user_ns((const struct user_namespace *)v, (struct vigil_user_ns *)buf);
		return sizeof(struct vigil_user_ns);
	default:
		if (room < sizeof(v)) {
			*flags |= VIGIL_ARGV_TRUNCATED | VIGIL_ARGV_ERROR;
			return 0;
		}
		__builtin_memcpy(buf, &v, sizeof(v));
		return sizeof(v);
	}
	return vigil_fd_path(fd, buf, room, a, flags);
}

#endif /* VIGIL_ARGS_H */
