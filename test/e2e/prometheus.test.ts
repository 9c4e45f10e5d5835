/**
 * The Prometheus exporter scraped by a real Prometheus (/usr/bin/prometheus,
 * on loopback, with its own storage): with prefix `tetragon`, the seed's two
 * monitoring queries answer with what was fed, the errors counters never
 * reset across a sensor restart, and the series carry Tetragon's names, label
 * names and values (type="PROCESS_EXEC", hook="kprobe:fd_install").
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LocalBus } from '../../services/lib/bus.js';
import { startExporters, type Exporters } from '../../services/exporter/index.js';
import { exited } from '../support/wait.js';
import { execEvent, exitEvent, kprobeEvent, makeProcess, statsMessage, tracepointEvent } from '../support/synthetic-events.js';

const HEALTH = '(sum(tetragon_events_total) - sum(tetragon_errors_total)) / sum(tetragon_events_total)';
const BY_TYPE = 'sum by (type) (tetragon_errors_total)';

let dir: string;
let bus: LocalBus;
let exporters: Exporters;
let prometheus: ChildProcess | undefined;
let promPort: number;
let promLog = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Series { metric: Record<string, string>; value: [number, string] }

async function query(expr: string): Promise<Series[]> {
  const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = await res.json() as { status: string; data?: { result: Series[] } };
  assert.equal(body.status, 'success', JSON.stringify(body));
  return body.data!.result;
}

/** Queries until `check` accepts the result, or fails with the last result after `timeoutMs`. */
async function queryUntil(expr: string, check: (result: Series[]) => boolean, timeoutMs = 30_000): Promise<Series[]> {
  const deadline = Date.now() + timeoutMs;
  let last: Series[] | string = 'no answer';
  for (;;) {
    try {
      const result = await query(expr);
      if (check(result)) return result;
      last = result;
    } catch (err) {
      last = (err as Error).message; // Prometheus still starting
    }
    if (Date.now() > deadline) assert.fail(`${expr}: still ${JSON.stringify(last)} after ${timeoutMs} ms\n${promLog}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const scalarIs = (expected: number) => (r: Series[]): boolean => r.length === 1 && Math.abs(Number(r[0]!.value[1]) - expected) < 1e-9;
const byType = (r: Series[]): Record<string, number> => Object.fromEntries(r.map((s) => [s.metric.type, Number(s.value[1])]));

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-prom-'));
  bus = new LocalBus();
  exporters = await startExporters(bus, { prometheus: { address: '127.0.0.1:0' }, metrics: { prefix: 'tetragon' } }, { version: '9.9.9-test' });
  promPort = await freePort();
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global: { scrape_interval: 1s, evaluation_interval: 1s }',
    'scrape_configs:',
    '  - job_name: vigil',
    `    static_configs: [{ targets: ["127.0.0.1:${exporters.metricsPort}"] }]`,
  ].join('\n') + '\n');
  prometheus = spawn('/usr/bin/prometheus', [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  prometheus.stderr!.on('data', (d: Buffer) => { promLog += d.toString(); });
});

test.after(async () => {
  if (prometheus !== undefined && prometheus.exitCode === null) {
    prometheus.kill('SIGTERM');
    await exited(prometheus);
  }
  await exporters.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the seed's health ratio and errors by type answer in Prometheus, across a sensor restart, beside Tetragon's event types and hooks", async () => {
  // 40 events: 15 execs, 15 exits, 6 kprobe and 4 tracepoint policy events.
  for (let i = 0; i < 15; i++) {
    const p = makeProcess({ pid: 1000 + i, binary: '/usr/bin/ls', pod: { namespace: 'default', name: `web-${i % 3}` } });
    bus.publishEvent(execEvent(p));
    if (i < 6) bus.publishEvent(kprobeEvent(p, 'deny-privileged-pod-start', 'fd_install', 3));
    if (i < 4) bus.publishEvent(tracepointEvent(p, 'watch-open', 'syscalls', 'sys_enter_openat', 1));
    bus.publishEvent(exitEvent(p));
  }
  // node-a before its sensor restarts: 15 errors.
  bus.publishStats(statsMessage('node-a', { ringReceived: 100, ringLost: 3, ringDropped: 2, undecodable: 1, processCacheMisses: 4, subscriberDropped: 5, processCacheSize: 42 }));
  bus.publishStats(statsMessage('node-b', { ringReceived: 50, ringLost: 2, processCacheSize: 7 }));
  await queryUntil(HEALTH, scalarIs((40 - 17) / 40));

  // node-a's sensor restarted: its totals start again from zero, the counters go on from 15.
  bus.publishStats(statsMessage('node-a', { ringReceived: 10, ringLost: 1, processCacheMisses: 2, processCacheSize: 3 }));
  await queryUntil(HEALTH, scalarIs((40 - 20) / 40));

  const types = byType(await queryUntil(BY_TYPE, (r) => byType(r).ring_lost === 6));
  const causes = {
    ring_lost: 6, ring_dropped: 2, undecodable: 1, process_cache_miss_on_get: 6,
    process_cache_evicted: 0, pod_metadata_late: 0, subscriber_dropped: 5, publish_dropped: 0, policy_state_lost: 0, override_not_applied: 0, policy_action_dropped: 0,
  };
  assert.deepEqual(types, causes);
  // Tetragon 1.7 names the cause `error`: its queries see the same.
  const byError = await query('sum by (error) (tetragon_errors_total)');
  assert.deepEqual(Object.fromEntries(byError.map((s) => [s.metric.error, Number(s.value[1])])), causes);
  assert.deepEqual(await query('sum(resets(tetragon_errors_total[5m]))').then((r) => Number(r[0]!.value[1])), 0);
  assert.equal(Number((await query('sum(tetragon_observer_ringbuf_events_received_total)'))[0]!.value[1]), 160);
  assert.equal(Number((await query('tetragon_process_cache_size{node="node-a"}'))[0]!.value[1]), 3);

  // Event types as Tetragon writes them, which its dashboards and alerts filter on.
  assert.deepEqual(byType(await query('sum by (type) (tetragon_events_total)')), { PROCESS_EXEC: 15, PROCESS_EXIT: 15, PROCESS_KPROBE: 6, PROCESS_TRACEPOINT: 4 });
  const execs = await query('tetragon_events_total{type="PROCESS_EXEC", namespace="default", pod="web-0"}');
  assert.equal(execs.length, 1, JSON.stringify(execs));
  assert.equal(Number(execs[0]!.value[1]), 5);
  assert.deepEqual(await query('tetragon_events_total{type="process_exec"}'), []);
  const hooks = await query('sum by (policy, hook) (tetragon_policy_events_total)');
  assert.deepEqual(Object.fromEntries(hooks.map((s) => [`${s.metric.policy} ${s.metric.hook}`, Number(s.value[1])])), {
    'deny-privileged-pod-start kprobe:fd_install': 6,
    'watch-open tracepoint:syscalls/sys_enter_openat': 4,
  });
});

test('events, policy events and build info carry the documented labels', async () => {
  const text = await (await fetch(`http://127.0.0.1:${exporters.metricsPort}/metrics`)).text();
  // Tetragon's event labels are all there; namespace and pod are filled by default, the others are not.
  const pod = 'namespace="default",workload="",pod="web-0",binary="",node_name=""';
  assert.match(text, new RegExp(`^tetragon_events_total\\{type="PROCESS_EXEC",${pod}\\} 5$`, 'm'));
  assert.doesNotMatch(text, /(binary|node_name)="[^"]/);
  assert.match(text, new RegExp(`^tetragon_policy_events_total\\{${pod},policy="deny-privileged-pod-start",hook="kprobe:fd_install",action="KPROBE_ACTION_SIGKILL"\\} 2$`, 'm'));
  assert.match(text, new RegExp(`^tetragon_policy_events_total\\{${pod},policy="watch-open",hook="tracepoint:syscalls/sys_enter_openat",action="KPROBE_ACTION_POST"\\} 2$`, 'm'));
  assert.match(text, /^tetragon_build_info\{version="9.9.9-test",go_version="",commit="",time="",modified=""\} 1$/m);
  assert.match(text, /^tetragon_observer_ringbuf_events_lost_total\{node="node-a"\} 4$/m);
  assert.match(text, /^tetragon_notify_overflowed_events_total\{node="node-a"\} 5$/m);
  assert.match(text, /^# TYPE tetragon_errors_total counter$/m);
  const notFound = await fetch(`http://127.0.0.1:${exporters.metricsPort}/`);
  assert.equal(notFound.status, 404);
});
