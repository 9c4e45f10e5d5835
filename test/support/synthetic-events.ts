/**
 * Synthetic events for exporter tests: event-model objects in envelopes, as
 * the sensor would publish them on the bus, and sensor stats messages.
 */
import type { EventEnvelope, SensorStatsMessage } from '../../services/lib/bus.js';
import { eventPayload, type GetEventsResponse, type Pod, type Process } from '../../services/lib/event-model.js';
import { encodeMessage } from '../../services/lib/tetragon-proto.js';

export const NODE = 'test-node';
let clock = 1_700_000_000;

export interface ProcessSpec {
  pid: number;
  binary: string;
  args?: string;
  parent?: Process;
  pod?: Pod;
  uid?: number;
  cwd?: string;
}

/** A process with an exec_id of its own, child of `parent` when given. */
export function makeProcess(spec: ProcessSpec): Process {
  const start = clock++;
  return {
    exec_id: Buffer.from(`${NODE}:${start}000000000:${spec.pid}`).toString('base64'),
    pid: { value: spec.pid },
    uid: { value: spec.uid ?? 0 },
    cwd: spec.cwd ?? '/',
    binary: spec.binary,
    arguments: spec.args ?? '',
    flags: 'execve clone',
    start_time: { seconds: start, nanos: 0 },
    auid: { value: 4294967295 },
    parent_exec_id: spec.parent?.exec_id ?? '',
    refcnt: 1,
    tid: { value: spec.pid },
    ...(spec.pod && { pod: spec.pod }),
  };
}

export function envelope(event: GetEventsResponse): EventEnvelope {
  return { type: eventPayload(event).type, event, bytes: encodeMessage('GetEventsResponse', event) };
}

const now = () => ({ seconds: clock++, nanos: 500 });

export function execEvent(process: Process, parent?: Process): EventEnvelope {
  return envelope({ process_exec: { process, ...(parent && { parent }) }, node_name: NODE, time: now() });
}

export function exitEvent(process: Process, parent?: Process, end: { status?: number; signal?: string } = {}): EventEnvelope {
  const time = now();
  return envelope({ process_exit: { process, ...(parent && { parent }), status: end.status ?? 0, signal: end.signal ?? '', time }, node_name: NODE, time });
}

/** A kprobe policy event; action is a tetragon.KprobeAction number (1 post, 3 sigkill). */
export function kprobeEvent(process: Process, policy: string, functionName: string, action: number, tags?: string[]): EventEnvelope {
  return envelope({
    process_kprobe: { process, function_name: functionName, policy_name: policy, action, args: [], ...(tags && { tags }) },
    node_name: NODE,
    time: now(),
  });
}

export function tracepointEvent(process: Process, policy: string, subsys: string, event: string, action: number): EventEnvelope {
  return envelope({ process_tracepoint: { process, subsys, event, policy_name: policy, action, args: [] }, node_name: NODE, time: now() });
}

export function statsMessage(node: string, totals: Partial<SensorStatsMessage> = {}): SensorStatsMessage {
  return {
    node, time: Date.now(), ringReceived: 0, ringLost: 0, ringDropped: 0, undecodable: 0, processCacheSize: 0,
    processCacheMisses: 0, processCacheEvicted: 0, podMetadataLate: 0, subscriberDropped: 0, publishDropped: 0, policyStateLost: 0, overrideMissed: 0, policyActionDropped: 0, policies: [], ...totals,
  };
}
