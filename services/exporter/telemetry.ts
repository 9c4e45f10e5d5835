/**
 * The metrics' state, shared by the Prometheus exporter (prometheus.ts) and
 * the OTLP metrics (otel.ts): both read the same families on each scrape or
 * export, so the two never disagree.
 *
 * What it counts: the bus's events (by type, and within the label filter
 * namespace, workload, pod, binary and node_name), policy events (by policy,
 * hook and action), the sensors' periodic SensorStatsMessage turned into
 * counters per node, and what each exporter did with the events it got.
 * Exporters add metrics of their own beside these (addFamily).
 *
 * The families come in one of two shapes, chosen by the metrics prefix
 * (metricShape); shapes() below is the whole mapping. Under the default
 * prefix, `vigil`:
 *   events_total{type, <kept labels>}          type: the event's field name, process_exec
 *   errors_total{type, node}                   ring_lost, ring_dropped, undecodable, process_cache_miss,
 *                                              process_cache_evicted, pod_metadata_late, subscriber_dropped,
 *                                              publish_dropped, policy_state_lost, override_not_applied,
 *                                              policy_action_dropped
 *   policy_events_total{policy, hook, action}  hook: the kprobe's function, the tracepoint's event, the
 *                                              uprobe's symbol; action: KPROBE_ACTION_SIGKILL, as in Tetragon's JSON
 *   ringbuf_received_total, ringbuf_lost_total, subscriber_dropped_total, process_cache_size{node}
 *   export_total{exporter, outcome}, build_info{version}
 * Under `tetragon`, a family Tetragon also has takes its name, label names and
 * values (Tetragon v1.7.0): type="PROCESS_EXEC", hook="kprobe:fd_install", and
 * so on; the details are at shapes(). Families Tetragon lacks keep Vigil's shape.
 *
 * Sensor totals restart from zero when a sensor restarts. A node's counters
 * are kept monotonic: when any of its totals goes backwards, the sensor is
 * taken to have restarted and the totals it had reached are carried over, so
 * Prometheus sees `rate()`-safe counters that never decrease.
 *
 * Cardinality: namespace and pod are kept by default, the other event labels
 * are not (binary: one series per executable is unbounded on a busy host);
 * `labels` chooses, like Tetragon's --metrics-label-filter. Each kept label
 * takes at most `maxLabelValues` distinct values; later values are counted as
 * "other", so a long-running agent's series stay bounded (first come, first
 * kept: a series once exported never moves).
 */
import type { Bus, EventEnvelope, SensorStatsMessage } from '../lib/bus.js';
import { EVENT_TYPE_NUMBER, type EventType, type Pod } from '../lib/event-model.js';
import { tetragonRoot } from '../lib/tetragon-proto.js';

/** The event labels, in Tetragon's order; the names are those of its --metrics-label-filter. */
export const EVENT_LABELS = ['namespace', 'workload', 'pod', 'binary', 'node_name'] as const;
export type EventLabel = (typeof EVENT_LABELS)[number];

export const DEFAULT_EVENT_LABELS: readonly EventLabel[] = ['namespace', 'pod'];
export const DEFAULT_MAX_LABEL_VALUES = 200;
export const OTHER = 'other';

/** Vigil's own names and labels, or Tetragon's. */
export type MetricShape = 'vigil' | 'tetragon';

/** The shape a metrics prefix selects: Tetragon's under `tetragon`, Vigil's under any other. */
export function metricShape(prefix: string): MetricShape {
  return prefix === 'tetragon' ? 'tetragon' : 'vigil';
}

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
  /** Event labels to fill; default namespace and pod. */
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
  podMetadataLate: 'pod_metadata_late',
  subscriberDropped: 'subscriber_dropped',
  publishDropped: 'publish_dropped',
  policyStateLost: 'policy_state_lost',
  overrideMissed: 'override_not_applied',
  policyActionDropped: 'policy_action_dropped',
} as const;
type SensorTotal = keyof typeof SENSOR_TOTALS;
const SENSOR_TOTAL_KEYS = Object.keys(SENSOR_TOTALS) as SensorTotal[];
/** Every total but ring_received counts as an error. */
const ERROR_KEYS = SENSOR_TOTAL_KEYS.filter((k) => k !== 'ringReceived');

type Totals = Record<SensorTotal, number>;
const zeroTotals = (): Totals => Object.fromEntries(SENSOR_TOTAL_KEYS.map((k) => [k, 0])) as Totals;

// --------------------------------------------------------------- the shapes

/** An event's label values: '' for those the filter leaves out. */
type EventLabels = Record<EventLabel, string>;
interface EventKey extends EventLabels { type: EventType }
/** A policy event: `hook` is the function, event or symbol; `scope` the tracepoint's subsystem or the uprobe's path. */
interface PolicyKey extends EventLabels { type: EventType; policy: string; hook: string; scope: string; action: string }
interface ErrorKey { cause: SensorTotal; node: string }
interface NodeKey { node: string }
interface ExportKey { exporter: string; outcome: string }
interface BuildKey { version: string }

/** A family's name and labels in one shape, the labels computed from what was counted. */
interface Shape<K> { name: string; labelNames: readonly string[]; labels(key: K): Record<string, string> }
interface Row<K> { kind: 'counter' | 'gauge'; help: string; vigil: Shape<K>; tetragon: Shape<K> }

const pick = (key: EventLabels, names: readonly EventLabel[]): Record<string, string> =>
  Object.fromEntries(names.map((n) => [n, key[n]]));

const EVENT_TYPE_NAMES = tetragonRoot.lookupEnum('tetragon.EventType').valuesById;

/** Tetragon's event type: the tetragon.EventType name, PROCESS_EXEC. */
const tetragonType = (type: EventType): string => EVENT_TYPE_NAMES[EVENT_TYPE_NUMBER[type]] ?? 'unknown';

/** Tetragon's hook: kprobe:fd_install, tracepoint:syscalls/sys_enter_openat, uprobe:/bin/bash/readline. */
const tetragonHook = (k: PolicyKey): string => {
  if (k.type === 'process_kprobe' || k.type === 'process_lsm') return `${k.type === 'process_lsm' ? 'lsm' : 'kprobe'}:${k.hook}`;
  if (k.type === 'process_usdt') return `usdt:${k.scope}/${k.hook}`;
  return `${k.type === 'process_tracepoint' ? 'tracepoint' : 'uprobe'}:${k.scope}/${k.hook}`;
};

/** Causes Tetragon counted in its errors_total under a name of its own (until v1.1; it moved them to families of their own in v1.2). */
const TETRAGON_ERRORS: Partial<Record<SensorTotal, string>> = {
  processCacheMisses: 'process_cache_miss_on_get',
  processCacheEvicted: 'process_cache_evicted',
};

/** A family with the same labels under both shapes, renamed or not. */
function plain<K extends object>(kind: Row<K>['kind'], help: string, name: string, labelNames: readonly (keyof K & string)[], tetragonName = name): Row<K> {
  const labels = (key: K): Record<string, string> => Object.fromEntries(labelNames.map((n) => [n, String(key[n])]));
  return { kind, help, vigil: { name, labelNames, labels }, tetragon: { name: tetragonName, labelNames, labels } };
}

/**
 * Every family in both shapes. Tetragon's side is Tetragon v1.7.0's (the
 * newest release; older ones noted where they differ):
 * - events_total: type is the tetragon.EventType name; every label of
 *   Tetragon's filter is there, empty when the filter leaves it out, as
 *   Tetragon does; workload as workloadOf() finds it.
 * - policy_events_total: Tetragon's event labels, policy, and the hook as
 *   Tetragon writes it; `action` is Vigil's and stays (Tetragon has none).
 * - errors_total: the cause is under `error`, Tetragon's label since v1.7,
 *   and under `type`, its label before (and the seed's `sum by (type)`). A
 *   cause Tetragon once counted there has its name; the others are Vigil's.
 * - ring buffer, subscriber drops: Tetragon's names for the same counts.
 * - build_info: Tetragon's labels; Vigil knows only the version.
 * Per-node families keep Vigil's `node`: one exporter may serve several
 * sensors. Extra labels do not disturb queries written for Tetragon.
 */
function shapes(kept: readonly EventLabel[]) {
  return {
    events: {
      kind: 'counter', help: 'Events seen on the bus, by type.',
      vigil: { name: 'events_total', labelNames: ['type', ...kept], labels: (k) => ({ type: k.type, ...pick(k, kept) }) },
      tetragon: { name: 'events_total', labelNames: ['type', ...EVENT_LABELS], labels: (k) => ({ type: tetragonType(k.type), ...pick(k, EVENT_LABELS) }) },
    } satisfies Row<EventKey>,
    errors: {
      kind: 'counter', help: 'Sensor errors by type, per node: events lost or degraded.',
      vigil: { name: 'errors_total', labelNames: ['type', 'node'], labels: (k) => ({ type: SENSOR_TOTALS[k.cause], node: k.node }) },
      tetragon: {
        name: 'errors_total', labelNames: ['error', 'type', 'node'],
        labels: (k) => {
          const cause = TETRAGON_ERRORS[k.cause] ?? SENSOR_TOTALS[k.cause];
          return { error: cause, type: cause, node: k.node };
        },
      },
    } satisfies Row<ErrorKey>,
    policyEvents: {
      kind: 'counter', help: 'Policy events by policy, hook and action.',
      vigil: { name: 'policy_events_total', labelNames: ['policy', 'hook', 'action'], labels: (k) => ({ policy: k.policy, hook: k.hook, action: k.action }) },
      tetragon: {
        name: 'policy_events_total', labelNames: [...EVENT_LABELS, 'policy', 'hook', 'action'],
        labels: (k) => ({ ...pick(k, EVENT_LABELS), policy: k.policy, hook: tetragonHook(k), action: k.action }),
      },
    } satisfies Row<PolicyKey>,
    ringReceived: plain<NodeKey>('counter', 'Records read from the BPF ring buffer.', 'ringbuf_received_total', ['node'], 'observer_ringbuf_events_received_total'),
    ringLost: plain<NodeKey>('counter', 'Records the kernel could not put in the ring buffer.', 'ringbuf_lost_total', ['node'], 'observer_ringbuf_events_lost_total'),
    subscriberDropped: plain<NodeKey>('counter', 'Events dropped for slow gRPC subscribers.', 'subscriber_dropped_total', ['node'], 'notify_overflowed_events_total'),
    processCacheSize: plain<NodeKey>('gauge', 'Processes in the sensor\'s process cache.', 'process_cache_size', ['node']),
    exports: plain<ExportKey>('counter', 'Events handled by each exporter, by outcome.', 'export_total', ['exporter', 'outcome']),
    buildInfo: {
      kind: 'gauge', help: 'Vigil\'s version; always 1.',
      vigil: { name: 'build_info', labelNames: ['version'], labels: (k) => ({ version: k.version }) },
      tetragon: {
        name: 'build_info', labelNames: ['version', 'go_version', 'commit', 'time', 'modified'],
        labels: (k) => ({ version: k.version, go_version: '', commit: '', time: '', modified: '' }),
      },
    } satisfies Row<BuildKey>,
  };
}

/** A row as a family of the shape: what was counted, labelled, and summed where the shape's labels merge keys. */
function family<K>(row: Row<K>, shape: MetricShape, counted: () => { key: K; value: number }[]): MetricFamily {
  const { name, labelNames, labels } = row[shape];
  return {
    name, kind: row.kind, help: row.help, labelNames,
    samples: () => {
      const merged = new Map<string, Sample>();
      for (const { key, value } of counted()) {
        const l = labels(key);
        const id = labelNames.map((n) => l[n]).join('\0');
        const sample = merged.get(id);
        if (sample) sample.value += value;
        else merged.set(id, { labels: l, value });
      }
      return [...merged.values()];
    },
  };
}

// ------------------------------------------------------------------ the state

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

/** Counts by key. */
class Tally<K extends object> {
  private readonly counts = new Map<string, { key: K; value: number }>();

  add(key: K, n = 1): void {
    const id = Object.values(key).join('\0');
    const entry = this.counts.get(id);
    if (entry) entry.value += n;
    else this.counts.set(id, { key, value: n });
  }

  entries(): { key: K; value: number }[] {
    return [...this.counts.values()].map(({ key, value }) => ({ key, value }));
  }
}

export const POLICY_EVENT_TYPES: ReadonlySet<EventType> = new Set(['process_kprobe', 'process_tracepoint', 'process_uprobe', 'process_lsm', 'process_usdt']);

const KPROBE_ACTIONS = tetragonRoot.lookupEnum('tetragon.KprobeAction').valuesById;

/** A KprobeAction number by its enum name, as Tetragon's JSON writes it: "KPROBE_ACTION_SIGKILL". */
export function actionName(action: unknown): string {
  return (typeof action === 'number' ? KPROBE_ACTIONS[action] : undefined) ?? 'KPROBE_ACTION_UNKNOWN';
}

/** The hook of a policy event: the kprobe's function, the tracepoint's event, the uprobe's symbol. */
export function hookName(envelope: EventEnvelope): string {
  const p = (envelope.event[envelope.type] ?? {}) as { function_name?: string; event?: string; symbol?: string };
  switch (envelope.type) {
    case 'process_kprobe':
    case 'process_lsm': return p.function_name ?? '';
    case 'process_tracepoint': return p.event ?? '';
    case 'process_uprobe': return p.symbol ?? '';
    case 'process_usdt': return `${(p as { provider?: string }).provider ?? ''}:${(p as { name?: string }).name ?? ''}`;
    default: return '';
  }
}

/**
 * The workload a pod belongs to, for the `workload` label: Pod.workload when
 * the event carries it (Tetragon's source); else what the pod's labels tell,
 * a Deployment (pod-template-hash: the name before `-<hash>-<suffix>`) or a
 * Job (job-name; a CronJob's name when the job's ends in its 8-10 digit
 * schedule time); else empty. Other owners are not told by labels alone.
 */
export function workloadOf(pod: Pod | undefined): string {
  if (pod === undefined) return '';
  if (pod.workload) return pod.workload;
  const labels = pod.pod_labels ?? {};
  const hash = labels['pod-template-hash'];
  if (hash) {
    const m = /^(.+)-([a-z0-9]+)-[a-z0-9]+$/.exec(pod.name);
    if (m !== null && m[2] === hash) return m[1]!;
  }
  const job = labels['batch.kubernetes.io/job-name'] ?? labels['job-name'];
  if (job) return /^(.+)-\d{8,10}$/.exec(job)?.[1] ?? job;
  return '';
}

interface Payload {
  process?: { binary?: string; pod?: Pod };
  policy_name?: string;
  action?: unknown;
  subsys?: string;
  path?: string;
}

export class Telemetry {
  private readonly labels: readonly EventLabel[];
  private readonly maxLabelValues: number;
  private readonly shapes: ReturnType<typeof shapes>;
  /** The values admitted so far for each kept label. */
  private readonly admitted = new Map<EventLabel, Set<string>>();
  private readonly events = new Tally<EventKey>();
  private readonly policyEvents = new Tally<PolicyKey>();
  private readonly exports = new Tally<ExportKey>();
  /** Exporters' own metrics, registered beside the common ones. */
  private readonly extra: MetricFamily[] = [];
  private readonly nodes = new Map<string, NodeTotals>();
  private readonly unsubscribe: (() => void)[];

  constructor(bus: Bus, private readonly opts: TelemetryOptions) {
    this.labels = EVENT_LABELS.filter((l) => (opts.labels ?? DEFAULT_EVENT_LABELS).includes(l));
    this.maxLabelValues = opts.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES;
    this.shapes = shapes(this.labels);
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

  /** The families in a shape (metricShape of the prefix), exporters' own last. */
  families(shape: MetricShape = 'vigil'): MetricFamily[] {
    const s = this.shapes;
    const perNode = (f: (totals: NodeTotals) => number) => (): { key: NodeKey; value: number }[] =>
      [...this.nodes].map(([node, totals]) => ({ key: { node }, value: f(totals) }));
    return [
      family(s.events, shape, () => this.events.entries()),
      family(s.errors, shape, () => [...this.nodes].flatMap(([node, totals]) => ERROR_KEYS.map((cause) => ({ key: { cause, node }, value: totals.total(cause) })))),
      family(s.policyEvents, shape, () => this.policyEvents.entries()),
      family(s.ringReceived, shape, perNode((t) => t.total('ringReceived'))),
      family(s.ringLost, shape, perNode((t) => t.total('ringLost'))),
      family(s.subscriberDropped, shape, perNode((t) => t.total('subscriberDropped'))),
      family(s.processCacheSize, shape, perNode((t) => t.cacheSize)),
      family(s.exports, shape, () => this.exports.entries()),
      family(s.buildInfo, shape, () => [{ key: { version: this.opts.version }, value: 1 }]),
      ...this.extra,
    ];
  }

  private onEvent(envelope: EventEnvelope): void {
    const payload = envelope.event[envelope.type] as Payload | undefined;
    const process = payload?.process;
    const raw: EventLabels = {
      namespace: process?.pod?.namespace ?? '',
      workload: this.labels.includes('workload') ? workloadOf(process?.pod) : '',
      pod: process?.pod?.name ?? '',
      binary: process?.binary ?? '',
      node_name: envelope.event.node_name ?? '',
    };
    const labels = Object.fromEntries(EVENT_LABELS.map((l) => [l, this.admitted.has(l) ? this.admit(l, raw[l]) : ''])) as EventLabels;
    this.events.add({ type: envelope.type, ...labels });
    if (POLICY_EVENT_TYPES.has(envelope.type)) {
      this.policyEvents.add({
        type: envelope.type, ...labels, policy: payload?.policy_name ?? '', hook: hookName(envelope),
        scope: (envelope.type === 'process_tracepoint' ? payload?.subsys : payload?.path) ?? '', action: actionName(payload?.action),
      });
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
