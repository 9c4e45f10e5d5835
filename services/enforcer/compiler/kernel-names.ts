/** Kernel names and numbers the compiler translates policies with. */
import type { NamespaceKind } from '../../lib/policy-program.js';

/** Capability names by number (linux/capability.h; proto/tetragon/capabilities.proto numbers them the same). */
export const CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/**
 * A capability's number from its name, case-insensitively as Tetragon reads them.
 * Tetragon's enum spells CAP_DAC_OVERRIDE as DAC_OVERRIDE; both are accepted.
 */
export function capabilityNumber(name: string): number | undefined {
  const upper = name.trim().toUpperCase();
  const n = CAPABILITIES.indexOf(upper === 'DAC_OVERRIDE' ? 'CAP_DAC_OVERRIDE' : upper);
  return n < 0 ? undefined : n;
}

export const NAMESPACE_KINDS: readonly NamespaceKind[] = [
  'Uts', 'Ipc', 'Mnt', 'Pid', 'PidForChildren', 'Net', 'Time', 'TimeForChildren', 'Cgroup', 'User',
];

/** Namespace kinds are matched case-insensitively in matchNamespaceChanges values, as by Tetragon. */
export function namespaceKind(name: string): NamespaceKind | undefined {
  const lower = name.toLowerCase();
  return NAMESPACE_KINDS.find((k) => k.toLowerCase() === lower);
}

/** Highest signal number (SIGRTMAX on Linux). */
export const MAX_SIGNAL = 64;

/** Syscall symbol prefixes by architecture (Tetragon accepts `__x64_sys_openat` for `sys_openat`). */
const ARCH_PREFIXES: Record<string, string> = { x64: '__x64_', arm64: '__arm64_', ia32: '__ia32_' };
export const ARCH_PREFIX: string | undefined = ARCH_PREFIXES[process.arch];

/** The prefix and its architecture when `call` carries one. */
export function archPrefixOf(call: string): { arch: string; prefix: string } | undefined {
  for (const [arch, prefix] of Object.entries(ARCH_PREFIXES)) {
    if (call.startsWith(prefix)) return { arch, prefix };
  }
  return undefined;
}

/**
 * Syscalls that take path names, with the argument positions of those names.
 * Such a string is a user pointer that may not be faulted in at entry
 * (KERNEL.md), so matching on it waits for the exit, when the kernel has read it.
 */
export const PATH_ARGS: Readonly<Record<string, readonly number[]>> = {
  open: [0], openat: [1], openat2: [1], creat: [0], open_tree: [1],
  execve: [0], execveat: [1],
  unlink: [0], unlinkat: [1], rmdir: [0], mkdir: [0], mkdirat: [1], mknod: [0], mknodat: [1],
  rename: [0, 1], renameat: [1, 3], renameat2: [1, 3],
  link: [0, 1], linkat: [1, 3], symlink: [0, 1], symlinkat: [0, 2],
  chmod: [0], fchmodat: [1], fchmodat2: [1], chown: [0], lchown: [0], fchownat: [1],
  truncate: [0], access: [0], faccessat: [1], faccessat2: [1],
  stat: [0], lstat: [0], newfstatat: [1], statx: [1], statfs: [0],
  readlink: [0], readlinkat: [1], utime: [0], utimes: [0], utimensat: [1], futimesat: [1],
  chdir: [0], chroot: [0], pivot_root: [0, 1], mount: [0, 1], umount2: [0], move_mount: [1, 3],
  setxattr: [0], lsetxattr: [0], getxattr: [0], lgetxattr: [0], listxattr: [0], llistxattr: [0],
  removexattr: [0], lremovexattr: [0], name_to_handle_at: [1], inotify_add_watch: [1],
  fanotify_mark: [4], swapon: [0], swapoff: [0], acct: [0], uselib: [0], quotactl: [1],
};

/** Syscalls whose return value is an fd for the file their path names. */
export const RETURNS_OPENED_FD: ReadonlySet<string> = new Set(['open', 'openat', 'openat2', 'creat']);
