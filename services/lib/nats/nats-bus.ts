/**
 * The bus of the split shape (`vigil sensor|enforcer|exporter`): events and
 * audit records on NATS JetStream, stats on core NATS.
 *
 * - publishEvent: the envelope's bytes, as encoded by the sensor, to
 *   `vigil.events.<node>.<type>` in stream VIGIL_EVENTS. Consecutive events
 *   of one type published in one go (the sensor's events of one ring batch)
 *   travel as one message, a vigil.v1.EventBatch (event-batch.ts) of at most
 *   MAX_BATCH_EVENTS events and MAX_BATCH_BYTES, sent once the caller's
 *   synchronous run ends: no event waits for later ones, and the order on the
 *   stream is the order of publishEvent. Each message has a Nats-Msg-Id (its
 *   first event's, see EventMsgIds, and its count) so resends are stored
 *   once; pipelined and buffered through NATS outages (see
 *   JetStreamPublisher).
 * - subscribeEvents: with `durable`, a durable consumer that resumes where it
 *   stopped, acknowledging each message once the handler resolved for all of
 *   its events; without, the events stored from now on (see consumer.ts).
 * - publishStats/subscribeStats: JSON on `vigil.stats.<node>`, core NATS:
 *   stats are periodic snapshots, so one lost while disconnected is replaced
 *   by the next.
 * - publishAudit/subscribeAudit: JSON on `vigil.audit.<node>` in stream
 *   VIGIL_AUDIT, published like events (acknowledged, buffered, deduplicated),
 *   so the trail is kept even with no subscriber; subscribers get the records
 *   stored from when they subscribe.
 */
import { Events, connect, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import type { AuditHandler, AuditRecord, Bus, EventEnvelope, EventHandler, SensorStatsMessage, StatsHandler, SubscribeOptions, Unsubscribe } from '../bus.js';
import { EVENT_TYPES, type EventType } from '../event-model.js';
import {
  DEFAULT_CONSUMER_OPTIONS, consumeDurable, consumeEventsFromNow, consumeFromNow,
  type ConsumerCounters, type DurableConsumerOptions, type EventSubscription,
} from './consumer.js';
import { encodeEventBatch } from './event-batch.js';
import { JetStreamPublisher } from './publisher.js';
import {
  AUDIT_STREAM, AUDIT_SUBJECTS, EVENT_STREAM, EVENT_SUBJECTS, EventMsgIds, STATS_SUBJECTS,
  auditSubject, ensureStream, eventSubject, eventTypeFilter, statsSubject, streamConfig, type StreamLimits,
} from './stream.js';

const encoder = new TextEncoder();

/** Events in one message of the event stream, at most. */
export const MAX_BATCH_EVENTS = 1000;
/**
 * Event bytes in one message, at most (a larger event travels alone): a
 * quarter of nats-server's default max_payload, and never more than half of
 * the connected server's.
 */
export const MAX_BATCH_BYTES = 256 * 1024;

/** Consecutive events of one type waiting to leave as one message. */
interface EventRun { readonly type: EventType; readonly msgId: string; readonly events: Uint8Array[]; bytes: number }

export interface NatsBusOptions {
  /** Server URLs, comma-separated (nats://host:4222,...). */
  servers: string;
  /** This node's name: the subject token of what it publishes. */
  node: string;
  stream?: StreamLimits;
  /** Event payload bytes held while NATS is unreachable or behind; past it events are dropped and counted. Default 64 MiB. */
  maxPendingBytes?: number;
  /** Publishes awaiting JetStream's acknowledgement at once. Default 2048. */
  maxInFlight?: number;
  /** A publish unacknowledged after this long is sent again. Default 5 s. */
  publishTimeoutMs?: number;
  /** Settings of durable consumers this bus creates. */
  consumer?: DurableConsumerOptions;
  /** How long close() waits for pending events to be stored. Default 10 s. */
  closeTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface NatsBusStats {
  /** Events JetStream acknowledged. */
  published: number;
  /** Events dropped: buffer full, refused, or still pending at close. */
  publishDropped: number;
  /** Audit records dropped, likewise. */
  auditDropped: number;
  /** Payload bytes queued or awaiting acknowledgement. */
  pendingBytes: number;
  reconnects: number;
  /** Events acknowledged by this bus's durable subscribers. */
  acked: number;
  /** Events that durable subscribers received again (after a failure or a restart). */
  redelivered: number;
}


export class NatsBus implements Bus {
  private readonly js: JetStreamClient;
  private readonly publisher: JetStreamPublisher;
  private readonly auditPublisher: JetStreamPublisher;
  private auditSeq = 0;
  private readonly ids: EventMsgIds;
  private readonly subjects: Map<EventType, string>;
  private readonly statsSubject: string;
  private readonly auditSubject: string;
  private readonly subscriptions = new Set<EventSubscription>();
  private run: EventRun | undefined;
  private readonly maxBatchBytes: number;
  private runFlushScheduled = false;
  private readonly counters: ConsumerCounters = { acked: 0, redelivered: 0 };
  private readonly consumerOptions: Required<DurableConsumerOptions>;
  private readonly log: (line: string) => void;
  private reconnects = 0;
  private closing: Promise<void> | undefined;

  /** Connects (failing if no server answers), then creates or updates the event stream. Afterwards it reconnects forever. */
  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    const nc = await connect({
      servers: opts.servers.split(',').map((s) => s.trim()).filter((s) => s !== ''),
      name: `vigil ${opts.node}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // Stack traces captured per request cost more than the request on the hot path.
      noAsyncTraces: true,
    });
    try {
      const jsm = await nc.jetstreamManager();
      await ensureStream(jsm, streamConfig(EVENT_STREAM, EVENT_SUBJECTS, opts.stream));
      await ensureStream(jsm, streamConfig(AUDIT_STREAM, AUDIT_SUBJECTS, opts.stream));
      return new NatsBus(nc, jsm, opts);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  private constructor(readonly connection: NatsConnection, private readonly jsm: JetStreamManager, private readonly opts: NatsBusOptions) {
    this.log = opts.log ?? ((line) => console.error(`nats bus: ${line}`));
    this.js = connection.jetstream();
    this.ids = new EventMsgIds(opts.node);
    this.maxBatchBytes = Math.min(MAX_BATCH_BYTES, Math.floor((connection.info?.max_payload ?? Infinity) / 2));
    this.subjects = new Map(EVENT_TYPES.map((type) => [type, eventSubject(opts.node, type)]));
    this.statsSubject = statsSubject(opts.node);
    this.auditSubject = auditSubject(opts.node);
    this.consumerOptions = { ...DEFAULT_CONSUMER_OPTIONS, ...opts.consumer };
    const publisherOptions = {
      maxPendingBytes: opts.maxPendingBytes ?? 64 * 1024 ** 2,
      maxInFlight: opts.maxInFlight ?? 2048,
      ackTimeoutMs: opts.publishTimeoutMs ?? 5_000,
      log: this.log,
    };
    this.publisher = new JetStreamPublisher(connection, {
      ...publisherOptions,
      repair: () => ensureStream(jsm, streamConfig(EVENT_STREAM, EVENT_SUBJECTS, opts.stream)),
    });
    this.auditPublisher = new JetStreamPublisher(connection, {
      ...publisherOptions,
      log: (line) => this.log(`audit: ${line}`),
      repair: () => ensureStream(jsm, streamConfig(AUDIT_STREAM, AUDIT_SUBJECTS, opts.stream)),
    });
    void this.watchStatus();
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.connection.status()) {
      if (s.type === Events.Disconnect) {
        this.log(`disconnected from ${String(s.data)}`);
        this.publisher.disconnected();
        this.auditPublisher.disconnected();
      } else if (s.type === Events.Reconnect) {
        this.reconnects++;
        this.log(`reconnected to ${String(s.data)}`);
        this.publisher.reconnected();
        this.auditPublisher.reconnected();
      } else if (s.type === Events.Error) {
        this.log(`connection error: ${String(s.data)}`);
      }
    }
  }

  publishEvent(envelope: EventEnvelope): void {
    const size = envelope.bytes.byteLength;
    const run = this.run;
    if (run !== undefined && (run.type !== envelope.type || run.events.length === MAX_BATCH_EVENTS || run.bytes + size > this.maxBatchBytes)) this.flushRun();
    if (this.run === undefined) {
      this.run = { type: envelope.type, msgId: this.ids.idOf(envelope), events: [], bytes: 0 };
      if (!this.runFlushScheduled) {
        this.runFlushScheduled = true;
        queueMicrotask(() => {
          this.runFlushScheduled = false;
          this.flushRun();
        });
      }
    }
    this.run.events.push(envelope.bytes);
    this.run.bytes += size;
  }

  private flushRun(): void {
    const run = this.run;
    if (run === undefined) return;
    this.run = undefined;
    this.publisher.enqueue(this.subjects.get(run.type)!, encodeEventBatch(run.events), `${run.msgId}.${run.events.length}`, run.events.length);
  }

  subscribeEvents(handler: EventHandler, opts: SubscribeOptions = {}): Unsubscribe {
    if (opts.durable !== undefined && opts.types !== undefined) throw new Error('a durable subscription takes every event type');
    const fromNow = (filter?: string): EventSubscription => consumeEventsFromNow(this.js, handler, this.consumerOptions.fetchBytes, this.log, filter);
    const sub = opts.durable !== undefined
      ? consumeDurable(this.js, this.jsm, opts.durable, handler, this.consumerOptions, { log: this.log, counters: this.counters })
      : opts.types === undefined ? fromNow() : allOf(opts.types.map((type) => fromNow(eventTypeFilter(type))));
    return this.track(sub);
  }

  /** Subscriptions stay known until their delivery has ended, so close() waits for a stopped one to give back its events. */
  private track(sub: EventSubscription): Unsubscribe {
    this.subscriptions.add(sub);
    void sub.done.finally(() => this.subscriptions.delete(sub));
    return Object.assign(() => sub.stop(), { ready: sub.ready });
  }

  publishStats(stats: SensorStatsMessage): void {
    try {
      this.connection.publish(this.statsSubject, JSON.stringify(stats));
    } catch (err) {
      this.log(`cannot publish stats: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  subscribeStats(handler: StatsHandler): () => void {
    const sub = this.connection.subscribe(STATS_SUBJECTS, {
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          handler(msg.json<SensorStatsMessage>());
        } catch (e) {
          this.log(`stats from ${msg.subject}: ${e instanceof Error ? e.message : String(e)}`);
        }
      },
    });
    return () => sub.unsubscribe();
  }

  publishAudit(record: AuditRecord): void {
    const id = `${this.auditSubject}.${record.time}.${this.auditSeq++}`;
    this.auditPublisher.enqueue(this.auditSubject, encoder.encode(JSON.stringify(record)), id);
  }

  subscribeAudit(handler: AuditHandler): Unsubscribe {
    const sub = consumeFromNow(this.js, AUDIT_STREAM, AUDIT_SUBJECTS, (m) => handler(m.json<AuditRecord>()), this.consumerOptions.fetchBytes, this.log);
    return this.track(sub);
  }

  stats(): NatsBusStats {
    return {
      published: this.publisher.published,
      publishDropped: this.publisher.dropped,
      auditDropped: this.auditPublisher.dropped,
      pendingBytes: this.publisher.pendingBytes,
      reconnects: this.reconnects,
      acked: this.counters.acked,
      redelivered: this.counters.redelivered,
    };
  }

  /**
   * Waits for pending events to be stored (at most closeTimeoutMs; the rest
   * count as dropped), stops subscribers and waits for them to finish (giving
   * back what they have not acknowledged), then drains the connection so
   * acknowledgements reach the server before it closes.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const timeoutMs = this.opts.closeTimeoutMs ?? 10_000;
      // Neither an unreachable server nor a hung handler may hold close() forever.
      const bounded = async (work: Promise<unknown>): Promise<void> => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([work, new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs); })]);
        clearTimeout(timer);
      };
      this.flushRun();
      await Promise.all([this.publisher.close(timeoutMs), this.auditPublisher.close(timeoutMs)]);
      const subs = [...this.subscriptions];
      this.subscriptions.clear();
      for (const sub of subs) sub.stop();
      await bounded(Promise.all(subs.map((sub) => sub.done)));
      if (this.connection.isClosed()) return;
      await bounded(this.connection.drain().catch(() => {}));
      if (!this.connection.isClosed()) await this.connection.close();
    })();
    return this.closing;
  }
}

/** Several subscriptions as one: ready when all are, done when all are, stopped together. */
function allOf(subs: EventSubscription[]): EventSubscription {
  return {
    ready: Promise.all(subs.map((s) => s.ready)).then(() => undefined),
    done: Promise.all(subs.map((s) => s.done)).then(() => undefined),
    stop: () => { for (const s of subs) s.stop(); },
  };
}
