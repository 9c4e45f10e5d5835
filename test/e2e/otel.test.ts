/**
 * The OTLP exporter against a receiver in this test, over gRPC (a @grpc/grpc-js
 * server implementing the collector's logs, trace and metrics Export) and
 * over http/protobuf (a plain HTTP server), both on loopback and configured
 * only by OTEL_* variables, as a user would. The receiver decodes with the
 * OTLP .proto files that an npm package ships (devDependency
 * otlp-proto-files).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { LocalBus } from '../../services/lib/bus.js';
import { repoRoot } from '../../services/lib/paths.js';
import type { Process } from '../../services/lib/event-model.js';
import { startExporters, type Exporters } from '../../services/exporter/index.js';
import { spanIdOf, traceIdOf } from '../../services/exporter/otel.js';
import { execEvent, exitEvent, kprobeEvent, makeProcess } from '../support/synthetic-events.js';

const PROTO_DIR = path.join(repoRoot, 'node_modules', 'otlp-proto-files', 'build', 'protos');

function loadOtlp(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
  root.loadSync([
    'opentelemetry/proto/collector/logs/v1/logs_service.proto',
    'opentelemetry/proto/collector/trace/v1/trace_service.proto',
    'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
  ]);
  // These .proto files predate LogRecord.event_name (field 12, OTLP 1.5), which the SDK sends.
  root.lookupType('opentelemetry.proto.logs.v1.LogRecord').add(new protobuf.Field('eventName', 12, 'string'));
  root.resolveAll();
  return root;
}

const otlp = loadOtlp();
const SIGNALS = {
  logs: { service: 'opentelemetry.proto.collector.logs.v1.LogsService', request: 'ExportLogsServiceRequest', response: 'ExportLogsServiceResponse', http: '/v1/logs' },
  traces: { service: 'opentelemetry.proto.collector.trace.v1.TraceService', request: 'ExportTraceServiceRequest', response: 'ExportTraceServiceResponse', http: '/v1/traces' },
  metrics: { service: 'opentelemetry.proto.collector.metrics.v1.MetricsService', request: 'ExportMetricsServiceRequest', response: 'ExportMetricsServiceResponse', http: '/v1/metrics' },
} as const;
type Signal = keyof typeof SIGNALS;
const requestType = (s: Signal): protobuf.Type => otlp.lookupType(`${SIGNALS[s].service.replace(/\.\w+Service$/, '')}.${SIGNALS[s].request}`);
const responseType = (s: Signal): protobuf.Type => otlp.lookupType(`${SIGNALS[s].service.replace(/\.\w+Service$/, '')}.${SIGNALS[s].response}`);

// ---------------------------------------------------------------------------
// What the receiver got, flattened

type Json = Record<string, unknown>;
interface KeyValue { key: string; value: Json }

/** An OTLP AnyValue as a plain value. */
function anyValue(v: Json | undefined): unknown {
  if (v === undefined || v === null) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) return Number(String(v.intValue));
  if ('doubleValue' in v) return v.doubleValue;
  if ('arrayValue' in v) return ((v.arrayValue as { values?: Json[] }).values ?? []).map(anyValue);
  if ('kvlistValue' in v) return attrs((v.kvlistValue as { values?: KeyValue[] }).values);
  return undefined;
}
const attrs = (kvs: KeyValue[] | undefined): Record<string, unknown> => Object.fromEntries((kvs ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString('hex');
const nanos = (v: unknown): bigint => BigInt(String(v));

interface LogRec { eventName: string; severityNumber: number; severityText: string; body: Json; attributes: Record<string, unknown>; traceId: string; spanId: string; timeUnixNano: bigint; resource: Record<string, unknown> }
interface SpanRec { name: string; traceId: string; spanId: string; parentSpanId: string; start: bigint; end: bigint; attributes: Record<string, unknown>; status: number; resource: Record<string, unknown> }
interface Point { name: string; kind: 'sum' | 'gauge'; monotonic: boolean; attributes: Record<string, unknown>; value: number }

class Received {
  logs: LogRec[] = [];
  spans: SpanRec[] = [];
  /** The latest data points of each metric (cumulative, so the last export tells all). */
  metrics = new Map<string, Point[]>();

  take(signal: Signal, body: Uint8Array): void {
    const req = requestType(signal).toObject(requestType(signal).decode(body), { longs: String, enums: Number, defaults: false }) as Json;
    if (signal === 'logs') {
      for (const rl of (req.resourceLogs ?? []) as Json[]) {
        const resource = attrs((rl.resource as { attributes?: KeyValue[] } | undefined)?.attributes);
        for (const sl of (rl.scopeLogs ?? []) as Json[]) {
          for (const r of (sl.logRecords ?? []) as Json[]) {
            this.logs.push({
              eventName: String(r.eventName ?? ''), severityNumber: Number(r.severityNumber ?? 0), severityText: String(r.severityText ?? ''),
              body: anyValue(r.body as Json) as Json, attributes: attrs(r.attributes as KeyValue[]),
              traceId: hex(r.traceId as Uint8Array), spanId: hex(r.spanId as Uint8Array), timeUnixNano: nanos(r.timeUnixNano ?? 0), resource,
            });
          }
        }
      }
    } else if (signal === 'traces') {
      for (const rs of (req.resourceSpans ?? []) as Json[]) {
        const resource = attrs((rs.resource as { attributes?: KeyValue[] } | undefined)?.attributes);
        for (const ss of (rs.scopeSpans ?? []) as Json[]) {
          for (const s of (ss.spans ?? []) as Json[]) {
            this.spans.push({
              name: String(s.name), traceId: hex(s.traceId as Uint8Array), spanId: hex(s.spanId as Uint8Array), parentSpanId: hex(s.parentSpanId as Uint8Array),
              start: nanos(s.startTimeUnixNano), end: nanos(s.endTimeUnixNano), attributes: attrs(s.attributes as KeyValue[]),
              status: Number((s.status as Json | undefined)?.code ?? 0), resource,
            });
          }
        }
      }
    } else {
      for (const rm of (req.resourceMetrics ?? []) as Json[]) {
        for (const sm of (rm.scopeMetrics ?? []) as Json[]) {
          for (const m of (sm.metrics ?? []) as Json[]) {
            const sum = m.sum as { dataPoints?: Json[]; isMonotonic?: boolean } | undefined;
            const gauge = m.gauge as { dataPoints?: Json[] } | undefined;
            const points = (sum ?? gauge)?.dataPoints ?? [];
            this.metrics.set(String(m.name), points.map((p) => ({
              name: String(m.name), kind: sum ? 'sum' : 'gauge', monotonic: sum?.isMonotonic === true,
              attributes: attrs(p.attributes as KeyValue[]), value: p.asInt !== undefined ? Number(p.asInt) : Number(p.asDouble ?? 0),
            })));
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Receivers

async function grpcReceiver(received: Received): Promise<{ port: number; close: () => Promise<void> }> {
  const server = new grpc.Server();
  for (const signal of Object.keys(SIGNALS) as Signal[]) {
    const definition: grpc.ServiceDefinition = {
      Export: {
        path: `/${SIGNALS[signal].service}/Export`,
        requestStream: false,
        responseStream: false,
        requestSerialize: () => Buffer.alloc(0),
        requestDeserialize: (bytes: Buffer) => bytes,
        responseSerialize: () => Buffer.from(responseType(signal).encode({}).finish()),
        responseDeserialize: () => ({}),
      },
    };
    server.addService(definition, {
      Export: (call: grpc.ServerUnaryCall<Buffer, object>, callback: grpc.sendUnaryData<object>) => {
        received.take(signal, call.request);
        callback(null, {});
      },
    });
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { port, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

async function httpReceiver(received: Received): Promise<{ port: number; close: () => Promise<void> }> {
  const byPath = new Map<string, Signal>(Object.entries(SIGNALS).map(([signal, s]) => [s.http, signal as Signal]));
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const signal = byPath.get(req.url ?? '');
      if (req.method !== 'POST' || signal === undefined || req.headers['content-type'] !== 'application/x-protobuf') {
        res.writeHead(404).end();
        return;
      }
      const body = Buffer.concat(chunks);
      received.take(signal, req.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(body) : body);
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from(responseType(signal).encode({}).finish()));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const OTEL_ENV = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'OTEL_METRIC_EXPORT_INTERVAL', 'OTEL_BLRP_SCHEDULE_DELAY', 'OTEL_BSP_SCHEDULE_DELAY'];

/** Starts the exporters with these OTEL_* variables, as the agent reads them from its environment. */
async function startOtel(bus: LocalBus, env: Record<string, string>): Promise<Exporters> {
  for (const name of OTEL_ENV) delete process.env[name];
  Object.assign(process.env, { OTEL_METRIC_EXPORT_INTERVAL: '200', OTEL_BLRP_SCHEDULE_DELAY: '50', OTEL_BSP_SCHEDULE_DELAY: '50' }, env);
  return startExporters(bus, { otel: true }, { version: '9.9.9-test', log: () => {} });
}

const pod = { namespace: 'shop', name: 'nginx-priv-6db9787dc9-d5jsx', container: { id: 'containerd://0123abcd', name: 'nginx' } };

test('over gRPC: log records with attributes on the record, process spans linked to their parents, metrics', async () => {
  const received = new Received();
  const receiver = await grpcReceiver(received);
  const bus = new LocalBus();
  const exporters = await startOtel(bus, {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    OTEL_SERVICE_NAME: 'vigil-e2e',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=e2e',
  });
  try {
    // containerd-shim started before the exporter: its exec is never seen.
    const shim = makeProcess({ pid: 100, binary: '/usr/bin/containerd-shim' });
    const parent = makeProcess({ pid: 200, binary: '/usr/sbin/nginx', args: '-g "daemon off;"', parent: shim, pod });
    const child = makeProcess({ pid: 201, binary: '/usr/sbin/nginx', args: '-g "daemon off;"', parent, pod, uid: 101, cwd: '/srv' });
    bus.publishEvent(execEvent(parent, shim));
    bus.publishEvent(execEvent(child, parent));
    bus.publishEvent(kprobeEvent(child, 'deny-privileged-pod-start', 'fd_install', 3));
    bus.publishEvent(kprobeEvent(child, 'deny-privileged-pod-start', 'fd_install', 3, ['not-applied']));
    bus.publishEvent(kprobeEvent(child, 'audit-open', 'fd_install', 1));
    bus.publishEvent(exitEvent(child, parent, { signal: 'SIGKILL' }));
    bus.publishEvent(exitEvent(parent, shim, { status: 1 }));
    bus.publishEvent(exitEvent(shim));

    await until('8 log records and 3 spans', () => (received.logs.length >= 8 && received.spans.length >= 3 ? true : undefined));
    await until('events counted in the OTLP metrics', () => (received.metrics.get('vigil_events')?.reduce((n, p) => n + p.value, 0) === 8 ? true : undefined));
    await until('the export outcomes in the OTLP metrics', () =>
      (received.metrics.get('vigil_export')?.some((p) => p.attributes.exporter === 'otlp_logs' && p.attributes.outcome === 'exported' && p.value === 8) ? true : undefined));

    // Log records: event names, severities, attributes on the record, the resource being Vigil.
    const logs = received.logs;
    assert.deepEqual(logs.map((l) => l.eventName), [
      'vigil.process_exec', 'vigil.process_exec', 'vigil.process_kprobe', 'vigil.process_kprobe', 'vigil.process_kprobe',
      'vigil.process_exit', 'vigil.process_exit', 'vigil.process_exit',
    ]);
    assert.deepEqual(logs.map((l) => l.severityText), ['INFO', 'INFO', 'ERROR', 'WARN', 'WARN', 'INFO', 'INFO', 'INFO']);
    assert.deepEqual(logs.map((l) => l.severityNumber), [9, 9, 17, 13, 13, 9, 9, 9]);
    const childExec = logs[1]!;
    assert.deepEqual(childExec.attributes, {
      'process.pid': 201,
      'process.parent_pid': 200,
      'process.executable.path': '/usr/sbin/nginx',
      'process.executable.name': 'nginx',
      'process.command_args': ['/usr/sbin/nginx', '-g', 'daemon off;'],
      'process.user.id': 101,
      'process.working_directory': '/srv',
      'container.id': '0123abcd',
      'container.name': 'nginx',
      'k8s.pod.name': pod.name,
      'k8s.namespace.name': 'shop',
      'vigil.exec_id': child.exec_id,
      'vigil.parent_exec_id': parent.exec_id,
      'vigil.node_name': 'test-node',
    });
    assert.equal((childExec.body.process_exec as Json & { process: Json }).process.exec_id, child.exec_id, 'the body is the Tetragon JSON');
    assert.equal(childExec.resource['service.name'], 'vigil-e2e');
    assert.equal(childExec.resource['service.version'], '9.9.9-test');
    assert.equal(childExec.resource['deployment.environment'], 'e2e');
    assert.equal(childExec.resource['process.pid'], undefined, 'process attributes are on the records, not the resource');
    const kill = logs[2]!;
    assert.equal(kill.attributes['vigil.policy_name'], 'deny-privileged-pod-start');
    assert.equal(kill.attributes['vigil.action'], 'KPROBE_ACTION_SIGKILL');
    assert.equal(kill.attributes['vigil.hook'], 'fd_install');
    assert.equal(kill.attributes['vigil.action_applied'], true);
    assert.equal(logs[3]!.attributes['vigil.action_applied'], false);
    const childExit = logs[5]!;
    assert.equal(childExit.attributes['vigil.exit_signal'], 'SIGKILL');
    // Every record carries its process's span context.
    for (const l of logs.slice(1, 6)) assert.deepEqual([l.traceId, l.spanId], [traceIdOf(shim.exec_id), spanIdOf(child.exec_id)]);

    // Spans: the child's parent is the parent's span, in one trace rooted at the unseen shim.
    const span = (p: Process): SpanRec => received.spans.find((s) => s.spanId === spanIdOf(p.exec_id))!;
    const [parentSpan, childSpan, shimSpan] = [span(parent), span(child), span(shim)];
    assert.equal(childSpan.parentSpanId, parentSpan.spanId);
    assert.equal(childSpan.traceId, parentSpan.traceId);
    assert.equal(parentSpan.parentSpanId, spanIdOf(shim.exec_id));
    assert.equal(parentSpan.traceId, traceIdOf(shim.exec_id));
    assert.equal(shimSpan.parentSpanId, '', 'a process whose exec was not seen roots its trace');
    assert.equal(shimSpan.traceId, traceIdOf(shim.exec_id));
    assert.equal(childSpan.name, 'nginx');
    assert.equal(childSpan.start, BigInt(child.start_time.seconds) * 1_000_000_000n);
    assert.ok(childSpan.end > childSpan.start);
    assert.equal(childSpan.attributes['vigil.exit_signal'], 'SIGKILL');
    assert.equal(childSpan.attributes['process.exit.code'], 0);
    assert.equal(childSpan.status, 2, 'killed: status ERROR');
    assert.equal(parentSpan.attributes['process.exit.code'], 1);
    assert.equal(parentSpan.status, 0);
    assert.equal(childSpan.resource['service.name'], 'vigil-e2e');

    // Metrics: the same families as Prometheus.
    const events = received.metrics.get('vigil_events')!;
    assert.ok(events.every((p) => p.kind === 'sum' && p.monotonic));
    assert.deepEqual(events.find((p) => p.attributes.type === 'process_exec')?.attributes, { type: 'process_exec', namespace: 'shop', pod: pod.name });
    assert.deepEqual(received.metrics.get('vigil_policy_events')?.map((p) => [p.attributes.action, p.value]).sort(), [['KPROBE_ACTION_POST', 1], ['KPROBE_ACTION_SIGKILL', 2]]);
    assert.deepEqual(received.metrics.get('vigil_build_info')?.map((p) => [p.kind, p.attributes.version, p.value]), [['gauge', '9.9.9-test', 1]]);
    assert.deepEqual(exporters.stats().otel, { openSpans: 0, evictedSpans: 0 });
  } finally {
    await exporters.close();
    await receiver.close();
  }
});

test('over http/protobuf: the same signals reach a plain HTTP receiver', async () => {
  const received = new Received();
  const receiver = await httpReceiver(received);
  const bus = new LocalBus();
  const exporters = await startOtel(bus, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' });
  try {
    const p = makeProcess({ pid: 300, binary: '/bin/true' });
    bus.publishEvent(execEvent(p));
    bus.publishEvent(exitEvent(p));
    await until('2 log records, a span and metrics', () => (received.logs.length >= 2 && received.spans.length >= 1 && received.metrics.has('vigil_events') ? true : undefined));
    assert.deepEqual(received.logs.map((l) => l.eventName), ['vigil.process_exec', 'vigil.process_exit']);
    assert.equal(received.logs[0]!.resource['service.name'], 'vigil');
    assert.equal(received.spans[0]!.spanId, spanIdOf(p.exec_id));
    assert.equal(received.spans[0]!.parentSpanId, '');
  } finally {
    await exporters.close();
    await receiver.close();
  }
});

test('an OTEL_* setting Vigil cannot honour stops the start, naming it', async () => {
  await assert.rejects(startOtel(new LocalBus(), { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), /OTLP protocol http\/json/);
  process.env.OTEL_LOGS_EXPORTER = 'console';
  try {
    await assert.rejects(startOtel(new LocalBus(), {}), /OTEL_LOGS_EXPORTER=console/);
  } finally {
    delete process.env.OTEL_LOGS_EXPORTER;
  }
});
