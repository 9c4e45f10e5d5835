/**
 * One GetEvents stream and its own bounded queue. Events are offered
 * synchronously from the bus; a subscriber never blocks the bus or the other
 * subscribers:
 *
 * - while the bytes handed to HTTP/2 and not yet written out (in flight) are
 *   under the subscriber's window, an event is sent at once and counts as
 *   sent;
 * - past it (the client reads slowly or not at all), events wait in the
 *   queue until sends complete;
 * - past `maxQueue` queued events, or when an event would take the queued
 *   bytes past `maxQueueBytes`, new events are dropped and counted (Tetragon
 *   also drops when a listener's channel is full).
 *
 * Sending: grpc-js's write() goes through an object-mode Writable that lets
 * one message reach HTTP/2 per event-loop turn (each waits for the previous
 * one's socket write), so a turn busy with a burst sent one event a turn. The
 * ServerWritableStream's own call (`call.call`, grpc-js 1.14) queues each
 * message on the HTTP/2 stream directly: many go out in one socket write.
 * The window starts at 128 KiB and doubles, up to 4 MiB, each time the client
 * took a window's worth, so a client that keeps reading gets large windows
 * and one that stops holds little (in-flight messages are grpc-js's framed
 * copies, not shared). Without that call (another grpc-js), write()
 * and 'drain' serve as before; test/unit/grpc-server.test.ts fails if it goes.
 *
 * One socket write a turn: the HTTP/2 stream under that call (grpc-js 1.14,
 * no server interceptors) is corked at a turn's first message and uncorked
 * once the turn's work is done (process.nextTick runs after the current
 * callback), so every message of a ring batch leaves in one writev. Uncorked,
 * the first message of a turn went out alone and the rest together after it:
 * two socket writes a batch, each paying loopback TCP's receive path as well.
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

/** What grpc-js's ServerWritableStream writes to: one framed message on the HTTP/2 stream, `done` once written out. */
export interface MessageSink { sendMessage(message: Uint8Array, done: () => void): void }

/** The call under a grpc-js ServerWritableStream, when it has one (grpc-js 1.14's `call`). */
export function messageSinkOf(call: grpc.ServerWritableStream<unknown, unknown>): MessageSink | undefined {
  const inner = (call as unknown as { call?: Partial<MessageSink> }).call;
  return typeof inner?.sendMessage === 'function' ? (inner as MessageSink) : undefined;
}

/** A Writable's cork, as Node's Http2Stream has it. */
interface Corkable { cork(): void; uncork(): void }

/** The HTTP/2 stream under a grpc-js call (grpc-js 1.14's `call.stream`, when no interceptor wraps the call). */
export function corkableStreamOf(call: grpc.ServerWritableStream<unknown, unknown>): Corkable | undefined {
  const stream = (call as unknown as { call?: { stream?: Partial<Corkable> } }).call?.stream;
  return typeof stream?.cork === 'function' && typeof stream.uncork === 'function' ? (stream as Corkable) : undefined;
}

const FIRST_WINDOW_BYTES = 128 * 1024;
const MAX_WINDOW_BYTES = 4 * 1024 * 1024;

export class Subscriber {
  sent = 0;
  dropped = 0;
  readonly peer: string;
  private queue: (Uint8Array | undefined)[] = [];
  private head = 0;
  private bytesQueued = 0;
  private writable = true;
  private closed = false;
  private readonly sink: MessageSink | undefined;
  private readonly stream: Corkable | undefined;
  private corked = false;
  private inFlightBytes = 0;
  private windowBytes = FIRST_WINDOW_BYTES;
  private writtenSinceGrowth = 0;

  constructor(
    readonly id: string,
    private readonly call: grpc.ServerWritableStream<unknown, unknown>,
    private readonly maxQueue: number,
    private readonly maxQueueBytes: number = DEFAULT_MAX_QUEUE_BYTES,
  ) {
    this.peer = call.getPeer();
    this.sink = messageSinkOf(call);
    this.stream = this.sink && corkableStreamOf(call);
    if (this.sink === undefined) call.on('drain', () => this.flush());
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
    if (this.sink === undefined) {
      this.writable = this.call.write(bytes);
      return;
    }
    this.inFlightBytes += bytes.length;
    if (this.stream && !this.corked) {
      this.corked = true;
      this.stream.cork();
      process.nextTick(this.uncork);
    }
    this.sink.sendMessage(bytes, () => this.written(bytes.length));
    this.writable = this.inFlightBytes < this.windowBytes;
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.stream!.uncork();
  };

  private written(bytes: number): void {
    this.inFlightBytes -= bytes;
    // Grown by what the client took, not by moments with nothing in flight: a stalled client
    // took its HTTP/2 window's worth at most and keeps the first window.
    this.writtenSinceGrowth += bytes;
    if (this.writtenSinceGrowth >= this.windowBytes && this.windowBytes < MAX_WINDOW_BYTES) {
      this.windowBytes *= 2;
      this.writtenSinceGrowth = 0;
    }
    if (!this.writable && !this.closed && this.inFlightBytes < this.windowBytes) this.flush();
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
