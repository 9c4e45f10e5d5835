import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import v8 from 'node:v8';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { LocalBus } from '../../services/lib/bus.js';
import type { EventType, GetEventsResponse, Process } from '../../services/lib/event-model.js';
import { decodeMessage, encodeMessage, fineGuidanceSensorsDefinition } from '../../services/lib/tetragon-proto.js';
import { PublicApiServer } from '../../services/api/server.js';
import { fieldFilterKey, SharedEncodings } from '../../services/api/shared-encodings.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type Client = grpc.Client & Record<string, (...args: any[]) => any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PROCESS_EXEC = 1;
const PROCESS_EXIT = 5;
const PROCESS_UPROBE = 12;
const CAP_SYS_ADMIN = 21;
const FineGuidanceSensors = grpc.makeGenericClientConstructor(fineGuidanceSensorsDefinition(), 'FineGuidanceSensors');
const Health = grpc.makeGenericClientConstructor(healthService, 'Health');

function proc(pid: number, binary: string, extra: Partial<Process> = {}): Process {
  return {
    exec_id: `exec-${pid}`, pid: { value: pid }, uid: { value: 0 }, cwd: '/', binary, arguments: '', flags: 'execve',
    start_time: { seconds: 1_796_032_800, nanos: 0 }, auid: { value: 0 }, parent_exec_id: '', refcnt: 1, tid: { value: pid }, ...extra,
  };
}

function envelope(type: EventType, payload: Json): { type: EventType; event: GetEventsResponse; bytes: Uint8Array } {
  const event = { [type]: payload, node_name: 'node-1', time: { seconds: 1_796_032_800, nanos: 0 } } as unknown as GetEventsResponse;
  return { type, event, bytes: encodeMessage('GetEventsResponse', event) };
}

/** A small process tree: 100 (curl, host) -> 200 (ls, pod web) -> 300 (cat, pod coredns) -> 400 (python3, host); 500 (sshd) apart. */
const systemd = proc(1, '/usr/lib/systemd/systemd');
const curl = proc(100, '/usr/bin/curl', { arguments: 'https://example.com/' });
const bash = proc(150, '/bin/bash', { arguments: '-c ls' });
const ls = proc(200, '/bin/ls', {
  arguments: '-la /tmp', docker: 'abc123def456', in_init_tree: { value: true },
  cap: { permitted: [CAP_SYS_ADMIN], effective: [CAP_SYS_ADMIN], inheritable: [] },
  pod: { namespace: 'default', name: 'web-7d9f', container: { id: 'containerd://abc123def456', name: 'nginx' } },
});
const cat = proc(300, '/usr/bin/cat', { arguments: '/etc/passwd', pod: { namespace: 'kube-system', name: 'coredns-1', container: { id: 'containerd://fff', name: 'coredns' } }, docker: 'fff' });
const python = proc(400, '/usr/bin/python3', { arguments: 'app.py' });
const sshd = proc(500, '/usr/sbin/sshd', { arguments: '-D' });

const CORPUS = [
  envelope('process_exec', { process: curl, parent: systemd }),
  envelope('process_exec', { process: ls, parent: { ...bash, pid: { value: 100 } } }),
  envelope('process_exit', { process: ls, parent: { ...bash, pid: { value: 100 } }, signal: '', status: 0, time: { seconds: 1_796_032_801, nanos: 0 } }),
  envelope('process_kprobe', { process: cat, parent: ls, function_name: 'security_file_open', policy_name: 'file-monitor' }),
  envelope('process_tracepoint', { process: python, parent: cat, subsys: 'syscalls', event: 'sys_enter_openat', policy_name: 'tp-policy' }),
  envelope('process_uprobe', { process: sshd, parent: proc(999, '/sbin/init'), path: '/usr/sbin/sshd', symbol: 'main' }),
];

const pidOf = (event: Json): number => {
  for (const key of ['process_exec', 'process_exit', 'process_kprobe', 'process_tracepoint', 'process_uprobe']) {
    if (event[key] !== undefined) return event[key].process.pid.value as number;
  }
  throw new Error('no payload');
};
/** Events of CORPUS by index, as "type:pid" to tell exec and exit apart. */
const label = (event: Json): string => `${Object.keys(event).find((k) => k.startsWith('process_'))}:${pidOf(event)}`;
const LABELS = CORPUS.map((e) => label(e.event as unknown as Json));

/** Leaves a socket file behind the way a crashed agent does: its listener is SIGKILLed. */
async function leaveStaleSocket(socketPath: string): Promise<void> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true });
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(fs.statSync(socketPath).isSocket(), true);
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function unary(client: Client, method: string, request: Json): Promise<Json> {
  return new Promise((resolve, reject) => client[method](request, (err: grpc.ServiceError | null, res: Json) => (err ? reject(err) : resolve(res))));
}

interface Stream { call: grpc.ClientReadableStream<Json>; events: Json[]; status: Promise<grpc.StatusObject | grpc.ServiceError> }

function subscribe(client: Client, request: Json): Stream {
  const call = client.GetEvents(request) as grpc.ClientReadableStream<Json>;
  const events: Json[] = [];
  call.on('data', (e: Json) => events.push(e));
  const status = new Promise<grpc.StatusObject | grpc.ServiceError>((resolve) => {
    call.on('error', resolve);
    call.on('status', (s: grpc.StatusObject) => { if (s.code === grpc.status.OK) resolve(s); });
  });
  return { call, events, status };
}

describe('public gRPC API', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-grpc-'));
  const socket = path.join(dir, 'run', 'tetragon.sock');
  const bus = new LocalBus();
  const server = new PublicApiServer(bus, {
    tcpAddress: 'localhost:0', unixSocket: socket, version: 'v9.9.9-test', nodeName: 'node-1', maxSubscriberQueue: 1000,
    health: () => ({ status: 'running', details: 'all sensors loaded' }),
  });
  let client: Client;
  let port = 0;
  const subscriberCount = (): number => server.stats().subscribers.length;

  before(async () => {
    await leaveStaleSocket(socket);
    ({ tcpPort: port } = await server.start());
    client = new FineGuidanceSensors(`localhost:${port}`, grpc.credentials.createInsecure()) as Client;
  });

  after(async () => {
    client.close();
    await server.stop();
    assert.equal(fs.existsSync(socket), false);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers GetVersion and GetHealth', async () => {
    assert.deepEqual(await unary(client, 'GetVersion', {}), { version: 'v9.9.9-test' });
    assert.deepEqual(await unary(client, 'GetHealth', {}), { health_status: [{ event: 1, status: 1, details: 'all sensors loaded' }] });
    assert.deepEqual(await unary(client, 'GetHealth', { event_set: [1, 1] }), { health_status: [{ event: 1, status: 1, details: 'all sensors loaded' }] });
    await assert.rejects(unary(client, 'GetHealth', { event_set: Array.from({ length: 100_000 }, (_v, i) => i) }),
      { code: grpc.status.INVALID_ARGUMENT, details: 'event_set: 100000 distinct types, more than the limit of 16' });
  });

  it('serves the unix socket too', async () => {
    assert.equal(fs.statSync(socket).isSocket(), true);
    const local = new FineGuidanceSensors(`unix:${socket}`, grpc.credentials.createInsecure()) as Client;
    try {
      assert.deepEqual(await unary(local, 'GetVersion', {}), { version: 'v9.9.9-test' });
    } finally {
      local.close();
    }
  });

  it('answers UNIMPLEMENTED for rpcs without an implementation, until one is added', async () => {
    await assert.rejects(unary(client, 'ListTracingPolicies', {}), (err: grpc.ServiceError) => err.code === grpc.status.UNIMPLEMENTED);
    await assert.rejects(unary(client, 'GetInfo', {}), (err: grpc.ServiceError) => err.code === grpc.status.UNIMPLEMENTED);
    server.addMethods({ ListTracingPolicies: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { policies: [{ name: 'p', state: 1 }] }) });
    assert.deepEqual(await unary(client, 'ListTracingPolicies', {}), { policies: [{ name: 'p', state: 1 }] });
    assert.throws(() => server.addMethods({ NoSuchMethod: () => undefined }), /has no method NoSuchMethod/);
  });

  it('reports SERVING to grpc.health.v1', async () => {
    const health = new Health(`localhost:${port}`, grpc.credentials.createInsecure()) as unknown as Client;
    try {
      assert.equal((await unary(health, 'check', { service: '' })).status, 'SERVING');
      assert.equal((await unary(health, 'check', { service: 'tetragon.FineGuidanceSensors' })).status, 'SERVING');
    } finally {
      health.close();
    }
  });

  it('lists the service through server reflection (v1 and v1alpha)', async () => {
    const reflectionDir = path.join(path.dirname(fileURLToPath(import.meta.resolve('@grpc/reflection'))), '..', 'proto');
    for (const version of ['v1', 'v1alpha']) {
      const def = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, { includeDirs: [reflectionDir], keepCase: true });
      const Reflection = grpc.loadPackageDefinition(def).grpc as Json;
      const Ctor = Reflection.reflection[version].ServerReflection as typeof grpc.Client;
      const reflection = new Ctor(`localhost:${port}`, grpc.credentials.createInsecure()) as Client;
      try {
        const call = reflection.ServerReflectionInfo();
        const answers: Json[] = [];
        call.on('data', (d: Json) => answers.push(d));
        const done = new Promise((resolve, reject) => { call.on('end', resolve); call.on('error', reject); });
        call.write({ list_services: '' });
        call.write({ file_containing_symbol: 'tetragon.FineGuidanceSensors' });
        call.end();
        await done;
        const services = answers[0].list_services_response.service.map((s: Json) => s.name as string);
        assert.ok(services.includes('tetragon.FineGuidanceSensors'), `${version}: ${services.join(', ')}`);
        assert.ok(services.includes('grpc.health.v1.Health'), `${version}: ${services.join(', ')}`);
        assert.ok(answers[1].file_descriptor_response.file_descriptor_proto.length > 0);
      } finally {
        reflection.close();
      }
    }
  });

  it('applies allow and deny lists as Tetragon does', async () => {
    const cases: { request: Json; expect: number[] }[] = [
      { request: {}, expect: [0, 1, 2, 3, 4, 5] },
      { request: { allow_list: [{ binary_regex: ['curl$', '^/bin/'] }] }, expect: [0, 1, 2] },
      { request: { allow_list: [{ binary_regex: ['(?i)CURL'] }] }, expect: [0] },
      // RE2 syntax, as Tetragon's Go regexp reads it: POSIX classes, \A, named groups.
      { request: { allow_list: [{ binary_regex: ['^/usr/bin/[[:alpha:]]+[[:digit:]]$'] }] }, expect: [4] },
      { request: { allow_list: [{ binary_regex: ['\\A/usr/s?bin/(?P<name>ss|cu)'] }] }, expect: [0, 5] },
      { request: { allow_list: [{ namespace: ['default'] }] }, expect: [1, 2] },
      { request: { allow_list: [{ namespace: [''] }] }, expect: [0, 4, 5] },
      { request: { allow_list: [{ pid: [200] }] }, expect: [1, 2] },
      // 100 itself, then its child 200, then 300 (child of 200) and 400 (child of 300) as they are seen.
      { request: { allow_list: [{ pid_set: [100] }] }, expect: [0, 1, 2, 3, 4] },
      { request: { allow_list: [{ event_set: [PROCESS_EXIT, PROCESS_UPROBE] }] }, expect: [2, 5] },
      { request: { allow_list: [{ arguments_regex: ['passwd'] }] }, expect: [3] },
      { request: { allow_list: [{ parent_binary_regex: ['bash$'] }] }, expect: [1, 2] },
      { request: { allow_list: [{ parent_arguments_regex: ['^-la'] }] }, expect: [3] },
      { request: { allow_list: [{ container_id: ['^abc'] }] }, expect: [1, 2] },
      { request: { allow_list: [{ pod_regex: ['^web-'] }] }, expect: [1, 2] },
      { request: { allow_list: [{ namespace_regex: ['^kube-'] }] }, expect: [3] },
      { request: { allow_list: [{ container_name_regex: ['^core'] }] }, expect: [3] },
      { request: { allow_list: [{ policy_names: ['file-monitor', 'tp-policy'] }] }, expect: [3, 4] },
      { request: { allow_list: [{ in_init_tree: { value: true } }] }, expect: [1, 2] },
      { request: { allow_list: [{ capabilities: { effective: { any: [CAP_SYS_ADMIN] } } }] }, expect: [1, 2] },
      { request: { allow_list: [{ binary_regex: ['ls$|cat$'], namespace: ['kube-system'] }] }, expect: [3] },
      { request: { allow_list: [{ pid: [100] }, { pid: [500] }] }, expect: [0, 5] },
      { request: { deny_list: [{ namespace: [''] }] }, expect: [1, 2, 3] },
      { request: { allow_list: [{ event_set: [PROCESS_EXEC] }], deny_list: [{ binary_regex: ['curl'] }] }, expect: [1] },
      { request: { deny_list: [{ pid: [100] }, { event_set: [PROCESS_EXIT] }] }, expect: [1, 3, 4, 5] },
    ];
    const streams = cases.map((c) => subscribe(client, c.request));
    await waitFor(() => subscriberCount() === cases.length, 'all subscriptions');
    for (const e of CORPUS) bus.publishEvent(e);
    const expectedTotal = cases.reduce((n, c) => n + c.expect.length, 0);
    assert.equal(server.stats().subscribers.reduce((n, s) => n + s.sent, 0), expectedTotal);
    await waitFor(() => streams.every((s, i) => s.events.length >= cases[i].expect.length), 'the filtered events');
    cases.forEach((c, i) => {
      assert.deepEqual(streams[i].events.map(label), c.expect.map((k) => LABELS[k]), JSON.stringify(c.request));
    });
    for (const s of streams) s.call.cancel();
    await waitFor(() => subscriberCount() === 0, 'cancelled streams to be cleaned up');
  });

  it('rejects bad or unsupported filters with INVALID_ARGUMENT naming the field, without disturbing other streams', async () => {
    const healthy = subscribe(client, { allow_list: [{ event_set: [PROCESS_EXEC] }] });
    await waitFor(() => subscriberCount() === 1, 'the healthy subscription');
    const rejected: [Json, string][] = [
      [{ allow_list: [{ binary_regex: ['ok', '('] }] }, 'allow_list[0].binary_regex[1]: invalid regular expression "(": error parsing regexp: missing closing ): `(`'],
      [{ allow_list: [{ arguments_regex: ['(a)\\1'] }] }, 'allow_list[0].arguments_regex[0]: invalid regular expression "(a)\\\\1": error parsing regexp: invalid escape sequence: `\\1`'],
      [{ allow_list: [{ binary_regex: ['^(?!/usr)'] }] }, 'allow_list[0].binary_regex[0]: invalid regular expression "^(?!/usr)": error parsing regexp: invalid or unsupported Perl syntax: `(?!`'],
      [{ deny_list: [{}, { pod_regex: ['[z-a]'] }] }, 'deny_list[1].pod_regex[0]: invalid regular expression "[z-a]": error parsing regexp: invalid character class range: `z-a`'],
      [{ allow_list: [{ labels: ['app=web'] }] }, 'allow_list[0].labels: filtering on pod label selectors is not supported by Vigil'],
      [{ allow_list: [{ capabilities: { permitted: { any: [1], all: [2] } } }] }, 'allow_list[0].capabilities.permitted: capability filter may only define one match set, got: any, all'],
      [{ field_filters: [{ fields: { paths: ['process.bogus'] } }] }, 'field_filters[0].fields.paths[0]: unknown field path "process.bogus"'],
      [{ field_filters: [{ event_set: [PROCESS_EXEC], fields: { paths: ['function_name'] } }] }, 'field_filters[0].fields.paths[0]: unknown field path "function_name"'],
      // Bounds (FILTER_LIMITS, FIELD_FILTER_LIMITS), checked before anything is compiled.
      [{ deny_list: Array.from({ length: 33 }, () => ({ pid: [1] })) }, 'deny_list: 33 filters, more than the limit of 32'],
      [{ allow_list: [{ pid: Array.from({ length: 1025 }, (_v, i) => i) }] }, 'allow_list[0].pid: 1025 values, more than the limit of 1024'],
      [{ allow_list: [{ binary_regex: Array(100).fill('a') }, { pod_regex: Array(29).fill('b') }] }, "allow_list[1].pod_regex: the request's regular expressions number 129 up to here, more than the limit of 128"],
      [{ allow_list: [{ namespace_regex: ['ok', 'x'.repeat(4097)] }] }, 'allow_list[0].namespace_regex[1]: expression is 4097 characters long, more than the limit of 4096'],
      [{ field_filters: Array.from({ length: 33 }, () => ({ fields: { paths: ['process'] } })) }, 'field_filters: 33 filters, more than the limit of 32'],
      [{ field_filters: [{ fields: { paths: Array(513).fill('process') } }] }, 'field_filters[0].fields.paths: 513 paths, more than the limit of 512'],
    ];
    for (const [request, details] of rejected) {
      const status = await subscribe(client, request).status;
      assert.equal(status.code, grpc.status.INVALID_ARGUMENT, details);
      assert.equal(status.details, details);
    }
    bus.publishEvent(CORPUS[0]);
    bus.publishEvent(CORPUS[1]);
    await waitFor(() => healthy.events.length === 2, 'the healthy stream to keep receiving');
    assert.equal(subscriberCount(), 1);
    healthy.call.cancel();
    await waitFor(() => subscriberCount() === 0, 'cleanup');
  });

  it('applies field filters to the event payload, in order, per event type', async () => {
    const include = subscribe(client, { field_filters: [{ fields: { paths: ['process.binary', 'process.pid'] }, action: 0 }] });
    const exclude = subscribe(client, { field_filters: [{ event_set: [PROCESS_EXEC], fields: { paths: ['process.arguments', 'parent'] }, action: 1 }] });
    const inverted = subscribe(client, { field_filters: [{ event_set: [PROCESS_EXEC], invert_event_set: { value: true }, fields: { paths: ['process'] }, action: 0 }] });
    const chained = subscribe(client, {
      field_filters: [{ fields: { paths: ['process', 'parent.binary'] }, action: 0 }, { fields: { paths: ['process.pod.container', 'process.processCredentials'] }, action: 1 }],
    });
    const plain = subscribe(client, {});
    await waitFor(() => subscriberCount() === 5, 'subscriptions');
    bus.publishEvent(CORPUS[1]); // exec of ls, in pod web
    bus.publishEvent(CORPUS[2]); // exit of ls
    await waitFor(() => [include, exclude, inverted, chained, plain].every((s) => s.events.length === 2), 'events');

    const time = { seconds: 1_796_032_800, nanos: 0 };
    assert.deepEqual(include.events[0], { process_exec: { process: { pid: { value: 200 }, binary: '/bin/ls' } }, node_name: 'node-1', time });
    assert.deepEqual(include.events[1].process_exit, { process: { pid: { value: 200 }, binary: '/bin/ls' } });

    const lsWithoutArguments = structuredClone(plain.events[0].process_exec.process);
    delete lsWithoutArguments.arguments;
    assert.deepEqual(exclude.events[0].process_exec, { process: lsWithoutArguments });
    assert.deepEqual(exclude.events[1], plain.events[1], 'exit events are outside the event_set');

    assert.deepEqual(inverted.events[0], plain.events[0], 'exec events are excluded by the inverted event_set');
    assert.deepEqual(Object.keys(inverted.events[1].process_exit), ['process']);

    const podWithoutContainer = structuredClone(plain.events[0].process_exec.process.pod);
    delete podWithoutContainer.container;
    assert.deepEqual(chained.events[0].process_exec.parent, { binary: '/bin/bash' });
    assert.deepEqual(chained.events[0].process_exec.process.pod, podWithoutContainer);

    for (const s of [include, exclude, inverted, chained, plain]) s.call.cancel();
    await waitFor(() => subscriberCount() === 0, 'cleanup');
  });

  it('sends the encoded bytes unchanged to a subscriber without field filters', async () => {
    const raw = new grpc.Client(`localhost:${port}`, grpc.credentials.createInsecure());
    const received: Buffer[] = [];
    // Identity (de)serializers: the test sees the response bytes exactly as they came.
    const call = raw.makeServerStreamRequest('/tetragon.FineGuidanceSensors/GetEvents', (x: Buffer) => x, (b: Buffer) => b, Buffer.alloc(0));
    call.on('data', (b: Buffer) => received.push(b));
    call.on('error', () => undefined);
    await waitFor(() => subscriberCount() === 1, 'subscription');
    bus.publishEvent(CORPUS[3]);
    await waitFor(() => received.length === 1, 'the event');
    assert.deepEqual(received[0], Buffer.from(CORPUS[3].bytes));
    call.cancel();
    raw.close();
    await waitFor(() => subscriberCount() === 0, 'cleanup');
  });

  it('keeps a fast subscriber whole while a stalled one drops, and counts every event', async () => {
    const total = 50_000;
    const batch = 500;
    // The stalled client gets its own connection, so that its full HTTP/2 windows do not hold the fast one back.
    const stalledClient = new FineGuidanceSensors(`localhost:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as Client;
    const fast = subscribe(client, {});
    const stalled = subscribe(stalledClient, {});
    // Paused: grpc-js stops reading the HTTP/2 stream once its buffer is full, so the server's writes back up.
    stalled.call.pause();
    await waitFor(() => subscriberCount() === 2, 'subscriptions');
    const events = Array.from({ length: batch }, (_v, i) => envelope('process_exec', { process: proc(10_000 + i, '/bin/true') }));

    for (let published = 0; published < total; published += batch) {
      for (const e of events) bus.publishEvent(e);
      // Pace the producer to what the fast client reads: its queue never overflows.
      await waitFor(() => fast.events.length === published + batch, `the fast client at ${published + batch}`);
    }
    assert.equal(fast.events.length, total);
    assert.equal(fast.events.at(-1)!.process_exec.process.pid.value, 10_000 + batch - 1);

    const stats = server.stats();
    const [fastStats, stalledStats] = stats.subscribers;
    assert.deepEqual({ dropped: fastStats.dropped, queued: fastStats.queued, sent: fastStats.sent }, { dropped: 0, queued: 0, sent: total });
    assert.ok(stalledStats.dropped > 0, `the stalled subscriber dropped ${stalledStats.dropped}`);
    assert.ok(stalledStats.queued <= 1000, `queued ${stalledStats.queued}`);
    assert.equal(stalledStats.sent + stalledStats.dropped + stalledStats.queued, total);
    assert.equal(stats.droppedTotal, stalledStats.dropped);

    stalled.call.cancel();
    await waitFor(() => subscriberCount() === 1, 'the stalled stream to be cleaned up');
    assert.equal(server.stats().droppedTotal, stalledStats.dropped, 'drops of gone subscribers stay counted');
    fast.call.cancel();
    stalledClient.close();
    await waitFor(() => subscriberCount() === 0, 'cleanup');
  });

  it('sends a reading subscriber many events a turn: bursts of 900 a turn arrive whole past a queue of 1000', async () => {
    // One message a turn through grpc-js's write() would queue 899 a turn and drop from the second burst.
    // The client's HTTP/2 window is as large as Go's BDP estimation lets tetra's grow (16 MiB): 64 KiB a turn would be the limit.
    const wideClient = new FineGuidanceSensors(`localhost:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc-node.flow_control_window': 16 * 1024 * 1024 }) as Client;
    const fast = subscribe(wideClient, {});
    await waitFor(() => subscriberCount() === 1, 'subscription');
    const bursts = 20;
    const burst = Array.from({ length: 900 }, (_v, i) => envelope('process_exec', { process: proc(20_000 + i, '/bin/true') }));
    for (let b = 0; b < bursts; b++) {
      for (const e of burst) bus.publishEvent(e);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => fast.events.length === bursts * burst.length, `all ${bursts * burst.length} events`).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(server.stats().subscribers)}, received ${fast.events.length}`);
    });
    const [stats] = server.stats().subscribers;
    assert.deepEqual({ dropped: stats.dropped, sent: stats.sent }, { dropped: 0, sent: bursts * burst.length });
    assert.deepEqual(fast.events.slice(0, 900).map((e) => e.process_exec.process.pid.value), burst.map((_e, i) => 20_000 + i), 'in order');
    fast.call.cancel();
    wideClient.close();
    await waitFor(() => subscriberCount() === 0, 'cleanup');
  });

  it('shares one field-filtered encoding per event among subscribers with the same field filters', async () => {
    const mask = (paths: string[]): Json => ({ field_filters: [{ event_set: [PROCESS_EXEC], fields: { paths }, action: 0 }] });
    const same = [
      subscribe(client, mask(['process.binary', 'process.pid'])),
      // The same filter written otherwise: paths in another order, repeated, event_set repeated.
      subscribe(client, { field_filters: [{ event_set: [PROCESS_EXEC, PROCESS_EXEC], fields: { paths: ['process.pid', 'process.binary', 'process.pid'] } }] }),
      subscribe(client, { ...mask(['process.binary', 'process.pid']), allow_list: [{ binary_regex: ['true$'] }] }),
    ];
    const other = subscribe(client, mask(['process.pid']));
    await waitFor(() => subscriberCount() === 4, 'subscriptions');
    const before = server.stats().fieldFilterEncodes;
    const events = Array.from({ length: 10 }, (_v, i) => envelope('process_exec', { process: proc(20_000 + i, '/bin/true') }));
    for (const e of events) bus.publishEvent(e);
    await waitFor(() => [...same, other].every((s) => s.events.length === 10), 'the events');
    // One encode per event for the three alike, one for the other: not one per subscriber.
    assert.equal(server.stats().fieldFilterEncodes - before, 20);
    for (const s of same) assert.deepEqual(Object.keys(s.events[3].process_exec.process).sort(), ['binary', 'pid']);
    assert.deepEqual(Object.keys(other.events[3].process_exec.process), ['pid']);
    for (const s of [...same, other]) s.call.cancel();
    await waitFor(() => subscriberCount() === 0, 'cleanup');
  });

  it('bounds a stalled subscriber\'s queue in bytes, and forgets it when the subscriber leaves', async () => {
    const maxBytes = 64 * 1024;
    const otherBus = new LocalBus();
    const other = new PublicApiServer(otherBus, { tcpAddress: 'localhost:0', unixSocket: '', version: 'x', nodeName: 'n', maxSubscriberQueueBytes: maxBytes });
    const { tcpPort } = await other.start();
    const stalledClient = new FineGuidanceSensors(`localhost:${tcpPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as Client;
    const stalled = subscribe(stalledClient, { field_filters: [{ fields: { paths: ['process'] } }] });
    stalled.call.pause();
    try {
      await waitFor(() => other.stats().subscribers.length === 1, 'subscription');
      const total = 20_000;
      const events = Array.from({ length: 500 }, (_v, i) => envelope('process_exec', { process: proc(30_000 + i, '/bin/true', { arguments: 'x'.repeat(200) }) }));
      for (let i = 0; i < total; i++) {
        otherBus.publishEvent(events[i % events.length]);
        if (i % 500 === 499) await new Promise((r) => setImmediate(r));
      }
      const [st] = other.stats().subscribers;
      assert.ok(st.queued > 0 && st.queuedBytes <= maxBytes, `queued ${st.queued} events, ${st.queuedBytes} bytes (bound ${maxBytes})`);
      assert.ok(st.queued < 1000, `the byte bound, not the count bound (10,000), stopped the queue at ${st.queued}`);
      assert.ok(st.dropped > 0);
      assert.equal(st.sent + st.dropped + st.queued, total);
      stalled.call.cancel();
      await waitFor(() => other.stats().subscribers.length === 0, 'the stalled stream to be cleaned up');
      assert.equal(other.stats().droppedTotal, st.dropped);
    } finally {
      stalledClient.close();
      await other.stop();
    }
  });

  it('gives the memory of stalled subscribers\' queues back when they leave', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const used = (): number => { gc(); gc(); const m = process.memoryUsage(); return (m.heapUsed + m.arrayBuffers) / 2 ** 20; };
    const otherBus = new LocalBus();
    const other = new PublicApiServer(otherBus, { tcpAddress: 'localhost:0', unixSocket: '', version: 'x', nodeName: 'n' });
    const { tcpPort } = await other.start();
    const clients: Client[] = [];
    try {
      const baseline = used();
      const streams = Array.from({ length: 20 }, (_v, i) => {
        // Distinct field filters (no sharing), each stalled on its own connection.
        const c = new FineGuidanceSensors(`localhost:${tcpPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as Client;
        clients.push(c);
        // (event type 100 + i names no event: it only makes each key differ.)
        const s = subscribe(c, { field_filters: [{ event_set: [PROCESS_EXEC, 100 + i], fields: { paths: ['process', 'parent.pid'] } }] });
        s.call.pause();
        return s;
      });
      await waitFor(() => other.stats().subscribers.length === 20, 'subscriptions');
      for (let i = 0; i < 5_000; i++) {
        otherBus.publishEvent(envelope('process_exec', { process: proc(40_000 + i, '/bin/true', { arguments: 'y'.repeat(400) }), parent: proc(1, '/sbin/init') }));
        if (i % 500 === 499) await new Promise((r) => setImmediate(r));
      }
      const queuedBytes = other.stats().subscribers.reduce((sum, st) => sum + st.queuedBytes, 0) / 2 ** 20;
      const during = used();
      for (const st of streams) st.call.cancel();
      await waitFor(() => other.stats().subscribers.length === 0, 'the stalled streams to be cleaned up');
      await new Promise((r) => setTimeout(r, 200));
      const afterLeave = used();
      console.log(`# queues: ${queuedBytes.toFixed(1)} MiB queued; heap+arrayBuffers ${baseline.toFixed(1)} MiB before, ${during.toFixed(1)} with them, ${afterLeave.toFixed(1)} after they left`);
      assert.ok(queuedBytes > 10, `queued ${queuedBytes.toFixed(1)} MiB`);
      assert.ok(during - baseline > queuedBytes / 2, `held ${(during - baseline).toFixed(1)} MiB while queued`);
      assert.ok(afterLeave - baseline < 8, `after they left: ${afterLeave.toFixed(1)} MiB vs ${baseline.toFixed(1)} MiB before (${during.toFixed(1)} with them)`);
    } finally {
      for (const c of clients) c.close();
      await other.stop();
    }
  });

  it('serves at most maxSubscribers event streams at once: one more is RESOURCE_EXHAUSTED, and a place freed is taken again', async () => {
    const other = new PublicApiServer(new LocalBus(), { tcpAddress: 'localhost:0', unixSocket: '', version: 'x', nodeName: 'n', maxSubscribers: 3 });
    const { tcpPort } = await other.start();
    const c = new FineGuidanceSensors(`localhost:${tcpPort}`, grpc.credentials.createInsecure()) as Client;
    try {
      const open = [subscribe(c, {}), subscribe(c, {}), subscribe(c, {})];
      await waitFor(() => other.stats().subscribers.length === 3, 'three streams');
      const refused = await subscribe(c, {}).status;
      assert.equal(refused.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(refused.details, '3 event streams are open, the most this server serves at once');
      open[0]!.call.cancel();
      await waitFor(() => other.stats().subscribers.length === 2, 'a stream to leave');
      subscribe(c, {});
      await waitFor(() => other.stats().subscribers.length === 3, 'its place taken again');
    } finally {
      c.close();
      await other.stop();
    }
  });

  it('ends open streams with UNAVAILABLE on stop', async () => {
    const other = new PublicApiServer(new LocalBus(), { tcpAddress: 'localhost:0', unixSocket: '', version: 'x', nodeName: 'n' });
    const { tcpPort } = await other.start();
    const c = new FineGuidanceSensors(`localhost:${tcpPort}`, grpc.credentials.createInsecure()) as Client;
    const s = subscribe(c, {});
    await waitFor(() => other.stats().subscribers.length === 1, 'subscription');
    await other.stop();
    assert.equal((await s.status).code, grpc.status.UNAVAILABLE);
    c.close();
  });
});

describe('shared field-filtered encodings', () => {
  const filters = [{ event_set: [PROCESS_EXEC], fields: { paths: ['process.binary', 'process.pid'] }, action: 0 }];

  it('gives one canonical key to filters that mean the same, and another to filters that do not', () => {
    assert.equal(fieldFilterKey(undefined), undefined);
    assert.equal(fieldFilterKey([]), undefined);
    const key = fieldFilterKey(filters);
    assert.equal(fieldFilterKey([{ event_set: [PROCESS_EXEC, PROCESS_EXEC], fields: { paths: ['process.pid', 'process.binary'] } }]), key);
    assert.equal(fieldFilterKey([{ fields: { paths: ['process.pid'] }, invert_event_set: { value: true } }]), fieldFilterKey([{ fields: { paths: ['process.pid'] } }]));
    assert.notEqual(fieldFilterKey([{ ...filters[0], action: 1 }]), key);
    assert.notEqual(fieldFilterKey([{ ...filters[0], invert_event_set: { value: true } }]), key);
    assert.notEqual(fieldFilterKey([{ ...filters[0], event_set: [PROCESS_EXIT] }]), key);
    // Order of filters matters: they apply in sequence.
    const a = { fields: { paths: ['process'] }, action: 0 };
    const b = { fields: { paths: ['process.pid'] }, action: 1 };
    assert.notEqual(fieldFilterKey([a, b]), fieldFilterKey([b, a]));
  });

  it('encodes once per event and key, hands every subscriber the same bytes, and forgets a key with its last subscriber', () => {
    const shared = new SharedEncodings();
    const k1 = shared.acquire(filters);
    const k2 = shared.acquire([{ ...filters[0], fields: { paths: ['process.pid', 'process.binary'] } }]);
    assert.equal(k1, k2);
    assert.equal(shared.size, 1);
    const e1 = CORPUS[0];
    const bytes = shared.bytes(k1, e1);
    assert.equal(shared.bytes(k2, e1), bytes, 'the very same buffer');
    assert.equal(shared.encodes, 1);
    assert.deepEqual(Object.keys((decodeMessage('GetEventsResponse', bytes) as Json).process_exec.process).sort(), ['binary', 'pid']);
    // An event the filters do not touch goes out as the sensor's own bytes.
    assert.equal(shared.bytes(k1, CORPUS[2]), CORPUS[2].bytes);
    assert.equal(shared.bytes(undefined, e1), e1.bytes);
    shared.release(k1);
    assert.equal(shared.size, 1);
    shared.release(k2);
    assert.equal(shared.size, 0);
    assert.throws(() => shared.acquire([{ fields: { paths: ['process.nosuch'] } }]), /unknown field path/);
    assert.equal(shared.size, 0);
  });
});
