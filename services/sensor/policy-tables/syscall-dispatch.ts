/**
 * How syscall hooks are served (bpf/hook_syscall.bpf.c). A syscall's side
 * (entry or exit) goes to vigil_sys_enter_one or vigil_sys_exit_one on its
 * own syscalls:sys_<side>_<name> tracepoint, so that the node's other
 * syscalls pay nothing but the kernel's test of their bit; unless it is one
 * of RAW_ROUTED_SYSCALLS, which busy processes make by the ten thousand a
 * second: those go to the two programs every syscall runs, vigil_sys_enter
 * on the raw sys_enter tracepoint and vigil_sys_exit on sys_exit. There a
 * hooked call costs less (no perf record), every other call a little more.
 * Every program finds the syscall's attachment by its number in
 * vigil_syscall_attachments, each in a field of its own.
 * Each raw program is attached while some syscall is routed to it and
 * detached when the last route goes, so that a node without such hooks pays
 * nothing for them.
 */
import type { BpfObject } from '../kernel/addon.js';
import { StructLayout, StructWriter, type BtfSource } from '../kernel/layout.js';
import { MAX_SYSCALL_NR } from '../../lib/kernel-abi.js';
import { tracepointExists } from '../../lib/paths.js';

export type SyscallSide = 'enter' | 'exit';

/** The raw programs, for every syscall. */
export const SYSCALL_PROGRAMS: Readonly<Record<SyscallSide, string>> = { enter: 'vigil_sys_enter', exit: 'vigil_sys_exit' };
/** The programs for one syscall's own tracepoint. */
export const OWN_TRACEPOINT_PROGRAMS: Readonly<Record<SyscallSide, string>> = { enter: 'vigil_sys_enter_one', exit: 'vigil_sys_exit_one' };

/**
 * The syscalls served by the raw programs: reading and writing, sending and
 * receiving, waiting (futex, poll, epoll, select, sleeps), the vDSO's
 * fallbacks and the other calls a busy process makes in its loop. Hooking
 * one of them costs its every call the perf record of its own tracepoint,
 * more than one raw lookup on every syscall of the node.
 */
export const RAW_ROUTED_SYSCALLS: ReadonlySet<string> = new Set([
  'read', 'readv', 'pread64', 'preadv', 'preadv2', 'write', 'writev', 'pwrite64', 'pwritev', 'pwritev2',
  'recvfrom', 'recvmsg', 'recvmmsg', 'sendto', 'sendmsg', 'sendmmsg',
  'futex', 'poll', 'ppoll', 'select', 'pselect6', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'nanosleep', 'clock_nanosleep', 'sched_yield',
  'getpid', 'gettid', 'getppid', 'clock_gettime', 'gettimeofday', 'time',
  'ioctl', 'lseek', 'fcntl', 'close', 'fstat', 'newfstatat', 'statx',
  'mmap', 'munmap', 'mprotect', 'madvise', 'brk', 'rt_sigaction', 'rt_sigprocmask',
]);

/** The tracepoint serving syscall `name`'s `side` on its own, when it is not raw-routed and this kernel has it. */
export function ownTracepoint(side: SyscallSide, name: string): string | undefined {
  const event = `sys_${side}_${name}`;
  return !RAW_ROUTED_SYSCALLS.has(name) && tracepointExists(`syscalls/${event}`) ? event : undefined;
}

const u32Key = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

/** A field of struct vigil_syscall_attachment: the program a route is for. */
type RouteField = 'enter' | 'exit' | 'own_enter' | 'own_exit';
const ROUTE_FIELDS: readonly RouteField[] = ['enter', 'exit', 'own_enter', 'own_exit'];

export class SyscallDispatch {
  private readonly layout: StructLayout;
  /** Per syscall number, 1 + the attachment id of each program (0: none), as in the kernel's table. */
  private readonly routes = new Map<number, Record<RouteField, number>>();
  private readonly rawLinks = new Map<SyscallSide, { link: number; routes: number }>();

  constructor(private readonly object: BpfObject, btf: BtfSource) {
    this.layout = new StructLayout('vigil_syscall_attachment', btf);
  }

  /**
   * Sends syscall `nr`'s `side` to attachment `id`: through the raw program
   * of the side, attached if it was not, or, given `ownEvent`, through the
   * side's program on that tracepoint of the syscall's (ownTracepoint).
   * Returns what undoes it. The table entry is written before the program
   * is attached, so it never runs on a half-made route.
   */
  route(side: SyscallSide, nr: number, id: number, ownEvent?: string): () => void {
    if (!Number.isInteger(nr) || nr < 0 || nr >= MAX_SYSCALL_NR) {
      throw new Error(`syscall number ${nr} is outside the ${MAX_SYSCALL_NR} that vigil_syscall_attachments covers`);
    }
    const field: RouteField = ownEvent === undefined ? side : `own_${side}`;
    const entry = this.routes.get(nr) ?? { enter: 0, exit: 0, own_enter: 0, own_exit: 0 };
    if (entry[field] !== 0) throw new Error(`syscall ${nr} already has an attachment for its ${field}`);
    entry[field] = id + 1;
    this.routes.set(nr, entry);
    this.write(nr, entry);
    let detach: () => void;
    try {
      detach = ownEvent === undefined ? this.retainRaw(side) : this.attachOwn(side, ownEvent, id);
    } catch (err) {
      this.clear(field, nr);
      throw err;
    }
    return () => {
      this.clear(field, nr);
      detach();
    };
  }

  private clear(field: RouteField, nr: number): void {
    const entry = this.routes.get(nr);
    if (!entry) return;
    entry[field] = 0;
    this.write(nr, entry);
    if (ROUTE_FIELDS.every((f) => entry[f] === 0)) this.routes.delete(nr);
  }

  private write(nr: number, entry: Record<RouteField, number>): void {
    const value = new StructWriter(this.layout);
    for (const f of ROUTE_FIELDS) value.set(f, entry[f]);
    this.object.mapUpdate('vigil_syscall_attachments', u32Key(nr), value.buf);
  }

  /** Attaches the side's program to the syscall's own tracepoint `event` (the cookie, unused there, names the attachment for bpftool); returns what detaches it. */
  private attachOwn(side: SyscallSide, event: string, id: number): () => void {
    const link = this.object.attachTracepoint(OWN_TRACEPOINT_PROGRAMS[side], 'syscalls', event, id);
    return () => this.object.detach(link);
  }

  /** Attaches the side's raw program for one more route (once for all); returns what lets go of it. */
  private retainRaw(side: SyscallSide): () => void {
    const held = this.rawLinks.get(side);
    if (held) held.routes++;
    else this.rawLinks.set(side, { link: this.object.attachTarget(SYSCALL_PROGRAMS[side]), routes: 1 });
    return () => {
      const h = this.rawLinks.get(side);
      if (!h || --h.routes > 0) return;
      this.rawLinks.delete(side);
      this.object.detach(h.link);
    };
  }
}
