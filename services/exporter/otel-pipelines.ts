/**
 * The log and span pipelines, which Vigil builds and hands to NodeSDK, from
 * the variables NodeSDK would read, with its names and defaults:
 * OTEL_{LOGS,TRACES}_EXPORTER (otlp, console, none: not NodeSDK's zipkin),
 * OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL (grpc, http/protobuf, http/json) and
 * OTEL_BLRP_* / OTEL_BSP_*. NodeSDK could build them from the environment,
 * but then only it would hold the exporters, and what they export, fail or
 * drop could not be counted (it has no hook for that: opentelemetry-js#5299).
 * The metric pipeline carries no events and is NodeSDK's own.
 *
 * What NodeSDK only warns about, an exporter name it does not know (which it
 * leaves out) or OTLP protocol (for which it sends http/protobuf), stops the
 * start here, for the three signals.
 */
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, getNumberFromEnv, getStringFromEnv, getStringListFromEnv, type ExportResult } from '@opentelemetry/core';
import { OTLPLogExporter as GrpcLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchLogRecordProcessor, ConsoleLogRecordExporter, SimpleLogRecordProcessor, type LogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace';
import type { ExportCounters } from './telemetry.js';

type Signal = 'logs' | 'traces' | 'metrics';

const EXPORTER_NAMES: Record<Signal, readonly string[]> = {
  logs: ['otlp', 'console', 'none'],
  traces: ['otlp', 'console', 'none'],
  metrics: ['otlp', 'prometheus', 'console', 'none'],
};
const OTLP_PROTOCOLS = ['grpc', 'http/protobuf', 'http/json'] as const;
type Protocol = (typeof OTLP_PROTOCOLS)[number];

/** The exporters OTEL_<SIGNAL>_EXPORTER names (default otlp), none if it says "none"; throws for a name or OTLP protocol not known. */
export function signalExporters(signal: Signal): string[] {
  const variable = `OTEL_${signal.toUpperCase()}_EXPORTER`;
  const listed = getStringListFromEnv(variable) ?? [];
  const names = listed.length > 0 ? [...new Set(listed)] : ['otlp'];
  const unknown = names.find((name) => !EXPORTER_NAMES[signal].includes(name));
  if (unknown !== undefined) throw new Error(`${variable}=${getStringFromEnv(variable)}: unknown exporter "${unknown}", expected ${EXPORTER_NAMES[signal].join(', ')}`);
  if (names.includes('none')) return [];
  if (names.includes('otlp')) otlpProtocol(signal);
  return names;
}

function otlpProtocol(signal: Signal): Protocol {
  const variable = [`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_PROTOCOL`, 'OTEL_EXPORTER_OTLP_PROTOCOL'].find((v) => getStringFromEnv(v) !== undefined);
  if (variable === undefined) return 'http/protobuf';
  const protocol = getStringFromEnv(variable)!.trim();
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol)) throw new Error(`${variable}=${protocol}: unknown OTLP protocol, expected ${OTLP_PROTOCOLS.join(', ')}`);
  return protocol as Protocol;
}

/** A batch processor's options from OTEL_BLRP_* or OTEL_BSP_*; a value unset or not positive leaves the SDK's default. */
function batchOptions(prefix: 'OTEL_BLRP' | 'OTEL_BSP'): { maxQueue: number; processor: { maxQueueSize: number; maxExportBatchSize: number; scheduledDelayMillis?: number; exportTimeoutMillis?: number } } {
  const positive = (name: string): number | undefined => {
    const n = getNumberFromEnv(`${prefix}_${name}`);
    return n !== undefined && n > 0 ? n : undefined;
  };
  const maxQueue = positive('MAX_QUEUE_SIZE') ?? 2048;
  const maxExportBatchSize = Math.min(positive('MAX_EXPORT_BATCH_SIZE') ?? 512, maxQueue);
  return {
    maxQueue,
    // Room for a batch on its way out besides the queue, so the processor never drops before ExportAccount counts.
    processor: { maxQueueSize: maxQueue + maxExportBatchSize, maxExportBatchSize, scheduledDelayMillis: positive('SCHEDULE_DELAY'), exportTimeoutMillis: positive('EXPORT_TIMEOUT') },
  };
}

interface BatchExporter<T> {
  export(items: T[], done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
  forceFlush?(): Promise<void>;
}

/**
 * One OTLP exporter's accounting: outcomes into export_total, failures logged
 * when they start and when they stop, and its queue bounded here, so that
 * what the batch processor would drop silently is counted as overflow.
 */
class ExportAccount {
  private queued = 0;
  private failing = false;

  constructor(private readonly name: string, private readonly counters: ExportCounters, private readonly log: (line: string) => void, private readonly maxQueue: number) {}

  /** Whether one more item fits the queue; a refused one is counted as overflow. */
  admit(): boolean {
    if (this.queued >= this.maxQueue) {
      this.counters.add('overflow');
      return false;
    }
    this.queued++;
    return true;
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

  private result(result: ExportResult, items: number): void {
    const ok = result.code === ExportResultCode.SUCCESS;
    this.counters.add(ok ? 'exported' : 'failed', items);
    if (ok === this.failing) {
      this.failing = !ok;
      this.log(ok ? `${this.name} export recovered` : `${this.name} export failed: ${result.error?.message ?? 'unknown error'}`);
    }
  }
}

export interface PipelineOptions {
  /** The export_total counters of an exporter, by name. */
  counters: (exporter: string) => ExportCounters;
  log: (line: string) => void;
}

const LOG_EXPORTERS = { grpc: GrpcLogExporter, 'http/protobuf': ProtoLogExporter, 'http/json': JsonLogExporter };
const SPAN_EXPORTERS = { grpc: GrpcTraceExporter, 'http/protobuf': ProtoTraceExporter, 'http/json': JsonTraceExporter };

/** The processors of the exporters signalExporters('logs') named: OTLP batched and counted as otlp_logs, console record by record. */
export function logRecordProcessors(exporters: string[], opts: PipelineOptions): LogRecordProcessor[] {
  return exporters.map((name) => {
    if (name === 'console') return new SimpleLogRecordProcessor({ exporter: new ConsoleLogRecordExporter() });
    const { maxQueue, processor } = batchOptions('OTEL_BLRP');
    const account = new ExportAccount('OTLP logs', opts.counters('otlp_logs'), opts.log, maxQueue);
    const batch = new BatchLogRecordProcessor({ exporter: account.wrap(new LOG_EXPORTERS[otlpProtocol('logs')]()), ...processor });
    return {
      onEmit: (record) => {
        if (account.admit()) batch.onEmit(record);
      },
      forceFlush: () => batch.forceFlush(),
      shutdown: () => batch.shutdown(),
    };
  });
}

/** The processors of the exporters signalExporters('traces') named: OTLP batched and counted as otlp_traces, console span by span. */
export function spanProcessors(exporters: string[], opts: PipelineOptions): SpanProcessor[] {
  return exporters.map((name) => {
    if (name === 'console') return new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() });
    const { maxQueue, processor } = batchOptions('OTEL_BSP');
    const account = new ExportAccount('OTLP traces', opts.counters('otlp_traces'), opts.log, maxQueue);
    const batch = new BatchSpanProcessor({ exporter: account.wrap(new SPAN_EXPORTERS[otlpProtocol('traces')]()), ...processor });
    return {
      onStart: (span, context) => batch.onStart(span, context),
      // The batch processor drops a span its sampler did not sample; such a span takes no room.
      onEnd: (span) => {
        if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0 && account.admit()) batch.onEnd(span);
      },
      forceFlush: () => batch.forceFlush(),
      shutdown: () => batch.shutdown(),
    };
  });
}
