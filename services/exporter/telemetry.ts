/**
 * The metrics' state, shared by the Prometheus exporter (prometheus.ts) and
 * the OTLP metrics (otel.ts): both read the same families on each scrape or
 * export, so the two never disagree.
 *
 * What it counts: the bus's events (by type, the event's field name such as
 * process_exec, and within the label filter namespace, pod and binary),
 * policy events (by policy, hook — the kprobe's function, the tracepoint's
 * event, the uprobe's symbol — and action, KPROBE_ACTION_SIGKILL as in
 * Tetragon's JSON), the sensors' periodic SensorStatsMessage turned into
 * counters per node, and what each exporter did with the events it got.
 * Exporters add metrics of their own beside these (addFamily).
 *
 * Sensor totals restart from zero when a sensor restarts. A node's counters
 * are kept monotonic: when any of its totals goes backwards, the sensor is
 * taken to have restarted and the totals it had reached are carried over, so
 * Prometheus sees `rate()`-safe counters that never decrease.
 *
 * Cardinality: namespace and pod are kept by default, binary is not (one
 * series per executable is unbounded on a busy host); `labels` chooses, like
 * Tetragon's --metrics-label-filter. Each kept label takes at most
 * `maxLabelValues` distinct values; later values are counted as "other", so a
 * long-running agent's series stay bounded (first come, first kept: a series
 * once exported never moves).
 */
import type { Bus, EventEnvelope, SensorStatsMessage } from '../lib/bus.js';
import type { EventType } from '../lib/event-model.js';
import { tetragonRoot } from '../lib/tetragon-proto.js';

export const EVENT_LABELS = ['namespace', 'pod', 'binary'] as const;
export type EventLabel = (typeof EVENT_LABELS)[number];

export const DEFAULT_EVENT_LABELS: readonly EventLabel[] = ['namespace', 'pod'];
export const DEFAULT_MAX_LABEL_VALUES = 200;
export const OTHER = 'other';

export interface Sample { labels: Record<string, string>; value: number }

/** One metric, named without the prefix (`events_total`): Prometheus and OTLP add theirs. */
export interface MetricFamily {
  name: string;
  kind: 'counter' | 'gauge';
  help: string;
  labelNames: readonly string[];
  samples(): Sample[];
}

/** How an exporter's events ended; dropped ones name why. */
export type ExportOutcome = 'exported' | 'rate_limited' | 'overflow' | 'failed';

/** What an exporter reports into `export_total`. */
export interface ExportCounters {
  add(outcome: ExportOutcome, n?: number): void;
}

export interface TelemetryOptions {
  version: string;
  /** Labels of events_total besides type; default namespace and pod. */
  labels?: readonly EventLabel[];
  /** Distinct values per kept label before "other"; default 200. */
  maxLabelValues?: number;
}

/** The SensorStatsMessage totals, by the error type (or metric) each feeds. */
const SENSOR_TOTALS = {
  ringReceived: 'ring_received',
  ringLost: 'ring_lost',
  ringDropped: 'ring_dropped',
  undecodable: 'undecodable',
  processCacheMisses: 'process_cache_miss',
  processCacheEvicted: 'process_cache_evicted',
  subscriberDropped: 'subscriber_dropped',
  publishDropped: 'publish_dropped',
} as const;
type SensorTotal = keyof typeof SENSOR_TOTALS;
const SENSOR_TOTAL_KEYS = Object.keys(SENSOR_TOTALS) as SensorTotal[];
/** Every total but ring_received counts as an error. */
const ERROR_KEYS = SENSOR_TOTAL_KEYS.filter((k) => k !== 'ringReceived');

type Totals = Record<SensorTotal, number>;
const zeroTotals = (): Totals => Object.fromEntries(SENSOR_TOTAL_KEYS.map((k) => [k, 0])) as Totals;

/** One node's sensor totals, carried over sensor restarts. */
class NodeTotals {
  /** The last message's totals, as the sensor reported them. */
  private last = zeroTotals();
  /** What earlier runs of the sensor had reached. */
  private readonly carried = zeroTotals();
  cacheSize = 0;

  update(stats: SensorStatsMessage): void {
    if (SENSOR_TOTAL_KEYS.some((k) => stats[k] < this.last[k])) {
      for (const k of SENSOR_TOTAL_KEYS) this.carried[k] += this.last[k];
    }
    this.last = Object.fromEntries(SENSOR_TOTAL_KEYS.map((k) => [k, stats[k]])) as Totals;
    this.cacheSize = stats.processCacheSize;
  }

  total(k: SensorTotal): number {
    return this.carried[k] + this.last[k];
  }
}

/** Counters keyed by their label values. */
class LabeledCounter {
  private readonly counts = new Map<string, { labels: Record<string, string>; value: number }>();

  add(labels: Record<string, string>, n = 1): void {
    const key = Object.values(labels).join('\0');
    const entry = this.counts.get(key);
    if (entry) entry.value += n;
    else this.counts.set(key, { labels, value: n });
  }

  samples(): Sample[] {
    return [...this.counts.values()].map(({ labels, value }) => ({ labels, value }));
  }
}

export const POLICY_EVENT_TYPES: ReadonlySet<EventType> = new Set(['process_kprobe', 'process_tracepoint', 'process_uprobe']);

const KPROBE_ACTIONS = tetragonRoot.lookupEnum('tetragon.KprobeAction').valuesById;

/** A KprobeAction number by its enum name, as Tetragon's JSON writes it: "KPROBE_ACTION_SIGKILL". */
export function actionName(action: unknown): string {
  return (typeof action === 'number' ? KPROBE_ACTIONS[action] : undefined) ?? 'KPROBE_ACTION_UNKNOWN';
}

/** The hook of a policy event: the kprobe's function, the tracepoint's event, the uprobe's symbol. */
export function hookName(envelope: EventEnvelope): string {
  const p = (envelope.event[envelope.type] ?? {}) as { function_name?: string; event?: string; symbol?: string };
  switch (envelope.type) {
    case 'process_kprobe': return p.function_name ?? '';
    case 'process_tracepoint': return p.event ?? '';
    case 'process_uprobe': return p.symbol ?? '';
    default: return '';
  }
}

interface ProcessLabels { binary?: string; pod?: { namespace?: string; name?: string } }

export class Telemetry {
  private readonly labels: readonly EventLabel[];
  private readonly maxLabelValues: number;
  /** The values admitted so far for each kept label. */
  private readonly admitted = new Map<EventLabel, Set<string>>();
  private readonly events = new LabeledCounter();
  private readonly policyEvents = new LabeledCounter();
  private readonly exports = new LabeledCounter();
  /** Exporters' own metrics, registered beside the common ones. */
  private readonly extra: MetricFamily[] = [];
  private readonly nodes = new Map<string, NodeTotals>();
  private readonly unsubscribe: (() => void)[];

  constructor(bus: Bus, private readonly opts: TelemetryOptions) {
    this.labels = EVENT_LABELS.filter((l) => (opts.labels ?? DEFAULT_EVENT_LABELS).includes(l));
    this.maxLabelValues = opts.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES;
    for (const l of this.labels) this.admitted.set(l, new Set(['']));
    this.unsubscribe = [
      bus.subscribeEvents((envelope) => this.onEvent(envelope)),
      bus.subscribeStats((stats) => this.onStats(stats)),
    ];
  }

  close(): void {
    for (const u of this.unsubscribe) u();
  }

  /** The counters an exporter reports into, under its name. */
  exporter(name: string): ExportCounters {
    return { add: (outcome, n = 1) => this.exports.add({ exporter: name, outcome }, n) };
  }

  /** An exporter's own metric; register before the Prometheus and OTLP exporters start, which read the families once. */
  addFamily(family: MetricFamily): void {
    this.extra.push(family);
  }

  families(): MetricFamily[] {
    const perNode = (f: (totals: NodeTotals) => number): Sample[] =>
      [...this.nodes].map(([node, totals]) => ({ labels: { node }, value: f(totals) }));
    return [
      { name: 'events_total', kind: 'counter', help: 'Events seen on the bus, by type.', labelNames: ['type', ...this.labels], samples: () => this.events.samples() },
      {
        name: 'errors_total', kind: 'counter', help: 'Sensor errors by type, per node: events lost or degraded.', labelNames: ['type', 'node'],
        samples: () => [...this.nodes].flatMap(([node, totals]) => ERROR_KEYS.map((k) => ({ labels: { type: SENSOR_TOTALS[k], node }, value: totals.total(k) }))),
      },
      { name: 'policy_events_total', kind: 'counter', help: 'Policy events by policy, hook and action.', labelNames: ['policy', 'hook', 'action'], samples: () => this.policyEvents.samples() },
      { name: 'ringbuf_received_total', kind: 'counter', help: 'Records read from the BPF ring buffer.', labelNames: ['node'], samples: () => perNode((t) => t.total('ringReceived')) },
      { name: 'ringbuf_lost_total', kind: 'counter', help: 'Records the kernel could not put in the ring buffer.', labelNames: ['node'], samples: () => perNode((t) => t.total('ringLost')) },
      { name: 'subscriber_dropped_total', kind: 'counter', help: 'Events dropped for slow gRPC subscribers.', labelNames: ['node'], samples: () => perNode((t) => t.total('subscriberDropped')) },
      { name: 'process_cache_size', kind: 'gauge', help: 'Processes in the sensor\'s process cache.', labelNames: ['node'], samples: () => perNode((t) => t.cacheSize) },
      { name: 'export_total', kind: 'counter', help: 'Events handled by each exporter, by outcome.', labelNames: ['exporter', 'outcome'], samples: () => this.exports.samples() },
      { name: 'build_info', kind: 'gauge', help: 'Vigil\'s version; always 1.', labelNames: ['version'], samples: () => [{ labels: { version: this.opts.version }, value: 1 }] },
      ...this.extra,
    ];
  }

  private onEvent(envelope: EventEnvelope): void {
    const payload = envelope.event[envelope.type] as { process?: ProcessLabels; policy_name?: string; action?: unknown } | undefined;
    const process = payload?.process;
    const labels: Record<string, string> = { type: envelope.type };
    for (const l of this.labels) {
      const value = l === 'binary' ? process?.binary : l === 'pod' ? process?.pod?.name : process?.pod?.namespace;
      labels[l] = this.admit(l, value ?? '');
    }
    this.events.add(labels);
    if (POLICY_EVENT_TYPES.has(envelope.type)) {
      this.policyEvents.add({ policy: payload?.policy_name ?? '', hook: hookName(envelope), action: actionName(payload?.action) });
    }
  }

  private admit(label: EventLabel, value: string): string {
    const seen = this.admitted.get(label)!;
    if (seen.has(value)) return value;
    if (seen.size > this.maxLabelValues) return OTHER;
    seen.add(value);
    return value;
  }

  private onStats(stats: SensorStatsMessage): void {
    let totals = this.nodes.get(stats.node);
    if (totals === undefined) this.nodes.set(stats.node, (totals = new NodeTotals()));
    totals.update(stats);
  }
}
