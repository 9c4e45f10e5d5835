/**
 * The sensor's side of the event stream: a pipelined JetStream publisher.
 *
 * `enqueue` is synchronous and cheap (the sensor's hot path). Sending happens
 * on a microtask: each event goes out as a core-NATS publish with a reply
 * subject of our own (`<inbox>.<token>`), so up to `maxInFlight` publish
 * acknowledgements are outstanding at once and are matched by token from a
 * single inbox subscription. That is 2–3× the rate of awaiting
 * `js.publish()` promises (one request object and timer each).
 *
 * A message may carry several events (an EventBatch); the counters
 * (published, dropped) count events.
 *
 * Delivery: an event counts as published when JetStream acknowledges it
 * (stored, or recognised as a duplicate of a stored copy by its Nats-Msg-Id).
 * While the connection is down, or after a failed or unanswered publish,
 * everything unacknowledged goes back to the head of the queue in its
 * original order and is sent again, with the same Nats-Msg-Id, so a copy the
 * server had stored before the failure is dropped by its duplicate window
 * (a resend later than the window could store a second copy). The queue,
 * acknowledged-pending included, is bounded by `maxPendingBytes` of payload;
 * events past it are dropped and counted, never silently lost. Order on the
 * stream is the order of `enqueue`, except when one publish fails while later
 * ones in the same window succeed: it is then stored after them.
 */
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from 'nats';

export interface PublisherOptions {
  maxPendingBytes: number;
  maxInFlight: number;
  /** A publish without an acknowledgement after this long is sent again. */
  ackTimeoutMs: number;
  log: (line: string) => void;
  /** Recreates the stream if it is gone; called before resending after JetStream had no responders. */
  repair: () => Promise<void>;
}

interface Item {
  /** Enqueue order, to put retried items back in place. */
  readonly seq: number;
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly msgId: string;
  /** Events the payload carries. */
  readonly events: number;
}

interface Sent { readonly item: Item; readonly sentAt: number }

type Outcome = { ok: true } | { ok: false; retry: boolean; reason: string; noResponders: boolean };

const MSG_ID = 'Nats-Msg-Id';
const MAX_RETRY_DELAY_MS = 5_000;
const decoder = new TextDecoder();

/** What JetStream's answer to a publish says: a PubAck `{stream, seq, duplicate?}`, an API error, or a status (503: no responders). */
function outcomeOf(msg: Msg): Outcome {
  const h = msg.headers;
  if (h?.hasError) {
    const noResponders = h.code === 503;
    return { ok: false, retry: true, reason: noResponders ? 'no responders: JetStream or the stream is unavailable' : `${h.code} ${h.description}`, noResponders };
  }
  let ack: { seq?: unknown; error?: { code?: number; description?: string } };
  try {
    ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
  } catch {
    return { ok: false, retry: true, reason: 'unreadable publish acknowledgement', noResponders: false };
  }
  if (ack.error !== undefined) {
    // 5xx are the server's state (no leader, storage unavailable) and pass; 4xx concern the message itself.
    const code = ack.error.code ?? 500;
    return { ok: false, retry: code >= 500, reason: `${code} ${ack.error.description ?? ''}`, noResponders: false };
  }
  if (typeof ack.seq !== 'number') return { ok: false, retry: true, reason: 'publish acknowledgement without a sequence', noResponders: false };
  return { ok: true };
}

/** A FIFO that can take items back at its head. */
class Queue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number { return this.items.length - this.head; }

  push(item: T): void { this.items.push(item); }

  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    // Compact once the consumed prefix dominates, keeping shift O(1) amortized.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  unshiftAll(items: T[]): void {
    this.items = [...items, ...this.items.slice(this.head)];
    this.head = 0;
  }

  clear(): void { this.items = []; this.head = 0; }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }
}

export class JetStreamPublisher {
  published = 0;
  dropped = 0;
  /** Payload bytes queued or awaiting acknowledgement. */
  pendingBytes = 0;

  private readonly queue = new Queue<Item>();
  /** By reply token; tokens only grow, so iteration order is send order. */
  private readonly inFlight = new Map<number, Sent>();
  private readonly replyPrefix: string;
  private readonly acks: Subscription;
  private readonly sweep: NodeJS.Timeout;
  private nextToken = 0;
  private nextSeq = 0;
  private connected = true;
  private closed = false;
  private pumpScheduled = false;
  /** Sending waits for a retry round (its backoff, and a stream repair). */
  private paused = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Identifies the retry round, so that a round cut short by a reconnect cannot end a later one. */
  private retryRound = 0;
  /** Consecutive failed rounds, for backoff and for logging a failure streak once. */
  private failures = 0;
  private dropStreak = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly nc: NatsConnection, private readonly opts: PublisherOptions) {
    this.replyPrefix = `${createInbox()}.`;
    this.acks = nc.subscribe(`${this.replyPrefix}*`, {
      callback: (err, msg) => { if (err === null) this.onAnswer(msg); },
    });
    const every = Math.max(50, Math.min(1000, opts.ackTimeoutMs / 2));
    this.sweep = setInterval(() => this.checkTimeouts(), every);
    this.sweep.unref();
  }

  /** Queues one message carrying `events` events. */
  enqueue(subject: string, payload: Uint8Array, msgId: string, events = 1): void {
    const size = payload.byteLength;
    if (this.closed || this.pendingBytes + size > this.opts.maxPendingBytes) {
      if (this.dropStreak === 0) {
        this.opts.log(this.closed ? 'event published after close: dropped'
          : `publish buffer full (${this.pendingBytes} bytes waiting for NATS, limit ${this.opts.maxPendingBytes}): dropping events`);
      }
      this.dropStreak += events;
      this.dropped += events;
      return;
    }
    if (this.dropStreak > 0) {
      this.opts.log(`publish buffer has room again; ${this.dropStreak} events were dropped`);
      this.dropStreak = 0;
    }
    this.queue.push({ seq: this.nextSeq++, subject, payload, msgId, events });
    this.pendingBytes += size;
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      queueMicrotask(() => this.pump());
    }
  }

  /** The connection dropped: nothing in flight will be answered; send it all again after reconnecting. */
  disconnected(): void {
    this.connected = false;
    this.requeueInFlight([]);
  }

  /** Back online: resend at once rather than after the rest of a backoff begun while disconnected. */
  reconnected(): void {
    this.connected = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.resume(this.retryRound);
  }

  /**
   * Waits until everything enqueued is acknowledged, at most `timeoutMs`;
   * what is still pending then is counted as dropped. Later events are dropped.
   */
  async close(timeoutMs: number): Promise<void> {
    if (!this.idle()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); }),
      ]);
      clearTimeout(timer);
    }
    this.closed = true;
    clearInterval(this.sweep);
    clearTimeout(this.retryTimer);
    let left = 0;
    for (const item of this.queue) left += item.events;
    for (const sent of this.inFlight.values()) left += sent.item.events;
    if (left > 0) {
      this.opts.log(`closing with ${left} events not acknowledged by JetStream after ${timeoutMs} ms: counted as dropped`);
      this.dropped += left;
      this.queue.clear();
      this.inFlight.clear();
      this.pendingBytes = 0;
    }
    this.acks.unsubscribe();
  }

  private idle(): boolean {
    return this.queue.length === 0 && this.inFlight.size === 0;
  }

  private pump(): void {
    this.pumpScheduled = false;
    if (!this.connected || this.closed || this.paused) return;
    const now = Date.now();
    while (this.inFlight.size < this.opts.maxInFlight) {
      const item = this.queue.shift();
      if (item === undefined) break;
      const token = ++this.nextToken;
      this.inFlight.set(token, { item, sentAt: now });
      const h = headers();
      h.set(MSG_ID, item.msgId);
      try {
        this.nc.publish(item.subject, item.payload, { reply: this.replyPrefix + token, headers: h });
      } catch (err) {
        this.inFlight.delete(token);
        if (this.nc.isClosed()) {
          // Closed for good (not reconnecting): keep it queued, close() accounts for it.
          this.queue.unshiftAll([item]);
          return;
        }
        // Refused by the client itself (e.g. larger than the server's max_payload): it can never be sent.
        this.opts.log(`message ${item.msgId} (${item.events} events) cannot be published, dropped: ${err instanceof Error ? err.message : String(err)}`);
        this.dropped += item.events;
        this.settled(item);
      }
    }
  }

  private onAnswer(msg: Msg): void {
    const token = Number(msg.subject.slice(this.replyPrefix.length));
    const sent = this.inFlight.get(token);
    // An attempt already given up on (timeout, disconnect): its resend answers for it.
    if (sent === undefined) return;
    this.inFlight.delete(token);
    const outcome = outcomeOf(msg);
    if (outcome.ok) {
      if (this.failures > 0) {
        this.opts.log('publishing to JetStream resumed');
        this.failures = 0;
      }
      this.published += sent.item.events;
      this.settled(sent.item);
      this.pump();
    } else if (outcome.retry) {
      this.retryLater(outcome.reason, [sent.item], outcome.noResponders);
    } else {
      this.opts.log(`JetStream refused message ${sent.item.msgId} (${sent.item.events} events), dropped: ${outcome.reason}`);
      this.dropped += sent.item.events;
      this.settled(sent.item);
      this.pump();
    }
  }

  private settled(item: Item): void {
    this.pendingBytes -= item.payload.byteLength;
    if (this.idleWaiters.length > 0 && this.idle()) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private checkTimeouts(): void {
    const oldest = this.inFlight.values().next();
    if (!oldest.done && Date.now() - oldest.value.sentAt > this.opts.ackTimeoutMs) {
      this.retryLater(`no acknowledgement within ${this.opts.ackTimeoutMs} ms`, [], false);
    }
  }

  /** Puts `items` and everything in flight back at the head of the queue, in enqueue order. */
  private requeueInFlight(items: Item[]): number {
    for (const sent of this.inFlight.values()) items.push(sent.item);
    this.inFlight.clear();
    items.sort((a, b) => a.seq - b.seq);
    this.queue.unshiftAll(items);
    return items.length;
  }

  private retryLater(reason: string, items: Item[], repair: boolean): void {
    const count = this.requeueInFlight(items);
    if (this.paused) return;
    if (this.failures === 0) this.opts.log(`publishing to JetStream failed (${reason}); resending ${count} messages`);
    const delay = Math.min(100 * 2 ** Math.min(this.failures, 6), MAX_RETRY_DELAY_MS);
    this.failures++;
    this.paused = true;
    const round = ++this.retryRound;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      // A repair request sent while disconnected would only time out; after reconnecting, a 503 asks again.
      if (!repair || !this.connected) return this.resume(round);
      this.opts.repair().catch((err: unknown) => {
        this.opts.log(`cannot ensure stream: ${err instanceof Error ? err.message : String(err)}`);
      }).finally(() => this.resume(round));
    }, delay);
  }

  private resume(round: number): void {
    if (round !== this.retryRound) return;
    this.retryRound++;
    this.paused = false;
    this.pump();
  }
}
