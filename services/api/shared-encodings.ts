/**
 * Field-filtered encodings shared between GetEvents subscribers.
 *
 * A subscriber without field filters gets the sensor's own bytes. One with
 * field filters needs the masked event encoded again; subscribers whose field
 * filters are the same (the same canonical key, fieldFilterKey) share one
 * compiled mask and one encoding per event: the first of them to be offered
 * an event encodes it, the others get the very same bytes, so a hundred
 * subscribers with one mask cost one encode per event and their queues hold
 * references to one buffer.
 *
 * Entries are counted by their subscribers and forgotten with the last one.
 */
import type { EventEnvelope } from '../lib/bus.js';
import { compileFieldFilters, type FieldFilterMessage } from '../lib/field-filters.js';
import { encodeMessage } from '../lib/tetragon-proto.js';

/**
 * A canonical key of a request's field filters: filters in request order
 * (they apply in sequence), each with its action (default INCLUDE), its
 * event_set sorted and without repeats (invert_event_set only counts with a
 * non-empty event_set), its paths sorted and without repeats (a mask is a set
 * of paths). undefined when there are no field filters.
 */
export function fieldFilterKey(filters: FieldFilterMessage[] | undefined): string | undefined {
  if (filters === undefined || filters.length === 0) return undefined;
  return JSON.stringify(filters.map((f) => {
    const eventSet = [...new Set(f.event_set ?? [])].sort((a, b) => a - b);
    return [
      f.action ?? 0,
      eventSet,
      eventSet.length > 0 && f.invert_event_set?.value === true,
      [...new Set(f.fields?.paths ?? [])].sort(),
    ];
  }));
}

interface Entry {
  mask: NonNullable<ReturnType<typeof compileFieldFilters>>;
  subscribers: number;
  /** The last envelope encoded under this key and its bytes. */
  envelope: EventEnvelope | undefined;
  bytes: Uint8Array | undefined;
}

export class SharedEncodings {
  private readonly entries = new Map<string, Entry>();
  /** Encodes done (one per event and key), for tests and stats. */
  encodes = 0;

  /**
   * Registers a subscriber's field filters; returns their key, undefined when
   * there are none. Throws FieldFilterError for a bad filter (nothing is
   * registered then).
   */
  acquire(filters: FieldFilterMessage[] | undefined): string | undefined {
    const key = fieldFilterKey(filters);
    if (key === undefined) return undefined;
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const mask = compileFieldFilters(filters);
      if (mask === undefined) return undefined;
      entry = { mask, subscribers: 0, envelope: undefined, bytes: undefined };
      this.entries.set(key, entry);
    }
    entry.subscribers++;
    return key;
  }

  /** A subscriber with this key has gone; the last one out forgets the entry (and its bytes). */
  release(key: string | undefined): void {
    if (key === undefined) return;
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    if (--entry.subscribers <= 0) this.entries.delete(key);
  }

  /** The bytes of the envelope under this key's field filters: computed once per envelope and key. */
  bytes(key: string | undefined, envelope: EventEnvelope): Uint8Array {
    if (key === undefined) return envelope.bytes;
    const entry = this.entries.get(key);
    if (entry === undefined) throw new Error(`no field filters registered under ${key}`);
    if (entry.envelope !== envelope) {
      // Forget the previous event first, so that a throwing mask leaves no stale bytes behind.
      entry.envelope = undefined;
      entry.bytes = undefined;
      const masked = entry.mask(envelope);
      entry.bytes = masked === undefined ? envelope.bytes : (this.encodes++, encodeMessage('GetEventsResponse', masked));
      entry.envelope = envelope;
    }
    return entry.bytes!;
  }

  /** Keys registered now (distinct field filters among the subscribers). */
  get size(): number {
    return this.entries.size;
  }
}
