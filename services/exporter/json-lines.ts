/**
 * JSON-lines exporter: every event as one line of Tetragon's JSON (what
 * `tetra getevents` reads from a pipe) on a writable stream, stdout by default
 * or a rotating file (file.ts).
 *
 * As Tetragon's export does, it may mask each event with field filters
 * (services/lib/field-filters.ts) and cap the rate in events per minute; the
 * events past the cap are dropped and counted.
 *
 * Lines are gathered and written once per event-loop turn. When the stream
 * pushes back, lines wait in memory up to `maxPendingBytes`; past that they are
 * dropped and counted — the sensor is never slowed. A stream that fails (a
 * closed stdout pipe) does not stop the process: its lines count as failed.
 * With a durable subscription, an event is acknowledged once its line was
 * handed to the OS, so an exporter that dies before gets it again.
 */
import type { Writable } from 'node:stream';
import type { Bus, EventEnvelope } from '../lib/bus.js';
import { compileFieldFilters, type FieldFilterMessage } from '../lib/field-filters.js';
import { toProtoJsonText } from '../lib/tetragon-proto.js';
import { eventJsonText } from '../lib/event-json.js';
import type { ExportCounters, ExportOutcome } from './telemetry.js';

export interface JsonLinesOptions {
  maxPendingBytes?: number;
  /** Applied in order to every event, as GetEvents applies a request's field_filters. */
  fieldFilters?: FieldFilterMessage[];
  /** Events per minute; 0 or absent: no limit. */
  rateLimit?: number;
  /** Where outcomes are reported besides stats() (the metrics' export_total). */
  counters?: ExportCounters;
  /** Subscribe durably under this name (the NATS bus); events are acknowledged once written. */
  durable?: string;
  /** Told once when the stream fails; default: stderr. */
  log?: (line: string) => void;
}

type DropReason = Exclude<ExportOutcome, 'exported'>;
export interface JsonLinesStats { exported: number; dropped: Record<DropReason, number>; pendingBytes: number }

/** A token bucket holding a minute's worth of events and refilled continuously. */
class RateLimiter {
  private tokens: number;
  private last = performance.now();

  constructor(private readonly perMinute: number) {
    this.tokens = perMinute;
  }

  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.perMinute, this.tokens + ((now - this.last) * this.perMinute) / 60_000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

interface Deferred { promise: Promise<void>; resolve: () => void }
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

export class JsonLinesExporter {
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private blocked = false;
  /** Settles when the pending lines are written; only for durable subscriptions. */
  private pendingWritten: Deferred | undefined;
  private exported = 0;
  private readonly dropped: Record<DropReason, number> = { rate_limited: 0, overflow: 0, failed: 0 };
  private streamFailed = false;
  private readonly maxPendingBytes: number;
  private readonly mask: ((envelope: EventEnvelope) => object | undefined) | undefined;
  private readonly limiter: RateLimiter | undefined;
  private readonly unsubscribe: () => void;

  /** Throws FieldFilterError for a bad field filter. */
  constructor(bus: Bus, private readonly out: Writable, private readonly opts: JsonLinesOptions = {}) {
    this.maxPendingBytes = opts.maxPendingBytes ?? 64 * 1024 * 1024;
    this.mask = compileFieldFilters(opts.fieldFilters);
    this.limiter = opts.rateLimit ? new RateLimiter(opts.rateLimit) : undefined;
    out.on('drain', () => { this.blocked = false; this.flush(); });
    out.on('error', (err) => {
      if (this.streamFailed) return;
      this.streamFailed = true;
      (opts.log ?? ((line) => console.error(line)))(`JSON export stopped: ${err.message}`);
    });
    this.unsubscribe = opts.durable === undefined
      ? bus.subscribeEvents((envelope) => { this.add(envelope); })
      : bus.subscribeEvents((envelope) => this.add(envelope), { durable: opts.durable });
  }

  stats(): JsonLinesStats {
    return { exported: this.exported, dropped: { ...this.dropped }, pendingBytes: this.pendingBytes };
  }

  /** Stops taking events and writes what is pending, pushback or not. */
  close(): void {
    this.unsubscribe();
    this.blocked = false;
    this.flush();
  }

  private add(envelope: EventEnvelope): Promise<void> | undefined {
    if (this.limiter !== undefined && !this.limiter.take()) return this.count('rate_limited', 1);
    if (this.streamFailed || this.out.destroyed) return this.count('failed', 1);
    const masked = this.mask?.(envelope);
    // An event from the bus is written from its bytes, its processes' text kept (lib/event-json.ts).
    const line = (masked === undefined && envelope.fromWire ? eventJsonText(envelope.type, envelope.bytes)
      : toProtoJsonText('tetragon.GetEventsResponse', masked ?? envelope.event)) + '\n';
    if (this.pendingBytes + line.length > this.maxPendingBytes) return this.count('overflow', 1);
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.flushScheduled && !this.blocked) {
      this.flushScheduled = true;
      setImmediate(() => { this.flushScheduled = false; this.flush(); });
    }
    if (this.opts.durable === undefined) return undefined;
    this.pendingWritten ??= deferred();
    return this.pendingWritten.promise;
  }

  private count(outcome: ExportOutcome, n: number): undefined {
    if (outcome === 'exported') this.exported += n;
    else this.dropped[outcome] += n;
    this.opts.counters?.add(outcome, n);
    return undefined;
  }

  private flush(): void {
    if (this.blocked || this.pending.length === 0) return;
    const chunk = this.pending.join('');
    const lines = this.pending.length;
    const written = this.pendingWritten;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingWritten = undefined;
    this.blocked = !this.out.write(chunk, (err) => {
      this.count(err ? 'failed' : 'exported', lines);
      written?.resolve();
    });
  }
}
