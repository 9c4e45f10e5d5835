/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The policy engine's interface to the hook programs (not ABI): the per-event
 * state in vigil_eval_scratch and the global functions of policy.bpf.c (the
 * verifier checks a global function once per program instead of once per
 * call site). The selector loop that calls them is inlined in each hook
 * program (lib/hook.h), so that a call its pids reject costs no call.
 */
#ifndef VIGIL_EVAL_H
#define VIGIL_EVAL_H

#include "vigil.h"
#include "lib/bound.h"

/*
 * Slots of vigil_eval_scratch. Tracepoint programs run with preemption
 * disabled and never nest on a CPU; uprobe programs are preemptible, so they
 * get a slot of their own (two uprobe events interleaved on one CPU can
 * still mix their records: see the limitations in policy.bpf.c).
 */
#define VIGIL_SLOT_TRACEPOINT 0
#define VIGIL_SLOT_UPROBE 1
#define VIGIL_SLOT_SKB 2 /* cgroup_skb programs: in softirq, which may interrupt a tracepoint program */
#define VIGIL_EVAL_SLOTS 3

#define VIGIL_RET_SLOT VIGIL_MAX_HOOK_ARGS        /* args[] index of the return value */
#define VIGIL_ARG_SLOTS (VIGIL_MAX_HOOK_ARGS + 1)
#define VIGIL_EXE_SUBJECT VIGIL_ARG_SLOTS         /* subjects[] index of the executable */
#define VIGIL_ARG_BYTES_MAX 2048                  /* bytes of one string, buffer or path */
/* Record data: VIGIL_POLICY_DATA_MAX are used; an argument starts below that
 * and may take VIGIL_ARG_BYTES_MAX + VIGIL_NAME_MAX, so the verifier can
 * bound every write by the buffer. */
#define VIGIL_EVAL_DATA 8192
/* Scratch a reversal needs: the component straddling the last
 * VIGIL_KEY_STRING_MAX bytes of a leaf-first path reaches VIGIL_NAME_MAX further. */
#define VIGIL_REVERSE_TMP 512

enum vigil_eval_loaded {
	VIGIL_LOADED_PID = 1 << 0,  /* nspid */
	VIGIL_LOADED_NS = 1 << 1,   /* ns */
	VIGIL_LOADED_CAPS = 1 << 2, /* caps, user_ns_level */
	VIGIL_LOADED_PROC = 1 << 3, /* proc_found, proc */
	VIGIL_LOADED_REGS = 1 << 4, /* regs, from regs_at */
};

/* A string prepared for the vigil_str_* tables (lib/strmatch.h). */
struct vigil_subject {
	struct vigil_string_key fwd; /* str: the first bytes, NUL-padded */
	struct vigil_string_key rev; /* str: the last bytes, last first (when rev_ready) */
	__u32 len;                   /* bytes of the whole string */
	__u8 head_ok;                /* fwd holds the true start */
	__u8 tail_ok;                /* the true end is known */
	__u8 rev_ready;
	__u8 pad;
};

/* An argument once read into the record. */
struct vigil_arg_state {
	struct vigil_arg_value head; /* as written before its bytes */
	__u16 off;                   /* offset of its bytes in the record data */
	__u16 depth;                 /* VIGIL_ARGV_LEAF_FIRST: components */
	__u16 ends[VIGIL_PATH_DEPTH]; /* VIGIL_ARGV_LEAF_FIRST: offset of each component's NUL */
};

struct vigil_eval {
	/* Inputs, set by the hook program. */
	__u64 ctx;        /* the tracepoint record (VIGIL_SRC_TP_FIELD) */
	__u64 regs_at;    /* sys_enter: the syscall's pt_regs, regs read from them on first use; 0: regs are set */
	__u64 regs[6];    /* syscall or function arguments */
	__s64 ret;
	__u32 hook_id;
	__u32 has_ret;

	/* Loaded on demand during one event; vigil_eval_reset clears the first five. */
	__u32 loaded;         /* enum vigil_eval_loaded */
	__u32 subjects_ready; /* bit k: subjects[k].fwd is prepared */
	__u32 nread;          /* arguments read into the record, in record order */
	__u32 data_len;       /* bytes of record data used */
	__u32 proc_found;     /* proc holds this process's state */
	__u32 tgid;
	__u32 nspid;
	__u32 user_ns_level;  /* 0: the initial user namespace */
	__u64 caps[3];        /* effective, permitted, inheritable */
	struct vigil_namespaces ns;
	struct vigil_proc_state proc;
	char tmp[VIGIL_REVERSE_TMP]; /* also the room vigil_path_forward needs after proc.exe */
	struct vigil_arg_state args[VIGIL_ARG_SLOTS];
	struct vigil_subject subjects[VIGIL_ARG_SLOTS + 1];
	struct vigil_net_tuple net;  /* the network argument a matcher tests */
	/* lib/binaries.h: the verdict looked up and what it must match (or the
	 * one to keep); the last one used (never reset). */
	struct vigil_process_selector_key binaries_key;
	struct vigil_binaries_verdict binaries_now;
	__u64 binaries_last_tag;
	struct vigil_binaries_verdict binaries_last;
	__s32 kstack_len;            /* bytes bpf_get_stack wrote (VIGIL_HOOKF_STACKS, at a match), or its error */
	__s32 ustack_len;
	__u64 kstack[VIGIL_STACK_DEPTH];
	__u64 ustack[VIGIL_STACK_DEPTH];
	__u16 walk_ends[VIGIL_PATH_DEPTH];
	char walk[VIGIL_PATH_MAX + VIGIL_NAME_MAX]; /* VIGIL_HOOKF_EXEC_EVENT: the exe, leaf first */
	union {
		struct vigil_policy_record rec;
		char bytes[sizeof(struct vigil_policy_record) + VIGIL_EVAL_DATA];
	} out;
};

static __always_inline bool vigil_u32_in(__u32 v, const __u32 *values, __u8 n)
{
	__u32 i;

	for (i = 0; i < VIGIL_MAX_MATCH_VALUES; i++)
		if (i < n && values[i] == v)
			return true;
	return false;
}

/*
 * The six arguments of the syscall whose registers are at `regs` (x86-64:
 * di, si, dx, r10, r8, r9), into args. pt_regs holds them as r10, r9, r8
 * and dx, si, di: two reads, each straight into args (the callers' stacks
 * are full), then put in order.
 */
static __always_inline void vigil_syscall_args(__u64 *args, const struct pt_regs *regs)
{
	__u64 t;

	bpf_probe_read_kernel(&args[0], 3 * sizeof(__u64), &regs->dx);
	bpf_probe_read_kernel(&args[3], 3 * sizeof(__u64), &regs->r10);
	t = args[0], args[0] = args[2], args[2] = t;
	t = args[4], args[4] = args[5], args[5] = t;
}

/* Whether the event meets the hook's guard (struct vigil_hook_guard). */
extern int vigil_hook_guard(__u32 slot);
/* Whether selector `sel` passes its process conditions (lib/selectors.h). */
extern int vigil_selector_process(__u32 slot, __u32 sel);
/* Whether it passes its matchArgs and matchReturnArgs. */
extern int vigil_selector_args(__u32 slot, __u32 sel);
/* Acts on the match of `sel` (has_selectors 0: a hook without selectors). */
extern int vigil_policy_act(__u32 slot, __u32 sel, __u32 has_selectors);

#endif /* VIGIL_EVAL_H */
