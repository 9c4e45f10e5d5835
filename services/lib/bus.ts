/**
 * The bus: how services meet. An event travels as an envelope holding the
 * decoded object and its protobuf bytes (tetragon.GetEventsResponse), encoded
 * once by the sensor; every consumer reuses the same bytes.
 *
 * Two shapes implement it: `LocalBus` (in-process, `vigil agent`) and the
 * NATS JetStream bus (services/lib/nats, the split shape). A handler may
 * return a promise: a durable subscriber's event is acknowledged only once
 * that promise resolves, so an exporter that dies mid-export gets the event
 * again. Handlers that throw are reported and do not stop delivery to others.
 */
import type { EventType, GetEventsResponse } from './event-model.js';

export interface EventEnvelope {
  readonly type: EventType;
  readonly event: GetEventsResponse;
  readonly bytes: Uint8Array;
  /** `event` is decoded from `bytes` when first read (an event from the bus): the bytes are the cheaper source. */
  readonly fromWire?: boolean;
}

export type EventHandler = (envelope: EventEnvelope) => void | Promise<void>;

/** Counters a sensor publishes periodically, for exporters' metrics. All are totals since the sensor started. */
export interface SensorStatsMessage {
  node: string;
  /** Wall-clock ms when taken. */
  time: number;
  ringReceived: number;
  /** Records the kernel could not put in the ring. */
  ringLost: number;
  /** Records read but dropped because JS fell behind. */
  ringDropped: number;
  undecodable: number;
  processCacheSize: number;
  processCacheMisses: number;
  processCacheEvicted: number;
  /** Events of a new container sent without their pod: its metadata came later than the wait allows. */
  podMetadataLate: number;
  /** Events dropped for slow gRPC subscribers. */
  subscriberDropped: number;
  /** Events the bus could not publish (NATS down past its buffer). */
  publishDropped: number;
  /** Policy state the kernel could not keep (vigil_policy_lost: a process's or an in-flight call's entry): its hooks may have missed a call. */
  policyStateLost: number;
  /** Overrides no cgroup program took (vigil_override_missed): the call went on though its event says the action was applied. */
  overrideMissed: number;
  /** DnsLookup/GetUrl actions not done: too many were under way. */
  policyActionDropped: number;
  policies: { name: string; matched: number; actionsApplied: number; actionsMonitored: number; rateLimited: number }[];
}

export type StatsHandler = (stats: SensorStatsMessage) => void;

/** An action the enforcer took in user space, for the audit trail. */
export interface AuditRecord {
  node: string;
  /** Wall-clock ms. */
  time: number;
  /** What was done, e.g. "kill-process-tree", "reapply-policies". */
  action: string;
  policy?: string;
  /** The event that caused it (exec_id of the offending process). */
  trigger?: string;
  /** Pids acted on. */
  targets: number[];
  outcome: 'done' | 'partial' | 'failed';
  details?: string;
}

export type AuditHandler = (record: AuditRecord) => void;

export interface SubscribeOptions {
  /** A durable subscription (NATS: a durable consumer of this name) that resumes where it stopped. */
  durable?: string;
  /**
   * Only events of these types, the rest filtered where they are sent from.
   * On NATS each type is a consumer of its own (the server filters by
   * subject): the events of one type keep their order, but the types may
   * interleave otherwise than they were published. Not with `durable`.
   */
  types?: readonly EventType[];
}

/** Unsubscribes; `ready` resolves once delivery has started (on NATS, on the server), for callers that must not miss the first events. */
export type Unsubscribe = (() => void) & { readonly ready: Promise<void> };

export interface Bus {
  publishEvent(envelope: EventEnvelope): void;
  subscribeEvents(handler: EventHandler, opts?: SubscribeOptions): Unsubscribe;
  publishStats(stats: SensorStatsMessage): void;
  subscribeStats(handler: StatsHandler): () => void;
  publishAudit(record: AuditRecord): void;
  subscribeAudit(handler: AuditHandler): () => void;
}

export class LocalBus implements Bus {
  private readonly handlers = new Set<EventHandler>();
  private readonly statsHandlers = new Set<StatsHandler>();
  private readonly auditHandlers = new Set<AuditHandler>();

  constructor(private readonly onHandlerError: (err: unknown) => void = (err) => { console.error('bus handler failed:', err); }) {}

  publishEvent(envelope: EventEnvelope): void {
    for (const handler of this.handlers) {
      try {
        const done = handler(envelope);
        if (done) done.catch(this.onHandlerError);
      } catch (err) {
        this.onHandlerError(err);
      }
    }
  }

  subscribeEvents(handler: EventHandler, opts: SubscribeOptions = {}): Unsubscribe {
    const types = opts.types && new Set(opts.types);
    const wanted: EventHandler = types ? (envelope) => (types.has(envelope.type) ? handler(envelope) : undefined) : handler;
    this.handlers.add(wanted);
    return Object.assign(() => { this.handlers.delete(wanted); }, { ready: Promise.resolve() });
  }

  publishStats(stats: SensorStatsMessage): void {
    this.deliver(this.statsHandlers, stats);
  }

  subscribeStats(handler: StatsHandler): () => void {
    this.statsHandlers.add(handler);
    return () => { this.statsHandlers.delete(handler); };
  }

  publishAudit(record: AuditRecord): void {
    this.deliver(this.auditHandlers, record);
  }

  subscribeAudit(handler: AuditHandler): () => void {
    this.auditHandlers.add(handler);
    return () => { this.auditHandlers.delete(handler); };
  }

  private deliver<T>(handlers: Set<(message: T) => void>, message: T): void {
    for (const handler of handlers) {
      try {
        handler(message);
      } catch (err) {
        this.onHandlerError(err);
      }
    }
  }
}

/**
 * A bus that publishes to two: a local one, whose subscribers (the sensor's
 * own gRPC streams) get events without a round trip, and a remote one (NATS)
 * for the other services. Subscriptions are served by the local bus.
 */
export class TeeBus implements Bus {
  constructor(private readonly local: Bus, private readonly remote: Bus) {}

  publishEvent(envelope: EventEnvelope): void {
    this.local.publishEvent(envelope);
    this.remote.publishEvent(envelope);
  }

  subscribeEvents(handler: EventHandler, opts?: SubscribeOptions): Unsubscribe {
    return this.local.subscribeEvents(handler, opts);
  }

  publishStats(stats: SensorStatsMessage): void {
    this.local.publishStats(stats);
    this.remote.publishStats(stats);
  }

  subscribeStats(handler: StatsHandler): () => void {
    return this.local.subscribeStats(handler);
  }

  publishAudit(record: AuditRecord): void {
    this.local.publishAudit(record);
    this.remote.publishAudit(record);
  }

  subscribeAudit(handler: AuditHandler): () => void {
    return this.local.subscribeAudit(handler);
  }
}
