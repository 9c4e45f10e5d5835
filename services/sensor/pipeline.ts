/**
 * The event pipeline: a batch of ring-buffer records in, Tetragon events out
 * on the bus. Each record is decoded once (kernel/records.ts) into a tagged
 * KernelRecord; fork, exec and exit keep the process cache current, a policy
 * record is joined with the hook that produced it; each event is enriched
 * from the cache, waits for its pod when its container's metadata is on the
 * way (pod-wait.ts), and is encoded once for every consumer.
 *
 * It owns no kernel object: the sensor hands it batches, so it runs the same
 * on recorded bytes in tests as on the ring buffer.
 */
import type { Bus } from '../lib/bus.js';
import type { EventType, GetEventsResponse } from '../lib/event-model.js';
import type { Hook } from '../lib/policy-program.js';
import { RecordKind } from '../lib/kernel-abi.js';
import { EventEncoder } from './event-encoder.js';
import { forEachRecord } from './kernel/addon.js';
import type { BtfSource } from './kernel/layout.js';
import { credsArgReader, recordDecoder, type KernelRecord, type PolicyRecord } from './kernel/records.js';
import { policyPayload, type ArgDecoders } from './policy-tables/policy-events.js';
import type { PolicyActions } from './policy-actions.js';
import { StackSymbols } from './stack-symbols.js';
import { readBuildId } from './build-id.js';
import { netArgReaders } from './kernel/net-records.js';
import type { BootClock } from './identity.js';
import type { ProcessCache } from './process-cache.js';
import type { ContainerRegistry } from './containers/registry.js';
import { PodWait, type PodWaitOptions, type PodWaitStats } from './pod-wait.js';

/** The hook a policy record names, while its policy is loaded. */
export type HookLookup = (hookId: number) => { policy: string; hook: Hook } | undefined;

export interface PipelineOptions {
  nodeName: string;
  btf: BtfSource;
  cache: ProcessCache;
  hooks: HookLookup;
  clock: BootClock;
  bus: Bus;
  /** When given, events of a container whose pod is on its way wait for it. */
  containers?: ContainerRegistry;
  podWait?: PodWaitOptions;
  /** DnsLookup and GetUrl, done once their event is posted. */
  policyActions?: PolicyActions;
}

export interface PipelineStats {
  /** Records of an unknown kind, a malformed length, or a hook no longer loaded. */
  undecodable: number;
  events: Partial<Record<EventType, number>>;
  podWait: PodWaitStats;
}

export class EventPipeline {
  private readonly decode: ReturnType<typeof recordDecoder>;
  private readonly argDecoders: ArgDecoders;
  private readonly stackSymbols = new StackSymbols();
  private readonly encoder: EventEncoder;
  private readonly podWait?: PodWait;
  private readonly unwatchContainers?: () => void;
  private readonly events: Partial<Record<EventType, number>> = {};
  private undecodable = 0;

  /** Throws if the object's BTF lacks a record field the decoder reads. */
  constructor(private readonly opts: PipelineOptions) {
    this.decode = recordDecoder(opts.btf);
    this.encoder = new EventEncoder();
    this.argDecoders = {
      creds: credsArgReader(opts.btf), ...netArgReaders(opts.btf),
      // The path is the process's own: its root may be a container's.
      buildId: (pid, path) => readBuildId(`/proc/${pid}/root${path}`),
    };
    if (opts.containers) {
      const podWait = new PodWait((p) => opts.cache.latePod(p), (type, event) => this.publishNow(type, event), opts.podWait);
      this.podWait = podWait;
      this.unwatchContainers = opts.containers.onChange(() => podWait.recheck());
    }
  }

  /** Handles every record of a batch, in order. */
  handleBatch(batch: Buffer): void {
    forEachRecord(batch, (offset, length) => {
      const record = this.decode(batch, offset, length);
      if (record) this.handle(record);
      else this.undecodable++;
    });
  }

  /** Sends what still waits for its pod; the pipeline takes no more batches after. */
  close(): void {
    this.unwatchContainers?.();
    this.podWait?.close();
  }

  stats(): PipelineStats {
    return {
      undecodable: this.undecodable,
      events: { ...this.events },
      podWait: this.podWait?.stats() ?? { held: 0, waiting: 0, releasedWithoutPod: 0 },
    };
  }

  private handle(record: KernelRecord): void {
    const { cache, nodeName, clock } = this.opts;
    const base = { node_name: nodeName, time: clock.timestamp(record.ktime) };
    switch (record.kind) {
      case RecordKind.EXEC:
        this.publish('process_exec', { ...base, process_exec: cache.onExec(record) });
        break;
      case RecordKind.FORK:
        cache.onFork(record);
        break;
      case RecordKind.EXIT:
        this.publish('process_exit', { ...base, process_exit: cache.onExit(record) });
        break;
      case RecordKind.POLICY:
        this.handlePolicy(record, base);
        break;
    }
  }

  private handlePolicy(record: PolicyRecord, base: Pick<GetEventsResponse, 'node_name' | 'time'>): void {
    const hook = this.opts.hooks(record.hook);
    if (!hook) {
      this.undecodable++; // a record of a policy unloaded meanwhile
      return;
    }
    const { type, payload, userActions } = policyPayload(record, hook.policy, hook.hook, this.argDecoders);
    const { process, parent } = this.opts.cache.processOf(record.pid, record.tid);
    const stacks = {
      ...(record.kernelStack.length > 0 && { kernel_stack_trace: this.stackSymbols.kernelFrames(record.kernelStack) }),
      ...(record.userStack.length > 0 && { user_stack_trace: this.stackSymbols.userFrames(record.pid, record.userStack) }),
    };
    this.publish(type, { ...base, [type]: { process, ...(parent && { parent }), ...payload, ...stacks } } as GetEventsResponse);
    for (const action of userActions) this.opts.policyActions?.perform(action);
  }

  private publish(type: EventType, event: GetEventsResponse): void {
    if (this.podWait) this.podWait.submit(type, event);
    else this.publishNow(type, event);
  }

  private publishNow(type: EventType, event: GetEventsResponse): void {
    this.events[type] = (this.events[type] ?? 0) + 1;
    this.opts.bus.publishEvent({ type, event, bytes: this.encoder.encode(type, event) });
  }
}
