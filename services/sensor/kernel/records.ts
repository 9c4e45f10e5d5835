/**
 * Decodes every record of bpf/vigil.h from ring-buffer bytes into one tagged
 * union, KernelRecord. Offsets come from the object's BTF (layout.ts) and the
 * record kinds and flags from the header itself (lib/kernel-abi.ts), so a
 * change to vigil.h that the decoder does not follow fails at construction.
 */
import { StructLayout, type BtfSource } from './layout.js';
import { PolicyRecordFlags, RecordKind } from '../../lib/kernel-abi.js';

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

export interface ExecRecord { kind: typeof RecordKind.EXEC; ktime: bigint; proc: KernelProcess; oldPid: number; argv: string[]; exe: string; cwd: string }
export interface ForkRecord { kind: typeof RecordKind.FORK; ktime: bigint; proc: KernelProcess }
export interface ExitRecord { kind: typeof RecordKind.EXIT; ktime: bigint; pid: number; tid: number; ppid: number; exitStatus: number; startBoottime: bigint }
/** A selector of a policy hook matched: the hook, the action taken and the argument values. */
export interface PolicyRecord {
  kind: typeof RecordKind.POLICY; ktime: bigint; pid: number; tid: number; hook: number; selector: number;
  action: number; applied: boolean; signal: number; hasReturn: boolean; ret: bigint;
  values: ArgValue[];
  /** Stack traces a Post asked for: addresses, innermost frame first. */
  kernelStack: bigint[]; userStack: bigint[];
}
/** One argument value of a policy record: its vigil_arg_type, vigil_arg_value_flags and bytes. */
export interface ArgValue { type: number; flags: number; bytes: Buffer }
export type KernelRecord = ExecRecord | ForkRecord | ExitRecord | PolicyRecord;

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

/**
 * A reader of little-endian integers at fixed offsets into an object with
 * these property names, as generated code: every object it makes has one
 * shape and is built in one allocation (filling an empty object in a loop
 * and spreading it made three objects per record).
 */
function integersReader<T>(fields: readonly (readonly [name: string, offset: number, bytes: 4 | 8])[]): (buf: Buffer, base: number) => T {
  const members = fields.map(([name, offset, bytes]) => {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`integersReader: bad offset ${offset} of ${name}`);
    return `${JSON.stringify(name)}: buf.${bytes === 8 ? 'readBigUInt64LE' : 'readUInt32LE'}(base + ${offset})`;
  });
  return new Function('buf', 'base', `return { ${members.join(', ')} };`) as (buf: Buffer, base: number) => T;
}

/** Reads a struct vigil_creds at `prefix` of a layout ("" for the struct itself). */
function credsReader(layout: StructLayout, prefix: string): (buf: Buffer, base: number) => KernelCreds {
  const field = (name: string, path: string, bytes: 4 | 8): readonly [string, number, 4 | 8] => [name, layout.offset(prefix + path, bytes), bytes];
  return integersReader<KernelCreds>([
    ...CREDS_U32.map((name) => field(name, name, 4)),
    field('capEffective', 'cap_effective', 8), field('capPermitted', 'cap_permitted', 8), field('capInheritable', 'cap_inheritable', 8),
  ]);
}

/** A `cred` argument's bytes (struct vigil_creds) as credentials, or undefined when they are short. */
export function credsArgReader(btf: BtfSource): (bytes: Buffer) => KernelCreds | undefined {
  const layout = new StructLayout('vigil_creds', btf);
  const read = credsReader(layout, '');
  return (bytes) => (bytes.length < layout.size ? undefined : read(bytes, 0));
}

function processReader(layout: StructLayout, prefix: string): (buf: Buffer, base: number) => KernelProcess {
  const at = (path: string, size?: number): number => layout.offset(prefix + path, size);
  const o = {
    pid: at('pid', 4), tid: at('tid', 4), ppid: at('ppid', 4), nspid: at('nspid', 4),
    startBoottime: at('start_boottime', 8), cgroupId: at('cgroup_id', 8), flags: at('flags', 4),
  };
  const readCreds = credsReader(layout, `${prefix}creds.`);
  const readNamespaces = integersReader<Record<NamespaceName, number>>(NAMESPACE_NAMES.map((name) => [name, at(`ns.${name}`, 4), 4]));
  const comm = layout.field(prefix + 'comm');
  const cgroupName = layout.field(prefix + 'cgroup_name');
  const cgroupV1Name = layout.field(prefix + 'cgroup_v1_name');

  return (buf, base) => {
    return {
      pid: buf.readUInt32LE(base + o.pid),
      tid: buf.readUInt32LE(base + o.tid),
      ppid: buf.readUInt32LE(base + o.ppid),
      nspid: buf.readUInt32LE(base + o.nspid),
      startBoottime: buf.readBigUInt64LE(base + o.startBoottime),
      cgroupId: buf.readBigUInt64LE(base + o.cgroupId),
      flags: buf.readUInt32LE(base + o.flags),
      creds: readCreds(buf, base),
      ns: readNamespaces(buf, base),
      comm: cString(buf, base + comm.offset, comm.size),
      cgroupName: cString(buf, base + cgroupName.offset, cgroupName.size),
      cgroupV1Name: cString(buf, base + cgroupV1Name.offset, cgroupV1Name.size),
    };
  };
}

type Decode<R> = (buf: Buffer, offset: number, length: number, ktime: bigint) => R | undefined;

function execDecoder(btf: BtfSource): Decode<ExecRecord> {
  const exec = new StructLayout('vigil_exec_record', btf);
  const readProcess = processReader(exec, 'proc.');
  const at = {
    oldPid: exec.offset('old_pid', 4), argsLen: exec.offset('args_len', 2),
    exeLen: exec.offset('exe_len', 2), cwdLen: exec.offset('cwd_len', 2), data: exec.offset('data'),
  };
  return (buf, offset, length, ktime) => {
    if (length < at.data) return undefined;
    const argsLen = buf.readUInt16LE(offset + at.argsLen);
    const exeLen = buf.readUInt16LE(offset + at.exeLen);
    const cwdLen = buf.readUInt16LE(offset + at.cwdLen);
    const data = offset + at.data;
    if (at.data + argsLen + exeLen + cwdLen > length) return undefined;
    return {
      kind: RecordKind.EXEC, ktime,
      proc: readProcess(buf, offset),
      oldPid: buf.readUInt32LE(offset + at.oldPid),
      argv: splitNulStrings(buf, data, argsLen),
      exe: pathFromLeafFirst(splitNulStrings(buf, data + argsLen, exeLen)),
      cwd: pathFromLeafFirst(splitNulStrings(buf, data + argsLen + exeLen, cwdLen)),
    };
  };
}

function forkDecoder(btf: BtfSource): Decode<ForkRecord> {
  const fork = new StructLayout('vigil_fork_record', btf);
  const readProcess = processReader(fork, 'proc.');
  return (buf, offset, length, ktime) => (length < fork.size ? undefined : { kind: RecordKind.FORK, ktime, proc: readProcess(buf, offset) });
}

function exitDecoder(btf: BtfSource): Decode<ExitRecord> {
  const exit = new StructLayout('vigil_exit_record', btf);
  const at = {
    pid: exit.offset('pid', 4), tid: exit.offset('tid', 4), ppid: exit.offset('ppid', 4),
    status: exit.offset('exit_status', 4), start: exit.offset('start_boottime', 8),
  };
  return (buf, offset, length, ktime) => (length < exit.size ? undefined : {
    kind: RecordKind.EXIT, ktime,
    pid: buf.readUInt32LE(offset + at.pid),
    tid: buf.readUInt32LE(offset + at.tid),
    ppid: buf.readUInt32LE(offset + at.ppid),
    exitStatus: buf.readUInt32LE(offset + at.status),
    startBoottime: buf.readBigUInt64LE(offset + at.start),
  });
}

function policyDecoder(btf: BtfSource): Decode<PolicyRecord> {
  const rec = new StructLayout('vigil_policy_record', btf);
  const val = new StructLayout('vigil_arg_value', btf);
  const at = {
    pid: rec.offset('pid', 4), tid: rec.offset('tid', 4), hook: rec.offset('hook', 2),
    selector: rec.offset('selector', 1), action: rec.offset('action', 1), applied: rec.offset('applied', 1), signal: rec.offset('signal', 1),
    nargs: rec.offset('nargs', 1), flags: rec.offset('flags', 1), ret: rec.offset('ret', 8), dataLen: rec.offset('data_len', 2), data: rec.offset('data'),
    kstackLen: rec.offset('kstack_len', 2), ustackLen: rec.offset('ustack_len', 2),
  };
  // bpf_get_stack ends a short stack with zeros: they are no frames.
  const addresses = (buf: Buffer, from: number, bytes: number): bigint[] =>
    Array.from({ length: Math.floor(bytes / 8) }, (_, i) => buf.readBigUInt64LE(from + 8 * i)).filter((a) => a !== 0n);
  const v = { type: val.offset('type', 1), flags: val.offset('flags', 1), len: val.offset('len', 2), size: val.size };
  return (buf, offset, length, ktime) => {
    if (length < at.data) return undefined;
    const dataLen = buf.readUInt16LE(offset + at.dataLen);
    const kstackLen = buf.readUInt16LE(offset + at.kstackLen);
    const ustackLen = buf.readUInt16LE(offset + at.ustackLen);
    if (at.data + dataLen + kstackLen + ustackLen > length) return undefined;
    const values: ArgValue[] = [];
    let pos = offset + at.data;
    const end = pos + dataLen;
    for (let i = buf.readUInt8(offset + at.nargs); i > 0 && pos + v.size <= end; i--) {
      const len = buf.readUInt16LE(pos + v.len);
      const start = pos + v.size;
      if (start + len > end) return undefined;
      values.push({ type: buf.readUInt8(pos + v.type), flags: buf.readUInt8(pos + v.flags), bytes: buf.subarray(start, start + len) });
      pos = start + len;
    }
    return {
      kind: RecordKind.POLICY, ktime, pid: buf.readUInt32LE(offset + at.pid), tid: buf.readUInt32LE(offset + at.tid),
      hook: buf.readUInt16LE(offset + at.hook), selector: buf.readUInt8(offset + at.selector), action: buf.readUInt8(offset + at.action),
      applied: buf.readUInt8(offset + at.applied) === 1, signal: buf.readUInt8(offset + at.signal),
      hasReturn: (buf.readUInt8(offset + at.flags) & PolicyRecordFlags.RETURN) !== 0, ret: buf.readBigInt64LE(offset + at.ret), values,
      kernelStack: addresses(buf, end, kstackLen), userStack: addresses(buf, end + kstackLen, ustackLen),
    };
  };
}

/**
 * Builds the decoder of one BPF object's records: any record of the ring
 * buffer to a KernelRecord, or undefined for an unknown kind or a malformed
 * length. Throws at construction if the object's ABI lacks a field it reads.
 */
export function recordDecoder(btf: BtfSource): (buf: Buffer, offset: number, length: number) => KernelRecord | undefined {
  const header = new StructLayout('vigil_record_header', btf);
  const kindAt = header.offset('kind', 4);
  const ktimeAt = header.offset('ktime', 8);
  const byKind = new Map<number, Decode<KernelRecord>>([
    [RecordKind.EXEC, execDecoder(btf)],
    [RecordKind.FORK, forkDecoder(btf)],
    [RecordKind.EXIT, exitDecoder(btf)],
    [RecordKind.POLICY, policyDecoder(btf)],
  ]);
  return (buf, offset, length) => {
    if (length < header.size) return undefined;
    return byKind.get(buf.readUInt32LE(offset + kindAt))?.(buf, offset, length, buf.readBigUInt64LE(offset + ktimeAt));
  };
}
