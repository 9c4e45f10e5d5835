/**
 * The exporters' side of the event stream.
 *
 * Each stream message is a vigil.v1.EventBatch (event-batch.ts): its events
 * go to the handler one by one, in order.
 *
 * Durable: a pull consumer of the given name on VIGIL_EVENTS (all of
 * `vigil.events.>`, explicit acks, starting from the first stored message
 * when it is created), read in bounded pulls (`fetchMessages` messages or
 * 1 s).
 * Events are handed over in stream order; a message is acknowledged only
 * after the handler's promise resolved for each of its events (acks of a run
 * of handled messages leave in one write), so an exporter that stops or dies
 * resumes, under the same name, with the first message it had not
 * acknowledged. Stopping gives back what was fetched but not acknowledged at
 * once; what a dead exporter held comes back after the ack wait. Several
 * processes using one name share its messages.
 *
 * The guarantee is at-least-once: the events of a message exported but not
 * yet acknowledged when the exporter stops or dies (or whose ack is lost with
 * its connection), or of a message one of whose events the handler failed,
 * are delivered again, marked redelivered. Exactly-once output takes an export
 * that is idempotent per event (keyed by the event's identity: node, type,
 * exec_id, time), which is how the tests count.
 *
 * Ephemeral: an ordered consumer delivering what is stored from the moment it
 * is created; nothing is acknowledged, nothing is kept for it. Audit records
 * are read the same way.
 */
import { AckPolicy, DeliverPolicy, nanos, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';
import type { EventEnvelope, EventHandler } from '../bus.js';
import { EVENT_TYPES, eventPayload, type EventType, type GetEventsResponse } from '../event-model.js';
import { decodeMessage, MalformedMessageError } from '../tetragon-proto.js';
import { decodeEventBatch } from './event-batch.js';
import { EVENT_STREAM, EVENT_SUBJECTS, JS_CONSUMER_NOT_FOUND, jsErrorCode } from './stream.js';

export interface DurableConsumerOptions {
  /** Unacknowledged events are delivered again after this long. Default 30 s. */
  ackWaitMs?: number;
  /** Messages delivered but not yet acknowledged, at most. Default 10,000. */
  maxAckPending?: number;
  /**
   * Messages per pull of a durable subscriber. Default 8: at most 2 MiB
   * (a message holds at most 256 KiB of events). A pull's messages must be
   * read within its expiry (FETCH_EXPIRES_MS), or the client discards the
   * rest, which then comes again only after the ack wait; 2 MiB of events
   * (up to 8,000 of them) are decoded and handed on in a fraction of that.
   * Pulls are bounded in messages, not bytes: with a byte bound nats.js also
   * asks for at most 100 messages, and a pull that got those ends, on
   * nats-server 2.9, only at its expiry while its bytes are not used up (100
   * small messages took 1 s however many more waited).
   */
  fetchMessages?: number;
  /** Message bytes buffered by a subscriber without a durable name (a pull that refills). Default 1 MiB. */
  fetchBytes?: number;
  /** Delay before a message one of whose events the handler failed is delivered again. Default 1 s. */
  nakDelayMs?: number;
}

export const DEFAULT_CONSUMER_OPTIONS: Required<DurableConsumerOptions> = {
  ackWaitMs: 30_000,
  maxAckPending: 10_000,
  fetchMessages: 8,
  fetchBytes: 1024 ** 2,
  nakDelayMs: 1_000,
};

/** How long one pull waits for events; also how long a stopped durable subscriber may take to finish. */
export const FETCH_EXPIRES_MS = 1_000;
const RETRY_DELAY_MS = 1_000;
/**
 * How long a handled message's ack may wait for others to go with it. At
 * 10,000 events/s the exporter's file got one ack write per stream message
 * (~600/s) with acks sent each turn; batched this way, ~50/s.
 */
const ACK_BATCH_MS = 20;

export interface ConsumerCounters { acked: number; redelivered: number }

export interface EventSubscription {
  /**
   * Stops delivery. For a durable subscriber, the message being handled and
   * those fetched but not yet handled are given back (nak) for immediate
   * redelivery, never acknowledged afterwards.
   */
  stop(): void;
  /** Resolves once the consumer exists on the server and delivery has started; rejects if it could not. */
  readonly ready: Promise<void>;
  /** Resolves when delivery has ended after stop() (at most about FETCH_EXPIRES_MS plus the running handler). */
  readonly done: Promise<void>;
}

interface Hooks {
  log: (line: string) => void;
  counters: ConsumerCounters;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Decodes a stored event once; the envelope keeps the stored bytes. */
function toEnvelope(bytes: Uint8Array): EventEnvelope {
  const event = decodeMessage<GetEventsResponse>('tetragon.GetEventsResponse', bytes);
  return { type: eventPayload(event).type, event, bytes };
}

const EVENT_TYPE_NAMES: ReadonlySet<string> = new Set(EVENT_TYPES);

/**
 * An envelope whose type is its subject's last token (eventSubject) and whose
 * event is decoded when first read: a subscriber that looks at the type alone
 * (the enforcer's follow-ups, with no follow-up policy loaded) decodes
 * nothing. A subject without a type decodes at once.
 */
function lazyEnvelope(subject: string, bytes: Uint8Array): EventEnvelope {
  const type = subject.slice(subject.lastIndexOf('.') + 1);
  if (!EVENT_TYPE_NAMES.has(type)) return toEnvelope(bytes);
  let event: GetEventsResponse | undefined;
  return {
    type: type as EventType,
    bytes,
    fromWire: true,
    get event(): GetEventsResponse {
      event ??= decodeMessage<GetEventsResponse>('tetragon.GetEventsResponse', bytes);
      return event;
    },
  };
}

async function ensureDurableConsumer(jsm: JetStreamManager, name: string, o: Required<DurableConsumerOptions>): Promise<void> {
  const ackWait = nanos(o.ackWaitMs);
  let existing;
  try {
    existing = (await jsm.consumers.info(EVENT_STREAM, name)).config;
  } catch (err) {
    if (jsErrorCode(err) !== JS_CONSUMER_NOT_FOUND) throw err;
  }
  if (existing === undefined) {
    await jsm.consumers.add(EVENT_STREAM, {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: EVENT_SUBJECTS,
      ack_wait: ackWait,
      max_ack_pending: o.maxAckPending,
    });
  } else if (existing.ack_wait !== ackWait || existing.max_ack_pending !== o.maxAckPending) {
    await jsm.consumers.update(EVENT_STREAM, name, { ack_wait: ackWait, max_ack_pending: o.maxAckPending });
  }
}

function deferredReady(): { ready: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const ready = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  // Awaiting `ready` is optional; a failure is logged either way.
  ready.catch(() => {});
  return { ready, resolve, reject };
}

export function consumeDurable(
  js: JetStreamClient, jsm: JetStreamManager, durable: string, handler: EventHandler,
  opts: Required<DurableConsumerOptions>, hooks: Hooks,
): EventSubscription {
  const { ready, resolve, reject } = deferredReady();
  let stopped = false;
  /** Handed to the handler, not yet done: acknowledged when it is, given back by stop(). */
  const inHand = new Set<JsMsg>();
  // Acks of handled messages go out together, ACK_BATCH_MS after the first
  // of them: one socket write (and one read by the server) for the lot
  // instead of one each. Nothing waits on an ack but the ack wait.
  let toAck: { m: JsMsg; events: number }[] = [];
  let ackTimer: NodeJS.Timeout | undefined;
  const flushAcks = (): void => {
    clearTimeout(ackTimer);
    ackTimer = undefined;
    const handled = toAck;
    toAck = [];
    for (const { m, events } of handled) {
      m.ack();
      hooks.counters.acked += events;
    }
  };

  /**
   * Hands a message's events to the handler, in stream order, without waiting
   * for one to be done before the next (an exporter's write of a line
   * completes later, for many lines at once); resolves when the message is
   * done: acknowledged, or given back.
   */
  const handle = (m: JsMsg): Promise<void> | undefined => {
    if (stopped) {
      m.nak();
      return undefined;
    }
    let events: Uint8Array[];
    try {
      events = decodeEventBatch(m.data);
    } catch (err) {
      // Redelivering a message that cannot be read cannot help.
      m.term();
      hooks.log(`${durable}: ${unreadableMessage(m, err)}`);
      return undefined;
    }
    if (m.redelivered) hooks.counters.redelivered += events.length;
    // An event that does not decode (found when the envelope is made or when the handler decodes it) is passed over.
    const skip = (i: number, err: MalformedMessageError): void => hooks.log(`${durable}: ${unreadableEvent(m, i, err)}`);
    inHand.add(m);
    const failed = (err: unknown): void => {
      // Given back by stop() already, or failed: delivered again either way.
      if (!inHand.delete(m)) return;
      m.nak(opts.nakDelayMs);
      hooks.log(`${durable}: event handler failed, the ${events.length} events of stream message ${m.seq} will be delivered again: ${message(err)}`);
    };
    const pending: Promise<void>[] = [];
    for (const [i, bytes] of events.entries()) {
      if (stopped) return undefined; // stop() inside the handler gave the message back
      let result: void | Promise<void>;
      try {
        result = handler(lazyEnvelope(m.subject, bytes));
      } catch (err) {
        if (err instanceof MalformedMessageError) {
          skip(i, err);
          continue;
        }
        failed(err);
        return undefined;
      }
      if (result !== undefined) {
        pending.push(result.catch((err: unknown) => {
          if (!(err instanceof MalformedMessageError)) throw err;
          skip(i, err);
        }));
      }
    }
    return Promise.all(pending).then(() => {
      if (!inHand.delete(m)) return; // stop() gave it back while the handler ran
      if (toAck.push({ m, events: events.length }) === 1) ackTimer = setTimeout(flushAcks, ACK_BATCH_MS);
    }, failed);
  };

  const run = async (): Promise<void> => {
    await ensureDurableConsumer(jsm, durable, opts);
    const consumer = await js.consumers.get(EVENT_STREAM, durable);
    resolve();
    // Bounded fetches rather than an endless consume(): after stop() the
    // current fetch is still read to its end and what it brings is given
    // back, so nothing is left delivered-but-unseen until the ack wait.
    while (!stopped) {
      try {
        const fetched = await consumer.fetch({ max_messages: opts.fetchMessages, expires: FETCH_EXPIRES_MS });
        // A fetch's messages are handled together; the next fetch waits for them (at most a fetch in hand).
        const handling: Promise<void>[] = [];
        for await (const m of fetched) {
          const done = handle(m);
          if (done !== undefined) handling.push(done);
        }
        await Promise.all(handling);
      } catch (err) {
        if (stopped) break;
        hooks.log(`${durable}: fetching events failed, retrying: ${message(err)}`);
        await new Promise((res) => setTimeout(res, RETRY_DELAY_MS));
        // It may have been deleted under us.
        await ensureDurableConsumer(jsm, durable, opts).catch(() => {});
      }
    }
  };
  const done = run().catch((err: unknown) => {
    reject(err);
    hooks.log(`${durable}: cannot consume events: ${message(err)}`);
  });

  return {
    ready,
    done,
    stop: () => {
      stopped = true;
      flushAcks();
      for (const m of inHand) m.nak();
      inHand.clear();
    },
  };
}

/**
 * What `stream` stores under `filter` from now on, through an ordered
 * consumer, each message passed to `deliver` in order; failures are reported.
 */
export function consumeFromNow(
  js: JetStreamClient, stream: string, filter: string, deliver: (m: JsMsg) => void | Promise<void>,
  fetchBytes: number, log: (line: string) => void,
): EventSubscription {
  const { ready, resolve, reject } = deferredReady();
  let stopped = false;
  let messages: ConsumerMessages | undefined;

  const run = async (): Promise<void> => {
    const consumer = await js.consumers.get(stream, { filterSubjects: filter, deliver_policy: DeliverPolicy.New });
    messages = await consumer.consume({ max_bytes: fetchBytes });
    if (stopped) messages.stop();
    resolve();
    for await (const m of messages) {
      if (stopped) break;
      try {
        await deliver(m);
      } catch (err) {
        log(`${m.subject}: handler failed: ${message(err)}`);
      }
    }
  };
  const done = run().catch((err: unknown) => {
    reject(err);
    log(`cannot consume ${stream}: ${message(err)}`);
  });

  return {
    ready,
    done,
    stop: () => {
      stopped = true;
      messages?.stop();
    },
  };
}

/**
 * Events stored from now on under `filter` (see consumeFromNow), each
 * message's in order; what cannot be read is skipped, as the durable
 * consumer skips it.
 */
export function consumeEventsFromNow(
  js: JetStreamClient, handler: EventHandler, fetchBytes: number, log: (line: string) => void, filter = EVENT_SUBJECTS,
): EventSubscription {
  return consumeFromNow(js, EVENT_STREAM, filter, async (m) => {
    let events: Uint8Array[];
    try {
      events = decodeEventBatch(m.data);
    } catch (err) {
      log(`${m.subject}: ${unreadableMessage(m, err)}`);
      return;
    }
    // One event's failure is its own: the message's other events are still handled.
    const outcomes = await Promise.allSettled(events.map(async (bytes) => handler(lazyEnvelope(m.subject, bytes))));
    for (const [i, o] of outcomes.entries()) {
      if (o.status === 'fulfilled') continue;
      log(`${m.subject}: ${o.reason instanceof MalformedMessageError ? unreadableEvent(m, i, o.reason)
        : `handler failed on event ${i} of stream message ${m.seq}: ${message(o.reason)}`}`);
    }
  }, fetchBytes, log);
}

/** The log line of a stream message that is not an EventBatch, and of an event in one that does not decode: both are skipped. */
const unreadableMessage = (m: JsMsg, err: unknown): string => `stream message ${m.seq} is not a vigil.v1.EventBatch, skipped: ${message(err)}`;
const unreadableEvent = (m: JsMsg, i: number, err: MalformedMessageError): string =>
  `event ${i} of stream message ${m.seq} is not a tetragon.GetEventsResponse, skipped: ${err.message}`;
