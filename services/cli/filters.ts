/**
 * Filtering of events read from stdin. `tetra getevents` applies the very
 * request it would send to the server to piped events, so that
 * `cat events.json | vigil events --namespace default` means what it says;
 * this is that request (the subset `vigil events` builds) evaluated on events
 * in Tetragon's JSON shape.
 */
import { tetragonType } from '../lib/tetragon-proto.js';
import { UsageError } from './args.js';

type Json = Record<string, unknown>;

/** A tetragon.Filter with the fields `vigil events` sets; a field that is set is never empty. */
export interface EventFilter {
  binary_regex?: string[];
  namespace?: string[];
  pid?: number[];
  event_set?: number[];
  pod_regex?: string[];
  container_id?: string[];
}

/** tetragon.FieldFilterAction */
export const INCLUDE = 0;
export const EXCLUDE = 1;

/** A tetragon.FieldFilter over all event types. */
export interface FieldFilter {
  fields: { paths: string[] };
  action: typeof INCLUDE | typeof EXCLUDE;
}

/** The tetragon.GetEventsRequest that `vigil events` sends. */
export interface EventsRequest {
  allow_list?: EventFilter[];
  field_filters?: FieldFilter[];
}

const asObject = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;

/** The payload field of an event and its EventType number (the oneof member's field number). */
function payloadOf(event: Json): { field: string; type: number; payload: Json } | undefined {
  for (const field of tetragonType('tetragon.GetEventsResponse').oneofs!['event']!.fieldsArray) {
    const payload = asObject(event[field.name]);
    if (payload !== undefined) return { field: field.name, type: field.id, payload };
  }
  return undefined;
}

function regexes(patterns: string[], field: string): RegExp[] {
  return patterns.map((p) => {
    try {
      return new RegExp(p);
    } catch (err) {
      throw new UsageError(`invalid regular expression "${p}" in ${field}: ${(err as Error).message}`);
    }
  });
}

type Match = (type: number, process: Json | undefined) => boolean;

/** One filter: every criterion it sets must hold (Tetragon's per-filter AND). */
function compileFilter(f: EventFilter): Match {
  const checks: Match[] = [];
  const text = (v: unknown): string => (typeof v === 'string' ? v : '');
  if (f.binary_regex) {
    const res = regexes(f.binary_regex, 'binary_regex');
    checks.push((_t, p) => p !== undefined && res.some((re) => re.test(text(p.binary))));
  }
  if (f.namespace) {
    const namespaces = f.namespace;
    checks.push((_t, p) => {
      if (p === undefined) return false;
      const pod = asObject(p.pod);
      // "" stands for processes outside any pod.
      return namespaces.some((ns) => (pod === undefined ? ns === '' : ns === pod.namespace));
    });
  }
  if (f.pid) {
    const pids = f.pid;
    checks.push((_t, p) => p !== undefined && pids.includes(typeof p.pid === 'number' ? p.pid : 0));
  }
  if (f.event_set) {
    const types = f.event_set;
    checks.push((t) => types.includes(t));
  }
  if (f.pod_regex) {
    const res = regexes(f.pod_regex, 'pod_regex');
    checks.push((_t, p) => {
      const pod = asObject(p?.pod);
      return pod !== undefined && res.some((re) => re.test(text(pod.name)));
    });
  }
  if (f.container_id) {
    const res = regexes(f.container_id, 'container_id');
    checks.push((_t, p) => p !== undefined && res.some((re) => re.test(text(p.docker))));
  }
  return (type, process) => checks.every((check) => check(type, process));
}

/** A field mask as a tree; `true` marks a path kept or dropped whole. */
type Mask = Map<string, Mask | true>;

function maskOf(paths: string[]): Mask {
  const root: Mask = new Map();
  for (const path of paths) {
    const parts = path.split('.');
    let node = root;
    for (const [i, part] of parts.entries()) {
      const existing = node.get(part);
      if (existing === true) break;
      if (i === parts.length - 1) {
        node.set(part, true);
        break;
      }
      const child: Mask = existing ?? new Map();
      node.set(part, child);
      node = child;
    }
  }
  return root;
}

/** Applies a mask to a message; repeated messages get it element by element. */
function project(value: unknown, mask: Mask, keep: boolean): unknown {
  if (Array.isArray(value)) return value.map((v) => project(v, mask, keep));
  const obj = asObject(value);
  if (obj === undefined) return value;
  const out: Json = keep ? {} : { ...obj };
  for (const [key, sub] of mask) {
    if (!(key in obj)) continue;
    if (sub === true) {
      if (keep) out[key] = obj[key];
      else delete out[key];
    } else {
      out[key] = project(obj[key], sub, keep);
    }
  }
  return out;
}

/**
 * The request as a function of one event: the event to print (with field
 * filters applied to its payload, in order), or undefined when no allow
 * filter matches. Throws UsageError for an invalid regular expression.
 */
export function compileRequest(request: EventsRequest): (event: Json) => Json | undefined {
  const allow = (request.allow_list ?? []).map(compileFilter);
  const masks = (request.field_filters ?? []).map((f) => ({ mask: maskOf(f.fields.paths), keep: f.action === INCLUDE }));
  return (event) => {
    const found = payloadOf(event);
    if (allow.length > 0) {
      if (found === undefined) return undefined;
      const process = asObject(found.payload.process);
      if (!allow.some((match) => match(found.type, process))) return undefined;
    }
    if (found === undefined || masks.length === 0) return event;
    const payload = masks.reduce<unknown>((p, { mask, keep }) => project(p, mask, keep), found.payload);
    return { ...event, [found.field]: payload };
  };
}
