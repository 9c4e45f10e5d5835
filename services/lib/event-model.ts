/**
 * The event model: plain objects in the shape of Tetragon's proto messages,
 * with proto field names (snake_case, as protobufjs produces with keepCase).
 * Well-known types keep their message form: a google.protobuf.UInt32Value is
 * `{ value }`, a Timestamp is `{ seconds, nanos }`. These objects are encoded
 * to protobuf once (services/lib/tetragon-proto.ts) and converted to
 * Tetragon's JSON (protojson with proto names) for stdout.
 */

export interface UInt32Value { value: number }
export interface BoolValue { value: boolean }
export interface Timestamp { seconds: number; nanos: number }

export interface Namespace { inum: number; is_host: boolean }
export interface Namespaces {
  uts?: Namespace; ipc?: Namespace; mnt?: Namespace; pid?: Namespace;
  pid_for_children?: Namespace; net?: Namespace; time?: Namespace;
  time_for_children?: Namespace; cgroup?: Namespace; user?: Namespace;
}

/** Capability sets as lists of capability numbers (tetragon.CapabilitiesType is the bit index). */
export interface Capabilities { permitted: number[]; effective: number[]; inheritable: number[] }

export interface ProcessCredentials {
  uid?: UInt32Value; gid?: UInt32Value; euid?: UInt32Value; egid?: UInt32Value;
  suid?: UInt32Value; sgid?: UInt32Value; fsuid?: UInt32Value; fsgid?: UInt32Value;
  securebits?: number[];
  caps?: Capabilities;
}

export interface Container {
  id: string; name?: string; image?: { id?: string; name?: string };
  start_time?: Timestamp; pid?: UInt32Value;
}
export interface Pod {
  namespace: string; name: string; container?: Container;
  pod_labels?: Record<string, string>; workload?: string; workload_kind?: string;
}

export interface Process {
  exec_id: string;
  pid: UInt32Value;
  uid: UInt32Value;
  cwd: string;
  binary: string;
  arguments: string;
  flags: string;
  start_time: Timestamp;
  auid: UInt32Value;
  pod?: Pod;
  docker?: string;
  parent_exec_id: string;
  refcnt: number;
  cap?: Capabilities;
  ns?: Namespaces;
  tid: UInt32Value;
  process_credentials?: ProcessCredentials;
  in_init_tree?: BoolValue;
}

export interface ProcessExec { process: Process; parent?: Process }
export interface ProcessExit {
  process: Process; parent?: Process;
  signal: string; status: number; time: Timestamp;
}

/** tetragon.GetEventsResponse: exactly one of the event fields is set. */
export interface GetEventsResponse {
  process_exec?: ProcessExec;
  process_exit?: ProcessExit;
  process_kprobe?: Record<string, unknown>;
  process_tracepoint?: Record<string, unknown>;
  process_uprobe?: Record<string, unknown>;
  process_lsm?: Record<string, unknown>;
  process_loader?: Record<string, unknown>;
  process_usdt?: Record<string, unknown>;
  node_name: string;
  time: Timestamp;
}

/** The oneof field names of GetEventsResponse this project emits, which double as event types. */
export const EVENT_TYPES = ['process_exec', 'process_exit', 'process_kprobe', 'process_tracepoint', 'process_uprobe', 'process_lsm', 'process_loader', 'process_usdt'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** tetragon.EventType enum numbers (used by Filter.event_set), by event field name. */
export const EVENT_TYPE_NUMBER: Record<EventType, number> = {
  process_exec: 1, process_exit: 5, process_kprobe: 9, process_tracepoint: 10, process_loader: 11, process_uprobe: 12, process_lsm: 28, process_usdt: 29,
};

/** The event field set on a response, and the payload under it. */
export function eventPayload(ev: GetEventsResponse): { type: EventType; payload: ProcessExec | ProcessExit | Record<string, unknown> } {
  for (const type of EVENT_TYPES) {
    const payload = ev[type];
    if (payload !== undefined) return { type, payload };
  }
  throw new Error('event has no payload');
}
