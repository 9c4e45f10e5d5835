/**
 * EventEncoder (services/sensor/event-encoder.ts): an event encoded with the
 * reused encoding of its processes' fixed fields decodes to what the whole
 * encoding decodes to, for every way a snapshot differs from its process.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import type { GetEventsResponse, Process } from '../../services/lib/event-model.js';
import { decodeMessage, encodeMessage } from '../../services/lib/tetragon-proto.js';
import { EventEncoder } from '../../services/sensor/event-encoder.js';
import { holdFixedForm } from '../support/fixed-forms.js';

function fixedProcess(pid: number, binary: string): Process {
  return {
    exec_id: `bm9kZToxOjE${pid}`, pid: { value: pid }, uid: { value: 1000 }, cwd: '/home/u', binary, arguments: '-l -a',
    flags: 'execve', start_time: { seconds: 1_700_000_000, nanos: 5 }, auid: { value: 1000 }, parent_exec_id: 'cGFyZW50', refcnt: 0,
    cap: { permitted: [0, 21], effective: [21], inheritable: [] },
    ns: { mnt: { inum: 4026531841, is_host: true }, pid: { inum: 4026531836, is_host: false } },
    tid: { value: pid },
    process_credentials: { uid: { value: 1000 }, gid: { value: 1000 }, euid: { value: 0 }, egid: { value: 1000 }, suid: { value: 1000 }, sgid: { value: 1000 }, fsuid: { value: 1000 }, fsgid: { value: 1000 } },
    docker: 'abcdef0123456789abcdef012345678',
  } as Process;
}

const same = (encoder: EventEncoder, type: 'process_exec' | 'process_kprobe' | 'process_exit', event: GetEventsResponse): void => {
  const spliced = decodeMessage('tetragon.GetEventsResponse', encoder.encode(type, event));
  const whole = decodeMessage('tetragon.GetEventsResponse', encodeMessage('tetragon.GetEventsResponse', event));
  assert.deepEqual(spliced, whole);
};

test('events encoded with reused process encodings decode as the whole encoding does', () => {
  const fixed = fixedProcess(4242, '/usr/bin/ls');
  const parentFixed = fixedProcess(1, '/sbin/init');
  const snapshot = (of: Process, changes: Partial<Process>): Process => {
    const s = { ...of, ...changes } as Process;
    holdFixedForm(of);
    return s;
  };
  const encoder = new EventEncoder();
  const base = { node_name: 'node-1', time: { seconds: 1_700_000_100, nanos: 123_456_789 } };
  const pod = { namespace: 'default', name: 'web', pod_labels: { app: 'web' }, container: { id: 'containerd://abc', name: 'main' } };

  // Unchanged, refcnt, tid, a late pod, all at once; with and without a parent.
  same(encoder, 'process_exec', { ...base, process_exec: { process: snapshot(fixed, {}), parent: snapshot(parentFixed, { refcnt: 3 }) } } as GetEventsResponse);
  same(encoder, 'process_exec', { ...base, process_exec: { process: snapshot(fixed, { refcnt: 1 }) } } as GetEventsResponse);
  same(encoder, 'process_kprobe', {
    ...base,
    process_kprobe: {
      process: snapshot(fixed, { refcnt: 2, tid: { value: 4243 }, pod } as Partial<Process>), parent: snapshot(parentFixed, { refcnt: 1 }),
      function_name: 'fd_install', policy_name: 'p', action: 3, args: [{ int_arg: 3 }, { file_arg: { path: '/etc/passwd' } }],
    },
  } as unknown as GetEventsResponse);
  // What appending cannot say: refcnt back to 0, tid 0, a changed binary, a field gone: encoded whole.
  const fixedWithRef = { ...fixed, refcnt: 2 } as Process;
  same(encoder, 'process_exit', { ...base, process_exit: { process: snapshot(fixedWithRef, { refcnt: 0 }), signal: 'SIGKILL', status: 0 } } as unknown as GetEventsResponse);
  same(encoder, 'process_kprobe', { ...base, process_kprobe: { process: snapshot(fixed, { tid: { value: 0 } }), function_name: 'x' } } as unknown as GetEventsResponse);
  same(encoder, 'process_exec', { ...base, process_exec: { process: snapshot(fixed, { binary: '/usr/bin/other' }) } } as GetEventsResponse);
  const withoutDocker = snapshot(fixed, {});
  delete (withoutDocker as Partial<Process>).docker;
  same(encoder, 'process_exec', { ...base, process_exec: { process: withoutDocker } } as GetEventsResponse);
  // A process the cache did not make (no source): encoded whole.
  same(encoder, 'process_exec', { ...base, process_exec: { process: fixedProcess(7, '/bin/sh') } } as GetEventsResponse);
  // One that shares a held fixed form's exec_id (as one decoded from the bus does) but was not copied from it: whole.
  holdFixedForm(fixed);
  same(encoder, 'process_exec', { ...base, process_exec: { process: { ...fixedProcess(4242, '/usr/bin/vi'), exec_id: fixed.exec_id } } } as GetEventsResponse);
});

test('a fixed form with shared (frozen) capabilities, namespaces and credentials decodes as the whole encoding does', () => {
  const shared = fixedProcess(0, '');
  const freeze = <T extends object>(v: T): T => {
    for (const x of Object.values(v)) if (typeof x === 'object' && x !== null) freeze(x as object);
    return Object.freeze(v);
  };
  const [cap, ns, creds] = [freeze(shared.cap!), freeze(shared.ns!), freeze(shared.process_credentials!)];
  const encoder = new EventEncoder();
  const base = { node_name: 'node-1', time: { seconds: 1_700_000_100, nanos: 1 } };
  // Two processes sharing the values (the second reuses their kept encodings), one with an empty capability set.
  for (const [pid, capabilities] of [[10, cap], [11, cap], [12, freeze({})]] as const) {
    const fixed = { ...fixedProcess(pid, `/bin/p${pid}`), cap: capabilities, ns, process_credentials: creds } as Process;
    const snapshot = { ...fixed, refcnt: 1 } as Process;
    holdFixedForm(fixed);
    same(encoder, 'process_exec', { ...base, process_exec: { process: snapshot } } as GetEventsResponse);
  }
});
