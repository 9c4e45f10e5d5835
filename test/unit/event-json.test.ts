/**
 * eventJsonText (services/lib/event-json.ts): an event written from its bytes,
 * with its processes' text kept by their bytes, is the text of the whole
 * decoded event, for every event shape, including a process encoded as the
 * sensor splices it (fixed bytes, then the moment's fields).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import type { EventType, GetEventsResponse, Process } from '../../services/lib/event-model.js';
import { eventJsonText } from '../../services/lib/event-json.js';
import { holdFixedForm } from '../support/fixed-forms.js';
import { decodeMessage, encodeMessage, toProtoJsonText } from '../../services/lib/tetragon-proto.js';
import { EventEncoder } from '../../services/sensor/event-encoder.js';

const process = (pid: number, binary: string): Process => ({
  exec_id: `ZXhlYzo${pid}`, pid: { value: pid }, uid: { value: 0 }, cwd: '/', binary, arguments: '-c "x y"', flags: 'execve',
  start_time: { seconds: 1_700_000_000, nanos: 5 }, auid: { value: 4294967295 }, parent_exec_id: 'cGFyZW50', refcnt: 1,
  cap: { permitted: [21], effective: [21], inheritable: [] }, ns: { mnt: { inum: 4026531841, is_host: true } }, tid: { value: pid },
  process_credentials: { uid: { value: 0 }, gid: { value: 0 } },
} as unknown as Process);

const base = { node_name: 'node-1', time: { seconds: 1_700_000_100, nanos: 123_456_789 } };

const wholeText = (bytes: Uint8Array): string => toProtoJsonText('tetragon.GetEventsResponse', decodeMessage('tetragon.GetEventsResponse', bytes));

test('an event written from its bytes is the whole decoded event\'s text', () => {
  const events: [EventType, GetEventsResponse][] = [
    ['process_exec', { ...base, process_exec: { process: process(7, '/bin/sh'), parent: process(1, '/sbin/init') } } as GetEventsResponse],
    ['process_exit', { ...base, process_exit: { process: process(7, '/bin/sh'), signal: 'SIGKILL', status: 9 } } as unknown as GetEventsResponse],
    ['process_kprobe', {
      ...base,
      process_kprobe: {
        process: process(7, '/bin/sh'), parent: process(1, '/sbin/init'), function_name: 'fd_install', policy_name: 'p', action: 3,
        args: [{ int_arg: 3 }, { file_arg: { path: '/etc/passwd' } }], tags: ['a'],
      },
    } as unknown as GetEventsResponse],
    ['process_kprobe', { process_kprobe: { function_name: 'no_process' } } as unknown as GetEventsResponse],
    ['process_loader', { ...base, process_loader: { process: process(7, '/bin/sh'), path: '/lib/libc.so.6', buildid: new Uint8Array([1, 2]) } } as unknown as GetEventsResponse],
  ];
  for (const [type, event] of events) {
    const bytes = encodeMessage('tetragon.GetEventsResponse', event);
    for (let twice = 0; twice < 2; twice++) assert.equal(eventJsonText(type, bytes), wholeText(bytes), `${type} ${twice}`);
  }
});

test('a process spliced by the sensor\'s encoder (a field given twice) is written as decoders merge it', () => {
  const fixed = process(9, '/usr/bin/cat');
  const snapshot = { ...fixed, refcnt: 3, tid: { value: 10 } } as Process;
  holdFixedForm(fixed);
  const bytes = new EventEncoder().encode('process_kprobe', { ...base, process_kprobe: { process: snapshot, function_name: 'f' } } as unknown as GetEventsResponse);
  const text = eventJsonText('process_kprobe', bytes);
  assert.equal(text, wholeText(bytes));
  assert.match(text, /"refcnt":3,.*"tid":10/);
});
