/**
 * The exporters, started together on a bus: JSON lines on stdout and in a
 * rotating file, Prometheus metrics, and OTLP logs, traces and metrics.
 * `vigil agent` and `vigil exporter` take EXPORTER_FLAGS and build the
 * configuration with exporterConfigFromArgs.
 */
import type { Writable } from 'node:stream';
import type { FlagSpecs, ParsedArgs } from '../lib/flags.js';
import { UsageError } from '../lib/flags.js';
import type { Bus } from '../lib/bus.js';
import type { FieldFilterMessage } from '../lib/field-filters.js';
import { VERSION } from '../lib/version.js';
import { DEFAULT_BACKUPS, DEFAULT_MAX_SIZE_MB, FileExporter, type FileExporterStats } from './file.js';
import { JsonLinesExporter, type JsonLinesStats } from './json-lines.js';
import type { OtelExporter, OtelStats } from './otel.js';
import { checkMetricPrefix, DEFAULT_METRICS_ADDRESS, DEFAULT_METRICS_PREFIX, parseAddress, PrometheusExporter } from './prometheus.js';
import { DEFAULT_EVENT_LABELS, DEFAULT_MAX_LABEL_VALUES, EVENT_LABELS, Telemetry, type EventLabel } from './telemetry.js';

export interface ExporterConfig {
  /** JSON lines on stdout. */
  stdout?: boolean;
  /** JSON lines in a file rotated by size. */
  file?: { path: string; maxSizeMB?: number; backups?: number };
  /** stdout and file: events per minute each, past which events are dropped (and counted). */
  rateLimit?: number;
  /** stdout and file: field filters applied to every event. */
  fieldFilters?: FieldFilterMessage[];
  /** Prometheus and OTLP metrics: the name prefix (default "vigil"), event labels and their bound. */
  metrics?: { prefix?: string; labels?: EventLabel[]; maxLabelValues?: number };
  /** Serve Prometheus metrics on this address. */
  prometheus?: { address: string };
  /** OTLP logs, traces and metrics, configured by the OTEL_* environment variables. */
  otel?: boolean;
  /** Subscribe durably (the NATS bus) under names starting with this. */
  durable?: string;
}

export interface StartOptions {
  version?: string;
  log?: (line: string) => void;
  /** Where `stdout` lines go; default process.stdout. */
  stdout?: Writable;
}

export interface ExportersStats { stdout?: JsonLinesStats; file?: FileExporterStats; otel?: OtelStats }

export interface Exporters {
  /** The port Prometheus metrics are served on, when they are. */
  readonly metricsPort: number | undefined;
  stats(): ExportersStats;
  /** Stops every exporter, writing and sending what is pending. */
  close(): Promise<void>;
}

/**
 * Starts the configured exporters; rejects (having stopped those already
 * started) when one cannot start: a bad field filter or OTEL_* setting, a
 * metrics port in use, an export file that cannot be opened.
 */
export async function startExporters(bus: Bus, config: ExporterConfig, opts: StartOptions = {}): Promise<Exporters> {
  const version = opts.version ?? VERSION;
  const log = opts.log ?? ((line: string) => console.error(line));
  const durable = (name: string): { durable?: string } => (config.durable === undefined ? {} : { durable: `${config.durable}-${name}` });
  const lines = { log, ...(config.rateLimit && { rateLimit: config.rateLimit }), ...(config.fieldFilters && { fieldFilters: config.fieldFilters }) };
  const prefix = config.metrics?.prefix ?? DEFAULT_METRICS_PREFIX;
  const closers: (() => void | Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) await c();
  };
  try {
    // The metrics' state comes first so that it counts what the exporters report from the first event on.
    const telemetry = config.prometheus !== undefined || config.otel
      ? new Telemetry(bus, { version, ...config.metrics })
      : undefined;
    if (telemetry !== undefined) closers.push(() => telemetry.close());

    let stdout: JsonLinesExporter | undefined;
    if (config.stdout) {
      const exporter = new JsonLinesExporter(bus, opts.stdout ?? process.stdout, { ...lines, ...durable('stdout'), ...(telemetry && { counters: telemetry.exporter('stdout') }) });
      closers.push(() => exporter.close());
      stdout = exporter;
    }
    let file: FileExporter | undefined;
    if (config.file !== undefined) {
      const exporter = await FileExporter.start(bus, {
        ...config.file, ...lines, ...durable('file'), ...(telemetry && { counters: telemetry.exporter('file'), telemetry }),
      });
      closers.push(() => exporter.close());
      file = exporter;
    }
    // OTLP and Prometheus read the metric families once, so they start after the exporters that add theirs.
    let otel: OtelExporter | undefined;
    if (config.otel) {
      // Loaded only when asked for: the OpenTelemetry SDK costs ~25 MB of memory.
      const { OtelExporter } = await import('./otel.js');
      const exporter = new OtelExporter(bus, telemetry!, { version, prefix, log });
      closers.push(() => exporter.close());
      otel = exporter;
    }
    let metricsPort: number | undefined;
    if (config.prometheus !== undefined) {
      const exporter = await PrometheusExporter.start(telemetry!, { address: config.prometheus.address, prefix });
      closers.push(() => exporter.close());
      metricsPort = exporter.port;
    }
    return {
      metricsPort,
      stats: () => ({
        ...(stdout && { stdout: stdout.stats() }),
        ...(file && { file: file.stats() }),
        ...(otel && { otel: otel.stats() }),
      }),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The exporters' flags, in the FlagSpecs of services/lib/flags.ts; Tetragon's names are accepted as aliases. */
export const EXPORTER_FLAGS: FlagSpecs = {
  'export-stdout': { kind: 'bool', help: 'print events as JSON lines on stdout (--export-stdout=false to disable)' },
  'export-file': { kind: 'string', aliases: ['export-filename'], value: 'FILE', help: 'also write events as JSON lines to FILE, rotated by size' },
  'export-file-max-size-mb': { kind: 'string', value: 'N', help: `rotate the export file at N MiB (default: ${DEFAULT_MAX_SIZE_MB})` },
  'export-file-backups': { kind: 'string', aliases: ['export-file-max-backups'], value: 'N', help: `rotated export files kept (default: ${DEFAULT_BACKUPS})` },
  'export-rate-limit': { kind: 'string', value: 'N', help: 'export at most N events per minute to stdout and the file; the rest are dropped and counted (default: no limit)' },
  'export-include-fields': { kind: 'list', commas: true, value: 'FIELDS', help: 'export only these fields of each event, e.g. process.binary,process.pod' },
  'export-exclude-fields': { kind: 'list', commas: true, value: 'FIELDS', help: 'export events without these fields, e.g. process.ns,parent' },
  'metrics-address': { kind: 'string', aliases: ['metrics-server'], value: 'HOST:PORT', help: `serve Prometheus metrics on /metrics; :PORT for every interface, empty to disable (default: ${DEFAULT_METRICS_ADDRESS}, loopback only)` },
  'metrics-prefix': { kind: 'string', value: 'PREFIX', help: `metric name prefix; "tetragon" gives Tetragon's names (default: ${DEFAULT_METRICS_PREFIX})` },
  'metrics-label-filter': { kind: 'list', commas: true, value: 'LABELS', help: `labels of events_total besides type, among ${EVENT_LABELS.join(',')} (default: ${DEFAULT_EVENT_LABELS.join(',')})` },
  'metrics-max-label-values': { kind: 'string', value: 'N', help: `distinct values per event label before "other" (default: ${DEFAULT_MAX_LABEL_VALUES})` },
  otel: { kind: 'bool', help: 'export OTLP logs, traces and metrics, configured by the OTEL_* environment variables' },
};

function numberFlag(args: ParsedArgs, name: string, check: (n: number) => boolean, expected: string): number | undefined {
  const text = args.string(name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !check(n)) throw new UsageError(`invalid value "${text}" for --${name}: expected ${expected}`);
  return n;
}

/** The configuration the flags ask for; `stdout` is the default of --export-stdout. Throws UsageError. */
export function exporterConfigFromArgs(args: ParsedArgs, defaults: { stdout: boolean }): ExporterConfig {
  const config: ExporterConfig = { stdout: args.has('export-stdout') ? args.bool('export-stdout') : defaults.stdout };

  const path = args.string('export-file');
  const maxSizeMB = numberFlag(args, 'export-file-max-size-mb', (n) => n > 0, 'a positive number');
  const backups = numberFlag(args, 'export-file-backups', (n) => Number.isInteger(n) && n >= 0, 'a whole number');
  if (path === undefined && (maxSizeMB !== undefined || backups !== undefined)) throw new UsageError('--export-file-max-size-mb and --export-file-backups need --export-file');
  if (path !== undefined) {
    if (path === '') throw new UsageError('--export-file: empty file name');
    config.file = { path, ...(maxSizeMB !== undefined && { maxSizeMB }), ...(backups !== undefined && { backups }) };
  }

  const rateLimit = numberFlag(args, 'export-rate-limit', (n) => Number.isInteger(n) && n >= 0, 'a whole number of events per minute');
  if (rateLimit) config.rateLimit = rateLimit;
  const include = args.list('export-include-fields');
  const exclude = args.list('export-exclude-fields');
  const filters: FieldFilterMessage[] = [];
  // tetragon.FieldFilterAction: INCLUDE 0, EXCLUDE 1.
  if (include.length > 0) filters.push({ fields: { paths: include }, action: 0 });
  if (exclude.length > 0) filters.push({ fields: { paths: exclude }, action: 1 });
  if (filters.length > 0) config.fieldFilters = filters;

  const address = args.string('metrics-address') ?? DEFAULT_METRICS_ADDRESS;
  if (address !== '') {
    try {
      parseAddress(address);
    } catch (err) {
      throw new UsageError(`--metrics-address: ${(err as Error).message}`);
    }
    config.prometheus = { address };
  }
  const prefix = args.string('metrics-prefix');
  if (prefix !== undefined) {
    try {
      checkMetricPrefix(prefix);
    } catch (err) {
      throw new UsageError(`--metrics-prefix: ${(err as Error).message}`);
    }
  }
  const labels = args.has('metrics-label-filter') ? args.list('metrics-label-filter') : undefined;
  const unknown = labels?.find((l) => !(EVENT_LABELS as readonly string[]).includes(l));
  if (unknown !== undefined) throw new UsageError(`--metrics-label-filter: unknown label "${unknown}" (known: ${EVENT_LABELS.join(', ')})`);
  const maxLabelValues = numberFlag(args, 'metrics-max-label-values', (n) => Number.isInteger(n) && n > 0, 'a positive whole number');
  config.metrics = {
    ...(prefix !== undefined && { prefix }),
    ...(labels !== undefined && { labels: labels as EventLabel[] }),
    ...(maxLabelValues !== undefined && { maxLabelValues }),
  };
  config.otel = args.bool('otel');
  return config;
}
