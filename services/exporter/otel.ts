/**
 * OpenTelemetry exporter: events as OTLP log records, process lifetimes as
 * spans, and the telemetry families (telemetry.ts) as OTLP metrics.
 *
 * Configured like any OpenTelemetry SDK, by the standard variables:
 * OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION, certificates
 * (and their per-signal forms), read by the OTLP exporters themselves;
 * OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL, grpc or http/protobuf (the default);
 * OTEL_{LOGS,TRACES,METRICS}_EXPORTER, otlp (the default) or none;
 * OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; OTEL_SDK_DISABLED;
 * OTEL_METRIC_EXPORT_INTERVAL/_TIMEOUT; OTEL_BLRP_* and OTEL_BSP_* for the
 * log and span batches (queues default to 16384 here, not 2048: an exec
 * storm should not drop). What a full queue drops is counted in export_total.
 *
 * Log records: one per event, named `vigil.<type>` (the LogRecord event name),
 * INFO for exec and exit, WARN for policy events, ERROR when a policy's
 * SIGKILL or signal was applied (not merely reported in monitor mode). The
 * body is the event's Tetragon JSON; semantic-convention attributes (process.*,
 * container.*, k8s.*) and vigil.* ones are on the record, the resource being
 * Vigil itself. Each record carries its process's span context.
 *
 * Spans: a process's lifetime, exec to exit, exported at its exit; its parent
 * is the parent process's span. Ids derive from exec_ids (span id: hash of the
 * exec_id), so a child links to a parent that started before the exporter
 * did. A trace is a process tree rooted at a process whose exec the exporter
 * did not see (its trace id: hash of that exec_id); such a root's span still
 * comes at its exit, with its start time, but without a parent. What is kept
 * per running process is its trace id, in a bounded table; a process evicted
 * from it is exported as the root of a trace of its own, and counted.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Context, type HrTime, type Tracer } from '@opentelemetry/api';
import { SeverityNumber, type AnyValueMap, type Logger } from '@opentelemetry/api-logs';
import { ExportResultCode, getBooleanFromEnv, getNumberFromEnv, getStringFromEnv, type ExportResult } from '@opentelemetry/core';
import { OTLPLogExporter as GrpcLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, hostDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, TracerProvider, type IdGenerator } from '@opentelemetry/sdk-trace';
import type { Bus, EventEnvelope } from '../lib/bus.js';
import type { EventType, Process, ProcessExit, Timestamp } from '../lib/event-model.js';
import { tetragonRoot, toProtoJson } from '../lib/tetragon-proto.js';
import * as sc from './semconv.js';
import { actionName, hookName, metricShape, POLICY_EVENT_TYPES, type ExportCounters, type Telemetry } from './telemetry.js';

type Signal = 'logs' | 'traces' | 'metrics';
type Protocol = 'grpc' | 'http/protobuf';

export const DEFAULT_MAX_OPEN_SPANS = 65536;
const DEFAULT_QUEUE_SIZE = 16384;

/** The OTLP protocol of a signal, or undefined when its exporter is `none` (or the SDK is disabled). */
export function signalProtocol(signal: Signal): Protocol | undefined {
  const upper = signal.toUpperCase();
  if (getBooleanFromEnv('OTEL_SDK_DISABLED')) return undefined;
  const exporters = (getStringFromEnv(`OTEL_${upper}_EXPORTER`) ?? 'otlp').split(',').map((e) => e.trim());
  if (exporters.includes('none')) return undefined;
  const unsupported = exporters.find((e) => e !== 'otlp');
  if (unsupported !== undefined) throw new Error(`OTEL_${upper}_EXPORTER=${unsupported}: Vigil exports otlp or none`);
  const protocol = getStringFromEnv(`OTEL_EXPORTER_OTLP_${upper}_PROTOCOL`) ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  if (protocol !== 'grpc' && protocol !== 'http/protobuf') throw new Error(`OTLP protocol ${protocol}: Vigil speaks grpc or http/protobuf`);
  return protocol;
}

const idHash = (execId: string): string => createHash('sha256').update(execId).digest('hex');
/** A process's span id: from its exec_id, so anyone holding the exec_id can link to it. */
export const spanIdOf = (execId: string): string => idHash(execId).slice(0, 16);
/** The trace id of the process tree rooted at this exec_id. */
export const traceIdOf = (execId: string): string => idHash(execId).slice(16, 48);

/** Hands the tracer the ids chosen for the next span (startSpan asks synchronously). */
class PresetIds implements IdGenerator {
  traceId = '';
  spanId = '';
  generateTraceId(): string { return this.traceId; }
  generateSpanId(): string { return this.spanId; }
}

/** The trace ids of running processes whose exec was seen, oldest first, bounded. */
class ProcessTraces {
  private readonly traces = new Map<string, string>();
  evicted = 0;

  constructor(private readonly max: number) {}

  get size(): number { return this.traces.size; }

  /** At exec: the process joins its parent's trace, rooted at the parent when the parent's exec was not seen. */
  started(execId: string, parentExecId: string): string {
    const traceId = parentExecId ? (this.traces.get(parentExecId) ?? traceIdOf(parentExecId)) : traceIdOf(execId);
    this.traces.set(execId, traceId);
    if (this.traces.size > this.max) {
      this.traces.delete(this.traces.keys().next().value!);
      this.evicted++;
    }
    return traceId;
  }

  /** The trace of a process; `seen` when it is in the table and so has a parent span. */
  lookup(execId: string): { traceId: string; seen: boolean } {
    const traceId = this.traces.get(execId);
    return traceId === undefined ? { traceId: traceIdOf(execId), seen: false } : { traceId, seen: true };
  }

  ended(execId: string): void {
    this.traces.delete(execId);
  }
}

interface BatchExporter<T> {
  export(items: T[], done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
  forceFlush?(): Promise<void>;
}

/**
 * One signal's export accounting: outcomes into export_total, failures
 * logged when they start and when they stop, and the queue bound kept here so
 * that what the SDK's batch processor would drop silently is counted.
 */
class SignalAccount {
  queued = 0;
  private failing = false;

  constructor(private readonly name: string, private readonly counters: ExportCounters, private readonly log: (line: string) => void, private readonly maxQueue = Infinity) {}

  /** Whether one more item fits the queue; a refused one is counted as overflow. */
  admit(): boolean {
    if (this.queued >= this.maxQueue) {
      this.counters.add('overflow');
      return false;
    }
    this.queued++;
    return true;
  }

  result(result: ExportResult, items: number): void {
    const ok = result.code === ExportResultCode.SUCCESS;
    this.counters.add(ok ? 'exported' : 'failed', items);
    if (ok === this.failing) {
      this.failing = !ok;
      this.log(ok ? `${this.name} export recovered` : `${this.name} export failed: ${result.error?.message ?? 'unknown error'}`);
    }
  }

  wrap<T>(exporter: BatchExporter<T>): Required<BatchExporter<T>> {
    return {
      export: (items, done) => {
        this.queued -= items.length;
        exporter.export(items, (result) => { this.result(result, items.length); done(result); });
      },
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    };
  }
}

/** The batch processor options of a signal from OTEL_BLRP_* or OTEL_BSP_*, the queue left to SignalAccount. */
function batchOptions(prefix: 'OTEL_BLRP' | 'OTEL_BSP', defaultDelay: number): { maxQueue: number; sdk: { maxQueueSize: number; maxExportBatchSize: number; scheduledDelayMillis: number; exportTimeoutMillis: number } } {
  const maxQueue = getNumberFromEnv(`${prefix}_MAX_QUEUE_SIZE`) ?? DEFAULT_QUEUE_SIZE;
  const maxExportBatchSize = Math.min(getNumberFromEnv(`${prefix}_MAX_EXPORT_BATCH_SIZE`) ?? 512, maxQueue);
  return {
    maxQueue,
    // Room for a batch on its way out besides the queue, so the SDK never drops before SignalAccount counts.
    sdk: {
      maxQueueSize: maxQueue + maxExportBatchSize,
      maxExportBatchSize,
      scheduledDelayMillis: getNumberFromEnv(`${prefix}_SCHEDULE_DELAY`) ?? defaultDelay,
      exportTimeoutMillis: getNumberFromEnv(`${prefix}_EXPORT_TIMEOUT`) ?? 30_000,
    },
  };
}

const KPROBE_ACTION = tetragonRoot.lookupEnum('tetragon.KprobeAction').values;
const KILLING_ACTIONS = new Set([KPROBE_ACTION.KPROBE_ACTION_SIGKILL, KPROBE_ACTION.KPROBE_ACTION_SIGNAL]);

/** Tetragon's `arguments` string back into words: double quotes group, backslash escapes within them. */
export function splitArguments(args: string): string[] {
  return [...args.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!));
}

type Attributes = Record<string, string | number | boolean | string[]>;

function processAttributes(p: Process, parent: Process | undefined, nodeName: string): Attributes {
  const a: Attributes = {};
  const set = (key: string, value: string | number | boolean | string[] | undefined): void => {
    if (value !== undefined && value !== '') a[key] = value;
  };
  set(sc.ATTR_PROCESS_PID, p.pid?.value);
  set(sc.ATTR_PROCESS_PARENT_PID, parent?.pid?.value);
  set(sc.ATTR_PROCESS_EXECUTABLE_PATH, p.binary);
  set(sc.ATTR_PROCESS_EXECUTABLE_NAME, p.binary ? path.basename(p.binary) : undefined);
  if (p.binary) set(sc.ATTR_PROCESS_COMMAND_ARGS, [p.binary, ...splitArguments(p.arguments ?? '')]);
  set(sc.ATTR_PROCESS_USER_ID, p.uid?.value);
  set(sc.ATTR_PROCESS_WORKING_DIRECTORY, p.cwd);
  // Tetragon's container ids may carry the runtime ("containerd://…"); the convention wants the bare id.
  set(sc.ATTR_CONTAINER_ID, (p.pod?.container?.id ?? p.docker)?.replace(/^[a-z]+:\/\//, ''));
  set(sc.ATTR_CONTAINER_NAME, p.pod?.container?.name);
  set(sc.ATTR_CONTAINER_IMAGE_NAME, p.pod?.container?.image?.name);
  set(sc.ATTR_K8S_POD_NAME, p.pod?.name);
  set(sc.ATTR_K8S_NAMESPACE_NAME, p.pod?.namespace);
  set(sc.ATTR_VIGIL_EXEC_ID, p.exec_id);
  set(sc.ATTR_VIGIL_PARENT_EXEC_ID, p.parent_exec_id);
  set(sc.ATTR_VIGIL_NODE_NAME, nodeName);
  return a;
}

const hrTime = (t: Timestamp | undefined): HrTime | undefined => (t === undefined ? undefined : [t.seconds, t.nanos]);

/** The payload fields of every event type this exporter reads. */
interface Payload {
  process?: Process;
  parent?: Process;
  policy_name?: string;
  action?: number;
  message?: string;
  tags?: string[];
}

export interface OtelOptions {
  version: string;
  /** Metric name prefix, as for Prometheus; default "vigil". */
  prefix?: string;
  /** Running processes whose trace is remembered; default 65536. */
  maxOpenSpans?: number;
  log?: (line: string) => void;
}

export interface OtelStats { openSpans: number; evictedSpans: number }

export class OtelExporter {
  private readonly ids = new PresetIds();
  private readonly traces: ProcessTraces;
  private readonly loggerProvider: LoggerProvider | undefined;
  private readonly tracerProvider: TracerProvider | undefined;
  private readonly meterProvider: MeterProvider | undefined;
  private readonly logger: Logger | undefined;
  private readonly tracer: Tracer | undefined;
  private readonly logsAccount: SignalAccount | undefined;
  private readonly spansAccount: SignalAccount | undefined;
  private readonly unsubscribe: (() => void) | undefined;

  /** Throws for an OTEL_* setting it cannot honour. Register other exporters' metric families first. */
  constructor(bus: Bus, telemetry: Telemetry, opts: OtelOptions) {
    const log = opts.log ?? ((line: string) => console.error(line));
    const prefix = opts.prefix ?? 'vigil';
    this.traces = new ProcessTraces(opts.maxOpenSpans ?? DEFAULT_MAX_OPEN_SPANS);
    // Every setting is checked before anything is built, so a bad one leaves nothing behind.
    const [logs, traces, metrics] = (['logs', 'traces', 'metrics'] as const).map(signalProtocol);
    const resource = otelResource(opts.version);
    const account = (signal: Signal, maxQueue?: number): SignalAccount =>
      new SignalAccount(`OTLP ${signal}`, telemetry.exporter(`otlp_${signal}`), log, maxQueue);

    if (logs !== undefined) {
      const batch = batchOptions('OTEL_BLRP', 1000);
      this.logsAccount = account('logs', batch.maxQueue);
      const exporter = this.logsAccount.wrap(logs === 'grpc' ? new GrpcLogExporter() : new ProtoLogExporter());
      this.loggerProvider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter, ...batch.sdk })] });
      this.logger = this.loggerProvider.getLogger('vigil', opts.version);
    }

    if (traces !== undefined) {
      const batch = batchOptions('OTEL_BSP', 5000);
      this.spansAccount = account('traces', batch.maxQueue);
      const exporter = this.spansAccount.wrap(traces === 'grpc' ? new GrpcTraceExporter() : new ProtoTraceExporter());
      this.tracerProvider = new TracerProvider({ resource, idGenerator: this.ids, spanProcessors: [new BatchSpanProcessor({ exporter, ...batch.sdk })] });
      this.tracer = this.tracerProvider.getTracer('vigil', opts.version);
    }

    telemetry.addFamily({
      name: 'otel_open_spans', kind: 'gauge', help: 'Running processes whose span is waiting for their exit.', labelNames: [],
      samples: () => [{ labels: {}, value: this.traces.size }],
    });
    telemetry.addFamily({
      name: 'otel_spans_evicted_total', kind: 'counter', help: 'Running processes evicted from the bounded span table; their spans come without a parent.', labelNames: [],
      samples: () => [{ labels: {}, value: this.traces.evicted }],
    });

    if (metrics !== undefined) {
      const interval = getNumberFromEnv('OTEL_METRIC_EXPORT_INTERVAL') ?? 60_000;
      const exporter = countedMetricExporter(metrics === 'grpc' ? new GrpcMetricExporter() : new ProtoMetricExporter(), account('metrics'));
      this.meterProvider = new MeterProvider({
        resource,
        readers: [new PeriodicExportingMetricReader({
          exporter,
          exportIntervalMillis: interval,
          exportTimeoutMillis: Math.min(getNumberFromEnv('OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000, interval),
        })],
      });
      observeFamilies(this.meterProvider, telemetry, prefix, opts.version);
    }

    if (this.logger !== undefined || this.tracer !== undefined) {
      this.unsubscribe = bus.subscribeEvents((envelope) => this.onEvent(envelope));
    }
  }

  stats(): OtelStats {
    return { openSpans: this.traces.size, evictedSpans: this.traces.evicted };
  }

  /** Stops taking events and exports what is queued (running processes' spans are not: they have not ended). */
  async close(): Promise<void> {
    this.unsubscribe?.();
    await Promise.all([this.loggerProvider?.shutdown(), this.tracerProvider?.shutdown(), this.meterProvider?.shutdown()]);
  }

  private onEvent(envelope: EventEnvelope): void {
    const payload = envelope.event[envelope.type] as Payload | undefined;
    const p = payload?.process;
    if (p === undefined) return;
    if (envelope.type === 'process_exec') this.traces.started(p.exec_id, p.parent_exec_id);
    const { traceId, seen } = this.traces.lookup(p.exec_id);
    const attributes = processAttributes(p, payload!.parent, envelope.event.node_name);
    const exit = envelope.event.process_exit;
    if (exit !== undefined) {
      attributes[sc.ATTR_PROCESS_EXIT_CODE] = exit.status ?? 0;
      if (exit.signal) attributes[sc.ATTR_VIGIL_EXIT_SIGNAL] = exit.signal;
    }
    if (this.logger !== undefined && this.logsAccount!.admit()) this.emitLog(envelope, payload!, { ...attributes }, traceId);
    if (exit !== undefined) {
      this.traces.ended(p.exec_id);
      if (this.tracer !== undefined && this.spansAccount!.admit()) this.endSpan(exit, attributes, traceId, seen);
    }
  }

  private emitLog(envelope: EventEnvelope, payload: Payload, attributes: Attributes, traceId: string): void {
    let severityNumber = SeverityNumber.INFO;
    if (POLICY_EVENT_TYPES.has(envelope.type)) {
      const applied = !(payload.tags ?? []).includes('not-applied');
      severityNumber = applied && KILLING_ACTIONS.has(payload.action ?? 0) ? SeverityNumber.ERROR : SeverityNumber.WARN;
      attributes[sc.ATTR_VIGIL_POLICY_NAME] = payload.policy_name ?? '';
      attributes[sc.ATTR_VIGIL_HOOK] = hookName(envelope);
      attributes[sc.ATTR_VIGIL_ACTION] = actionName(payload.action);
      attributes[sc.ATTR_VIGIL_ACTION_APPLIED] = applied;
      if (payload.message) attributes[sc.ATTR_VIGIL_MESSAGE] = payload.message;
      if (payload.tags?.length) attributes[sc.ATTR_VIGIL_TAGS] = payload.tags;
    }
    this.logger!.emit({
      eventName: eventName(envelope.type),
      timestamp: hrTime(envelope.event.time),
      severityNumber,
      severityText: SeverityNumber[severityNumber],
      body: toProtoJson('tetragon.GetEventsResponse', envelope.event) as AnyValueMap,
      attributes,
      context: spanContext(traceId, spanIdOf(payload.process!.exec_id)),
    });
  }

  private endSpan(exit: ProcessExit, attributes: Attributes, traceId: string, seen: boolean): void {
    const p = exit.process;
    this.ids.traceId = traceId;
    this.ids.spanId = spanIdOf(p.exec_id);
    const parent = seen && p.parent_exec_id ? spanContext(traceId, spanIdOf(p.parent_exec_id)) : ROOT_CONTEXT;
    const span = this.tracer!.startSpan(path.basename(p.binary || 'process'), { kind: SpanKind.INTERNAL, startTime: hrTime(p.start_time), attributes }, parent);
    if (exit.signal) span.setStatus({ code: SpanStatusCode.ERROR, message: exit.signal });
    span.end(hrTime(exit.time));
  }
}

export const eventName = (type: EventType): string => `vigil.${type}`;

function spanContext(traceId: string, spanId: string): Context {
  return trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
}

/** Vigil as the resource, overridden by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. */
function otelResource(version: string): Resource {
  return defaultResource()
    .merge(resourceFromAttributes({ [sc.ATTR_SERVICE_NAME]: 'vigil', [sc.ATTR_SERVICE_VERSION]: version }))
    .merge(detectResources({ detectors: [hostDetector, envDetector] }));
}

function countedMetricExporter(exporter: PushMetricExporter, account: SignalAccount): PushMetricExporter {
  return {
    export: (metrics, done) => exporter.export(metrics, (result) => { account.result(result, 1); done(result); }),
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown(),
    selectAggregationTemporality: exporter.selectAggregationTemporality?.bind(exporter),
    selectAggregation: exporter.selectAggregation?.bind(exporter),
  };
}

/**
 * The telemetry families as observable instruments, read at each collection.
 * Counters drop `_total` (OTLP-to-Prometheus translation adds it back), so a
 * collector's Prometheus sees the same names, labels and values as the direct
 * exporter, in the same shape (Tetragon's under prefix `tetragon`).
 */
function observeFamilies(provider: MeterProvider, telemetry: Telemetry, prefix: string, version: string): void {
  const meter = provider.getMeter('vigil', version);
  const families = telemetry.families(metricShape(prefix));
  const instruments = families.map((f) => {
    const name = `${prefix}_${f.kind === 'counter' ? f.name.replace(/_total$/, '') : f.name}`;
    return f.kind === 'counter' ? meter.createObservableCounter(name, { description: f.help }) : meter.createObservableGauge(name, { description: f.help });
  });
  meter.addBatchObservableCallback((result) => {
    families.forEach((f, i) => {
      for (const { labels, value } of f.samples()) result.observe(instruments[i]!, value, labels);
    });
  }, instruments);
}
