/**
 * JSON-lines exporter: every event as one line of Tetragon's JSON (what
 * `tetra getevents` reads from a pipe) on a writable stream, stdout by default.
 *
 * Lines are gathered and written once per event-loop turn. When the stream
 * pushes back, lines wait in memory up to `maxPendingBytes`; past that they are
 * dropped and counted in `stats().dropped` — the sensor is never slowed.
 */
import type { Writable } from 'node:stream';
import type { Bus, EventEnvelope } from '../lib/bus.js';
import { toProtoJson } from '../lib/tetragon-proto.js';

export interface JsonLinesOptions { maxPendingBytes?: number }
export interface JsonLinesStats { written: number; dropped: number; pendingBytes: number }

export class JsonLinesExporter {
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private blocked = false;
  private written = 0;
  private dropped = 0;
  private readonly maxPendingBytes: number;
  private readonly unsubscribe: () => void;

  constructor(bus: Bus, private readonly out: Writable, opts: JsonLinesOptions = {}) {
    this.maxPendingBytes = opts.maxPendingBytes ?? 64 * 1024 * 1024;
    this.unsubscribe = bus.subscribeEvents((envelope) => this.add(envelope));
    out.on('drain', () => { this.blocked = false; this.flush(); });
  }

  stats(): JsonLinesStats {
    return { written: this.written, dropped: this.dropped, pendingBytes: this.pendingBytes };
  }

  close(): void {
    this.unsubscribe();
    this.flush();
  }

  private add(envelope: EventEnvelope): void {
    const line = JSON.stringify(toProtoJson('tetragon.GetEventsResponse', envelope.event)) + '\n';
    if (this.pendingBytes + line.length > this.maxPendingBytes) {
      this.dropped++;
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.flushScheduled && !this.blocked) {
      this.flushScheduled = true;
      setImmediate(() => { this.flushScheduled = false; this.flush(); });
    }
  }

  private flush(): void {
    if (this.blocked || this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.written += this.pending.length;
    this.pending = [];
    this.pendingBytes = 0;
    this.blocked = !this.out.write(chunk);
  }
}
