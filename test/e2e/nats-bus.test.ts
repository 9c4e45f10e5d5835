/**
 * The NATS JetStream bus against a real nats-server (its own, per test, on a
 * free loopback port): bytes and order end to end, events batched per message,
 * Nats-Msg-Id dedupe of resent messages,
 * durable exporters that stop or die mid-stream and resume, a server restart
 * while the sensor publishes, stats, audit records and the policy KV bucket.
 *
 * "Exported exactly once" is counted the way a real exporter achieves it:
 * delivery is at-least-once (an event exported but not yet acknowledged when
 * the exporter stops comes again), and the export is idempotent per event
 * identity (here the exec_id, unique per synthetic event).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type NatsConnection } from 'nats';
import type { AuditRecord, EventEnvelope, SensorStatsMessage } from '../../services/lib/bus.js';
import type { GetEventsResponse } from '../../services/lib/event-model.js';
import { encodeMessage } from '../../services/lib/tetragon-proto.js';
import {
  AUDIT_STREAM, EVENT_STREAM, FETCH_EXPIRES_MS, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, NatsBus, PolicyKv, decodeEventBatch, encodeEventBatch, policyKey,
  type NatsBusOptions, type PolicyChange,
} from '../../services/lib/nats/index.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { exited, waitFor } from '../support/wait.js';

const quiet = (): void => {};

/** A process_exec event in the event-model shape, unique per `i` (exec_id, pid, time). */
function envelope(node: string, i: number): EventEnvelope {
  const execId = Buffer.from(`${node}:${1_000_000 + i}:${4000 + i}`).toString('base64');
  const seconds = 1_700_000_000 + Math.floor(i / 1000);
  const nanos = (i % 1000) * 1000;
  const event: GetEventsResponse = {
    node_name: node,
    time: { seconds, nanos },
    process_exec: {
      process: {
        exec_id: execId, pid: { value: 4000 + i }, uid: { value: 0 }, cwd: '/tmp', binary: '/usr/bin/true',
        arguments: `--run ${i}`, flags: 'execve clone', start_time: { seconds, nanos }, auid: { value: 4294967295 },
        parent_exec_id: Buffer.from(`${node}:1:1`).toString('base64'), refcnt: 1, tid: { value: 4000 + i },
      },
    },
  };
  return { type: 'process_exec', event, bytes: encodeMessage('tetragon.GetEventsResponse', event) };
}

function execIdOf(env: EventEnvelope): string {
  return env.event.process_exec!.process.exec_id;
}

type OpenBus = (node: string, extra?: Partial<NatsBusOptions>) => Promise<NatsBus>;

/** Runs `fn` with a fresh nats-server and a way to open buses on it; closes them all and stops the server after. */
async function withServer(fn: (ctx: { server: NatsServer; bus: OpenBus }) => Promise<void>): Promise<void> {
  const server = await startNatsServer();
  const buses: NatsBus[] = [];
  const bus: OpenBus = async (node, extra = {}) => {
    const b = await NatsBus.connect({ servers: server.url, node, log: quiet, ...extra });
    buses.push(b);
    return b;
  };
  try {
    await fn({ server, bus });
  } finally {
    await Promise.all(buses.map((b) => b.close()));
    await server.stop();
  }
}

/** A plain client for looking at the stream from outside the bus. */
async function inspect<T>(server: NatsServer, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: server.url });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

async function streamMessages(server: NatsServer, stream = EVENT_STREAM): Promise<number> {
  return inspect(server, async (nc) => (await (await nc.jetstreamManager()).streams.info(stream)).state.messages);
}

/** Waits until the durable consumer has nothing pending and its ack floor is the stream's last message. */
async function fullyAcknowledged(server: NatsServer, durable: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { info, last } = await inspect(server, async (nc) => {
      const jsm = await nc.jetstreamManager();
      return { info: await jsm.consumers.info(EVENT_STREAM, durable), last: (await jsm.streams.info(EVENT_STREAM)).state.last_seq };
    });
    if (info.num_pending === 0 && info.num_ack_pending === 0 && info.ack_floor.stream_seq === last) return;
    assert.ok(Date.now() < deadline, `consumer ${durable} not fully acknowledged: ${JSON.stringify({ pending: info.num_pending, ackPending: info.num_ack_pending, floor: info.ack_floor, last })}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Every event stored, in stream order, through a fresh durable subscriber. */
async function readAll(server: NatsServer, bus: OpenBus, durable: string): Promise<EventEnvelope[]> {
  const reader = await bus('reader');
  const got: EventEnvelope[] = [];
  await reader.subscribeEvents((env) => { got.push(env); }, { durable }).ready;
  await fullyAcknowledged(server, durable);
  await reader.close();
  return got;
}

test('a durable subscriber receives exactly the published bytes, in order, on vigil.events.<node>.<type>', { timeout: 120_000 }, (t) => withServer(async ({ server, bus }) => {
  const N = 10_000;
  const sensor = await bus('node-a.example.com');
  const sent = Array.from({ length: N }, (_, i) => envelope('node-a', i));
  const t0 = performance.now();
  for (const env of sent) sensor.publishEvent(env);
  await waitFor('all events acknowledged', () => (sensor.stats().published === N ? true : undefined), 60_000);
  const ms = performance.now() - t0;
  t.diagnostic(`published ${N} events in ${ms.toFixed(0)} ms: ${Math.round(N / ms * 1000)} events/s`);

  const got: EventEnvelope[] = [];
  const exporter = await bus('exporter');
  const unsubscribe = exporter.subscribeEvents((env) => { got.push(env); }, { durable: 'json-export' });
  await waitFor(`${N} events delivered`, () => (got.length >= N ? true : undefined), 60_000);
  assert.equal(got.length, N);
  for (let i = 0; i < N; i++) {
    assert.ok(Buffer.from(got[i].bytes).equals(Buffer.from(sent[i].bytes)), `event ${i}: the stored bytes are the envelope's bytes`);
    assert.equal(got[i].type, 'process_exec');
    assert.equal(execIdOf(got[i]), execIdOf(sent[i]));
  }

  // Published in one go, the events travel in as few messages as the batch limits allow.
  const { first, messages } = await inspect(server, async (nc) => {
    const jsm = await nc.jetstreamManager();
    return { first: await jsm.streams.getMessage(EVENT_STREAM, { seq: 1 }), messages: (await jsm.streams.info(EVENT_STREAM)).state.messages };
  });
  const perMessage = Math.min(MAX_BATCH_EVENTS, Math.floor(MAX_BATCH_BYTES / sent[0].bytes.byteLength));
  t.diagnostic(`${messages} messages on the stream, ${perMessage} events in the first`);
  assert.equal(messages, Math.ceil(N / perMessage));
  assert.equal(first.subject, 'vigil.events.node-a_example_com.process_exec');
  assert.deepEqual(decodeEventBatch(first.data).map((b) => Buffer.from(b)), sent.slice(0, perMessage).map((e) => Buffer.from(e.bytes)));
  assert.equal(first.header.get('Nats-Msg-Id'), `node-a_example_com.process_exec.${execIdOf(sent[0])}.1700000000.0.0.${perMessage}`);

  await waitFor('all acked', () => (exporter.stats().acked === N ? true : undefined));
  assert.equal(exporter.stats().redelivered, 0);
  assert.equal(sensor.stats().publishDropped, 0);
  assert.equal(sensor.stats().pendingBytes, 0);
  unsubscribe();
  await Promise.all([sensor.close(), exporter.close()]);
}));

test('a backlog of many small messages is read pull after pull, none waiting out a pull\'s expiry', { timeout: 120_000 }, (t) => withServer(async ({ bus }) => {
  // One event per message: each publishEvent in a turn of its own.
  const N = 1500;
  const sensor = await bus('node-a');
  for (let i = 0; i < N; i++) {
    sensor.publishEvent(envelope('node-a', i));
    await new Promise((r) => setImmediate(r));
  }
  await waitFor('all events stored', () => (sensor.stats().published === N ? true : undefined), 60_000);
  const got: EventEnvelope[] = [];
  const exporter = await bus('exporter');
  const t0 = performance.now();
  const unsubscribe = exporter.subscribeEvents((env) => { got.push(env); }, { durable: 'backlog' });
  await waitFor(`${N} events delivered`, () => (got.length >= N ? true : undefined), 60_000);
  const ms = performance.now() - t0;
  t.diagnostic(`${N} messages of one event delivered in ${ms.toFixed(0)} ms`);
  // Pulls bounded in bytes ended at their 1 s expiry after nats.js's 100 messages: 15 s for these.
  assert.ok(ms < (N / 100) * FETCH_EXPIRES_MS / 2, `${N} messages took ${ms.toFixed(0)} ms: pulls waited out their expiry`);
  assert.deepEqual(got.map(execIdOf), Array.from({ length: N }, (_, i) => execIdOf(envelope('node-a', i))));
  unsubscribe();
}));

test('a message is at most half of the server\'s max_payload: with 16 KiB, events published in one go all get through', { timeout: 60_000 }, async () => {
  const server = await startNatsServer({ maxPayload: 16 * 1024 });
  const sensor = await NatsBus.connect({ servers: server.url, node: 'node-p', log: quiet });
  try {
    const sent = Array.from({ length: 500 }, (_, i) => envelope('node-p', i));
    for (const env of sent) sensor.publishEvent(env);
    await waitFor('all events acknowledged', () => (sensor.stats().published === sent.length ? true : undefined), 30_000);
    assert.equal(sensor.stats().publishDropped, 0);
    const perMessage = Math.floor(8 * 1024 / sent[0].bytes.byteLength);
    assert.equal(await streamMessages(server), Math.ceil(sent.length / perMessage));
  } finally {
    await sensor.close();
    await server.stop();
  }
});

test('a stored message or event that does not decode is skipped, not delivered again; the rest are delivered', { timeout: 60_000 }, () => withServer(async ({ server, bus }) => {
  const sensor = await bus('node-g');
  sensor.publishEvent(envelope('node-g', 0));
  await waitFor('the first event stored', () => (sensor.stats().published === 1 ? true : undefined));
  // Not an EventBatch: wire type 7 does not exist. Then a batch whose middle event is no GetEventsResponse.
  const garbage = new Uint8Array([0xff, 0xff, 0xff, 0x7f]);
  await inspect(server, async (nc) => {
    await nc.jetstream().publish('vigil.events.node-g.process_exec', garbage);
    await nc.jetstream().publish('vigil.events.node-g.process_exec', encodeEventBatch([envelope('node-g', 2).bytes, garbage, envelope('node-g', 3).bytes]));
  });
  sensor.publishEvent(envelope('node-g', 4));
  await waitFor('the last event stored', () => (sensor.stats().published === 2 ? true : undefined));
  const lines: string[] = [];
  const exporter = await bus('exporter', { log: (line) => lines.push(line) });
  const got: string[] = [];
  exporter.subscribeEvents((env) => { got.push(execIdOf(env)); }, { durable: 'skips' });
  await fullyAcknowledged(server, 'skips');
  assert.deepEqual(got, [0, 2, 3, 4].map((i) => execIdOf(envelope('node-g', i))));
  assert.ok(lines.some((l) => /skips: stream message 2 is not a vigil.v1.EventBatch, skipped: byte 0: tag 255/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /skips: event 1 of stream message 3 is not a tetragon.GetEventsResponse, skipped: invalid wire type 7/.test(l)), lines.join('\n'));
  assert.equal(exporter.stats().redelivered, 0);
}));

test('a message resent while its acknowledgement is overdue is stored once (Nats-Msg-Id); an event published twice is stored twice', { timeout: 60_000 }, (t) => withServer(async ({ server, bus }) => {
  const lines: string[] = [];
  // A second of acknowledgement timeout: the second message is surely in flight when the first one's runs out, on a loaded machine too.
  const sensor = await bus('node-b', { publishTimeoutMs: 1_000, log: (line) => lines.push(line) });
  const env = envelope('node-b', 7);
  // Sent while the server is frozen: unanswered past the timeout, sent again; the server then reads both.
  const { thawed } = await server.freeze(3_000);
  sensor.publishEvent(env);
  // The next turn: the first run has left as a message of its own.
  await new Promise((resolve) => setImmediate(resolve));
  sensor.publishEvent(env);
  await thawed;
  await waitFor('both messages acknowledged', () => (sensor.stats().published === 2 ? true : undefined), 30_000);
  t.diagnostic(lines.join('; '));
  assert.ok(lines.some((l) => /no acknowledgement within 1000 ms\); resending 2 messages/.test(l)), lines.join('\n'));
  assert.equal(await streamMessages(server), 2, 'each message stored once, though each was sent at least twice');
  const ids = (await readAll(server, bus, 'check')).map(execIdOf);
  assert.deepEqual(ids, [execIdOf(env), execIdOf(env)]);
  await sensor.close();
}));

test('a subscriber without a durable name gets the events published after it subscribed', { timeout: 60_000 }, () => withServer(async ({ bus }) => {
  const sensor = await bus('node-c');
  for (let i = 0; i < 10; i++) sensor.publishEvent(envelope('node-c', i));
  await waitFor('earlier events stored', () => (sensor.stats().published === 10 ? true : undefined));

  const watcher = await bus('cli');
  const got: string[] = [];
  const unsubscribe = watcher.subscribeEvents((env) => { got.push(execIdOf(env)); });
  await unsubscribe.ready;
  for (let i = 10; i < 20; i++) sensor.publishEvent(envelope('node-c', i));
  await waitFor('later events delivered', () => (got.length >= 10 ? true : undefined));
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => execIdOf(envelope('node-c', 10 + i))));
  unsubscribe();
  await Promise.all([sensor.close(), watcher.close()]);
}));

test('a subscriber of some event types gets only those, each type in order, filtered by the server', { timeout: 60_000 }, () => withServer(async ({ server, bus }) => {
  const exit = (i: number): EventEnvelope => {
    const { node_name, time, process_exec } = envelope('node-w', i).event;
    const event: GetEventsResponse = { node_name, time, process_exit: { process: process_exec!.process, signal: '', status: 0, time } };
    return { type: 'process_exit', event, bytes: encodeMessage('tetragon.GetEventsResponse', event) };
  };
  const watcher = await bus('cli');
  const exits: EventEnvelope[] = [];
  const both: EventEnvelope[] = [];
  await watcher.subscribeEvents((env) => { exits.push(env); }, { types: ['process_exit'] }).ready;
  await watcher.subscribeEvents((env) => { both.push(env); }, { types: ['process_exec', 'process_exit'] }).ready;
  assert.throws(() => watcher.subscribeEvents(() => {}, { durable: 'd', types: ['process_exit'] }), /durable subscription takes every event type/);
  const nc = await connect({ servers: server.url });
  try {
    const consumers = await (await nc.jetstreamManager()).consumers.list(EVENT_STREAM).next();
    assert.deepEqual(consumers.map((c) => c.config.filter_subject).sort(), ['vigil.events.*.process_exec', 'vigil.events.*.process_exit', 'vigil.events.*.process_exit']);
  } finally {
    await nc.close();
  }
  const sensor = await bus('node-w');
  // Execs and exits in turns: each turn is a stream message of its own type.
  for (let i = 0; i < 10; i++) {
    sensor.publishEvent(envelope('node-w', i));
    await new Promise((resolve) => setImmediate(resolve));
    sensor.publishEvent(exit(i));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await waitFor('the events delivered', () => (exits.length >= 10 && both.length >= 20 ? true : undefined));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const ids = Array.from({ length: 10 }, (_, i) => execIdOf(envelope('node-w', i)));
  assert.deepEqual(exits.map((e) => e.type), Array(10).fill('process_exit'));
  assert.deepEqual(exits.map((e) => e.event.process_exit!.process.exec_id), ids);
  assert.equal(both.length, 20);
  assert.deepEqual(both.filter((e) => e.type === 'process_exec').map(execIdOf), ids);
  assert.deepEqual(both.filter((e) => e.type === 'process_exit').map((e) => e.event.process_exit!.process.exec_id), ids);
  await Promise.all([sensor.close(), watcher.close()]);
}));

test('exporter restart: stopped mid-stream without acknowledging, a new subscriber under the same name resumes; every event exported once', { timeout: 180_000 }, (t) => withServer(async ({ server, bus }) => {
  const N = 50_000;
  const HALF = N / 2;
  const sensor = await bus('node-d');
  const t0 = performance.now();
  for (let i = 0; i < N; i++) sensor.publishEvent(envelope('node-d', i));
  await waitFor('all events stored', () => (sensor.stats().published === N ? true : undefined), 120_000);
  const ms = performance.now() - t0;
  t.diagnostic(`published ${N} events in ${ms.toFixed(0)} ms: ${Math.round(N / ms * 1000)} events/s`);

  // The sink: idempotent per event, counting how often each was exported.
  const exports = new Map<string, number>();
  const exportEvent = (env: EventEnvelope): void => {
    const id = execIdOf(env);
    exports.set(id, (exports.get(id) ?? 0) + 1);
  };

  // Exporter 1 stops inside its handler for event HALF: that event's message
  // and the ones it had fetched are never acknowledged by it.
  const exporter1 = await bus('exporter-1');
  const handled1: string[] = [];
  const stop1 = exporter1.subscribeEvents(async (env) => {
    exportEvent(env);
    handled1.push(execIdOf(env));
    if (handled1.length === HALF) {
      stop1();
      return;
    }
    await Promise.resolve();
  }, { durable: 'otel-export' });
  await waitFor('exporter 1 reached half', () => (handled1.length >= HALF ? true : undefined), 60_000);
  await exporter1.close();
  assert.equal(handled1.length, HALF, 'nothing handled after stopping');
  // Acknowledged: the messages handled whole before the one in flight at the stop.
  const acked1 = exporter1.stats().acked;
  t.diagnostic(`exporter 1 acknowledged ${acked1} of the ${HALF} events it handled`);
  assert.ok(acked1 > 0 && acked1 < HALF && acked1 > HALF - 2 * MAX_BATCH_EVENTS, `acked ${acked1}`);
  const inFlightAtStop = handled1.slice(acked1);

  const exporter2 = await bus('exporter-2');
  const seen2 = new Set<string>();
  exporter2.subscribeEvents((env) => { seen2.add(execIdOf(env)); exportEvent(env); }, { durable: 'otel-export' });
  await waitFor('every event exported', () => (exports.size === N ? true : undefined), 120_000);

  await waitFor('exporter 2 acknowledged the rest', () => (exporter2.stats().acked === N - acked1 ? true : undefined), 30_000);
  assert.equal(exports.size, N, 'every event exported');
  for (const id of handled1.slice(0, acked1)) assert.ok(!seen2.has(id), 'an acknowledged event is never delivered again');
  const twice = [...exports].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(twice, inFlightAtStop, 'only the events of the message in flight at the stop reached the sink twice (dropped there as repeats)');
  assert.ok(exporter2.stats().redelivered >= inFlightAtStop.length);

  await fullyAcknowledged(server, 'otel-export');
  await Promise.all([sensor.close(), exporter2.close()]);
}));

test('exporter crash: a killed exporter process loses nothing; its successor gets the unacknowledged events again', { timeout: 120_000 }, (t) => withServer(async ({ server, bus }) => {
  const N = 20_000;
  const consumer = { ackWaitMs: 1_000 };
  const sensor = await bus('node-e');
  for (let i = 0; i < N; i++) sensor.publishEvent(envelope('node-e', i));
  await waitFor('all events stored', () => (sensor.stats().published === N ? true : undefined), 60_000);

  // The exporter process writes each event's id (its export) to stdout; after
  // exporting event N/2 it hangs before acknowledging it (and exports nothing
  // more of what it was handed), and is killed there.
  const busModule = new URL('../../services/lib/nats/index.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { NatsBus } from ${JSON.stringify(busModule)};
    const bus = await NatsBus.connect({ servers: process.env.NATS_URL, node: 'exporter', consumer: ${JSON.stringify(consumer)}, log: () => {} });
    let exported = 0;
    bus.subscribeEvents((env) => {
      if (exported === ${N / 2}) return new Promise(() => {});
      process.stdout.write(env.event.process_exec.process.exec_id + '\\n');
      if (++exported === ${N / 2}) return new Promise(() => {});
    }, { durable: 'crashy' });
  `], { env: { ...process.env, NATS_URL: server.url }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exports = new Map<string, number>();
  const exportId = (id: string): void => { exports.set(id, (exports.get(id) ?? 0) + 1); };
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const id of lines) exportId(id);
  });
  await waitFor('the exporter process exported half', () => (exports.size >= N / 2 ? true : undefined), 60_000);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(exports.size, N / 2, 'the exporter process hangs at half');
  child.kill('SIGKILL');
  await exited(child);
  const byChild = exports.size;

  const successor = await bus('exporter', { consumer });
  successor.subscribeEvents((env) => { exportId(execIdOf(env)); }, { durable: 'crashy' });
  await waitFor('every event exported', () => (exports.size === N ? true : undefined), 60_000);
  // The held events come back only after the ack wait, possibly after all the others.
  await fullyAcknowledged(server, 'crashy');
  const twice = [...exports].filter(([, n]) => n > 1).map(([id]) => id);
  t.diagnostic(`killed after ${byChild} exports; ${twice.length} exported twice (dropped by the sink), ${successor.stats().redelivered} redelivered`);
  assert.ok(twice.includes(execIdOf(envelope('node-e', N / 2 - 1))), 'the event exported but not acknowledged came again');
  assert.ok([...exports.values()].every((n) => n <= 2));
  assert.ok(successor.stats().redelivered > 0, 'what the dead exporter had not acknowledged came again');
  await Promise.all([sensor.close(), successor.close()]);
}));

/**
 * Publishes `perTick` events every 5 ms until `stop()`; returns how many it published.
 */
function publishContinuously(sensor: NatsBus, node: string, perTick: number): { count: () => number; stop: () => void } {
  let i = 0;
  const timer = setInterval(() => {
    for (let k = 0; k < perTick; k++) sensor.publishEvent(envelope(node, i++));
  }, 5);
  return { count: () => i, stop: () => clearInterval(timer) };
}

test('nats-server restarting while the sensor publishes: stored + dropped == published, nothing lost silently, no duplicates, in order', { timeout: 120_000 }, (t) => withServer(async ({ server, bus }) => {
  const sensor = await bus('node-f');
  const load = publishContinuously(sensor, 'node-f', 50);
  await new Promise((resolve) => setTimeout(resolve, 700));
  await server.restart(1_000);
  await new Promise((resolve) => setTimeout(resolve, 700));
  load.stop();
  const published = load.count();
  await waitFor('the buffer flushed', () => (sensor.stats().pendingBytes === 0 ? true : undefined), 60_000);

  const stats = sensor.stats();
  const ids = (await readAll(server, bus, 'check')).map(execIdOf);
  const stored = ids.length;
  t.diagnostic(`published ${published}, stored ${stored} in ${await streamMessages(server)} messages, dropped ${stats.publishDropped}, reconnects ${stats.reconnects}`);
  assert.ok(stats.reconnects >= 1);
  assert.equal(stats.publishDropped, 0, 'the default buffer holds a second of events');
  assert.equal(stored + stats.publishDropped, published);
  assert.equal(stats.published, stored);
  assert.equal(new Set(ids).size, stored, 'no event stored twice');
  assert.deepEqual(ids, Array.from({ length: published }, (_, i) => execIdOf(envelope('node-f', i))), 'stored in publish order');
  await sensor.close();
}));

test('with a tiny buffer, events published while NATS is down are dropped and counted', { timeout: 120_000 }, (t) => withServer(async ({ server, bus }) => {
  const sensor = await bus('node-g', { maxPendingBytes: 32 * 1024 });
  const load = publishContinuously(sensor, 'node-g', 50);
  await new Promise((resolve) => setTimeout(resolve, 500));
  await server.restart(1_000);
  await new Promise((resolve) => setTimeout(resolve, 500));
  load.stop();
  const published = load.count();
  await waitFor('the buffer flushed', () => (sensor.stats().pendingBytes === 0 ? true : undefined), 60_000);

  const stats = sensor.stats();
  const ids = (await readAll(server, bus, 'check')).map(execIdOf);
  const stored = ids.length;
  t.diagnostic(`published ${published}, stored ${stored}, dropped ${stats.publishDropped}`);
  assert.ok(stats.publishDropped > 0);
  assert.equal(stored + stats.publishDropped, published);
  assert.equal(stats.published, stored);
  assert.equal(new Set(ids).size, stored, 'no event stored twice');
  await sensor.close();
}));

test('stats travel on core NATS; audit records are kept in VIGIL_AUDIT', { timeout: 60_000 }, () => withServer(async ({ server, bus }) => {
  const sensor = await bus('node-h');
  const exporter = await bus('exporter');
  const stats: SensorStatsMessage[] = [];
  const unsubscribeStats = exporter.subscribeStats((s) => { stats.push(s); });
  await exporter.connection.flush();
  const sample: SensorStatsMessage = {
    node: 'node-h', time: Date.now(), ringReceived: 10, ringLost: 0, ringDropped: 1, undecodable: 0,
    processCacheSize: 5, processCacheMisses: 0, processCacheEvicted: 0, podMetadataLate: 0, subscriberDropped: 0, publishDropped: 2, policyStateLost: 0, overrideMissed: 0, policyActionDropped: 0,
    policies: [{ name: 'p', matched: 3, actionsApplied: 1, actionsMonitored: 0, rateLimited: 0 }],
  };
  sensor.publishStats(sample);
  await waitFor('stats delivered', () => (stats.length > 0 ? true : undefined));
  assert.deepEqual(stats, [sample]);
  unsubscribeStats();

  const audits: AuditRecord[] = [];
  const unsubscribeAudit = exporter.subscribeAudit((r) => { audits.push(r); });
  await unsubscribeAudit.ready;
  const record: AuditRecord = { node: 'node-h', time: Date.now(), action: 'kill-process-tree', policy: 'p', trigger: 'abc', targets: [12, 13], outcome: 'done' };
  sensor.publishAudit(record);
  await waitFor('audit record delivered', () => (audits.length > 0 ? true : undefined));
  assert.deepEqual(audits, [record]);
  assert.equal(await streamMessages(server, AUDIT_STREAM), 1);
  unsubscribeAudit();
  await Promise.all([sensor.close(), exporter.close()]);
}));

test('policy KV: the current policies first, then puts and deletes', { timeout: 60_000 }, () => withServer(async ({ server, bus }) => {
  const enforcer = await bus('enforcer');
  const kv = await PolicyKv.open(enforcer.connection, { log: quiet });
  assert.equal(policyKey('block-curl'), 'block-curl');
  assert.equal(policyKey('block.curl', 'team-a'), 'team-a/block.curl');
  await kv.put('block-curl', 'kind: TracingPolicy\nmetadata:\n  name: block-curl\n');
  await kv.put('team-a/audit', 'kind: TracingPolicyNamespaced # v1\n');
  await kv.put('team-a/audit', 'kind: TracingPolicyNamespaced # v2\n');
  await kv.put('gone', 'kind: TracingPolicy\n');
  await kv.delete('gone');

  const changes: PolicyChange[] = [];
  const watch = kv.watch((c) => { changes.push(c); });
  await watch.ready;
  assert.deepEqual(changes, [
    { key: 'block-curl', yaml: 'kind: TracingPolicy\nmetadata:\n  name: block-curl\n' },
    { key: 'team-a/audit', yaml: 'kind: TracingPolicyNamespaced # v2\n' },
  ]);

  await kv.put('team-a/audit', 'kind: TracingPolicyNamespaced # v3\n');
  await kv.delete('block-curl');
  await waitFor('changes delivered', () => (changes.length >= 4 ? true : undefined));
  assert.deepEqual(changes.slice(2), [
    { key: 'team-a/audit', yaml: 'kind: TracingPolicyNamespaced # v3\n' },
    { key: 'block-curl' },
  ]);
  watch.stop();

  const history = await inspect(server, async (nc) => (await (await nc.jetstreamManager()).streams.info('KV_vigil_policies')).config.max_msgs_per_subject);
  assert.equal(history, 5);
  await enforcer.close();
}));
