/**
 * End-to-end: policy events from the kernel (a Post-everything hook on getpid,
 * scoped to the load generator's own binary) to consumers, in both shapes.
 * - latency: p50/p99 from the kernel's event time to a gRPC subscriber's
 *   receipt (and in the split shape, to the exporter's file as this process
 *   reads it), at 10,000 events/s (20,000 events): the first such run after the
 *   service started is reported as "cold" (code not yet optimized by V8,
 *   consumers being set up: a backlog forms, then drains), a second one as
 *   the steady state;
 * - throughput: events/s delivered, all of them, when the generator runs flat
 *   out: to a gRPC subscriber (agent), and kernel → sensor → NATS → exporter
 *   (split shape, counted in the exporter's file); a run that loses events
 *   says how many;
 * - the CPU the process holding the sensor (the agent; the sensor service)
 *   used per event, from its user + system time over the steady run and over
 *   the flat-out one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { SensorsClient } from '../../services/cli/client.js';
import { decodeMessage, encodeMessage } from '../../services/lib/tetragon-proto.js';
import { repoRoot } from '../../services/lib/paths.js';
import { cpuSeconds, startAgent } from '../support/agent.js';
import { startNatsServer } from '../support/nats-server.js';
import { startService } from '../support/service.js';

const PROBE = path.join(repoRoot, 'build', 'fixtures', 'probe');
/** The load runs asynchronously: a blocked event loop here would stall the subscriber being measured. */
const runLoad = promisify(execFile);

export interface PipelineResult {
  shape: string; p50Ms: number; p99Ms: number; coldP50Ms: number; coldP99Ms: number;
  /** Split shape: the steady run's latency to the exporter's file. */
  sinkP50Ms?: number; sinkP99Ms?: number;
  eventsPerSecond: number; delivered: number; expected: number;
  /** CPU µs per event of the process holding the sensor, at 10k events/s (steady) and flat out. */
  steadyCpuUsPerEvent: number; flatOutCpuUsPerEvent: number;
}

/** Events of one paced run. */
export const PACED_EVENTS = 20_000;

function policyYaml(bin: string): string {
  return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bench-getpid
spec:
  kprobes:
  - call: sys_getpid
    syscall: true
    selectors:
    - matchBinaries:
      - operator: In
        values: ["${bin}"]
`;
}

const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;

const LATENCY_SAMPLE = 20;
const STREAM_WINDOW_BYTES = 16 * 1024 * 1024;

/**
 * Subscribes to kprobe events and counts them as raw messages; one in
 * LATENCY_SAMPLE is decoded for its latency, so that the subscriber is no
 * bottleneck of what it measures.
 */
function subscribe(address: string): { latencies: number[]; count: () => number; close(): void } {
  // A 16 MiB HTTP/2 window, as large as Go's BDP estimation lets tetra's grow (grpc-js's default is 64 KiB).
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc-node.flow_control_window': STREAM_WINDOW_BYTES });
  const latencies: number[] = [];
  let count = 0;
  const request = encodeMessage('tetragon.GetEventsRequest', { allow_list: [{ event_set: [9] }] });
  const stream = client.makeServerStreamRequest<Uint8Array, Buffer>('/tetragon.FineGuidanceSensors/GetEvents', (b) => Buffer.from(b), (b) => b, request);
  stream.on('data', (bytes: Buffer) => {
    if (count++ % LATENCY_SAMPLE !== 0) return;
    const e = decodeMessage<{ time?: { seconds: number; nanos: number } }>('tetragon.GetEventsResponse', bytes);
    if (e.time) latencies.push(Date.now() - (e.time.seconds * 1000 + e.time.nanos / 1e6));
  });
  stream.on('error', () => { /* cancelled */ });
  return { latencies, count: () => count, close: () => { stream.cancel(); client.close(); } };
}

const SINK_POLL_MS = 2;
const NEWLINE = 0x0a;
const KPROBE_LINE = Buffer.from('{"process_kprobe"');
const TIME_FIELD = Buffer.from('"time":"');
const QUOTE = 0x22;

/**
 * The exporter's file, read as it grows: counts its kprobe lines and, while
 * sink latencies are taken, the latency of one in LATENCY_SAMPLE of them from
 * its event time to when this process read it (polling every SINK_POLL_MS: up
 * to that much is the poll's, not the pipeline's). Lines are found in the
 * bytes read, and only the sampled ones are turned into text, so that this
 * reader, like the subscriber, is no bottleneck of what it measures.
 */
class ExportedFile {
  private read = 0;
  private partial = Buffer.alloc(0);
  private lines = 0;
  private timer: NodeJS.Timeout | undefined;
  private latencies: number[] = [];

  constructor(private readonly file: string) {}

  count(): number {
    this.poll();
    return this.lines;
  }

  startLatencies(): void {
    this.poll();
    this.latencies = [];
    this.timer = setInterval(() => this.poll(), SINK_POLL_MS);
  }

  stopLatencies(): number[] {
    clearInterval(this.timer);
    this.poll();
    this.timer = undefined;
    return this.latencies;
  }

  private poll(): void {
    const size = fs.existsSync(this.file) ? fs.statSync(this.file).size : 0;
    if (size <= this.read) return;
    const fd = fs.openSync(this.file, 'r');
    const fresh = Buffer.alloc(size - this.read);
    fs.readSync(fd, fresh, 0, fresh.length, this.read);
    fs.closeSync(fd);
    this.read = size;
    const now = Date.now();
    const data = this.partial.length > 0 ? Buffer.concat([this.partial, fresh]) : fresh;
    let start = 0;
    for (let end = data.indexOf(NEWLINE); end >= 0; start = end + 1, end = data.indexOf(NEWLINE, start)) {
      if (end - start < KPROBE_LINE.length || data.compare(KPROBE_LINE, 0, KPROBE_LINE.length, start, start + KPROBE_LINE.length) !== 0) continue;
      if (this.lines++ % LATENCY_SAMPLE !== 0 || this.timer === undefined) continue;
      // The event's own time is its last field (GetEventsResponse.time).
      const at = data.lastIndexOf(TIME_FIELD, end);
      if (at < start) continue;
      const from = at + TIME_FIELD.length;
      this.latencies.push(now - Date.parse(data.toString('latin1', from, data.indexOf(QUOTE, from))));
    }
    // The line not yet ended is kept (a copy, not a view holding all that was read).
    this.partial = Buffer.from(data.subarray(start));
  }
}

async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

async function run(shape: string, address: string, sensorPid: number, deliveredCount: (sub: ReturnType<typeof subscribe>) => number, flatOut: number, sink?: ExportedFile): Promise<PipelineResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bench-'));
  const bin = path.join(dir, 'probe');
  fs.copyFileSync(PROBE, bin);
  const client = new SensorsClient(address);
  await client.unary('AddTracingPolicy', { yaml: policyYaml(bin) });
  const pacedRun = async (): Promise<number[]> => {
    const paced = subscribe(address);
    await new Promise((r) => setTimeout(r, 300));
    await runLoad(bin, ['getpid-rate', String(PACED_EVENTS), '10000']);
    await until(() => paced.count() >= PACED_EVENTS, 10_000);
    paced.close();
    return paced.latencies;
  };
  try {
    // Latency at 10,000 events/s: cold, then steady.
    const cold = await pacedRun();
    // The steady run starts once the exporter has written the cold run's events: no backlog carried over.
    if (sink) await until(() => sink.count() >= PACED_EVENTS, 30_000);
    const steadyCpu = cpuSeconds(sensorPid);
    sink?.startLatencies();
    const steady = await pacedRun();
    const steadyCpuUsPerEvent = ((cpuSeconds(sensorPid) - steadyCpu) * 1e6) / PACED_EVENTS;
    if (sink) await until(() => sink.count() >= 2 * PACED_EVENTS, 30_000);
    const sinkLatencies = sink?.stopLatencies();
    // Throughput, flat out.
    const sub = subscribe(address);
    await new Promise((r) => setTimeout(r, 300));
    const start = Date.now();
    const flatOutCpu = cpuSeconds(sensorPid);
    await runLoad(bin, ['getpid', String(flatOut)]);
    await until(() => deliveredCount(sub) >= flatOut, 60_000);
    const seconds = (Date.now() - start) / 1000;
    const delivered = deliveredCount(sub);
    const flatOutCpuUsPerEvent = ((cpuSeconds(sensorPid) - flatOutCpu) * 1e6) / flatOut;
    sub.close();
    return {
      shape, p50Ms: percentile(steady, 0.5), p99Ms: percentile(steady, 0.99), coldP50Ms: percentile(cold, 0.5), coldP99Ms: percentile(cold, 0.99),
      ...(sinkLatencies && { sinkP50Ms: percentile(sinkLatencies, 0.5), sinkP99Ms: percentile(sinkLatencies, 0.99) }),
      eventsPerSecond: delivered / seconds, delivered, expected: flatOut, steadyCpuUsPerEvent, flatOutCpuUsPerEvent,
    };
  } finally {
    await client.unary('DeleteTracingPolicy', { name: 'bench-getpid' }).catch(() => undefined);
    client.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function measurePipeline(flatOut: number): Promise<PipelineResult[]> {
  const results: PipelineResult[] = [];
  const agent = await startAgent(['--export-stdout=false']);
  try {
    results.push(await run('agent → gRPC', `localhost:${agent.port}`, agent.child.pid!, (sub) => sub.count(), flatOut));
  } finally {
    await agent.stop();
  }

  const nats = await startNatsServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bench-split-'));
  const file = path.join(dir, 'events.json');
  const control = path.join(dir, 'control.sock');
  const enforcerSocket = path.join(dir, 'enforcer.sock');
  const sensor = await startService('sensor', ['--nats-url', nats.url, '--control-socket', control, '--enforcer-address', `unix://${enforcerSocket}`, '--server-address', 'localhost:0', '--server-unix-socket', '', '--server-insecure-policy-changes'], /gRPC API on port (\d+)/);
  const port = Number((await sensor.waitFor(/gRPC API on port (\d+)/))[1]);
  const enforcer = await startService('enforcer', ['--nats-url', nats.url, '--control-socket', control, '--server-unix-socket', enforcerSocket, '--policy-kv=false'], /programming the sensor/);
  const exporter = await startService('exporter', ['--nats-url', nats.url, '--export-file', file, '--export-file-max-size-mb', '4096', '--metrics-address', ''], /consuming as/);
  try {
    const exported = new ExportedFile(file);
    // The exporter also got the two paced runs' events: count the flat-out ones on top of those.
    results.push(await run('sensor → NATS → exporter', `localhost:${port}`, sensor.child.pid!, () => Math.max(0, exported.count() - 2 * PACED_EVENTS), flatOut, exported));
  } finally {
    for (const s of [exporter, enforcer, sensor]) await s.stop();
    await nats.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
