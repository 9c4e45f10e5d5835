/**
 * The two programs every syscall hook shares (bpf/hook_syscall.bpf.c):
 * vigil_sys_enter on the raw sys_enter tracepoint and vigil_sys_exit on
 * sys_exit. Each is attached while some syscall is routed to it and detached
 * when the last route goes, so that a node without syscall hooks pays
 * nothing for them; vigil_syscall_attachments names, per syscall number, the
 * attachment each program serves.
 */
import type { BpfObject } from '../kernel/addon.js';
import { StructLayout, StructWriter, type BtfSource } from '../kernel/layout.js';
import { MAX_SYSCALL_NR } from '../../lib/kernel-abi.js';

export type SyscallSide = 'enter' | 'exit';

export const SYSCALL_PROGRAMS: Readonly<Record<SyscallSide, string>> = { enter: 'vigil_sys_enter', exit: 'vigil_sys_exit' };

const u32Key = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

export class SyscallDispatch {
  private readonly layout: StructLayout;
  /** Per syscall number, 1 + the attachment id of each side (0: none), as in the kernel's table. */
  private readonly routes = new Map<number, Record<SyscallSide, number>>();
  private readonly links = new Map<SyscallSide, { link: number; routes: number }>();

  constructor(private readonly object: BpfObject, btf: BtfSource) {
    this.layout = new StructLayout('vigil_syscall_attachment', btf);
  }

  /**
   * Sends syscall `nr`'s `side` to attachment `id`, attaching the side's
   * program if it was not; returns what undoes it. The table entry is written
   * before the program is attached, so it never runs on a half-made route.
   */
  route(side: SyscallSide, nr: number, id: number): () => void {
    if (!Number.isInteger(nr) || nr < 0 || nr >= MAX_SYSCALL_NR) {
      throw new Error(`syscall number ${nr} is outside the ${MAX_SYSCALL_NR} that vigil_syscall_attachments covers`);
    }
    const entry = this.routes.get(nr) ?? { enter: 0, exit: 0 };
    if (entry[side] !== 0) throw new Error(`syscall ${nr} already has an attachment for its ${side}`);
    entry[side] = id + 1;
    this.routes.set(nr, entry);
    this.write(nr, entry);
    try {
      this.retain(side);
    } catch (err) {
      this.clear(side, nr);
      throw err;
    }
    return () => {
      this.clear(side, nr);
      this.release(side);
    };
  }

  private clear(side: SyscallSide, nr: number): void {
    const entry = this.routes.get(nr);
    if (!entry) return;
    entry[side] = 0;
    this.write(nr, entry);
    if (entry.enter === 0 && entry.exit === 0) this.routes.delete(nr);
  }

  private write(nr: number, entry: Record<SyscallSide, number>): void {
    const value = new StructWriter(this.layout).set('enter', entry.enter).set('exit', entry.exit);
    this.object.mapUpdate('vigil_syscall_attachments', u32Key(nr), value.buf);
  }

  private retain(side: SyscallSide): void {
    const held = this.links.get(side);
    if (held) {
      held.routes++;
      return;
    }
    this.links.set(side, { link: this.object.attachTarget(SYSCALL_PROGRAMS[side]), routes: 1 });
  }

  private release(side: SyscallSide): void {
    const held = this.links.get(side);
    if (!held || --held.routes > 0) return;
    this.links.delete(side);
    this.object.detach(held.link);
  }
}
