/**
 * Field filters (tetragon.FieldFilter), applied as Tetragon applies them
 * (pkg/fieldfilters): in request order, each to the result of the previous
 * one; only the event payload (e.g. process_exec) is masked, node_name, time
 * and the rest stay. GetEvents requests (services/api) and the JSON
 * exporters (services/exporter) both use them. A filter with an event_set touches only those event
 * types (or all others when invert_event_set is true).
 *
 * Masks follow FieldMask paths relative to the payload ("process.binary").
 * INCLUDE keeps only the named fields (no paths at all keeps everything);
 * EXCLUDE drops them. A path into a repeated message applies to every
 * element; a oneof name ("args.arg") stands for all its members and may be
 * followed by one member ("args.arg.string_arg"). Segments may be snake_case
 * or lowerCamelCase. Unlike Tetragon, which ignores paths that name nothing,
 * Vigil rejects a path that fits none of the event types the filter targets.
 */
import type { EventEnvelope } from './bus.js';
import type { GetEventsResponse } from './event-model.js';
import { tetragonType } from './tetragon-proto.js';
import type protobuf from 'protobufjs';

/** A bad field filter; the message starts with the field path (the gRPC server answers INVALID_ARGUMENT with it). */
export class FieldFilterError extends Error {
  constructor(readonly fieldPath: string, reason: string) {
    super(`${fieldPath}: ${reason}`);
    this.name = 'FieldFilterError';
  }
}

/** tetragon.FieldFilter as decoded. */
export interface FieldFilterMessage {
  event_set?: number[];
  fields?: { paths?: string[] };
  action?: number;
  invert_event_set?: { value?: boolean };
}

/**
 * What one request's field filters may hold: each filter runs on every event
 * it applies to (Tetragon sets no bound; a payload has a few hundred paths).
 */
export const FIELD_FILTER_LIMITS = { filters: 32, pathsPerFilter: 512 };

/** tetragon.FieldFilterAction */
export const FIELD_FILTER_ACTION = { INCLUDE: 0, EXCLUDE: 1 } as const;
const { INCLUDE, EXCLUDE } = FIELD_FILTER_ACTION;

/** Path segments as given, as a tree; a leaf is an empty map. */
type RawMask = Map<string, RawMask>;
/** A mask resolved against one message type: field name -> sub-mask, or null for the whole field. */
type Mask = Map<string, Mask | null>;
type Obj = Record<string, unknown>;

/** A member of GetEventsResponse.event: its EventType (the field number), field name and message type. */
interface Payload { eventType: number; field: string; type: protobuf.Type }

const payloads: Payload[] = tetragonType('GetEventsResponse').oneofs.event.fieldsArray
  .map((f) => ({ eventType: f.id, field: f.name, type: f.resolvedType as protobuf.Type }));
const payloadByField = new Map(payloads.map((p) => [p.field, p]));

const camel = (name: string): string => name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

function findField(type: protobuf.Type, segment: string): protobuf.Field | undefined {
  return type.fields[segment] ?? type.fieldsArray.find((f) => camel(f.name) === segment);
}

function findOneof(type: protobuf.Type, segment: string): protobuf.OneOf | undefined {
  return type.oneofsArray.find((o) => o.name === segment || camel(o.name) === segment);
}

/** The message type a path may continue into: a singular or repeated message, not a map. */
function messageOf(field: protobuf.Field): protobuf.Type | undefined {
  return field.map ? undefined : (field.resolvedType as protobuf.Type | null) ?? undefined;
}

/** Whether every segment of the path names something in the type. */
function pathFits(type: protobuf.Type, segments: string[]): boolean {
  const [head, ...rest] = segments;
  const field = findField(type, head);
  if (field !== undefined) {
    if (rest.length === 0) return true;
    const inner = messageOf(field);
    return inner !== undefined && pathFits(inner, rest);
  }
  const oneof = findOneof(type, head);
  if (oneof === undefined) return false;
  if (rest.length === 0) return true;
  const member = oneof.fieldsArray.find((f) => f.name === rest[0] || camel(f.name) === rest[0]);
  if (member === undefined) return false;
  if (rest.length === 1) return true;
  const inner = messageOf(member);
  return inner !== undefined && pathFits(inner, rest.slice(1));
}

/**
 * Resolves a raw mask against a type. Segments that name nothing here are
 * skipped (they may fit another event type); a path going deeper than a
 * scalar or map takes the whole field, as Tetragon's copier does.
 */
function resolve(raw: RawMask, type: protobuf.Type): Mask {
  const mask: Mask = new Map();
  const add = (field: protobuf.Field, sub: RawMask): void => {
    const inner = messageOf(field);
    mask.set(field.name, sub.size === 0 || inner === undefined ? null : resolve(sub, inner));
  };
  for (const [segment, sub] of raw) {
    const field = findField(type, segment);
    if (field !== undefined) {
      add(field, sub);
      continue;
    }
    const oneof = findOneof(type, segment);
    if (oneof === undefined) continue;
    for (const member of oneof.fieldsArray) {
      const memberSub = [...sub].find(([name]) => name === member.name || name === camel(member.name));
      if (sub.size === 0) add(member, sub);
      else if (memberSub !== undefined) add(member, memberSub[1]);
    }
  }
  return mask;
}

function include(value: unknown, mask: Mask): unknown {
  if (Array.isArray(value)) return value.map((v) => include(v, mask));
  const obj = value as Obj;
  const out: Obj = {};
  for (const [name, sub] of mask) {
    const v = obj[name];
    if (v === undefined || v === null) continue;
    out[name] = sub === null ? v : include(v, sub);
  }
  return out;
}

function exclude(value: unknown, mask: Mask): unknown {
  if (Array.isArray(value)) return value.map((v) => exclude(v, mask));
  const out: Obj = { ...(value as Obj) };
  for (const [name, sub] of mask) {
    const v = out[name];
    if (v === undefined || v === null) continue;
    if (sub === null) delete out[name];
    else out[name] = exclude(v, sub);
  }
  return out;
}

interface CompiledFieldFilter {
  applies(eventType: number): boolean;
  /** null when the filter leaves the payload as it is. */
  mask(payload: Payload): Mask | null;
  action: number;
}

function compileOne(f: FieldFilterMessage, at: string): CompiledFieldFilter {
  const action = f.action ?? INCLUDE;
  if (action !== INCLUDE && action !== EXCLUDE) throw new FieldFilterError(`${at}.action`, `invalid field filter action ${action}`);
  const eventSet = new Set(f.event_set ?? []);
  const invert = f.invert_event_set?.value === true;
  // Tetragon: with no event_set the filter applies to every event, inverted or not.
  const applies = (t: number): boolean => eventSet.size === 0 || eventSet.has(t) !== invert;
  const targets = payloads.filter((p) => applies(p.eventType)).map((p) => p.type);
  // An event_set naming no payload type (e.g. UNDEF) still gets its paths checked, against every type.
  const candidates = targets.length > 0 ? targets : payloads.map((p) => p.type);

  const paths = f.fields?.paths ?? [];
  if (paths.length > FIELD_FILTER_LIMITS.pathsPerFilter) {
    throw new FieldFilterError(`${at}.fields.paths`, `${paths.length} paths, more than the limit of ${FIELD_FILTER_LIMITS.pathsPerFilter}`);
  }
  const raw: RawMask = new Map();
  paths.forEach((p, i) => {
    const segments = p.split('.');
    const where = `${at}.fields.paths[${i}]`;
    if (segments.some((s) => s === '')) throw new FieldFilterError(where, `invalid field path ${JSON.stringify(p)}`);
    if (!candidates.some((type) => pathFits(type, segments))) throw new FieldFilterError(where, `unknown field path ${JSON.stringify(p)}`);
    let node = raw;
    for (const s of segments) {
      let next = node.get(s);
      if (next === undefined) node.set(s, (next = new Map()));
      node = next;
    }
  });

  const resolved = new Map<protobuf.Type, Mask>();
  return {
    applies,
    action,
    mask: (payload) => {
      // No paths: INCLUDE keeps everything (Tetragon's empty mask) and EXCLUDE drops nothing.
      if (raw.size === 0) return null;
      let mask = resolved.get(payload.type);
      if (mask === undefined) resolved.set(payload.type, (mask = resolve(raw, payload.type)));
      return mask;
    },
  };
}

/**
 * Compiles a request's field filters; undefined when there are none. The
 * returned function gives the masked event, or undefined when no filter
 * applies to the event (it is then sent unchanged). Throws
 * FieldFilterError naming the bad field.
 */
export function compileFieldFilters(filters: FieldFilterMessage[] | undefined): ((envelope: EventEnvelope) => GetEventsResponse | undefined) | undefined {
  if (filters === undefined || filters === null || filters.length === 0) return undefined;
  if (filters.length > FIELD_FILTER_LIMITS.filters) {
    throw new FieldFilterError('field_filters', `${filters.length} filters, more than the limit of ${FIELD_FILTER_LIMITS.filters}`);
  }
  const compiled = filters.map((f, i) => compileOne(f, `field_filters[${i}]`));
  return (envelope) => {
    const payload = payloadByField.get(envelope.type);
    if (payload === undefined) return undefined;
    let event: Obj | undefined;
    for (const f of compiled) {
      if (!f.applies(payload.eventType)) continue;
      const mask = f.mask(payload);
      if (mask === null) continue;
      const current = event ?? (envelope.event as unknown as Obj);
      const body = current[payload.field];
      if (body === undefined || body === null) continue;
      event = { ...current, [payload.field]: f.action === INCLUDE ? include(body, mask) : exclude(body, mask) };
    }
    return event as GetEventsResponse | undefined;
  };
}
