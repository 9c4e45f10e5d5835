/**
 * The event pipeline on recorded bytes: records laid out by the compiled
 * object's BTF (read from build/bpf/vigil.bpf.o without loading it, so no
 * root), framed as the ring reader frames them, turned into events on a bus.
 * A change to bpf/vigil.h that the decoder does not follow fails here.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { LocalBus, type EventEnvelope } from '../../services/lib/bus.js';
import { ArgType, ActionKind, RecordKind, ArgValueFlags } from '../../services/lib/kernel-abi.js';
import { bpfObjectPath } from '../../services/lib/paths.js';
import type { Hook } from '../../services/lib/policy-program.js';
import { decodeMessage } from '../../services/lib/tetragon-proto.js';
import { BpfObject } from '../../services/sensor/kernel/addon.js';
import { StructLayout, StructWriter, type BtfSource } from '../../services/sensor/kernel/layout.js';
import { NAMESPACE_NAMES, type NamespaceName } from '../../services/sensor/kernel/records.js';
import { BootClock } from '../../services/sensor/identity.js';
import { ProcessCache } from '../../services/sensor/process-cache.js';
import { EventPipeline } from '../../services/sensor/pipeline.js';

const object = new BpfObject(bpfObjectPath('vigil'));
const btf: BtfSource = (name) => object.btfStruct(name);
const layout = (name: string) => new StructLayout(name, btf);
const HOST_NS = Object.fromEntries(NAMESPACE_NAMES.map((n) => [n, 4026531836])) as Record<NamespaceName, number>;

/** One record: the fixed struct (header filled in) and its variable data. */
function record(struct: string, kind: number, ktime: bigint, fill: (w: StructWriter) => void, data: Buffer = Buffer.alloc(0)): Buffer {
  const w = new StructWriter(layout(struct));
  // Variable data starts at the flexible array, which may lie before the padded struct's end.
  const fixed = data.length > 0 ? w.layout.offset('data') : w.buf.length;
  const bytes = Buffer.concat([w.buf.subarray(0, fixed), data]);
  w.set('hdr.kind', kind).set('hdr.size', bytes.length).set('hdr.ktime', ktime);
  fill(w);
  w.buf.copy(bytes, 0, 0, fixed);
  return bytes;
}

/** Records framed as a ring batch: [u32 length][record][padding to 8]. */
function batch(...records: Buffer[]): Buffer {
  return Buffer.concat(records.map((r) => {
    const framed = Buffer.alloc((4 + r.length + 7) & ~7);
    framed.writeUInt32LE(r.length, 0);
    r.copy(framed, 4);
    return framed;
  }));
}

function processFields(w: StructWriter, pid: number, ppid: number): void {
  w.set('proc.pid', pid).set('proc.tid', pid).set('proc.ppid', ppid).set('proc.nspid', pid).set('proc.start_boottime', 5_000_000n)
    .set('proc.creds.uid', 1000).set('proc.creds.auid', 1000).set('proc.creds.cap_effective', 1n << 21n);
  for (const ns of NAMESPACE_NAMES) w.set(`proc.ns.${ns}`, HOST_NS[ns]);
}

function argValue(type: number, bytes: Buffer, flags = 0): Buffer {
  const w = new StructWriter(layout('vigil_arg_value')).set('type', type).set('flags', flags).set('len', bytes.length);
  return Buffer.concat([w.buf, bytes]);
}

const HOOK: Hook = {
  kind: 'kprobe', name: 'sys_openat', attach: { kind: 'syscall', syscall: 'openat', number: 257 }, atExit: true, selectors: [],
  args: [{ source: { kind: 'syscall_arg', index: 0 }, type: 'int', label: 'dfd' }, { source: { kind: 'syscall_arg', index: 1 }, type: 'string', label: 'filename' }],
};

function harness() {
  const bus = new LocalBus((err) => { throw err; });
  const events: EventEnvelope[] = [];
  bus.subscribeEvents((e) => { events.push(e); });
  const clock = new BootClock();
  const cache = new ProcessCache({ nodeName: 'unit', clock, hostNamespaces: HOST_NS });
  const pipeline = new EventPipeline({
    nodeName: 'unit', btf, cache, clock, bus, hooks: (id) => (id === 7 ? { policy: 'files', hook: HOOK } : undefined),
  });
  return { pipeline, events };
}

test('pipeline: fork, exec, a policy record and exit become Tetragon events, encoded once, in order', () => {
  const { pipeline, events } = harness();
  const args = Buffer.from('/bin/cat\0', 'latin1');
  const exe = Buffer.from('cat\0bin\0usr\0', 'latin1');
  const cwd = Buffer.from('tmp\0', 'latin1');
  const execRecord = record('vigil_exec_record', RecordKind.EXEC, 2_000n, (w) => {
    processFields(w, 500, 1);
    w.set('old_pid', 500).set('args_len', args.length).set('exe_len', exe.length).set('cwd_len', cwd.length);
  }, Buffer.concat([args, exe, cwd]));
  const values = Buffer.concat([argValue(ArgType.INT, Buffer.from([3, 0, 0, 0, 0, 0, 0, 0])), argValue(ArgType.STRING, Buffer.from('/etc/shadow'))]);
  const policyRecord = record('vigil_policy_record', RecordKind.POLICY, 3_000n, (w) => {
    w.set('pid', 500).set('tid', 500).set('hook', 7).set('action', ActionKind.SIGKILL).set('applied', 1).set('nargs', 2).set('data_len', values.length);
  }, values);
  const exitRecord = record('vigil_exit_record', RecordKind.EXIT, 4_000n, (w) => {
    w.set('pid', 500).set('tid', 500).set('ppid', 1).set('exit_status', 9).set('start_boottime', 5_000_000n);
  });
  const forkRecord = record('vigil_fork_record', RecordKind.FORK, 1_000n, (w) => processFields(w, 500, 1));

  pipeline.handleBatch(batch(forkRecord, execRecord, policyRecord, exitRecord));

  assert.deepEqual(events.map((e) => e.type), ['process_exec', 'process_kprobe', 'process_exit']);
  const [execEvent, kprobeEvent, exitEvent] = events.map((e) => e.event);
  const p = execEvent!.process_exec!.process;
  assert.equal(p.binary, '/usr/bin/cat');
  assert.equal(p.cwd, '/tmp');
  assert.equal(p.pid.value, 500);
  assert.equal(p.uid.value, 1000);
  assert.deepEqual(p.cap?.effective, [21]);
  const kprobe = kprobeEvent!.process_kprobe as { function_name: string; policy_name: string; action: number; args: unknown[]; process: { exec_id: string } };
  assert.equal(kprobe.function_name, 'sys_openat');
  assert.equal(kprobe.policy_name, 'files');
  assert.equal(kprobe.action, 3, 'KPROBE_ACTION_SIGKILL');
  assert.deepEqual(kprobe.args, [{ label: 'dfd', int_arg: 3 }, { label: 'filename', string_arg: '/etc/shadow' }]);
  assert.equal(kprobe.process.exec_id, p.exec_id);
  assert.equal(exitEvent!.process_exit!.signal, 'SIGKILL');
  assert.equal(exitEvent!.process_exit!.process.exec_id, p.exec_id);

  // The bytes on the bus are the event, encoded once.
  const decoded = decodeMessage('tetragon.GetEventsResponse', events[1]!.bytes) as { process_kprobe?: { function_name?: string } };
  assert.equal(decoded.process_kprobe?.function_name, 'sys_openat');
  assert.deepEqual(pipeline.stats().events, { process_exec: 1, process_kprobe: 1, process_exit: 1 });
  assert.equal(pipeline.stats().undecodable, 0);
});

test('pipeline: unknown kinds, short records, records of unloaded hooks and lying lengths are counted, not published', () => {
  const { pipeline, events } = harness();
  const unknown = record('vigil_exit_record', 99, 1n, () => undefined);
  const short = Buffer.from(record('vigil_exit_record', RecordKind.EXIT, 1n, () => undefined).subarray(0, 20));
  const unloaded = record('vigil_policy_record', RecordKind.POLICY, 1n, (w) => w.set('pid', 1).set('hook', 8));
  const overlong = record('vigil_policy_record', RecordKind.POLICY, 1n, (w) => w.set('pid', 1).set('hook', 7).set('nargs', 1).set('data_len', 4000));
  const leafFirst = argValue(ArgType.STRING, Buffer.from('shadow\0etc\0'), ArgValueFlags.LEAF_FIRST);
  const good = record('vigil_policy_record', RecordKind.POLICY, 1n, (w) => w.set('pid', 1).set('hook', 7).set('nargs', 2).set('data_len', leafFirst.length), leafFirst);
  pipeline.handleBatch(batch(unknown, short, unloaded, overlong, good));
  assert.equal(pipeline.stats().undecodable, 4);
  assert.equal(events.length, 1);
  const kprobe = events[0]!.event.process_kprobe as { args: unknown[]; process: { flags: string } };
  assert.deepEqual(kprobe.args[0], { label: 'dfd', string_arg: '/etc/shadow' }, 'a resolved path arrives leaf first and reads forward');
  assert.equal(kprobe.process.flags, 'miss', 'a process the cache does not know is reported as a miss');
});
