/**
 * The exporters without servers: the JSON-lines and file exporters (rotation
 * at size with backups kept, field filters, the rate limit and its counted
 * drops, acknowledgement once written for durable subscriptions), the bound
 * on metric label values, and the exporter flags.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { LocalBus, type EventHandler, type SubscribeOptions } from '../../services/lib/bus.js';
import { FieldFilterError } from '../../services/lib/field-filters.js';
import { FileExporter, RotatingFileStream } from '../../services/exporter/file.js';
import { JsonLinesExporter } from '../../services/exporter/json-lines.js';
import { Telemetry } from '../../services/exporter/telemetry.js';
import { EXPORTER_FLAGS, exporterConfigFromArgs } from '../../services/exporter/index.js';
import { parseArgs, UsageError } from '../../services/cli/args.js';
import { execEvent, makeProcess } from '../support/synthetic-events.js';

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
    override subscribeEvents(h: EventHandler, opts?: SubscribeOptions): () => void {
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

test('the exporter flags build the configuration, and bad values are usage errors', () => {
  const config = (argv: string[], stdout = true) => exporterConfigFromArgs(parseArgs(argv, EXPORTER_FLAGS), { stdout });
  assert.deepEqual(config([]), { stdout: true, prometheus: { address: ':2112' }, metrics: {}, otel: false });
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
  for (const bad of [['--export-file-backups', '2'], ['--export-rate-limit', 'x'], ['--metrics-address', '2112'], ['--metrics-prefix', '9x'], ['--metrics-label-filter', 'workload']]) {
    assert.throws(() => config(bad), UsageError, bad.join(' '));
  }
});
