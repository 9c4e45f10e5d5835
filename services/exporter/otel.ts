/**
 * OpenTelemetry exporter: events as OTLP log records, process lifetimes as
 * spans, and the telemetry families (telemetry.ts) as OTLP metrics.
 *
 * The OpenTelemetry Node SDK (NodeSDK) reads the standard variables, as in
 * any Node service: OTEL_SDK_DISABLED, OTEL_LOG_LEVEL, the resource
 * (otel-resource.ts: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and the
 * detectors, with the pod variables the Helm chart sets), the sampler and
 * limits, and the metric pipeline (OTEL_METRICS_EXPORTER, the OTLP protocol,
 * OTEL_METRIC_EXPORT_INTERVAL/_TIMEOUT). The log and span pipelines are built
 * from the same variables in otel-pipelines.ts, so that their queues are
 * bounded and counted. The OTLP exporters read their endpoint, headers,
 * timeout, compression and certificates themselves.
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
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, context, metrics, propagation, trace, type Context, type HrTime, type Meter, type Tracer } from '@opentelemetry/api';
import { SeverityNumber, logs, type AnyValueMap, type Logger } from '@opentelemetry/api-logs';
import { getBooleanFromEnv } from '@opentelemetry/core';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { IdGenerator } from '@opentelemetry/sdk-trace';
import type { Bus, EventEnvelope } from '../lib/bus.js';
import type { EventType, Process, ProcessExit, Timestamp } from '../lib/event-model.js';
import { tetragonRoot, toProtoJson } from '../lib/tetragon-proto.js';
import { logRecordProcessors, signalExporters, spanProcessors } from './otel-pipelines.js';
import { RESOURCE_DETECTORS, vigilResource } from './otel-resource.js';
import * as sc from './semconv.js';
import { actionName, hookName, metricShape, POLICY_EVENT_TYPES, type Telemetry } from './telemetry.js';

export const DEFAULT_MAX_OPEN_SPANS = 65536;

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

const KPROBE_ACTION = tetragonRoot.lookupEnum('tetragon.KprobeAction').values;
// NotifyEnforcer is served here by its signal, sent at once (enforcer/compiler): it acts as Signal does.
const KILLING_ACTIONS = new Set([KPROBE_ACTION.KPROBE_ACTION_SIGKILL, KPROBE_ACTION.KPROBE_ACTION_SIGNAL, KPROBE_ACTION.KPROBE_ACTION_NOTIFYENFORCER]);

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
  private readonly sdk: NodeSDK;
  private readonly logger: Logger | undefined;
  private readonly tracer: Tracer | undefined;
  private readonly unsubscribe: (() => void) | undefined;

  /** Throws for an OTEL_* setting it cannot honour. Register other exporters' metric families first. */
  constructor(bus: Bus, telemetry: Telemetry, opts: OtelOptions) {
    const log = opts.log ?? ((line: string) => console.error(line));
    this.traces = new ProcessTraces(opts.maxOpenSpans ?? DEFAULT_MAX_OPEN_SPANS);
    // Every setting is checked before anything is built, so a bad one leaves nothing behind
    // (the metric exporters only checked: NodeSDK builds them). Disabled, NodeSDK builds nothing.
    const [logExporters, spanExporters] = getBooleanFromEnv('OTEL_SDK_DISABLED') ? [[], []] : (['logs', 'traces', 'metrics'] as const).map(signalExporters);
    const pipeline = { counters: (exporter: string) => telemetry.exporter(exporter), log };
    this.sdk = new NodeSDK({
      resource: vigilResource(opts.version),
      resourceDetectors: RESOURCE_DETECTORS,
      idGenerator: this.ids,
      logRecordProcessors: logRecordProcessors(logExporters, pipeline),
      spanProcessors: spanProcessors(spanExporters, pipeline),
    });
    this.sdk.start();
    // NodeSDK hands out what it built through the API's globals.
    if (logExporters.length > 0) this.logger = logs.getLogger('vigil', opts.version);
    if (spanExporters.length > 0) this.tracer = trace.getTracer('vigil', opts.version);

    telemetry.addFamily({
      name: 'otel_open_spans', kind: 'gauge', help: 'Running processes whose span is waiting for their exit.', labelNames: [],
      samples: () => [{ labels: {}, value: this.traces.size }],
    });
    telemetry.addFamily({
      name: 'otel_spans_evicted_total', kind: 'counter', help: 'Running processes evicted from the bounded span table; their spans come without a parent.', labelNames: [],
      samples: () => [{ labels: {}, value: this.traces.evicted }],
    });
    observeFamilies(metrics.getMeter('vigil', opts.version), telemetry, opts.prefix ?? 'vigil');

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
    try {
      await this.sdk.shutdown();
    } finally {
      // NodeSDK registered its providers, context manager and propagator as the process's; the next exporter registers its own.
      for (const api of [trace, logs, metrics, context, propagation]) api.disable();
    }
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
    if (this.logger !== undefined) this.emitLog(envelope, payload!, { ...attributes }, traceId);
    if (exit !== undefined) {
      this.traces.ended(p.exec_id);
      if (this.tracer !== undefined) this.endSpan(exit, attributes, traceId, seen);
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

/**
 * The telemetry families as observable instruments, read at each collection.
 * Counters drop `_total` (OTLP-to-Prometheus translation adds it back), so a
 * collector's Prometheus sees the same names, labels and values as the direct
 * exporter, in the same shape (Tetragon's under prefix `tetragon`).
 */
function observeFamilies(meter: Meter, telemetry: Telemetry, prefix: string): void {
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
