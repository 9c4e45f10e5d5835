import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GetEventsResponse, Process } from '../../services/lib/event-model.js';
import protobuf from 'protobufjs';
import { holdFixedForm } from '../support/fixed-forms.js';
import {
  decodeMessage, encodeMessage, fineGuidanceSensorsDefinition, fromProtoJson, tetragonRoot, tetragonType, toProtoJson, toProtoJsonText,
} from '../../services/lib/tetragon-proto.js';

const CAP_CHOWN = 0;
const CAP_NET_RAW = 13;
const CAP_SYS_ADMIN = 21;
const KPROBE_ACTION_SIGKILL = 3;

/** 2026-11-30T10:00:00Z */
const T0 = 1_796_032_800;

function execEvent(): GetEventsResponse {
  return {
    process_exec: {
      process: {
        exec_id: 'bm9kZS0xOjEzNTQ4Njc0MzIxMzczOjUyNjk5',
        pid: { value: 52699 },
        uid: { value: 0 },
        cwd: '/',
        binary: '/usr/bin/curl',
        arguments: 'https://example.com/',
        flags: 'execve rootcwd',
        start_time: { seconds: T0, nanos: 700327580 },
        auid: { value: 4294967295 },
        pod: {
          namespace: 'default',
          name: 'xwing',
          container: {
            id: 'containerd://551e161c47d8ff0eb665438a7bcd5b4e3ef5a297282b40a92b7c77d6bd168eb3',
            name: 'spaceship',
            image: { id: 'docker.io/library/alpine@sha256:8e86f744', name: 'docker.io/library/alpine:3.20' },
            start_time: { seconds: T0 - 676, nanos: 0 },
            pid: { value: 49 },
          },
          pod_labels: { app: 'xwing', 'app.kubernetes.io/name': 'xwing' },
          workload: 'xwing',
        },
        docker: '551e161c47d8ff0eb665438a7bcd5b4',
        parent_exec_id: 'bm9kZS0xOjEzNTQ4NjcwODgzMjk5OjUyNjk4',
        refcnt: 0,
        cap: { permitted: [CAP_CHOWN, CAP_NET_RAW, CAP_SYS_ADMIN], effective: [CAP_SYS_ADMIN], inheritable: [] },
        tid: { value: 52699 },
      },
      parent: {
        exec_id: 'bm9kZS0xOjEzNTQ4NjcwODgzMjk5OjUyNjk4',
        pid: { value: 52698 },
        uid: { value: 0 },
        cwd: '/',
        binary: '/bin/bash',
        arguments: '-c "curl https://example.com/"',
        flags: 'execve rootcwd clone',
        start_time: { seconds: T0, nanos: 696889812 },
        auid: { value: 4294967295 },
        parent_exec_id: 'bm9kZS0xOjE6MQ==',
        refcnt: 1,
        tid: { value: 52698 },
      },
    },
    node_name: 'node-1',
    time: { seconds: T0, nanos: 700354000 },
  };
}

describe('tetragon-proto', () => {
  it('loads every message the public API needs, under Tetragon\'s names', () => {
    for (const name of ['GetEventsResponse', 'ProcessExec', 'ProcessExit', 'ProcessKprobe', 'ProcessTracepoint', 'ProcessUprobe', 'KprobeArgument',
      'Filter', 'FieldFilter', 'GetEventsRequest', 'AggregationOptions', 'GetHealthStatusResponse', 'GetVersionResponse',
      'AddTracingPolicyRequest', 'ListTracingPoliciesResponse', 'TracingPolicyStatus']) {
      assert.equal(tetragonType(name).fullName, `.tetragon.${name}`);
    }
    assert.equal(tetragonType('tetragon.Process'), tetragonType('Process'));
    assert.equal(tetragonRoot.lookupEnum('tetragon.CapabilitiesType').values.CAP_SYS_ADMIN, 21);
    assert.equal(tetragonRoot.lookupEnum('tetragon.EventType').values.PROCESS_UPROBE, 12);
    assert.equal(tetragonType('GetEventsResponse').fields.process_kprobe.id, 9);
    assert.equal(tetragonType('GetEventsResponse').fields.node_name.id, 1000);
  });

  it('round-trips an exec event through protobuf', () => {
    const event = execEvent();
    const bytes = encodeMessage('GetEventsResponse', event);
    assert.deepEqual(decodeMessage('GetEventsResponse', bytes), JSON.parse(JSON.stringify(event, (_k, v: unknown) => (Array.isArray(v) && v.length === 0 ? undefined : v))));
  });

  it('decodes to the event-model shape: wrappers and timestamps as messages, enums and 64-bit ints as numbers, unset fields absent', () => {
    const bytes = encodeMessage('GetEventsResponse', {
      process_uprobe: { process: { exec_id: 'a', pid: { value: 7 } }, path: '/bin/x', symbol: 'main', offset: 4096, action: KPROBE_ACTION_SIGKILL, args: [{ int_arg: 0 }, { bytes_arg: new Uint8Array([1, 2]) }] },
      time: { seconds: T0, nanos: 5 },
    });
    const decoded = decodeMessage<Record<string, any>>('GetEventsResponse', bytes); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(decoded.time, { seconds: T0, nanos: 5 });
    assert.deepEqual(decoded.process_uprobe.process, { exec_id: 'a', pid: { value: 7 } });
    assert.equal(decoded.process_uprobe.offset, 4096);
    assert.equal(decoded.process_uprobe.action, KPROBE_ACTION_SIGKILL);
    assert.deepEqual(decoded.process_uprobe.args[0], { int_arg: 0 });
    assert.deepEqual([...decoded.process_uprobe.args[1].bytes_arg], [1, 2]);
    assert.equal('node_name' in decoded, false);
    assert.equal('tags' in decoded.process_uprobe, false);
  });

  it('writes the JSON shape Tetragon documents for a process_exec', () => {
    const json = JSON.stringify(toProtoJson('GetEventsResponse', execEvent()));
    assert.equal(json, JSON.stringify({
      process_exec: {
        process: {
          exec_id: 'bm9kZS0xOjEzNTQ4Njc0MzIxMzczOjUyNjk5',
          pid: 52699,
          uid: 0,
          cwd: '/',
          binary: '/usr/bin/curl',
          arguments: 'https://example.com/',
          flags: 'execve rootcwd',
          start_time: '2026-11-30T10:00:00.700327580Z',
          auid: 4294967295,
          pod: {
            namespace: 'default',
            name: 'xwing',
            container: {
              id: 'containerd://551e161c47d8ff0eb665438a7bcd5b4e3ef5a297282b40a92b7c77d6bd168eb3',
              name: 'spaceship',
              image: { id: 'docker.io/library/alpine@sha256:8e86f744', name: 'docker.io/library/alpine:3.20' },
              start_time: '2026-11-30T09:48:44Z',
              pid: 49,
            },
            pod_labels: { app: 'xwing', 'app.kubernetes.io/name': 'xwing' },
            workload: 'xwing',
          },
          docker: '551e161c47d8ff0eb665438a7bcd5b4',
          parent_exec_id: 'bm9kZS0xOjEzNTQ4NjcwODgzMjk5OjUyNjk4',
          cap: { permitted: ['CAP_CHOWN', 'CAP_NET_RAW', 'CAP_SYS_ADMIN'], effective: ['CAP_SYS_ADMIN'] },
          tid: 52699,
        },
        parent: {
          exec_id: 'bm9kZS0xOjEzNTQ4NjcwODgzMjk5OjUyNjk4',
          pid: 52698,
          uid: 0,
          cwd: '/',
          binary: '/bin/bash',
          arguments: '-c "curl https://example.com/"',
          flags: 'execve rootcwd clone',
          start_time: '2026-11-30T10:00:00.696889812Z',
          auid: 4294967295,
          parent_exec_id: 'bm9kZS0xOjE6MQ==',
          refcnt: 1,
          tid: 52698,
        },
      },
      node_name: 'node-1',
      time: '2026-11-30T10:00:00.700354Z',
    }));
  });

  it('formats timestamps in RFC 3339 with 0, 3, 6 or 9 fractional digits', () => {
    const at = (seconds: number, nanos: number): unknown => toProtoJson('GetEventsResponse', { time: { seconds, nanos } }).time;
    assert.equal(at(T0, 0), '2026-11-30T10:00:00Z');
    assert.equal(at(T0, 120_000_000), '2026-11-30T10:00:00.120Z');
    assert.equal(at(T0, 123_456_000), '2026-11-30T10:00:00.123456Z');
    assert.equal(at(T0, 123_456_789), '2026-11-30T10:00:00.123456789Z');
    assert.equal(at(T0 + 1, 1), '2026-11-30T10:00:01.000000001Z');
    assert.equal(at(0, 0), '1970-01-01T00:00:00Z');
    assert.equal(at(-62135596800, 0), '0001-01-01T00:00:00Z');
    assert.equal(at(253402300799, 999_999_999), '9999-12-31T23:59:59.999999999Z');
    assert.throws(() => at(253402300800, 0), /^Error: time: timestamp seconds out of range/);
    assert.throws(() => toProtoJson('GetEventsResponse', { process_exit: { time: { seconds: 1, nanos: 1e9 } } }), /^Error: process_exit\.time: timestamp nanos out of range/);
  });

  it('omits zero values like protojson, but keeps set wrappers, oneof members and optional fields', () => {
    const json = toProtoJson('GetEventsResponse', {
      process_exit: {
        process: { exec_id: '', pid: { value: 0 }, uid: {}, cwd: '', refcnt: 0, in_init_tree: { value: false }, cap: { permitted: [], effective: [], inheritable: [] }, pod: { namespace: '', name: '', pod_labels: {} } },
        signal: '',
        status: 0,
      },
      node_name: '',
    });
    assert.deepEqual(json, { process_exit: { process: { pid: 0, uid: 0, cap: {}, pod: {}, in_init_tree: false } } });
    assert.deepEqual(toProtoJson('KprobeArgument', { int_arg: 0 }), { int_arg: 0 });
    assert.deepEqual(toProtoJson('KprobeArgument', { string_arg: '', label: '' }), { string_arg: '' });
    assert.deepEqual(toProtoJson('ConfigureTracingPolicyRequest', { name: 'p', enable: false, mode: 0 }), { name: 'p', enable: false, mode: 'TP_MODE_UNKNOWN' });
    assert.deepEqual(toProtoJson('ProcessKprobe', { action: 0, return_action: KPROBE_ACTION_SIGKILL }), { return_action: 'KPROBE_ACTION_SIGKILL' });
  });

  it('writes enums by name, 64-bit integers as strings, bytes in base64, durations and field masks in their JSON forms', () => {
    const json = toProtoJson('GetEventsResponse', {
      process_kprobe: {
        function_name: 'security_file_open',
        action: KPROBE_ACTION_SIGKILL,
        args: [
          { file_arg: { path: '/etc/shadow' } },
          { size_arg: 4096 },
          { long_arg: -5 },
          { bytes_arg: new Uint8Array([0xde, 0xad, 0xbe, 0xef]) },
          { cred_arg: { permitted: [CAP_SYS_ADMIN, 99] } },
        ],
        kernel_stack_trace: [{ address: '18446744072639868928', symbol: 'do_sys_open' }],
      },
    });
    assert.deepEqual(json, {
      process_kprobe: {
        function_name: 'security_file_open',
        args: [
          { file_arg: { path: '/etc/shadow' } },
          { size_arg: '4096' },
          { long_arg: '-5' },
          { bytes_arg: '3q2+7w==' },
          { cred_arg: { permitted: ['CAP_SYS_ADMIN', 99] } },
        ],
        action: 'KPROBE_ACTION_SIGKILL',
        kernel_stack_trace: [{ address: '18446744072639868928', symbol: 'do_sys_open' }],
      },
    });
    assert.deepEqual(toProtoJson('GetEventsRequest', {
      aggregation_options: { window_size: { seconds: 1, nanos: 500_000_000 }, channel_buffer_size: 10 },
      field_filters: [{ fields: { paths: ['process.binary', 'process.process_credentials'] }, action: 1, invert_event_set: { value: true } }],
    }), {
      aggregation_options: { window_size: '1.500s', channel_buffer_size: '10' },
      field_filters: [{ fields: 'process.binary,process.processCredentials', action: 'EXCLUDE', invert_event_set: true }],
    });
  });

  it('writes the JSON text JSON.stringify gives of the object form, and keeps the text of a frozen value', () => {
    const samples: [string, object][] = [
      ['GetEventsResponse', execEvent()],
      ['GetEventsResponse', { process_exit: { process: { exec_id: '', pid: { value: 0 }, uid: {}, cwd: '', refcnt: 0, in_init_tree: { value: false }, cap: { permitted: [], effective: [], inheritable: [] }, pod: { namespace: '', name: '', pod_labels: {} } }, signal: '', status: 0 }, node_name: '' }],
      ['GetEventsResponse', { process_kprobe: { function_name: 'f', action: KPROBE_ACTION_SIGKILL, args: [{ file_arg: { path: '/etc/shadow' } }, { size_arg: 4096 }, { long_arg: -5 }, { bytes_arg: new Uint8Array([0xde, 0xad]) }, { cred_arg: { permitted: [CAP_SYS_ADMIN, 99] } }, { string_arg: 'a "quoted"\nline' }], kernel_stack_trace: [{ address: '18446744072639868928', symbol: 'do_sys_open' }] } }],
      ['ProcessKprobe', { action: 0, return_action: KPROBE_ACTION_SIGKILL }],
      ['ProcessKprobe', { action: 99, args: [{ int_arg: -0 }, { int_arg: -7 }, { cred_arg: { permitted: [99, CAP_CHOWN], effective: [] } }] }],
      ['GetEventsRequest', { aggregation_options: { window_size: { seconds: 1, nanos: 500_000_000 }, channel_buffer_size: 10 }, field_filters: [{ fields: { paths: ['process.binary'] }, action: 1, invert_event_set: { value: true } }] }],
    ];
    for (const [type, value] of samples) assert.equal(toProtoJsonText(type, value), JSON.stringify(toProtoJson(type, value)), type);
    const cap = Object.freeze({ permitted: Object.freeze([CAP_SYS_ADMIN]), effective: Object.freeze([]), inheritable: Object.freeze([]) });
    const first = toProtoJsonText('Process', { exec_id: 'a', cap });
    assert.equal(first, '{"exec_id":"a","cap":{"permitted":["CAP_SYS_ADMIN"]}}');
    assert.equal(toProtoJsonText('Process', { exec_id: 'b', cap }), '{"exec_id":"b","cap":{"permitted":["CAP_SYS_ADMIN"]}}');
    assert.throws(() => toProtoJsonText('GetEventsResponse', { time: { seconds: 1e15, nanos: 0 } }), /time: timestamp seconds out of range/);
  });

  it('writes for every message type, with every kind of field set or zero, the text JSON.stringify gives of the object form', () => {
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const scalar = (type: string): unknown => {
      const pick = random(3);
      switch (type) {
        case 'string': return ['', 'a "quoted"\nline', '/usr/bin/ü'][pick];
        case 'bool': return pick === 0;
        case 'bytes': return [new Uint8Array(), new Uint8Array([0xde, 0xad]), new Uint8Array([1])][pick];
        case 'double': case 'float': return [0, -1.5, Infinity][pick];
        case 'int64': case 'sint64': case 'sfixed64': return [0, -5, '9007199254740993'][pick];
        case 'uint64': case 'fixed64': return [0, 4096, '18446744072639868928'][pick];
        default: return [0, -0, type.startsWith('u') || type.startsWith('fixed') ? 4294967295 : -7][pick];
      }
    };
    const valueOf = (field: protobuf.Field, depth: number): unknown => {
      const t = field.resolvedType;
      if (t instanceof protobuf.Enum) return [0, 1, 999][random(3)];
      if (t instanceof protobuf.Type) {
        if (t.fullName === '.google.protobuf.Timestamp') return { seconds: T0 + random(3), nanos: [0, 5_000_000, 123_456_789][random(3)] };
        if (t.fullName === '.google.protobuf.Duration') return { seconds: random(3), nanos: 0 };
        if (t.fullName === '.google.protobuf.FieldMask') return { paths: ['process.binary'] };
        if (t.fullName === '.google.protobuf.Any' || t.fullName === '.google.protobuf.Struct' || t.fullName === '.google.protobuf.Value') return undefined;
        return depth > 3 ? {} : objectOf(t, depth + 1);
      }
      return scalar(field.type);
    };
    const objectOf = (type: protobuf.Type, depth: number): Record<string, unknown> => {
      const out: Record<string, unknown> = {};
      for (const field of type.fieldsArray) {
        if (random(3) === 0) continue;
        if (field instanceof protobuf.MapField) {
          out[field.name] = Object.fromEntries(Array.from({ length: random(3) }, (_, i) => [`k${i}`, valueOf(field, depth)]));
        } else if (field.repeated) {
          out[field.name] = Array.from({ length: random(3) }, () => valueOf(field, depth));
        } else {
          const v = valueOf(field, depth);
          if (v !== undefined) out[field.name] = v;
        }
      }
      return out;
    };
    const types: protobuf.Type[] = [];
    const walk = (ns: protobuf.NamespaceBase): void => {
      for (const nested of ns.nestedArray) {
        if (nested instanceof protobuf.Type) types.push(nested);
        if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) walk(nested);
      }
    };
    walk(tetragonRoot.lookup('tetragon') as protobuf.Namespace);
    assert.ok(types.length > 100, `${types.length} message types`);
    for (const type of types) {
      for (let i = 0; i < 5; i++) {
        const value = objectOf(type, 0);
        const name = type.fullName.slice(1);
        assert.equal(toProtoJsonText(name, value), JSON.stringify(toProtoJson(name, value)), name);
      }
    }
  });

  it('writes a process snapshot as its fixed form\'s kept text with the moment\'s fields, the same text as whole', () => {
    const cap = Object.freeze({ permitted: Object.freeze([CAP_SYS_ADMIN]), effective: Object.freeze([]), inheritable: Object.freeze([]) });
    const fixed = { exec_id: 'eA==', pid: { value: 7 }, binary: '/bin/sh', arguments: '-c "x"', refcnt: 0, cap, tid: { value: 7 }, docker: 'abc', parent_exec_id: 'cA==' } as unknown as Process;
    const pod = { namespace: 'default', name: 'web', pod_labels: { app: 'web' } };
    const snapshot = (changes: object): Process => {
      const s = { ...fixed, ...changes } as Process;
      holdFixedForm(fixed);
      return s;
    };
    for (const changes of [{}, { refcnt: 2 }, { refcnt: 1, tid: { value: 8 }, pod }, { binary: '/bin/other' }, { refcnt: 0 }]) {
      for (let twice = 0; twice < 2; twice++) {
        const s = snapshot(changes);
        assert.equal(toProtoJsonText('Process', s), JSON.stringify(toProtoJson('Process', s)), JSON.stringify(changes));
      }
    }
  });

  it('writes an Any with its @type', () => {
    const image = encodeMessage('Image', { id: 'sha256:1' });
    const flag = encodeMessage('google.protobuf.BoolValue', { value: true });
    assert.deepEqual(toProtoJson('GetInfoResponse', {
      conf: [{ key: 'a', value: { type_url: 'type.googleapis.com/tetragon.Image', value: image } },
        { key: 'b', value: { type_url: 'type.googleapis.com/google.protobuf.BoolValue', value: flag } }],
    }), {
      conf: [{ key: 'a', value: { '@type': 'type.googleapis.com/tetragon.Image', id: 'sha256:1' } },
        { key: 'b', value: { '@type': 'type.googleapis.com/google.protobuf.BoolValue', value: true } }],
    });
  });

  it('parses its own JSON back to the event model', () => {
    const event = execEvent();
    const parsed = fromProtoJson('GetEventsResponse', JSON.parse(JSON.stringify(toProtoJson('GetEventsResponse', event))));
    // Zero values do not survive JSON (refcnt: 0, empty capability sets), exactly as with protojson.
    const expected = structuredClone(event) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    delete expected.process_exec.process.refcnt;
    delete expected.process_exec.process.cap.inheritable;
    assert.deepEqual(parsed, expected);
  });

  it('parses lowerCamelCase names, numbers in strings, enum names and numbers, timestamps with offsets', () => {
    const parsed = fromProtoJson('GetEventsRequest', {
      allowList: [{ binaryRegex: ['curl'], eventSet: ['PROCESS_EXEC', 5], pid: ['42'], inInitTree: true }],
      field_filters: [{ fields: 'process.binary,processCredentials', action: 'EXCLUDE' }],
      aggregationOptions: { windowSize: '2s', channelBufferSize: '18446744073709551615' },
    });
    assert.deepEqual(parsed, {
      allow_list: [{ binary_regex: ['curl'], event_set: [1, 5], pid: [42], in_init_tree: { value: true } }],
      field_filters: [{ fields: { paths: ['process.binary', 'process_credentials'] }, action: 1 }],
      // Past 2^53 the exact decimal text is kept, so that encoding does not round.
      aggregation_options: { window_size: { seconds: 2, nanos: 0 }, channel_buffer_size: '18446744073709551615' },
    });
    assert.deepEqual(fromProtoJson('GetEventsResponse', { time: '2026-11-30T11:00:00.5+01:00' }), { time: { seconds: T0, nanos: 500_000_000 } });
    const bytes = encodeMessage('AggregationOptions', { channel_buffer_size: '18446744073709551615' });
    assert.deepEqual([...bytes], [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });

  it('names the field path of a bad value', () => {
    const bad = (type: string, json: unknown, message: RegExp): void => {
      assert.throws(() => fromProtoJson(type, json), message);
    };
    bad('GetEventsResponse', { process_exec: { process: { pid: 'x' } } }, /^Error: process_exec\.process\.pid: expected a number/);
    bad('GetEventsRequest', { allow_list: [{ binary_regex: ['ok', 5] }] }, /^Error: allow_list\[0\]\.binary_regex\[1\]: expected a string/);
    bad('GetEventsRequest', { allow_list: [{ event_set: ['PROCESS_NOPE'] }] }, /^Error: allow_list\[0\]\.event_set\[0\]: unknown EventType value "PROCESS_NOPE"/);
    bad('GetEventsRequest', { deny_list: [{ pid: [-1] }] }, /^Error: deny_list\[0\]\.pid\[0\]: -1 is out of range/);
    bad('GetEventsResponse', { process_exec: { process: { bogus: 1 } } }, /^Error: process_exec\.process: unknown field "bogus"/);
    bad('GetEventsResponse', { process_exec: {}, process_exit: {} }, /^Error: process_exit: oneof event already set by process_exec/);
    bad('GetEventsResponse', { time: '2026-02-30T00:00:00Z' }, /^Error: time: invalid timestamp/);
    bad('GetEventsResponse', { node_labels: { zone: 1 } }, /^Error: node_labels\["zone"\]: expected a string/);
    bad('GetEventsResponse', [], /^Error: GetEventsResponse: expected an object/);
  });

  it('defines every FineGuidanceSensors rpc, with byte pass-through serializers', () => {
    const definition = fineGuidanceSensorsDefinition();
    assert.deepEqual(Object.keys(definition).sort(), [
      'AddTracingPolicy', 'ConfigureTracingPolicy', 'DeleteTracingPolicy', 'DisableSensor', 'DisableTracingPolicy', 'EnableSensor',
      'EnableTracingPolicy', 'GetDebug', 'GetEvents', 'GetHealth', 'GetInfo', 'GetVersion', 'ListDomains', 'ListSensors',
      'ListTracingPolicies', 'RemoveSensor', 'RuntimeHook', 'SetDebug',
    ]);
    const getEvents = definition.GetEvents;
    assert.equal(getEvents.path, '/tetragon.FineGuidanceSensors/GetEvents');
    assert.equal(getEvents.responseStream, true);
    assert.equal(getEvents.requestStream, false);
    assert.equal(getEvents.originalName, 'getEvents');
    const bytes = encodeMessage('GetEventsResponse', execEvent());
    const buffer = Buffer.from(bytes);
    assert.equal(getEvents.responseSerialize(buffer), buffer);
    assert.deepEqual(getEvents.responseSerialize(bytes), buffer);
    assert.deepEqual(getEvents.responseSerialize(execEvent()), buffer);
    assert.deepEqual(getEvents.responseDeserialize(buffer), decodeMessage('GetEventsResponse', bytes));
    assert.deepEqual(definition.GetVersion.requestDeserialize(definition.GetVersion.requestSerialize({})), {});
  });
});
