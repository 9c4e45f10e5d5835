/**
 * An OTLP receiver for tests: the collector's logs, trace and metrics Export
 * over gRPC (a @grpc/grpc-js server) and over http/protobuf (a plain HTTP
 * server), on loopback. It decodes with the OTLP .proto files that an npm
 * package ships (devDependency otlp-proto-files) and keeps what it got,
 * flattened.
 */
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { repoRoot } from '../../services/lib/paths.js';

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

export type Json = Record<string, unknown>;
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

export interface LogRec { eventName: string; severityNumber: number; severityText: string; body: Json; attributes: Record<string, unknown>; traceId: string; spanId: string; timeUnixNano: bigint; resource: Record<string, unknown> }
export interface SpanRec { name: string; traceId: string; spanId: string; parentSpanId: string; start: bigint; end: bigint; attributes: Record<string, unknown>; status: number; resource: Record<string, unknown> }
export interface Point { name: string; kind: 'sum' | 'gauge'; monotonic: boolean; attributes: Record<string, unknown>; value: number }

export class Received {
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

export async function grpcReceiver(received: Received): Promise<{ port: number; close: () => Promise<void> }> {
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

export async function httpReceiver(received: Received): Promise<{ port: number; close: () => Promise<void> }> {
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

