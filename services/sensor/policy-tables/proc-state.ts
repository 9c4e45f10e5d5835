/**
 * vigil_procs entries for processes the kernel never saw exec: the ones found
 * by the /proc walk at start-up. Their caps and namespaces "at exec" are those
 * of now, the best the walk can know.
 */
import { StructLayout, StructWriter, type BtfSource } from '../kernel/layout.js';
import { NAMESPACE_NAMES } from '../kernel/records.js';
import { ProcessFlags } from '../../lib/kernel-abi.js';
import type { ProcSnapshot } from '../proc-walk.js';

export class ProcStateEncoder {
  private readonly layout: StructLayout;

  constructor(btf: BtfSource) {
    this.layout = new StructLayout('vigil_proc_state', btf);
  }

  encode(snap: ProcSnapshot): { key: Buffer; value: Buffer } {
    const w = new StructWriter(this.layout);
    const { creds, ns } = snap.proc;
    w.set('exec_caps[0]', creds.capEffective).set('exec_caps[1]', creds.capPermitted).set('exec_caps[2]', creds.capInheritable);
    NAMESPACE_NAMES.forEach((name, i) => w.set(`exec_ns[${i}]`, ns[name]));
    const path = Buffer.from(snap.exe);
    const exe = path.subarray(0, this.layout.field('exe').size - 1); // NUL-terminated
    w.set('exe_len', exe.length).setBytes('exe', exe).set('flags', exe.length < path.length ? ProcessFlags.EXE_TRUNCATED : 0);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(snap.proc.pid);
    return { key, value: w.buf };
  }
}
