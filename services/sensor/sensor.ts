/**
 * The sensor: owns the BPF object, its programs and its ring buffer on this
 * node, and serves SensorPolicyControl through the policy manager. What the
 * ring buffer yields goes to the EventPipeline (pipeline.ts), which turns
 * records into Tetragon events on the bus.
 *
 * Start-up order matters: programs are attached and the ring reader started
 * before /proc is walked, and the (synchronous) walk completes before the
 * first batch is handled, so a process that starts during the walk is seen
 * either by the walk or by its records, and records are applied after the walk.
 *
 * Enforcement across restarts (`pinDir`, default /sys/fs/bpf/vigil in the
 * agent): every link this sensor attaches (the lifecycle programs, which keep
 * vigil_procs current for matchBinaries, and each policy attachment) is pinned
 * in bpffs under `pinDir/<generation>`, a directory of its own named
 * `<start time ms>-<pid>`. A pinned link outlives the process: after a kill -9
 * the kernel keeps running the programs with their maps (the policy tables
 * stay as they were), so a Sigkill policy keeps killing while no agent runs;
 * its events are lost (the ring buffer fills; nobody reads it).
 *
 * A new sensor does not adopt the old generation's maps: it loads a fresh
 * object, pins its own generation, the policy store loads its policies again
 * (the policy directory and the state directory of API-added policies), and
 * only then releasePrevious() removes the pins of generations whose process is
 * gone, which detaches them. Old and new programs overlap for that moment
 * (both enforce; a kill is idempotent), so there is no gap in enforcement. A
 * start that fails leaves the old generation pinned and enforcing. stop()
 * (SIGTERM, SIGINT) removes this generation's pins and detaches: a clean stop
 * leaves nothing in the kernel.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Bus, SensorStatsMessage } from '../lib/bus.js';
import type { EventType } from '../lib/event-model.js';
import type { PolicyMode, PolicyProgram } from '../lib/policy-program.js';
import type { PolicyKernelStats, SensorPolicyControl } from '../lib/sensor-control.js';
import { bpfObjectPath, tracepointExists } from '../lib/paths.js';
import { BpfObject, RingReader, sumPerCpu, trimNativeHeap, type RingStats } from './kernel/addon.js';
import { PolicyActions, type PolicyActionOptions } from './policy-actions.js';
import { BootClock } from './identity.js';
import { ProcessCache, type ProcessCacheStats } from './process-cache.js';
import { hostNamespaces, walkProc } from './proc-walk.js';
import { BTF_TRACEPOINT_PROGRAMS, PolicyManager } from './policy-tables/manager.js';
import { ProcStateEncoder } from './policy-tables/proc-state.js';
import type { ContainerRegistry } from './containers/registry.js';
import type { PodWaitOptions, PodWaitStats } from './pod-wait.js';
import { EventPipeline } from './pipeline.js';
import { BatchTurns } from './batch-turns.js';
import { startHeapTrim } from './heap-trim.js';

/** The lifecycle programs, attached at start; the generic hook programs are attached per policy. */
const LIFECYCLE_PROGRAMS = ['vigil_exec', 'vigil_fork', 'vigil_exit'];

/** A pin generation directory's name: start time (ms) and pid. */
const GENERATION = /^\d+-\d+$/;
/** bpf_map_update_elem flag: only create. */
const BPF_NOEXIST = 1;
/**
 * How the ring reader polls. The kernel wakes it only once 256 KiB are
 * pending (bpf/lib/ring.h), so under a steady load a record waits up to about
 * one poll before it is read: 1 ms keeps an event's way to a subscriber
 * within a few ms, for a thousand short wakeups a second of the reader's
 * thread (a 10 ms poll put the median at 18 ms at 10,000 events/s); after
 * 100 ms without records it polls every 10 ms, as before, so an idle agent
 * does not pay for it. A 1 ms poll hands JS a batch about every millisecond, so the reader's
 * bound on batches waiting for JS is counted in milliseconds: 512 batches of
 * up to 64 KiB ride out half a second of a busy JS thread (or 32 MiB), where
 * the defaults (64 of 256 KiB, 10 ms polls) rode out 640 ms (or 16 MiB).
 */
const RING_READER_OPTIONS = { pollTimeoutMs: 1, idlePollTimeoutMs: 10, idleWakeMap: 'vigil_reader_idle', batchBytes: 64 * 1024, maxQueuedBatches: 512 };

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

export interface SensorOptions {
  nodeName: string;
  /** The compiled sensor object; defaults to build/bpf/vigil.bpf.o. */
  objectPath?: string;
  maxProcesses?: number;
  /** How often counters are published on the bus (ms); 0 disables. */
  statsIntervalMs?: number;
  /** Containers and their pods by cgroup; none: every process is a host process. */
  containers?: ContainerRegistry;
  /** How long, and how many, events of a new container may wait for its pod (pod-wait.ts). */
  podWait?: PodWaitOptions;
  /**
   * A bpffs directory in which the links are pinned so that enforcement
   * outlives the process (see above); absent or '': nothing is pinned.
   */
  pinDir?: string;
  /** How DnsLookup and GetUrl actions are done (policy-actions.ts). */
  policyActions?: PolicyActionOptions;
  /** Counters kept outside the sensor object (gRPC subscriber drops, bus publish drops). */
  externalStats?: () => { subscriberDropped: number; publishDropped: number };
}

export interface SensorStats {
  ring: RingStats;
  /** Records the kernel could not put in the ring (vigil_lost, all CPUs). */
  kernelLost: number;
  /** Records of an unknown kind or a malformed length. */
  undecodable: number;
  cache: ProcessCacheStats;
  podWait: PodWaitStats;
  events: Partial<Record<EventType, number>>;
}

export class Sensor implements SensorPolicyControl {
  private object?: BpfObject;
  private policies?: PolicyManager;
  private reader?: RingReader;
  private turns?: BatchTurns;
  private cache?: ProcessCache;
  private pipeline?: EventPipeline;
  private readonly clock = new BootClock();
  private readonly policyActions: PolicyActions;
  private statsTimer?: NodeJS.Timeout;
  private stopHeapTrim?: () => void;
  /** This sensor's pin generation directory, while pinned. */
  private generationDir?: string;

  constructor(private readonly bus: Bus, private readonly opts: SensorOptions) {
    this.policyActions = new PolicyActions(opts.policyActions);
  }

  start(): void {
    const object = new BpfObject(this.opts.objectPath ?? bpfObjectPath('vigil'));
    this.object = object;
    try {
      // Programs bound to a tracepoint this kernel lacks stay unloaded, so the rest loads; hooks that need one are refused.
      for (const [event, { program, subsystem }] of Object.entries(BTF_TRACEPOINT_PROGRAMS)) {
        if (!tracepointExists(`${subsystem}/${event}`)) object.setAutoload(program, false);
      }
      object.load();
      this.pinGeneration(object);
      const btf = (name: string) => object.btfStruct(name);
      const policies = new PolicyManager(object, this.opts.containers);
      this.policies = policies;
      for (const program of LIFECYCLE_PROGRAMS) object.attach(program);
      this.cache = new ProcessCache({
        nodeName: this.opts.nodeName, clock: this.clock, hostNamespaces: hostNamespaces(),
        ...(this.opts.maxProcesses !== undefined && { maxEntries: this.opts.maxProcesses }),
        ...(this.opts.containers && { containers: this.opts.containers }),
      });
      const pipeline = new EventPipeline({
        nodeName: this.opts.nodeName, btf, cache: this.cache, hooks: (id) => policies.hook(id), clock: this.clock, bus: this.bus,
        ...(this.opts.containers && { containers: this.opts.containers }),
        ...(this.opts.podWait && { podWait: this.opts.podWait }),
        policyActions: this.policyActions,
      });
      this.pipeline = pipeline;
      const turns = new BatchTurns((batch) => pipeline.handleBatch(batch));
      this.turns = turns;
      this.reader = new RingReader(object, 'vigil_events', (batch) => turns.push(batch), RING_READER_OPTIONS);
      const snapshots = walkProc();
      this.cache.seed(snapshots);
      const procState = new ProcStateEncoder(btf);
      for (const snap of snapshots) {
        const { key, value } = procState.encode(snap);
        try {
          object.mapUpdate('vigil_procs', key, value, BPF_NOEXIST);
        } catch (err) {
          if ((err as { code?: string }).code !== 'EEXIST') throw err; // the kernel's own entry is newer
        }
      }
      const reader = this.reader;
      this.stopHeapTrim = startHeapTrim(() => reader.stats().records, trimNativeHeap);
      const interval = this.opts.statsIntervalMs ?? 1000;
      if (interval > 0) {
        this.statsTimer = setInterval(() => this.bus.publishStats(this.statsMessage()), interval);
        this.statsTimer.unref();
      }
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /** Detaches the programs and stops the reader; batches already read are still handled. */
  stop(): void {
    clearInterval(this.statsTimer);
    this.stopHeapTrim?.();
    this.policies?.close();
    this.policies = undefined;
    this.reader?.close();
    this.reader = undefined;
    this.turns?.flush();
    this.pipeline?.close();
    this.cache?.close();
    this.object?.close();
    this.object = undefined;
    if (this.generationDir !== undefined) {
      // close() removed the pins; the directory is empty now.
      fs.rmSync(this.generationDir, { recursive: true, force: true });
      this.generationDir = undefined;
    }
  }

  /** This sensor's pin generation directory (undefined when not pinning). */
  pinnedIn(): string | undefined {
    return this.generationDir;
  }

  /**
   * Removes the pins of earlier sensors whose process is gone (a kill -9 left
   * them enforcing), which detaches their programs and frees their maps.
   * Call it once the policies are loaded into this sensor. Returns the
   * generation directories removed.
   */
  releasePrevious(): string[] {
    const dir = this.opts.pinDir;
    if (!dir || this.generationDir === undefined) return [];
    const removed: string[] = [];
    for (const name of fs.readdirSync(dir)) {
      const gen = path.join(dir, name);
      if (gen === this.generationDir || !GENERATION.test(name)) continue;
      if (processAlive(Number(name.split('-')[1]))) continue; // another sensor running now: its pins are its own
      fs.rmSync(gen, { recursive: true, force: true });
      removed.push(gen);
    }
    return removed;
  }

  /** Pins this sensor's links under a new generation directory of pinDir. */
  private pinGeneration(object: BpfObject): void {
    const dir = this.opts.pinDir;
    if (!dir) return;
    const gen = path.join(dir, `${Date.now()}-${process.pid}`);
    try {
      fs.mkdirSync(gen, { recursive: true });
    } catch (err) {
      throw new Error(`bpf pin directory ${dir}: ${(err as Error).message} (it must be on a bpffs mount, e.g. under /sys/fs/bpf; `
        + "--bpf-pin-dir '' runs without pinning: enforcement then stops with the process)", { cause: err });
    }
    this.generationDir = gen;
    object.pinLinks(gen);
  }

  loadPolicy(program: PolicyProgram): Promise<void> {
    return this.policyManager().loadPolicy(program);
  }

  unloadPolicy(name: string): Promise<void> {
    return this.policyManager().unloadPolicy(name);
  }

  setPolicyMode(name: string, mode: PolicyMode): Promise<void> {
    return this.policyManager().setPolicyMode(name, mode);
  }

  setPolicyEnabled(name: string, enabled: boolean): Promise<void> {
    return this.policyManager().setPolicyEnabled(name, enabled);
  }

  policyStats(name: string): PolicyKernelStats {
    return this.policyManager().policyStats(name);
  }

  /** The cgroup2 ids a scoped policy covers now (its pods' containers). */
  policyScope(name: string): bigint[] {
    return this.policyManager().scopeCgroups(name);
  }

  /** Names of the policies loaded in the kernel now. */
  loaded(): string[] {
    return this.policies?.loaded() ?? [];
  }

  /** The counters exporters turn into metrics (SensorStatsMessage). */
  statsMessage(): SensorStatsMessage {
    const s = this.stats();
    const external = this.opts.externalStats?.() ?? { subscriberDropped: 0, publishDropped: 0 };
    return {
      node: this.opts.nodeName, time: Date.now(),
      ringReceived: s.ring.records, ringLost: s.kernelLost, ringDropped: s.ring.droppedRecords, undecodable: s.undecodable,
      processCacheSize: s.cache.size, processCacheMisses: s.cache.misses, processCacheEvicted: s.cache.evicted,
      podMetadataLate: s.podWait.releasedWithoutPod,
      policyStateLost: this.perCpuTotal('vigil_policy_lost'), overrideMissed: this.perCpuTotal('vigil_override_missed'),
      policyActionDropped: this.policyActions.stats().dropped,
      ...external,
      policies: this.loaded().map((name) => ({ name, ...this.policyStats(name) })),
    };
  }

  private policyManager(): PolicyManager {
    if (!this.policies) throw new Error('sensor not started');
    return this.policies;
  }

  processCache(): ProcessCache {
    if (!this.cache) throw new Error('sensor not started');
    return this.cache;
  }

  stats(): SensorStats {
    const pipeline = this.pipeline?.stats() ?? { undecodable: 0, events: {}, podWait: { held: 0, waiting: 0, releasedWithoutPod: 0 } };
    return {
      ring: this.reader?.stats() ?? { records: 0, bytes: 0, batches: 0, droppedRecords: 0, droppedBatches: 0, queuedBatches: 0 },
      kernelLost: this.kernelLost(),
      cache: this.cache?.stats() ?? { size: 0, live: 0, evicted: 0, misses: 0 },
      ...pipeline,
    };
  }

  private kernelLost(): number {
    return this.perCpuTotal('vigil_lost');
  }

  /** A PERCPU_ARRAY[1] u64 counter of the kernel, summed over CPUs. */
  private perCpuTotal(map: string): number {
    return sumPerCpu(this.object?.mapLookup(map, Buffer.alloc(4)) ?? null, 8);
  }
}
