/**
 * The exporters without servers: the JSON-lines and file exporters (rotation
 * at size with backups kept, field filters, the rate limit and its counted
 * drops, acknowledgement once written for durable subscriptions), the bound
 * on metric label values, the metric shapes of the `vigil` and `tetragon`
 * prefixes as scraped, and the exporter flags.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { LocalBus, type EventHandler, type SubscribeOptions, type Unsubscribe } from '../../services/lib/bus.js';
import { FieldFilterError } from '../../services/lib/field-filters.js';
import { FileExporter, RotatingFileStream } from '../../services/exporter/file.js';
import { JsonLinesExporter } from '../../services/exporter/json-lines.js';
import { metricShape, Telemetry, workloadOf, type EventLabel } from '../../services/exporter/telemetry.js';
import { DEFAULT_METRICS_ADDRESS, parseAddress, PrometheusExporter, telemetryRegistry, throttledRender } from '../../services/exporter/prometheus.js';
import { EXPORTER_FLAGS, exporterConfigFromArgs } from '../../services/exporter/index.js';
import { parseArgs, UsageError } from '../../services/lib/flags.js';
import { envelope, execEvent, exitEvent, kprobeEvent, makeProcess, NODE, statsMessage, tracepointEvent } from '../support/synthetic-events.js';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-export-'));
test.after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const read = (file: string): string | undefined => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined);
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A stream gathering what is written to it. */
function sink(): { stream: PassThrough; lines: () => Record<string, unknown>[] } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => { text += d.toString(); });
  return { stream, lines: () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('a rotating file rotates at line boundaries and keeps its backups', async () => {
  const file = path.join(scratch, 'raw.log');
  const stream = await RotatingFileStream.open({ path: file, maxSizeBytes: 10, backups: 2 });
  const write = (text: string): Promise<void> => new Promise((resolve, reject) => stream.write(text, (err) => (err ? reject(err) : resolve())));
  await write('12345\n12345\n');
  assert.deepEqual([read(file), read(`${file}.1`)], ['12345\n', '12345\n'], 'the second line did not fit');
  await write('abcdefghijklmn\n');
  assert.equal(read(file), 'abcdefghijklmn\n', 'a line longer than the limit has a file of its own');
  await write('z\n');
  await new Promise<void>((resolve) => stream.end(resolve));
  assert.deepEqual([read(file), read(`${file}.1`), read(`${file}.2`), read(`${file}.3`)], ['z\n', 'abcdefghijklmn\n', '12345\n', undefined]);
  assert.equal(stream.rotations, 3);
});

test('the file exporter writes Tetragon JSON lines, rotated by size, the newest in the file and the oldest dropped', async () => {
  const file = path.join(scratch, 'events.log');
  const bus = new LocalBus();
  const telemetry = new Telemetry(bus, { version: 'test' });
  const exporter = await FileExporter.start(bus, { path: file, maxSizeMB: 2 / 1024, backups: 3, counters: telemetry.exporter('file'), telemetry });
  for (let i = 0; i < 40; i++) {
    bus.publishEvent(execEvent(makeProcess({ pid: 5000 + i, binary: '/usr/bin/cat', args: `/tmp/file-${i}` })));
    if (i % 5 === 4) await turn(); // several writes, as events come over time
  }
  await exporter.close();

  const files = [`${file}.3`, `${file}.2`, `${file}.1`, file];
  assert.equal(read(`${file}.4`), undefined);
  const pids: number[] = [];
  for (const f of files) {
    const text = read(f)!;
    assert.ok(text.length > 0 && text.length <= 2048, `${f} holds ${text.length} bytes`);
    assert.ok(text.endsWith('\n'));
    for (const line of text.trimEnd().split('\n')) {
      const json = JSON.parse(line) as { process_exec: { process: { pid: number; binary: string } }; node_name: string };
      assert.equal(json.process_exec.process.binary, '/usr/bin/cat');
      pids.push(json.process_exec.process.pid);
    }
  }
  assert.equal(pids.at(-1), 5039);
  assert.deepEqual(pids, pids.map((_, i) => 5039 - pids.length + 1 + i), 'consecutive, oldest first across the backups');
  assert.ok(pids.length < 40, 'the oldest lines were rotated away');
  const stats = exporter.stats();
  assert.equal(stats.exported, 40);
  assert.ok(stats.rotations > 3, `rotations: ${stats.rotations}`);
  const family = telemetry.families().find((f) => f.name === 'export_file_rotations_total')!;
  assert.equal(family.samples()[0]!.value, stats.rotations);
  telemetry.close();
});

test('the rate limit drops past N events a minute and counts them', async () => {
  const bus = new LocalBus();
  const telemetry = new Telemetry(bus, { version: 'test' });
  const out = sink();
  const exporter = new JsonLinesExporter(bus, out.stream, { rateLimit: 10, counters: telemetry.exporter('stdout') });
  for (let i = 0; i < 25; i++) bus.publishEvent(execEvent(makeProcess({ pid: 6000 + i, binary: '/bin/sh' })));
  await turn();
  await turn();
  assert.equal(out.lines().length, 10);
  assert.deepEqual(exporter.stats(), { exported: 10, dropped: { rate_limited: 15, overflow: 0, failed: 0 }, pendingBytes: 0 });
  const exports = telemetry.families().find((f) => f.name === 'export_total')!.samples();
  assert.deepEqual(exports.map((s) => [s.labels.outcome, s.value]).sort(), [['exported', 10], ['rate_limited', 15]]);
  exporter.close();
  telemetry.close();
});

test('field filters keep or drop fields of the payload, as Tetragon export filters do', async () => {
  const bus = new LocalBus();
  const included = sink();
  const excluded = sink();
  const a = new JsonLinesExporter(bus, included.stream, { fieldFilters: [{ fields: { paths: ['process.binary', 'process.pid'] }, action: 0 }] });
  const b = new JsonLinesExporter(bus, excluded.stream, { fieldFilters: [{ fields: { paths: ['parent', 'process.cwd'] }, action: 1 }] });
  const parent = makeProcess({ pid: 1, binary: '/sbin/init' });
  bus.publishEvent(execEvent(makeProcess({ pid: 7000, binary: '/bin/ls', parent }), parent));
  await turn();
  await turn();
  const [kept] = included.lines() as [{ process_exec: unknown; node_name: string; time: string }];
  assert.deepEqual(kept.process_exec, { process: { pid: 7000, binary: '/bin/ls' } });
  assert.equal(kept.node_name, 'test-node', 'fields beside the payload stay');
  const [rest] = excluded.lines() as [{ process_exec: { process: Record<string, unknown>; parent?: unknown } }];
  assert.equal(rest.process_exec.parent, undefined);
  assert.equal(rest.process_exec.process.cwd, undefined);
  assert.equal(rest.process_exec.process.binary, '/bin/ls');
  a.close();
  b.close();
  assert.throws(() => new JsonLinesExporter(bus, sink().stream, { fieldFilters: [{ fields: { paths: ['process.nope'] }, action: 1 }] }), FieldFilterError);
});

test('with a durable subscription an event is acknowledged once its line is written', async () => {
  let handler: EventHandler | undefined;
  /** A bus that hands out the subscriber's handler, to see what it returns. */
  class CapturingBus extends LocalBus {
    override subscribeEvents(h: EventHandler, opts?: SubscribeOptions): Unsubscribe {
      assert.equal(opts?.durable, 'vigil-file');
      handler = h;
      return super.subscribeEvents(h);
    }
  }
  const bus = new CapturingBus();
  const out = sink();
  const exporter = new JsonLinesExporter(bus, out.stream, { durable: 'vigil-file' });
  const acked = handler!(execEvent(makeProcess({ pid: 8000, binary: '/bin/echo' })));
  assert.ok(acked instanceof Promise);
  assert.equal(out.lines().length, 0);
  await acked;
  assert.equal(out.lines().length, 1);
  exporter.close();
});

test('event labels keep their first N values and count the rest as "other"', () => {
  const bus = new LocalBus();
  const telemetry = new Telemetry(bus, { version: 'test', labels: ['binary'], maxLabelValues: 2 });
  for (const binary of ['/bin/a', '/bin/b', '/bin/c', '/bin/d', '/bin/a']) bus.publishEvent(execEvent(makeProcess({ pid: 9000, binary })));
  const events = telemetry.families().find((f) => f.name === 'events_total')!;
  assert.deepEqual(events.labelNames, ['type', 'binary']);
  assert.deepEqual(events.samples().map((s) => [s.labels.binary, s.value]), [['/bin/a', 2], ['/bin/b', 1], ['other', 2]]);
  telemetry.close();
});

/** A bus fed with one of each event type from two pods of a Deployment, and one node's stats. */
function fedTelemetry(labels?: readonly EventLabel[]): Telemetry {
  const bus = new LocalBus();
  const telemetry = new Telemetry(bus, { version: '1.2.3-test', ...(labels && { labels }) });
  const pods = ['web-7d4b9c8f6-x2x9k', 'web-7d4b9c8f6-q8zzv'].map((name) => ({ namespace: 'shop', name, pod_labels: { app: 'web', 'pod-template-hash': '7d4b9c8f6' } }));
  for (const [i, pod] of pods.entries()) {
    const p = makeProcess({ pid: 4000 + i, binary: '/usr/sbin/nginx', pod });
    bus.publishEvent(execEvent(p));
    bus.publishEvent(kprobeEvent(p, 'deny-privileged-pod-start', 'fd_install', 3));
    bus.publishEvent(tracepointEvent(p, 'watch-open', 'syscalls', 'sys_enter_openat', 1));
    bus.publishEvent(envelope({ process_uprobe: { process: p, path: '/bin/bash', symbol: 'readline', policy_name: 'bash-readline', action: 1, args: [] }, node_name: NODE, time: { seconds: 1, nanos: 0 } }));
    bus.publishEvent(exitEvent(p));
  }
  bus.publishStats(statsMessage('node-a', { ringReceived: 100, ringLost: 3, processCacheMisses: 4, processCacheEvicted: 2, subscriberDropped: 5, processCacheSize: 42 }));
  return telemetry;
}

const scrape = (telemetry: Telemetry, prefix: string): Promise<string> => telemetryRegistry(telemetry, prefix).metrics();
/** The sample lines of a metric, exactly as scraped. */
const linesOf = (text: string, metric: string): string[] => text.split('\n').filter((l) => l.startsWith(`${metric}{`) || l.startsWith(`${metric} `));

test('under prefix tetragon the shared families carry Tetragon\'s names, label names and values', async () => {
  const telemetry = fedTelemetry(['namespace', 'workload', 'pod', 'node_name']);
  const text = await scrape(telemetry, 'tetragon');
  const pod = 'namespace="shop",workload="web",pod="web-7d4b9c8f6-x2x9k",binary="",node_name="test-node"';
  // Event types are tetragon.EventType names; every filter label is there, binary (filtered out) empty.
  for (const type of ['PROCESS_EXEC', 'PROCESS_EXIT', 'PROCESS_KPROBE', 'PROCESS_TRACEPOINT', 'PROCESS_UPROBE']) {
    assert.ok(linesOf(text, 'tetragon_events_total').includes(`tetragon_events_total{type="${type}",${pod}} 1`), `${type} in\n${linesOf(text, 'tetragon_events_total').join('\n')}`);
  }
  assert.equal(linesOf(text, 'tetragon_events_total').length, 10);
  assert.doesNotMatch(text, /^tetragon_events_total\{type="process_/m);
  // Policy events: Tetragon's event labels, its hook notation, and Vigil's action beside.
  const policy = linesOf(text, 'tetragon_policy_events_total');
  assert.ok(policy.includes(`tetragon_policy_events_total{${pod},policy="deny-privileged-pod-start",hook="kprobe:fd_install",action="KPROBE_ACTION_SIGKILL"} 1`), policy.join('\n'));
  assert.ok(policy.includes(`tetragon_policy_events_total{${pod},policy="watch-open",hook="tracepoint:syscalls/sys_enter_openat",action="KPROBE_ACTION_POST"} 1`), policy.join('\n'));
  assert.ok(policy.includes(`tetragon_policy_events_total{${pod},policy="bash-readline",hook="uprobe:/bin/bash/readline",action="KPROBE_ACTION_POST"} 1`), policy.join('\n'));
  assert.equal(policy.length, 6, 'one series per pod and policy');
  // Errors: the cause as `error` and as `type`; Tetragon's name where it had one.
  assert.match(text, /^tetragon_errors_total\{error="process_cache_miss_on_get",type="process_cache_miss_on_get",node="node-a"\} 4$/m);
  assert.match(text, /^tetragon_errors_total\{error="process_cache_evicted",type="process_cache_evicted",node="node-a"\} 2$/m);
  assert.match(text, /^tetragon_errors_total\{error="ring_lost",type="ring_lost",node="node-a"\} 3$/m);
  assert.doesNotMatch(text, /"process_cache_miss"/);
  // Renamed per-node families, and build_info with Tetragon's labels.
  assert.match(text, /^tetragon_observer_ringbuf_events_received_total\{node="node-a"\} 100$/m);
  assert.match(text, /^tetragon_observer_ringbuf_events_lost_total\{node="node-a"\} 3$/m);
  assert.match(text, /^tetragon_notify_overflowed_events_total\{node="node-a"\} 5$/m);
  assert.match(text, /^tetragon_process_cache_size\{node="node-a"\} 42$/m);
  assert.match(text, /^tetragon_build_info\{version="1.2.3-test",go_version="",commit="",time="",modified=""\} 1$/m);
  assert.match(text, /^# TYPE tetragon_export_total counter$/m, 'a family Tetragon lacks keeps its name');
  assert.doesNotMatch(text, /^tetragon_(ringbuf_received|ringbuf_lost|subscriber_dropped)_total/m);
  telemetry.close();
});

test('under prefix vigil the names and values stay Vigil\'s: process_exec, bare hooks, no Tetragon labels', async () => {
  const telemetry = fedTelemetry();
  const text = await scrape(telemetry, 'vigil');
  const events = linesOf(text, 'vigil_events_total');
  assert.ok(events.includes('vigil_events_total{type="process_exec",namespace="shop",pod="web-7d4b9c8f6-x2x9k"} 1'), events.join('\n'));
  assert.ok(events.includes('vigil_events_total{type="process_uprobe",namespace="shop",pod="web-7d4b9c8f6-q8zzv"} 1'), events.join('\n'));
  assert.doesNotMatch(text, /PROCESS_|workload=|node_name=|error=/);
  // Policy events without process labels: the two pods' events summed.
  assert.deepEqual(linesOf(text, 'vigil_policy_events_total').sort(), [
    'vigil_policy_events_total{policy="bash-readline",hook="readline",action="KPROBE_ACTION_POST"} 2',
    'vigil_policy_events_total{policy="deny-privileged-pod-start",hook="fd_install",action="KPROBE_ACTION_SIGKILL"} 2',
    'vigil_policy_events_total{policy="watch-open",hook="sys_enter_openat",action="KPROBE_ACTION_POST"} 2',
  ]);
  assert.match(text, /^vigil_errors_total\{type="process_cache_miss",node="node-a"\} 4$/m);
  assert.match(text, /^vigil_ringbuf_received_total\{node="node-a"\} 100$/m);
  assert.match(text, /^vigil_ringbuf_lost_total\{node="node-a"\} 3$/m);
  assert.match(text, /^vigil_subscriber_dropped_total\{node="node-a"\} 5$/m);
  assert.match(text, /^vigil_build_info\{version="1.2.3-test"\} 1$/m);
  // Any prefix but tetragon is Vigil's shape.
  assert.equal(metricShape('acme'), 'vigil');
  assert.equal(metricShape('tetragon'), 'tetragon');
  assert.match(await scrape(telemetry, 'acme'), /^acme_events_total\{type="process_exec",namespace="shop",pod="web-7d4b9c8f6-x2x9k"\} 1$/m);
  telemetry.close();
});

test('the workload label comes from Pod.workload, or from a Deployment\'s or Job\'s pod labels', () => {
  assert.equal(workloadOf({ namespace: 'a', name: 'web-0', workload: 'web' }), 'web');
  assert.equal(workloadOf({ namespace: 'a', name: 'api-server-5f9c7b6d48-abcde', pod_labels: { 'pod-template-hash': '5f9c7b6d48' } }), 'api-server');
  assert.equal(workloadOf({ namespace: 'a', name: 'api-server-5f9c7b6d48-abcde', pod_labels: { 'pod-template-hash': 'ffffffff' } }), '', 'a hash that is not in the name');
  assert.equal(workloadOf({ namespace: 'a', name: 'backup-29012345-x7k2p', pod_labels: { 'batch.kubernetes.io/job-name': 'backup-29012345' } }), 'backup', 'a CronJob\'s job');
  assert.equal(workloadOf({ namespace: 'a', name: 'migrate-x7k2p', pod_labels: { 'job-name': 'migrate' } }), 'migrate');
  assert.equal(workloadOf({ namespace: 'a', name: 'db-0', pod_labels: { 'statefulset.kubernetes.io/pod-name': 'db-0' } }), '');
  assert.equal(workloadOf(undefined), '');
});

test('metrics bind loopback by default; ":PORT" given explicitly still means every interface', () => {
  assert.equal(DEFAULT_METRICS_ADDRESS, '127.0.0.1:2112');
  assert.deepEqual(parseAddress(DEFAULT_METRICS_ADDRESS), { host: '127.0.0.1', port: 2112 });
  assert.deepEqual(parseAddress(':2112'), { host: undefined, port: 2112 });
  assert.deepEqual(parseAddress('[::1]:2112'), { host: '::1', port: 2112 });
  const help = EXPORTER_FLAGS['metrics-address']?.help ?? '';
  assert.match(help, /default: 127\.0\.0\.1:2112, loopback only/);
  assert.match(help, /:PORT for every interface/);
});

test('scrapes are rendered one at a time, at most one per interval, each after its request arrived', async () => {
  let renders = 0;
  let release: (() => void) | undefined;
  let hold = false;
  const render = throttledRender(async () => {
    const n = ++renders;
    if (hold) await new Promise<void>((r) => { release = r; });
    return `render ${n}`;
  }, 100);
  // A burst of requests shares one render.
  assert.deepEqual(new Set(await Promise.all(Array.from({ length: 50 }, () => render()))), new Set(['render 1']));
  // A request that comes while a render runs gets the next one, never the text begun before it.
  hold = true;
  const first = render();
  while (release === undefined) await new Promise((r) => setTimeout(r, 5));
  const second = render();
  hold = false;
  release();
  assert.deepEqual([await first, await second], ['render 2', 'render 3']);
  // A flood of requests one after another: at most one render per 100 ms.
  const start = Date.now();
  const before = renders;
  while (Date.now() - start < 500) await render();
  const elapsed = Date.now() - start;
  assert.ok(renders - before <= Math.floor(elapsed / 100) + 1, `${renders - before} renders in ${elapsed} ms`);
});

/** Whether the server at `port` answers a request on a new connection (false: closed unanswered). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    let answer = '';
    socket.on('data', (d: Buffer) => { answer += d.toString(); });
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(answer.startsWith('HTTP/1.1 200')));
  });
}

test('the metrics server holds at most 64 connections: one more is closed as it comes', async () => {
  const exporter = await PrometheusExporter.start(new Telemetry(new LocalBus(), { version: 'test' }), { address: '127.0.0.1:0' });
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < 64; i++) {
      const socket = net.connect(exporter.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      held.push(socket);
    }
    // The server takes connections in the order they came: the 64 held ones are counted before this one.
    assert.equal(await answers(exporter.port), false, 'the 65th connection is closed unanswered');
    for (const socket of held) socket.destroy();
    const deadline = Date.now() + 10_000;
    while (!(await answers(exporter.port))) {
      assert.ok(Date.now() < deadline, 'no answer 10 s after the held connections closed');
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    for (const socket of held) socket.destroy();
    await exporter.close();
  }
});

test('the exporter flags build the configuration, and bad values are usage errors', () => {
  const config = (argv: string[], stdout = true) => exporterConfigFromArgs(parseArgs(argv, EXPORTER_FLAGS), { stdout });
  assert.deepEqual(config([]), { stdout: true, prometheus: { address: '127.0.0.1:2112' }, metrics: {}, otel: false }, 'loopback by default');
  assert.deepEqual(config(['--metrics-address', ':2112']).prometheus, { address: ':2112' }, 'every interface when asked');
  assert.deepEqual(config([
    '--export-stdout=false', '--export-file', '/var/log/vigil.log', '--export-file-max-size-mb', '50', '--export-file-max-backups', '2',
    '--export-rate-limit', '600', '--export-include-fields', 'process.binary,process.pod', '--export-exclude-fields', 'parent',
    '--metrics-address', '127.0.0.1:9090', '--metrics-prefix', 'tetragon', '--metrics-label-filter', 'namespace,binary',
    '--metrics-max-label-values', '50', '--otel',
  ]), {
    stdout: false,
    file: { path: '/var/log/vigil.log', maxSizeMB: 50, backups: 2 },
    rateLimit: 600,
    fieldFilters: [{ fields: { paths: ['process.binary', 'process.pod'] }, action: 0 }, { fields: { paths: ['parent'] }, action: 1 }],
    prometheus: { address: '127.0.0.1:9090' },
    metrics: { prefix: 'tetragon', labels: ['namespace', 'binary'], maxLabelValues: 50 },
    otel: true,
  });
  assert.equal(config(['--metrics-address=']).prometheus, undefined, 'an empty address disables Prometheus');
  assert.deepEqual(config(['--metrics-label-filter=']).metrics, { labels: [] });
  assert.deepEqual(config(['--metrics-label-filter', 'workload,node_name']).metrics, { labels: ['workload', 'node_name'] });
  for (const bad of [['--export-file-backups', '2'], ['--export-rate-limit', 'x'], ['--metrics-address', '2112'], ['--metrics-prefix', '9x'], ['--metrics-label-filter', 'container']]) {
    assert.throws(() => config(bad), UsageError, bad.join(' '));
  }
});
