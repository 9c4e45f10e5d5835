/**
 * GetEventsRequest allow/deny lists, evaluated as Tetragon evaluates them
 * (pkg/filters): an event passes when at least one allow filter matches (or
 * there is none) and no deny filter matches; within one filter every field
 * that is set must match. Criteria run in Tetragon's order, which matters
 * only for pid_set, whose descendant cache learns from the events it sees.
 *
 * Regular expressions are RE2's, as Tetragon's (Go's regexp) are: re2js, a
 * port of RE2, matches in time linear in the input, searches unanchored, and
 * refuses what RE2 refuses (back-references, lookaround) with RE2's message.
 * `vigil events` applies the same filters to piped events (cli), so a pattern
 * means one thing on a pipe and against the server.
 *
 * Every subscriber's filters run on the event loop for every event, so a
 * request is bounded before anything is compiled (FILTER_LIMITS): Tetragon
 * sets no such bounds, and `tetra` and exporter configurations stay far
 * below them.
 */
import type { EventEnvelope } from './bus.js';
import { remember } from './bounded-map.js';
import { tetragonType } from './tetragon-proto.js';
import { RE2JS } from 're2js';

/** A request the server refuses as INVALID_ARGUMENT; the message starts with the field path. */
export class InvalidArgumentError extends Error {
  constructor(readonly fieldPath: string, reason: string) {
    super(`${fieldPath}: ${reason}`);
    this.name = 'InvalidArgumentError';
  }
}

interface Wrapped<T> { value?: T }

/** tetragon.CapFilterSet as decoded: capability numbers. */
interface CapFilterSet { any?: number[]; all?: number[]; exactly?: number[]; none?: number[] }

/** tetragon.Filter as decoded (event-model shape: empty lists absent). */
export interface FilterMessage {
  binary_regex?: string[];
  namespace?: string[];
  health_check?: Wrapped<boolean>;
  pid?: number[];
  pid_set?: number[];
  event_set?: number[];
  pod_regex?: string[];
  arguments_regex?: string[];
  labels?: string[];
  policy_names?: string[];
  capabilities?: { permitted?: CapFilterSet; effective?: CapFilterSet; inheritable?: CapFilterSet };
  parent_binary_regex?: string[];
  cel_expression?: string[];
  parent_arguments_regex?: string[];
  container_id?: string[];
  in_init_tree?: Wrapped<boolean>;
  ancestor_binary_regex?: string[];
  container_name_regex?: string[];
  namespace_regex?: string[];
}

/** The parts of a tetragon.Process the filters read. */
interface ProcessView {
  exec_id?: string;
  pid?: Wrapped<number>;
  binary?: string;
  arguments?: string;
  docker?: string;
  pod?: { namespace?: string; name?: string; container?: { name?: string; maybe_exec_probe?: boolean } };
  cap?: { permitted?: number[]; effective?: number[]; inheritable?: number[] };
  in_init_tree?: Wrapped<boolean>;
}

interface EventView {
  /** tetragon.EventType: the field number of the payload in GetEventsResponse. */
  type: number;
  process: ProcessView | undefined;
  parent: ProcessView | undefined;
  policyName: string;
}

type Check = (ev: EventView) => boolean;

const eventTypeOf = new Map<string, number>(
  tetragonType('GetEventsResponse').oneofs.event.fieldsArray.map((field) => [field.name, field.id]),
);
const PROCESS_EXIT = eventTypeOf.get('process_exit')!;

/** Event types whose payload names the policy that produced it (Tetragon's GetPolicyName). */
const POLICY_EVENTS = new Set(['process_kprobe', 'process_tracepoint', 'process_uprobe', 'process_lsm', 'process_usdt']);

function viewOf(envelope: EventEnvelope): EventView {
  const payload = (envelope.event as unknown as Record<string, { process?: ProcessView; parent?: ProcessView; policy_name?: string } | undefined>)[envelope.type];
  return {
    type: eventTypeOf.get(envelope.type) ?? 0,
    process: payload?.process ?? undefined,
    parent: payload?.parent ?? undefined,
    policyName: POLICY_EVENTS.has(envelope.type) ? (payload?.policy_name ?? '') : '',
  };
}

const isSet = (list: unknown[] | undefined): list is unknown[] => list !== undefined && list !== null && list.length > 0;

/** A compiled RE2 pattern; throws InvalidArgumentError naming the field. */
function compileRegex(pattern: string, fieldPath: string): RE2JS {
  try {
    return RE2JS.compile(pattern);
  } catch (err) {
    throw new InvalidArgumentError(fieldPath, `invalid regular expression ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
}

function regexList(patterns: string[], fieldPath: string): RE2JS[] {
  return patterns.map((p, i) => compileRegex(p, `${fieldPath}[${i}]`));
}

const someMatch = (res: RE2JS[], text: string | undefined): boolean => {
  const s = text ?? '';
  for (const re of res) if (re.matcher(s).find()) return true;
  return false;
};

/**
 * Tetragon's pid_set: the listed pids and their descendants, learned from the
 * events seen. Descendants are known by exec_id, not pid, so a pid reused by
 * an unrelated process never matches; one is forgotten at its exit, its
 * exec_id kept a while longer (bounded) as the parent of a child forked
 * before that exit that execs after it.
 */
function pidSetCheck(pids: number[]): Check {
  const roots = new Set(pids);
  const live = new Map<string, true>();
  const exited = new Map<string, true>();
  const isRoot = (p: ProcessView): boolean => roots.has(p.pid?.value ?? 0);
  const known = (id: string | undefined): id is string => id !== undefined && id !== '' && live.has(id);
  return (ev) => {
    const process = ev.process;
    if (process === undefined) return false;
    const id = process.exec_id;
    if (!isRoot(process) && !known(id)) {
      const parent = ev.parent;
      if (parent === undefined) return false;
      const parentId = parent.exec_id ?? '';
      if (!isRoot(parent) && !known(parentId) && !exited.has(parentId)) return false;
      if (id !== undefined && id !== '') remember(live, id, true);
    }
    if (ev.type === PROCESS_EXIT && known(id)) {
      live.delete(id);
      remember(exited, id, true);
    }
    return true;
  };
}

function capSetCheck(set: CapFilterSet | undefined, fieldPath: string): ((caps: number[] | undefined) => boolean) | null {
  if (set === undefined || set === null) return null;
  const defined = (['any', 'all', 'exactly', 'none'] as const).filter((k) => isSet(set[k]));
  if (defined.length !== 1) {
    throw new InvalidArgumentError(fieldPath, defined.length === 0
      ? 'capability filter must define exactly one match set'
      : `capability filter may only define one match set, got: ${defined.join(', ')}`);
  }
  const kind = defined[0];
  const wanted = new Set(set[kind]);
  return (caps) => {
    const have = new Set(caps ?? []);
    switch (kind) {
      case 'any': return [...wanted].some((c) => have.has(c));
      case 'all': return [...wanted].every((c) => have.has(c));
      case 'exactly': return have.size === wanted.size && [...wanted].every((c) => have.has(c));
      case 'none': return ![...wanted].some((c) => have.has(c));
    }
  };
}

/** The pod of a process, undefined for host processes (absent and null alike). */
const podOf = (p: ProcessView | undefined): NonNullable<ProcessView['pod']> | undefined => p?.pod ?? undefined;

/** Matches events whose process (or its parent) has a `field` matching one of `res`. */
function processFieldCheck(who: 'process' | 'parent', field: 'binary' | 'arguments', res: RE2JS[]): Check {
  return (ev) => {
    const p = ev[who];
    return p !== undefined && someMatch(res, p[field]);
  };
}

/** Matches events whose process runs in a pod whose `field` matches one of `res`; host processes never match. */
function podFieldCheck(field: 'namespace' | 'name', res: RE2JS[]): Check {
  return (ev) => {
    const pod = podOf(ev.process);
    return pod !== undefined && someMatch(res, pod[field]);
  };
}

/** Tetragon's canBeHealthCheck: the process runs in a container and looks like its exec probe. */
const maybeExecProbe = (p: ProcessView | undefined): boolean => p?.pod?.container?.maybe_exec_probe === true;

function unsupported(fieldPath: string, what: string): never {
  throw new InvalidArgumentError(fieldPath, `${what} is not supported by Vigil`);
}

/** The checks of one filter, in Tetragon's order; throws InvalidArgumentError naming the bad field. */
function compileFilter(f: FilterMessage, at: string): Check[] {
  const checks: Check[] = [];
  if (isSet(f.binary_regex)) checks.push(processFieldCheck('process', 'binary', regexList(f.binary_regex, `${at}.binary_regex`)));
  if (isSet(f.parent_binary_regex)) checks.push(processFieldCheck('parent', 'binary', regexList(f.parent_binary_regex, `${at}.parent_binary_regex`)));
  if (isSet(f.ancestor_binary_regex)) {
    // Tetragon refuses this filter unless ancestors are enabled; Vigil's events carry no ancestors.
    unsupported(`${at}.ancestor_binary_regex`, 'filtering on ancestors (events carry no ancestors)');
  }
  if (f.health_check !== undefined && f.health_check !== null) {
    const want = f.health_check.value === true;
    checks.push((ev) => (maybeExecProbe(ev.process) || maybeExecProbe(ev.parent)) === want);
  }
  if (isSet(f.namespace)) {
    const namespaces = new Set(f.namespace);
    // "" selects processes outside any pod.
    checks.push((ev) => {
      if (ev.process === undefined) return false;
      const pod = podOf(ev.process);
      return namespaces.has(pod === undefined ? '' : (pod.namespace ?? ''));
    });
  }
  if (isSet(f.namespace_regex)) checks.push(podFieldCheck('namespace', regexList(f.namespace_regex, `${at}.namespace_regex`)));
  if (isSet(f.pid)) {
    const pids = new Set(f.pid);
    checks.push((ev) => ev.process !== undefined && pids.has(ev.process.pid?.value ?? 0));
  }
  if (isSet(f.pid_set)) checks.push(pidSetCheck(f.pid_set));
  if (isSet(f.event_set)) {
    const types = new Set(f.event_set);
    checks.push((ev) => types.has(ev.type));
  }
  if (isSet(f.arguments_regex)) checks.push(processFieldCheck('process', 'arguments', regexList(f.arguments_regex, `${at}.arguments_regex`)));
  if (isSet(f.parent_arguments_regex)) checks.push(processFieldCheck('parent', 'arguments', regexList(f.parent_arguments_regex, `${at}.parent_arguments_regex`)));
  if (isSet(f.labels)) unsupported(`${at}.labels`, 'filtering on pod label selectors');
  if (isSet(f.pod_regex)) checks.push(podFieldCheck('name', regexList(f.pod_regex, `${at}.pod_regex`)));
  if (isSet(f.policy_names)) {
    const names = new Set(f.policy_names);
    checks.push((ev) => ev.policyName !== '' && names.has(ev.policyName));
  }
  if (f.capabilities !== undefined && f.capabilities !== null) {
    const sets = (['permitted', 'effective', 'inheritable'] as const)
      .map((k) => [k, capSetCheck(f.capabilities![k], `${at}.capabilities.${k}`)] as const)
      .filter((entry): entry is readonly [typeof entry[0], NonNullable<typeof entry[1]>] => entry[1] !== null);
    checks.push((ev) => {
      const cap = ev.process?.cap;
      return cap !== undefined && cap !== null && sets.every(([k, check]) => check(cap[k]));
    });
  }
  if (isSet(f.container_id)) {
    const res = regexList(f.container_id, `${at}.container_id`);
    checks.push((ev) => ev.process !== undefined && someMatch(res, ev.process.docker));
  }
  if (f.in_init_tree !== undefined && f.in_init_tree !== null) {
    const want = f.in_init_tree.value === true;
    checks.push((ev) => (ev.process?.in_init_tree?.value === true) === want);
  }
  if (isSet(f.cel_expression)) unsupported(`${at}.cel_expression`, 'filtering with CEL expressions');
  if (isSet(f.container_name_regex)) {
    const res = regexList(f.container_name_regex, `${at}.container_name_regex`);
    checks.push((ev) => {
      const container = podOf(ev.process)?.container ?? undefined;
      return container !== undefined && someMatch(res, container.name);
    });
  }
  return checks;
}

function compileList(filters: FilterMessage[] | undefined, name: string): Check[] {
  return (filters ?? []).map((f, i) => {
    const checks = compileFilter(f, `${name}[${i}]`);
    return (ev: EventView) => checks.every((check) => check(ev));
  });
}

/** What one request's allow and deny lists may hold. */
export const FILTER_LIMITS = {
  /** Filters in each list. */
  filtersPerList: 32,
  /** Values of one field of a filter (pids, namespaces, event types, patterns …). */
  valuesPerField: 1024,
  /** Regular expressions in the whole request: each event is matched against them. */
  patternsPerRequest: 128,
  /** UTF-16 code units of one regular expression. */
  patternLength: 4096,
};

const REGEX_FIELDS = new Set<keyof FilterMessage>([
  'binary_regex', 'parent_binary_regex', 'namespace_regex', 'arguments_regex', 'parent_arguments_regex',
  'pod_regex', 'container_id', 'container_name_regex', 'ancestor_binary_regex', 'cel_expression',
]);

/** Throws InvalidArgumentError naming the first field past FILTER_LIMITS. */
function checkLimits(lists: [string, FilterMessage[] | undefined][]): void {
  const over = (what: string, limit: number): string => `${what}, more than the limit of ${limit}`;
  let patterns = 0;
  for (const [name, filters] of lists) {
    if (filters === undefined || filters === null) continue;
    if (filters.length > FILTER_LIMITS.filtersPerList) throw new InvalidArgumentError(name, over(`${filters.length} filters`, FILTER_LIMITS.filtersPerList));
    filters.forEach((f, i) => {
      for (const [key, values] of Object.entries(f) as [keyof FilterMessage, unknown][]) {
        if (!Array.isArray(values)) continue;
        const at = `${name}[${i}].${key}`;
        if (values.length > FILTER_LIMITS.valuesPerField) throw new InvalidArgumentError(at, over(`${values.length} values`, FILTER_LIMITS.valuesPerField));
        if (!REGEX_FIELDS.has(key)) continue;
        patterns += values.length;
        if (patterns > FILTER_LIMITS.patternsPerRequest) {
          throw new InvalidArgumentError(at, over(`the request's regular expressions number ${patterns} up to here`, FILTER_LIMITS.patternsPerRequest));
        }
        values.forEach((v: string, k) => {
          if (v.length > FILTER_LIMITS.patternLength) throw new InvalidArgumentError(`${at}[${k}]`, over(`expression is ${v.length} characters long`, FILTER_LIMITS.patternLength));
        });
      }
    });
  }
}

/**
 * The predicate of a GetEventsRequest's allow and deny lists. Throws
 * InvalidArgumentError for a bad or unsupported filter, or one past
 * FILTER_LIMITS. The predicate holds per-request state (pid_set
 * descendants): compile once per subscriber.
 */
export function compileEventFilter(request: { allow_list?: FilterMessage[]; deny_list?: FilterMessage[] }): (envelope: EventEnvelope) => boolean {
  checkLimits([['allow_list', request.allow_list], ['deny_list', request.deny_list]]);
  const allow = compileList(request.allow_list, 'allow_list');
  const deny = compileList(request.deny_list, 'deny_list');
  if (allow.length === 0 && deny.length === 0) return () => true;
  return (envelope) => {
    const ev = viewOf(envelope);
    return (allow.length === 0 || allow.some((f) => f(ev))) && !deny.some((f) => f(ev));
  };
}
