/**
 * The sensor: owns the BPF object and its ring buffer on this node, turns
 * kernel records into Tetragon-shaped events (process cache enrichment), and
 * publishes each event once, encoded, on the bus.
 *
 * Start-up order matters: programs are attached and the ring reader started
 * before /proc is walked, and the (synchronous) walk completes before the
 * first batch is handled, so a process that starts during the walk is seen
 * either by the walk or by its records, and records are applied after the walk.
 */
import type { Bus } from '../lib/bus.js';
import type { EventType, GetEventsResponse } from '../lib/event-model.js';
import { bpfObjectPath } from '../lib/paths.js';
import { encodeMessage } from '../lib/tetragon-proto.js';
import { BpfObject, RingReader, forEachRecord, type RingStats } from './kernel/addon.js';
import { RecordKind, recordDecoder, type KernelRecord } from './kernel/records.js';
import { BootClock } from './identity.js';
import { ProcessCache, type ProcessCacheStats } from './process-cache.js';
import { hostNamespaces, walkProc } from './proc-walk.js';

export interface SensorOptions {
  nodeName: string;
  /** The compiled process object; defaults to build/bpf/process.bpf.o. */
  objectPath?: string;
  maxProcesses?: number;
}

export interface SensorStats {
  ring: RingStats;
  /** Records the kernel could not put in the ring (vigil_lost, all CPUs). */
  kernelLost: number;
  /** Records of an unknown kind or a malformed length. */
  undecodable: number;
  cache: ProcessCacheStats;
  events: Partial<Record<EventType, number>>;
}

export class Sensor {
  private object?: BpfObject;
  private reader?: RingReader;
  private cache?: ProcessCache;
  private decode?: ReturnType<typeof recordDecoder>;
  private readonly clock = new BootClock();
  private readonly events: Partial<Record<EventType, number>> = {};
  private undecodable = 0;

  constructor(private readonly bus: Bus, private readonly opts: SensorOptions) {}

  start(): void {
    const object = new BpfObject(this.opts.objectPath ?? bpfObjectPath('process'));
    this.object = object;
    try {
      object.load();
      this.decode = recordDecoder((name) => object.btfStruct(name));
      object.attach();
      this.cache = new ProcessCache({
        nodeName: this.opts.nodeName, clock: this.clock, hostNamespaces: hostNamespaces(),
        ...(this.opts.maxProcesses !== undefined && { maxEntries: this.opts.maxProcesses }),
      });
      this.reader = new RingReader(object, 'vigil_events', (batch) => this.handleBatch(batch));
      this.cache.seed(walkProc());
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /** Detaches the programs and stops the reader; batches already read are still handled. */
  stop(): void {
    this.reader?.close();
    this.reader = undefined;
    this.object?.close();
    this.object = undefined;
  }

  processCache(): ProcessCache {
    if (!this.cache) throw new Error('sensor not started');
    return this.cache;
  }

  stats(): SensorStats {
    return {
      ring: this.reader?.stats() ?? { records: 0, bytes: 0, batches: 0, droppedRecords: 0, droppedBatches: 0, queuedBatches: 0 },
      kernelLost: this.kernelLost(),
      undecodable: this.undecodable,
      cache: this.cache?.stats() ?? { size: 0, live: 0, evicted: 0, misses: 0 },
      events: { ...this.events },
    };
  }

  private kernelLost(): number {
    const perCpu = this.object?.mapLookup('vigil_lost', Buffer.alloc(4));
    let total = 0;
    if (perCpu) for (let off = 0; off + 8 <= perCpu.length; off += 8) total += Number(perCpu.readBigUInt64LE(off));
    return total;
  }

  private handleBatch(batch: Buffer): void {
    const decode = this.decode!;
    forEachRecord(batch, (offset, length) => {
      const record = decode(batch, offset, length);
      if (record) this.handleRecord(record);
      else this.undecodable++;
    });
  }

  private handleRecord(record: KernelRecord): void {
    const cache = this.cache!;
    const base = { node_name: this.opts.nodeName, time: this.clock.timestamp(record.ktime) };
    switch (record.kind) {
      case RecordKind.exec:
        this.publish('process_exec', { ...base, process_exec: cache.onExec(record) });
        break;
      case RecordKind.fork:
        cache.onFork(record);
        break;
      case RecordKind.exit:
        this.publish('process_exit', { ...base, process_exit: cache.onExit(record) });
        break;
    }
  }

  private publish(type: EventType, event: GetEventsResponse): void {
    this.events[type] = (this.events[type] ?? 0) + 1;
    this.bus.publishEvent({ type, event, bytes: encodeMessage('tetragon.GetEventsResponse', event) });
  }
}
