/**
 * Decodes the records of bpf/vigil.h from ring-buffer bytes. Offsets come from
 * the object's BTF (layout.ts); the record kinds are the values of
 * enum vigil_record_kind, checked against BTF at start-up too.
 */
import { StructLayout, type BtfSource } from './layout.js';

export const RecordKind = { exec: 1, fork: 2, exit: 3 } as const;

export const ProcessFlag = {
  argsTruncated: 1 << 0,
  exeTruncated: 1 << 1,
  cwdTruncated: 1 << 2,
  argsUnreadable: 1 << 3,
  rootCwd: 1 << 4,
} as const;

export interface KernelCreds {
  uid: number; euid: number; suid: number; fsuid: number;
  gid: number; egid: number; sgid: number; fsgid: number;
  auid: number; securebits: number;
  capEffective: bigint; capPermitted: bigint; capInheritable: bigint;
}

export type NamespaceName = 'uts' | 'ipc' | 'mnt' | 'pid' | 'pid_for_children' | 'net' | 'time' | 'time_for_children' | 'cgroup' | 'user';
export const NAMESPACE_NAMES: readonly NamespaceName[] = ['uts', 'ipc', 'mnt', 'pid', 'pid_for_children', 'net', 'time', 'time_for_children', 'cgroup', 'user'];

export interface KernelProcess {
  pid: number; tid: number; ppid: number; nspid: number;
  startBoottime: bigint; cgroupId: bigint; flags: number;
  creds: KernelCreds;
  ns: Record<NamespaceName, number>;
  comm: string; cgroupName: string; cgroupV1Name: string;
}

export interface ExecRecord { kind: 1; ktime: bigint; proc: KernelProcess; oldPid: number; argv: string[]; exe: string; cwd: string }
export interface ForkRecord { kind: 2; ktime: bigint; proc: KernelProcess }
export interface ExitRecord { kind: 3; ktime: bigint; pid: number; tid: number; ppid: number; exitStatus: number; startBoottime: bigint }
export type KernelRecord = ExecRecord | ForkRecord | ExitRecord;

const CREDS_U32 = ['uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid', 'auid', 'securebits'] as const;

/** Reads a NUL-terminated string from a fixed-size char array. */
function cString(buf: Buffer, offset: number, size: number): string {
  const end = buf.indexOf(0, offset);
  return buf.toString('utf8', offset, end < 0 || end > offset + size ? offset + size : end);
}

/** Splits NUL-terminated strings packed back to back. */
export function splitNulStrings(buf: Buffer, offset: number, length: number): string[] {
  const out: string[] = [];
  let start = offset;
  const end = offset + length;
  while (start < end) {
    let nul = buf.indexOf(0, start);
    if (nul < 0 || nul > end) nul = end;
    out.push(buf.toString('utf8', start, nul));
    start = nul + 1;
  }
  return out;
}

/** A path given as components leaf first ("ls","bin","usr") → "/usr/bin/ls". */
export function pathFromLeafFirst(components: string[]): string {
  return '/' + components.filter((c) => c !== '' && c !== '/').reverse().join('/');
}

function processReader(layout: StructLayout, prefix: string): (buf: Buffer, base: number) => KernelProcess {
  const at = (path: string, size?: number): number => layout.offset(prefix + path, size);
  const o = {
    pid: at('pid', 4), tid: at('tid', 4), ppid: at('ppid', 4), nspid: at('nspid', 4),
    startBoottime: at('start_boottime', 8), cgroupId: at('cgroup_id', 8), flags: at('flags', 4),
    capEffective: at('creds.cap_effective', 8), capPermitted: at('creds.cap_permitted', 8), capInheritable: at('creds.cap_inheritable', 8),
  };
  const creds = CREDS_U32.map((name) => [name, at(`creds.${name}`, 4)] as const);
  const ns = NAMESPACE_NAMES.map((name) => [name, at(`ns.${name}`, 4)] as const);
  const comm = layout.field(prefix + 'comm');
  const cgroupName = layout.field(prefix + 'cgroup_name');
  const cgroupV1Name = layout.field(prefix + 'cgroup_v1_name');

  return (buf, base) => {
    const credValues = {} as Record<(typeof CREDS_U32)[number], number>;
    for (const [name, off] of creds) credValues[name] = buf.readUInt32LE(base + off);
    const nsValues = {} as Record<NamespaceName, number>;
    for (const [name, off] of ns) nsValues[name] = buf.readUInt32LE(base + off);
    return {
      pid: buf.readUInt32LE(base + o.pid),
      tid: buf.readUInt32LE(base + o.tid),
      ppid: buf.readUInt32LE(base + o.ppid),
      nspid: buf.readUInt32LE(base + o.nspid),
      startBoottime: buf.readBigUInt64LE(base + o.startBoottime),
      cgroupId: buf.readBigUInt64LE(base + o.cgroupId),
      flags: buf.readUInt32LE(base + o.flags),
      creds: {
        ...credValues,
        capEffective: buf.readBigUInt64LE(base + o.capEffective),
        capPermitted: buf.readBigUInt64LE(base + o.capPermitted),
        capInheritable: buf.readBigUInt64LE(base + o.capInheritable),
      },
      ns: nsValues,
      comm: cString(buf, base + comm.offset, comm.size),
      cgroupName: cString(buf, base + cgroupName.offset, cgroupName.size),
      cgroupV1Name: cString(buf, base + cgroupV1Name.offset, cgroupV1Name.size),
    };
  };
}

/** Builds a decoder for one BPF object's records. Throws at construction if the object's ABI differs. */
export function recordDecoder(btf: BtfSource): (buf: Buffer, offset: number, length: number) => KernelRecord | undefined {
  const header = new StructLayout('vigil_record_header', btf);
  const kindAt = header.offset('kind', 4);
  const ktimeAt = header.offset('ktime', 8);

  const exec = new StructLayout('vigil_exec_record', btf);
  const readExecProcess = processReader(exec, 'proc.');
  const execAt = {
    oldPid: exec.offset('old_pid', 4), argsLen: exec.offset('args_len', 2),
    exeLen: exec.offset('exe_len', 2), cwdLen: exec.offset('cwd_len', 2), data: exec.offset('data'),
  };

  const fork = new StructLayout('vigil_fork_record', btf);
  const readForkProcess = processReader(fork, 'proc.');

  const exit = new StructLayout('vigil_exit_record', btf);
  const exitAt = {
    pid: exit.offset('pid', 4), tid: exit.offset('tid', 4), ppid: exit.offset('ppid', 4),
    status: exit.offset('exit_status', 4), start: exit.offset('start_boottime', 8),
  };

  return (buf, offset, length) => {
    const kind = buf.readUInt32LE(offset + kindAt);
    const ktime = buf.readBigUInt64LE(offset + ktimeAt);
    switch (kind) {
      case RecordKind.exec: {
        if (length < execAt.data) return undefined;
        const argsLen = buf.readUInt16LE(offset + execAt.argsLen);
        const exeLen = buf.readUInt16LE(offset + execAt.exeLen);
        const cwdLen = buf.readUInt16LE(offset + execAt.cwdLen);
        const data = offset + execAt.data;
        if (execAt.data + argsLen + exeLen + cwdLen > length) return undefined;
        return {
          kind, ktime,
          proc: readExecProcess(buf, offset),
          oldPid: buf.readUInt32LE(offset + execAt.oldPid),
          argv: splitNulStrings(buf, data, argsLen),
          exe: pathFromLeafFirst(splitNulStrings(buf, data + argsLen, exeLen)),
          cwd: pathFromLeafFirst(splitNulStrings(buf, data + argsLen + exeLen, cwdLen)),
        };
      }
      case RecordKind.fork:
        if (length < fork.size) return undefined;
        return { kind, ktime, proc: readForkProcess(buf, offset) };
      case RecordKind.exit:
        if (length < exit.size) return undefined;
        return {
          kind, ktime,
          pid: buf.readUInt32LE(offset + exitAt.pid),
          tid: buf.readUInt32LE(offset + exitAt.tid),
          ppid: buf.readUInt32LE(offset + exitAt.ppid),
          exitStatus: buf.readUInt32LE(offset + exitAt.status),
          startBoottime: buf.readBigUInt64LE(offset + exitAt.start),
        };
      default:
        return undefined;
    }
  };
}
