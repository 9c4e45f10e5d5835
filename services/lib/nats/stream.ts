/**
 * The JetStream layout of the bus: stream VIGIL_EVENTS holding
 * `vigil.events.<node>.<type>` (one subject token per node and event type, so
 * consumers can filter by either); stream VIGIL_AUDIT holding the enforcers'
 * audit records (JSON) on `vigil.audit.<node>`, kept like events so the
 * trail outlives its subscribers; core-NATS stats on `vigil.stats.<node>`.
 *
 * Every bus creates the streams if they are missing and brings their limits
 * to its own configuration on connect: with nodes configured differently, the
 * last one to connect wins.
 */
import { DiscardPolicy, NatsError, RetentionPolicy, StorageType, nanos, type JetStreamManager, type StreamConfig } from 'nats';
import type { EventEnvelope } from '../bus.js';
import type { EventType } from '../event-model.js';

export const EVENT_STREAM = 'VIGIL_EVENTS';
export const EVENT_SUBJECTS = 'vigil.events.>';
export const STATS_SUBJECTS = 'vigil.stats.*';
export const AUDIT_STREAM = 'VIGIL_AUDIT';
export const AUDIT_SUBJECTS = 'vigil.audit.*';

/** JetStream API error codes (err_code) this package tells apart. */
export const JS_STREAM_NOT_FOUND = 10059;
export const JS_CONSUMER_NOT_FOUND = 10014;

export interface StreamLimits {
  /** Events older than this are removed. Default 24 h. */
  maxAgeMs?: number;
  /** The stream's size cap; past it the oldest events go (discard old). Default 1 GiB. */
  maxBytes?: number;
  /** How long the server remembers Nats-Msg-Ids to drop re-sent messages. Default 2 min. */
  duplicateWindowMs?: number;
  /** Copies in a JetStream cluster. Default 1. */
  replicas?: number;
}

export const DEFAULT_STREAM_LIMITS: Required<StreamLimits> = {
  maxAgeMs: 24 * 3600_000,
  maxBytes: 1024 ** 3,
  duplicateWindowMs: 120_000,
  replicas: 1,
};

/**
 * A node name as one subject token: NATS subjects split on '.', and '*', '>'
 * and whitespace are special, so everything outside [A-Za-z0-9_-] becomes '_'
 * (a Kubernetes node `ip-10-0-0-1.ec2.internal` publishes on
 * `vigil.events.ip-10-0-0-1_ec2_internal.*`).
 */
export function subjectToken(name: string): string {
  const token = name.replace(/[^A-Za-z0-9_-]/g, '_');
  return token === '' ? '_' : token;
}

export function eventSubject(node: string, type: EventType): string {
  return `vigil.events.${subjectToken(node)}.${type}`;
}

/** The subjects of one event type, from every node. */
export function eventTypeFilter(type: EventType): string {
  return `vigil.events.*.${type}`;
}

export function statsSubject(node: string): string {
  return `vigil.stats.${subjectToken(node)}`;
}

export function auditSubject(node: string): string {
  return `vigil.audit.${subjectToken(node)}`;
}

export function streamConfig(name: string, subjects: string, limits: StreamLimits = {}): Partial<StreamConfig> & { name: string } {
  const l = { ...DEFAULT_STREAM_LIMITS, ...limits };
  return {
    name,
    subjects: [subjects],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(l.maxAgeMs),
    max_bytes: l.maxBytes,
    duplicate_window: nanos(l.duplicateWindowMs),
    num_replicas: l.replicas,
  };
}

export function jsErrorCode(err: unknown): number | undefined {
  return err instanceof NatsError ? err.api_error?.err_code : undefined;
}

/** Creates a stream, or updates its limits where they differ from `want`. */
export async function ensureStream(jsm: JetStreamManager, want: Partial<StreamConfig> & { name: string }): Promise<void> {
  let have: StreamConfig;
  try {
    have = (await jsm.streams.info(want.name)).config;
  } catch (err) {
    if (jsErrorCode(err) !== JS_STREAM_NOT_FOUND) throw err;
    try {
      await jsm.streams.add(want);
      return;
    } catch (addErr) {
      // Another sensor created it between our info and add: fall through to compare.
      have = (await jsm.streams.info(want.name).catch(() => { throw addErr; })).config;
    }
  }
  // Only the limits: storage and retention cannot change on a live stream.
  const limitsOf = (c: Partial<StreamConfig>) => ({
    subjects: c.subjects, discard: c.discard, max_age: c.max_age, max_bytes: c.max_bytes,
    duplicate_window: c.duplicate_window, num_replicas: c.num_replicas,
  });
  if (JSON.stringify(limitsOf(have)) !== JSON.stringify(limitsOf(want))) {
    await jsm.streams.update(want.name, { ...have, ...limitsOf(want) });
  }
}

/**
 * Nats-Msg-Id of a message of the event stream, by which JetStream drops a
 * resent copy within the duplicate window (the publisher resends a message
 * with the id it first had): `<node>.<type>.<exec_id>.<time seconds>.<time
 * nanos>.<seq>` of its first event, to which NatsBus appends the count.
 *
 * The event's identity (node, type, the process's exec_id, the kernel time in
 * ns) says what the message starts with when the stream is read by hand;
 * `seq`, a per-sensor counter, makes each id unique, so two messages that
 * start alike (two threads of one process hitting one hook in the same
 * nanosecond, or one event published twice) are both stored.
 */
export class EventMsgIds {
  private seq = 0;
  private readonly node: string;

  constructor(node: string) {
    this.node = subjectToken(node);
  }

  idOf(envelope: EventEnvelope): string {
    const { event, type } = envelope;
    const process = (event[type] as { process?: { exec_id?: string } } | undefined)?.process;
    return `${this.node}.${type}.${process?.exec_id ?? ''}.${event.time?.seconds ?? 0}.${event.time?.nanos ?? 0}.${this.seq++}`;
  }
}
