/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Matching a string against the policy string tables (vigil_str_equal,
 * vigil_str_prefix, vigil_str_postfix; see struct vigil_string_key).
 *
 * A subject is prepared once per event: its first bytes NUL-padded (Equal,
 * Prefix) and, only when a Postfix needs them, its last bytes reversed.
 * What a subject does not know — the start of a path whose walk stopped
 * before the root, the end of a string cut to fit — makes every matcher on
 * it fail, negated ones included: no action is taken on a guess.
 */
#ifndef VIGIL_STRMATCH_H
#define VIGIL_STRMATCH_H

#include "vigil.h"
#include "lib/maps.h" /* the tables, and struct vigil_subject (lib/eval.h) */

static __always_inline __u32 vigil_key_bytes(__u32 len)
{
	return len < VIGIL_KEY_STRING_MAX ? len : VIGIL_KEY_STRING_MAX;
}

struct vigil_reverse {
	char *dst;
	const char *src;
	__u32 n;
};

static long vigil_reverse_step(__u32 j, void *ctx)
{
	struct vigil_reverse *r = ctx;

	if (j >= VIGIL_KEY_STRING_MAX)
		return 1;
	r->dst[j] = r->src[(r->n - 1 - j) & (VIGIL_REVERSE_TMP - 1)];
	return 0;
}

/* rev = tmp[0..n) reversed. */
static __always_inline void vigil_subject_reverse_tmp(struct vigil_subject *subj, const char *tmp,
						      __u32 n)
{
	struct vigil_reverse r = { .dst = subj->rev.str, .src = tmp, .n = n };

	bpf_loop(n, vigil_reverse_step, &r, 0);
	subj->rev_ready = 1;
}

/* rev from the forward string src[0..len). */
static __always_inline void vigil_subject_reverse(struct vigil_subject *subj, const char *src,
						  char *tmp)
{
	__u32 n = vigil_key_bytes(subj->len);

	bpf_probe_read_kernel(tmp, n, src + subj->len - n);
	vigil_subject_reverse_tmp(subj, tmp, n);
}

struct vigil_tail {
	const char *lf;
	const __u16 *ends;
	char *tmp;
	__u32 len;
	__u32 base;  /* forward offset where the tail starts */
	__u32 start; /* leaf-first offset of the next component */
};

/* One bpf_loop step of vigil_subject_reverse_leaf_first: component i, leaf first. */
static long vigil_tail_step(__u32 i, void *ctx)
{
	struct vigil_tail *t = ctx;
	__u32 start = t->start, end, slash, name, skip;

	if (i >= VIGIL_PATH_DEPTH)
		return 1;
	end = t->ends[i];
	if (end >= t->len || start > end)
		return 1;
	slash = t->len - 1 - end; /* forward offset of the '/' before this component */
	name = end - start;
	if (slash < t->base) {
		skip = t->base - slash - 1; /* bytes of the name before the tail */
		if (skip < name)
			bpf_probe_read_kernel(t->tmp, VIGIL_BOUND(name - skip, VIGIL_NAME_MAX),
					      t->lf + start + skip);
		return 1;
	}
	t->tmp[VIGIL_BOUND(slash - t->base, VIGIL_NAME_MAX)] = '/';
	bpf_probe_read_kernel(t->tmp + VIGIL_BOUND(slash - t->base + 1, VIGIL_NAME_MAX),
			      VIGIL_BOUND(name, VIGIL_NAME_MAX), t->lf + start);
	t->start = end + 1;
	return 0;
}

/*
 * rev from leaf-first components: the tail of the forward path is built in
 * tmp one component at a time, leaf first, until the one that straddles its
 * start, then reversed.
 */
static __always_inline void vigil_subject_reverse_leaf_first(struct vigil_subject *subj,
							     const char *lf, const __u16 *ends,
							     __u32 depth, char *tmp)
{
	__u32 n = vigil_key_bytes(subj->len);
	struct vigil_tail t = {
		.lf = lf,
		.ends = ends,
		.tmp = tmp,
		.len = subj->len,
		.base = subj->len - n,
	};

	bpf_loop(depth, vigil_tail_step, &t, 0);
	vigil_subject_reverse_tmp(subj, tmp, n);
}

/*
 * Whether the subject matches the values of (hook, selector, matcher) under
 * `op`. A Postfix op needs rev_ready; without it the matcher fails.
 */
static __always_inline bool vigil_subject_matches(struct vigil_subject *subj, __u8 op,
						  __u16 hook, __u8 selector, __u8 matcher)
{
	struct vigil_string_key *key;
	__u32 n = vigil_key_bytes(subj->len);
	bool found;

	switch (op) {
	case VIGIL_OP_EQUAL:
	case VIGIL_OP_NOT_EQUAL:
		if (!subj->head_ok || !subj->tail_ok)
			return false;
		key = &subj->fwd;
		key->prefixlen = 0;
		break;
	case VIGIL_OP_PREFIX:
	case VIGIL_OP_NOT_PREFIX:
		if (!subj->head_ok)
			return false;
		key = &subj->fwd;
		key->prefixlen = 32 + 8 * n;
		break;
	case VIGIL_OP_POSTFIX:
	case VIGIL_OP_NOT_POSTFIX:
		if (!subj->tail_ok || !subj->rev_ready)
			return false;
		key = &subj->rev;
		key->prefixlen = 32 + 8 * n;
		break;
	default:
		return false;
	}
	key->hook = hook;
	key->selector = selector;
	key->matcher = matcher;
	switch (op) {
	case VIGIL_OP_EQUAL:
		return subj->len <= VIGIL_KEY_STRING_MAX && bpf_map_lookup_elem(&vigil_str_equal, key);
	case VIGIL_OP_NOT_EQUAL:
		return subj->len > VIGIL_KEY_STRING_MAX || !bpf_map_lookup_elem(&vigil_str_equal, key);
	case VIGIL_OP_PREFIX:
	case VIGIL_OP_NOT_PREFIX:
		found = bpf_map_lookup_elem(&vigil_str_prefix, key);
		return op == VIGIL_OP_PREFIX ? found : !found;
	default:
		found = bpf_map_lookup_elem(&vigil_str_postfix, key);
		return op == VIGIL_OP_POSTFIX ? found : !found;
	}
}

static __always_inline bool vigil_op_is_postfix(__u8 op)
{
	return op == VIGIL_OP_POSTFIX || op == VIGIL_OP_NOT_POSTFIX;
}

/* The subject of an executable (struct vigil_proc_state.exe). */
static __always_inline void vigil_exe_subject(struct vigil_subject *subj,
					      const struct vigil_proc_state *p)
{
	__builtin_memcpy(subj->fwd.str, p->exe, VIGIL_KEY_STRING_MAX);
	subj->len = p->exe_len;
	subj->tail_ok = !(p->flags & VIGIL_F_EXE_TRUNCATED);
	subj->head_ok = subj->tail_ok || p->exe_len;
	subj->rev_ready = 0;
}

/*
 * A matchBinaries matcher on an executable, follow bits aside. Builds the
 * reversed tail in subj on the first Postfix.
 */
static __always_inline bool vigil_binaries_match(struct vigil_subject *subj,
						 const struct vigil_proc_state *p, char *tmp,
						 __u8 op, __u16 hook, __u8 selector)
{
	if (vigil_op_is_postfix(op) && !subj->rev_ready && subj->tail_ok)
		vigil_subject_reverse(subj, p->exe, tmp);
	return vigil_subject_matches(subj, op, hook, selector, VIGIL_MATCHER_BINARIES);
}

#endif /* VIGIL_STRMATCH_H */
