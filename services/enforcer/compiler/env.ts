/**
 * What the compiler needs to know about the kernel it compiles for. Tests pass
 * their own; defaultCompileEnv() reads this machine.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Hook, NamespaceKind } from '../../lib/policy-program.js';
import { parseTracepointFormat, type TracepointFormat } from './tracepoint-format.js';
import { KernelBtf } from './kernel-btf.js';
import { tracefsRoot } from '../../lib/paths.js';

export interface CompileEnv {
  /** Inode numbers of the host's namespaces (what `host_ns` means); 0 where the kernel lacks the kind. */
  hostNamespaces: Record<NamespaceKind, number>;
  /** The parsed format of a tracepoint; throws when the kernel has no such tracepoint. */
  tracepointFormat(subsystem: string, event: string): TracepointFormat;
  /** Whether a hook can be put on syscall <name>: the kernel has the tracepoints syscalls/sys_enter_<name> and sys_exit_<name>, and its number is known. */
  syscallExists(name: string): boolean;
  /** The number of a syscall of this machine's ABI (what raw_syscalls' `id` holds), undefined when unknown. */
  syscallNumber(name: string): number | undefined;
  /**
   * The number of a 32-bit (ia32) syscall on x86-64, what raw_syscalls' `id` holds for
   * a compat call; undefined when unknown or the machine has no such ABI.
   */
  compatSyscallNumber(name: string): number | undefined;
  /** Every syscall of this machine's ABI whose number is known, by number. */
  syscallNames(): Map<number, string>;
  /** Whether the kernel has this function (a translated hook of a function the kernel lacks, or renamed, is not served). */
  kernelFunctionExists(name: string): boolean;
  kernelHasKprobes: boolean;
  /** The running kernel's types (its BTF), for `resolve`; read on first use. */
  kernelBtf(): KernelBtf;
}

/** The kernel's function names (/proc/kallsyms, text symbols); undefined when it cannot be read. */
function readKernelFunctions(): Set<string> | undefined {
  try {
    const text = fs.readFileSync('/proc/kallsyms', 'utf8');
    return new Set([...text.matchAll(/^\S+ [tT] (\w+)/gm)].map((m) => m[1]!));
  } catch {
    return undefined;
  }
}

/** The kernel's syscall numbers for this ABI, from the UAPI header (Debian's linux-libc-dev). */
const UNISTD = ['/usr/include/x86_64-linux-gnu/asm/unistd_64.h', '/usr/include/asm/unistd_64.h', '/usr/include/aarch64-linux-gnu/asm/unistd.h'];

/**
 * x86-64 syscalls the header does not name: those whose tracepoint is named
 * apart from their __NR_ name (sys_enter_newstat is __NR_stat), and those
 * newer than Debian 12's header (Linux 6.1). Checked against this kernel's
 * syscall tracepoints by test/kernel/syscall-numbers.test.ts.
 */
export const X86_64_UNNAMED_SYSCALLS: Readonly<Record<string, number>> = {
  newstat: 4, newfstat: 5, newlstat: 6, sendfile64: 40, newuname: 63, umount: 166,
  cachestat: 451, fchmodat2: 452, futex_wake: 454, futex_wait: 455, futex_requeue: 456, statmount: 457, listmount: 458,
  lsm_get_self_attr: 459, lsm_set_self_attr: 460, lsm_list_modules: 461, mseal: 462, setxattrat: 463, getxattrat: 464,
  listxattrat: 465, removexattrat: 466, open_tree_attr: 467, file_getattr: 468, file_setattr: 469,
};

/** The `#define __NR_<name> <number>` lines of a UAPI unistd header; empty when none of `files` exists. */
function readUnistd(files: readonly string[]): { file: string | undefined; numbers: Map<string, number> } {
  const file = files.find((f) => fs.existsSync(f));
  const text = file === undefined ? '' : fs.readFileSync(file, 'utf8');
  return { file, numbers: new Map([...text.matchAll(/^#define __NR_(\w+)\s+(\d+)\s*$/gm)].map((m) => [m[1]!, Number(m[2])])) };
}

let syscallNumbers: Map<string, number> | undefined;

/** This machine's syscall numbers by name: the UAPI header's, and on x86-64 those it does not name. */
export function readSyscallNumbers(): ReadonlyMap<string, number> {
  if (syscallNumbers) return syscallNumbers;
  const { file, numbers } = readUnistd(UNISTD);
  syscallNumbers = numbers;
  if (file?.includes('_64.h')) {
    for (const [name, n] of Object.entries(X86_64_UNNAMED_SYSCALLS)) if (!syscallNumbers.has(name)) syscallNumbers.set(name, n);
  }
  return syscallNumbers;
}

/** The ia32 ABI's header, which x86-64 kernels serve as compat calls (CONFIG_IA32_EMULATION). */
const UNISTD_32 = ['/usr/include/x86_64-linux-gnu/asm/unistd_32.h', '/usr/include/asm/unistd_32.h'];
let compatSyscallNumbers: Map<string, number> | undefined;

/** The ia32 syscall numbers by name on x86-64; empty elsewhere. */
export function readCompatSyscallNumbers(): ReadonlyMap<string, number> {
  compatSyscallNumbers ??= process.arch === 'x64' ? readUnistd(UNISTD_32).numbers : new Map();
  return compatSyscallNumbers;
}

/** The syscalls of readSyscallNumbers by number, each under its header name (the first listed). */
export function syscallNames(): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, n] of readSyscallNumbers()) if (!out.has(n)) out.set(n, name);
  return out;
}

/** /proc/<pid>/ns/<file> for each kind. */
const NAMESPACE_FILES: Record<NamespaceKind, string> = {
  Uts: 'uts', Ipc: 'ipc', Mnt: 'mnt', Pid: 'pid', PidForChildren: 'pid_for_children', Net: 'net',
  Time: 'time', TimeForChildren: 'time_for_children', Cgroup: 'cgroup', User: 'user',
};

function namespaceInode(dir: string, file: string): number | undefined {
  try {
    const m = /\[(\d+)\]$/.exec(fs.readlinkSync(path.join(dir, file)));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The host's namespaces are those of pid 1, as in Tetragon: in a pod with
 * hostPID that is the node's init, while /proc/self is the agent's container.
 * Where /proc/1/ns cannot be read (no CAP_SYS_PTRACE), the agent's own.
 */
function readHostNamespaces(): Record<NamespaceKind, number> {
  const dir = namespaceInode('/proc/1/ns', 'mnt') === undefined ? '/proc/self/ns' : '/proc/1/ns';
  const out = {} as Record<NamespaceKind, number>;
  for (const [kind, file] of Object.entries(NAMESPACE_FILES) as [NamespaceKind, string][]) {
    out[kind] = namespaceInode(dir, file) ?? 0;
  }
  return out;
}

const NAME = /^\w+$/;

export function defaultCompileEnv(): CompileEnv {
  const root = tracefsRoot();
  const formats = new Map<string, TracepointFormat>();
  let functions: Set<string> | undefined | null;
  return {
    hostNamespaces: readHostNamespaces(),
    tracepointFormat(subsystem, event) {
      const key = `${subsystem}/${event}`;
      const cached = formats.get(key);
      if (cached) return cached;
      // Names come from policies: never let one walk out of events/.
      if (!NAME.test(subsystem) || !NAME.test(event)) throw new Error(`no tracepoint ${key}`);
      const format = parseTracepointFormat(fs.readFileSync(path.join(root, 'events', subsystem, event, 'format'), 'utf8'));
      formats.set(key, format);
      return format;
    },
    syscallExists(name) {
      return NAME.test(name) && readSyscallNumbers().has(name) && fs.existsSync(path.join(root, 'events', 'syscalls', `sys_enter_${name}`));
    },
    syscallNumber(name) {
      return readSyscallNumbers().get(name);
    },
    compatSyscallNumber(name) {
      return readCompatSyscallNumbers().get(name);
    },
    syscallNames,

    kernelFunctionExists(name) {
      if (functions === undefined) functions = readKernelFunctions() ?? null;
      return functions === null || functions.has(name);
    },
    kernelHasKprobes: fs.existsSync(path.join(root, 'kprobe_events')),
    kernelBtf: () => KernelBtf.vmlinux(),
  };
}

/** Where a hook on `syscall` attaches: a syscall for which env.syscallExists holds. */
export function syscallAttach(env: CompileEnv, syscall: string): Extract<Hook['attach'], { kind: 'syscall' }> {
  const number = env.syscallNumber(syscall);
  if (number === undefined) throw new Error(`syscall ${syscall} has no known number, which its hooks are found by`);
  return { kind: 'syscall', syscall, number };
}
