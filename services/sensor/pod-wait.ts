/**
 * Holds the events of a container's processes while the container's pod
 * metadata is on its way, so that even a container's first exec — often the
 * very process a policy kills — goes out with its pod.
 *
 * containerd publishes a container before its task starts, but the sensor
 * learns of it asynchronously; a process snapshot taken meanwhile carries a
 * LatePod (process-cache.ts). Such an event waits in its container's queue
 * (by the process's, or else the parent's, `docker` id); later events of the
 * same container queue behind it so their order holds. A queue is released,
 * pods filled in, as soon as the metadata source has answered for every
 * snapshot in it (recheck, on every registry change).
 *
 * Bounds: an event waits at most `maxWaitMs` (default 3 s) and at most
 * `maxEvents` (default 10,000) wait at once; past either, the oldest queue goes
 * out as it is and each event still lacking its pod is counted in
 * `releasedWithoutPod`. Events of host processes and of containers whose
 * metadata is known never wait.
 */
import type { EventType, GetEventsResponse, Process } from '../lib/event-model.js';
import type { LatePod } from './process-cache.js';

export const DEFAULT_POD_WAIT_MS = 3_000;
export const DEFAULT_POD_WAIT_EVENTS = 10_000;

export interface PodWaitOptions {
  maxWaitMs?: number;
  maxEvents?: number;
}

export interface PodWaitStats {
  /** Events that had to wait for their pod. */
  held: number;
  /** Events waiting now. */
  waiting: number;
  /** Events released by a bound before their pod was known. */
  releasedWithoutPod: number;
}

type Publish = (type: EventType, event: GetEventsResponse) => void;

interface Held { type: EventType; event: GetEventsResponse; late: [Process, LatePod][] }
interface Queue { items: Held[]; timer: NodeJS.Timeout }

export class PodWait {
  private readonly queues = new Map<string, Queue>();
  private readonly maxWaitMs: number;
  private readonly maxEvents: number;
  private held = 0;
  private waiting = 0;
  private releasedWithoutPod = 0;

  constructor(private readonly latePod: (process: Process) => LatePod | undefined, private readonly publish: Publish, opts: PodWaitOptions = {}) {
    this.maxWaitMs = opts.maxWaitMs ?? DEFAULT_POD_WAIT_MS;
    this.maxEvents = opts.maxEvents ?? DEFAULT_POD_WAIT_EVENTS;
  }

  /** Publishes the event now, or queues it behind its container's pod. */
  submit(type: EventType, event: GetEventsResponse): void {
    const { process, parent } = event[type] as { process?: Process; parent?: Process };
    // The common case, on every event: nothing waits and neither snapshot awaits its pod.
    if (this.queues.size === 0 && !(process && this.latePod(process)) && !(parent && this.latePod(parent))) {
      this.publish(type, event);
      return;
    }
    const late: [Process, LatePod][] = [];
    for (const p of [process, parent]) {
      const l = p && this.latePod(p);
      if (l) late.push([p!, l]);
    }
    const key = [process?.docker, parent?.docker].find((d) => d !== undefined && this.queues.has(d)) ?? late[0]?.[0].docker;
    if (key === undefined) {
      this.publish(type, event);
      return;
    }
    let queue = this.queues.get(key);
    if (!queue) {
      const timer = setTimeout(() => this.release(key), this.maxWaitMs);
      timer.unref();
      this.queues.set(key, (queue = { items: [], timer }));
    }
    queue.items.push({ type, event, late });
    this.held++;
    if (++this.waiting > this.maxEvents) this.release(this.queues.keys().next().value!);
  }

  /** Releases every queue whose pods the metadata source has answered for. */
  recheck(): void {
    for (const [key, queue] of this.queues) {
      if (queue.items.every((item) => item.late.every(([, l]) => l.settled()))) this.release(key);
    }
  }

  /** Releases everything (the sensor stops). */
  close(): void {
    for (const key of [...this.queues.keys()]) this.release(key);
  }

  stats(): PodWaitStats {
    return { held: this.held, waiting: this.waiting, releasedWithoutPod: this.releasedWithoutPod };
  }

  private release(key: string): void {
    const queue = this.queues.get(key);
    if (!queue) return;
    clearTimeout(queue.timer);
    this.queues.delete(key);
    this.waiting -= queue.items.length;
    for (const { type, event, late } of queue.items) {
      let missing = false;
      for (const [process, l] of late) {
        const pod = l.pod();
        if (pod) process.pod = pod;
        else missing ||= !l.settled();
      }
      if (missing) this.releasedWithoutPod++;
      this.publish(type, event);
    }
  }
}
