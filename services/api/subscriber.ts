/**
 * One GetEvents stream and its own bounded queue. Events are offered
 * synchronously from the bus; a subscriber never blocks the bus or the other
 * subscribers:
 *
 * - while grpc accepts writes (write() returned true), an event is written
 *   at once and counts as sent;
 * - once write() returns false (the stream is backed up: the client reads
 *   slowly or not at all), events wait in the queue until 'drain';
 * - past `maxQueue` queued events, or when an event would take the queued
 *   bytes past `maxQueueBytes`, new events are dropped and counted (Tetragon
 *   also drops when a listener's channel is full).
 *
 * So, for every subscriber, sent + dropped + queued = events offered.
 *
 * The queue holds references, never copies: subscribers whose field filters
 * are the same hold the same bytes (shared-encodings.ts), so their queues'
 * bytes are counted against each one's bound but exist once in memory. On
 * close the queue is let go at once.
 */
import type * as grpc from '@grpc/grpc-js';

export interface SubscriberStats { id: string; peer: string; sent: number; dropped: number; queued: number; queuedBytes: number }

/** Default bound on a subscriber's queued bytes: 8 MiB. */
export const DEFAULT_MAX_QUEUE_BYTES = 8 * 1024 * 1024;

export class Subscriber {
  sent = 0;
  dropped = 0;
  readonly peer: string;
  private queue: (Uint8Array | undefined)[] = [];
  private head = 0;
  private bytesQueued = 0;
  private writable = true;
  private closed = false;

  constructor(
    readonly id: string,
    private readonly call: grpc.ServerWritableStream<unknown, unknown>,
    private readonly maxQueue: number,
    private readonly maxQueueBytes: number = DEFAULT_MAX_QUEUE_BYTES,
  ) {
    this.peer = call.getPeer();
    call.on('drain', () => this.flush());
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Bytes of the events waiting in the queue. */
  get queuedBytes(): number {
    return this.bytesQueued;
  }

  /** Takes an encoded tetragon.GetEventsResponse. */
  offer(bytes: Uint8Array): void {
    if (this.closed) return;
    if (this.writable && this.queued === 0) {
      this.write(bytes);
    } else if (this.queued < this.maxQueue && this.bytesQueued + bytes.length <= this.maxQueueBytes) {
      this.queue.push(bytes);
      this.bytesQueued += bytes.length;
    } else {
      this.dropped++;
    }
  }

  stats(): SubscriberStats {
    return { id: this.id, peer: this.peer, sent: this.sent, dropped: this.dropped, queued: this.queued, queuedBytes: this.bytesQueued };
  }

  /** Stops taking events and forgets the queue (the stream is gone or going). */
  close(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.bytesQueued = 0;
  }

  private write(bytes: Uint8Array): void {
    this.sent++;
    this.writable = this.call.write(bytes);
  }

  private flush(): void {
    this.writable = true;
    while (this.writable && this.head < this.queue.length) {
      const bytes = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      this.bytesQueued -= bytes.length;
      this.write(bytes);
    }
    // Reclaim the consumed front of the array without copying on every drain.
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
