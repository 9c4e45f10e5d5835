/**
 * The process cache: what the sensor knows of every process on the node, by
 * exec_id, built from the /proc walk at start and kept current by the kernel's
 * fork, exec and exit records.
 *
 * An entry lives while its process runs and, after it exits, for as long as a
 * child still refers to it as parent, so that a child's events can always name
 * their parent. The cache is bounded: past `maxEntries` the oldest entries are
 * evicted (counted in `stats.evicted`); an event whose process or parent is
 * unknown is still emitted, with what the record itself says, and counted in
 * `stats.misses`.
 */
import os from 'node:os';
import type { Pod, Process, ProcessExec, ProcessExit } from '../lib/event-model.js';
import { ProcessFlags } from '../lib/kernel-abi.js';
import type { ExecRecord, ExitRecord, ForkRecord, KernelProcess, NamespaceName } from './kernel/records.js';
import type { ProcSnapshot } from './proc-walk.js';
import { argumentsString, capabilities, credentials, execId, namespaces, sharedUserId, type BootClock } from './identity.js';
import { DOCKER_ID_LENGTH } from './containers/cgroup.js';
import type { ContainerInfo, ContainerRegistry } from './containers/registry.js';
import { addFixedForms } from '../lib/process-forms.js';

interface Entry {
  process: Process;
  pid: number;
  /** Pid in the process's own pid namespace (the container's). */
  nspid: number;
  /** The container, whose pod may become known after the process did. */
  container?: ContainerInfo;
  alive: boolean;
  /** Children (live, or dead but kept) that name this entry as parent. */
  children: number;
}

export interface ProcessCacheOptions {
  nodeName: string;
  clock: BootClock;
  hostNamespaces: Record<NamespaceName, number>;
  maxEntries?: number;
  /** Container identity and pod metadata by cgroup; none: every process is a host process. */
  containers?: ContainerRegistry;
}

export interface ProcessCacheStats { size: number; live: number; evicted: number; misses: number }

/** The pod of a snapshot whose container's metadata was still awaited when it was taken. */
export interface LatePod {
  /** The metadata source has answered (with or without a pod). */
  settled(): boolean;
  pod(): Pod | undefined;
}

/** Tetragon's Pod of a process in a container, when the container belongs to a Kubernetes pod. */
function podOf(container: ContainerInfo, nspid: number): Pod | undefined {
  const info = container.pod;
  if (!info?.podName) return undefined;
  const { ref } = container;
  return {
    namespace: info.namespace, name: info.podName,
    container: {
      id: `${ref.runtime}://${ref.id}`, name: info.containerName, image: { name: info.image },
      ...(info.createdAt && { start_time: { seconds: Math.floor(info.createdAt.getTime() / 1000), nanos: (info.createdAt.getTime() % 1000) * 1e6 } }),
      pid: { value: nspid },
    },
    pod_labels: info.labels,
  };
}

const SIGNAL_NAMES = new Map(Object.entries(os.constants.signals).map(([name, num]) => [num, name]));

export function signalName(signal: number): string {
  return SIGNAL_NAMES.get(signal) ?? `SIG${signal}`;
}

function execFlags(proc: KernelProcess, origin: 'execve' | 'procFS' | 'clone'): string {
  const flags: string[] = [origin];
  if (proc.flags & ProcessFlags.ARGS_TRUNCATED) flags.push('truncArgs');
  if (proc.flags & ProcessFlags.ARGS_UNREADABLE) flags.push('errorArgs');
  if (proc.flags & ProcessFlags.EXE_TRUNCATED) flags.push('truncFilename');
  if (proc.flags & ProcessFlags.CWD_TRUNCATED) flags.push('truncCWD');
  return flags.join(' ');
}

export class ProcessCache {
  private readonly byExecId = new Map<string, Entry>();
  private readonly byPid = new Map<number, Entry>();
  private readonly maxEntries: number;
  private evicted = 0;
  private misses = 0;
  private readonly awaitingPods = new WeakMap<Process, LatePod>();
  /** An entry's process is the fixed form of its snapshots (lib/process-forms.ts) while the entry is here. */
  private readonly forgetFixedForms = addFixedForms((id) => this.byExecId.get(id)?.process);

  constructor(private readonly opts: ProcessCacheOptions) {
    this.maxEntries = opts.maxEntries ?? 65536;
  }

  /** Its processes no longer serve the encoders as fixed forms (the sensor stopped); their snapshots are encoded whole. */
  close(): void {
    this.forgetFixedForms();
  }

  stats(): ProcessCacheStats {
    return { size: this.byExecId.size, live: this.byPid.size, evicted: this.evicted, misses: this.misses };
  }

  /** The live process at a pid, if known. */
  lookupPid(pid: number): Process | undefined {
    return this.byPid.get(pid)?.process;
  }

  lookupExecId(id: string): Process | undefined {
    return this.byExecId.get(id)?.process;
  }

  /** The process at a pid and its parent, for an event about it; unknown pids are counted as misses. */
  processOf(pid: number, tid: number): { process: Process; parent?: Process } {
    const entry = this.byPid.get(pid);
    if (!entry) {
      this.misses++;
      return { process: { ...this.unknownProcess({ pid, tid, ppid: 0, startBoottime: 0n }), exec_id: '' } };
    }
    const process = this.snapshot(entry); // a fresh object, and the key of its latePod: never copied
    process.tid = { value: tid };
    return { process, ...this.parentOf(entry) };
  }

  /** Adds the processes of the start-up walk (parents first). */
  seed(snapshots: readonly ProcSnapshot[]): void {
    for (const snap of snapshots) {
      if (this.byPid.has(snap.proc.pid)) continue; // a kernel record got there first
      this.insert(snap.proc, snap.argv, snap.exe, snap.cwd, snap.proc.startBoottime, execFlags(snap.proc, 'procFS'));
    }
  }

  onExec(rec: ExecRecord): ProcessExec {
    // The parent is the real parent at exec, as the kernel tells it (so a
    // container's processes show the shim, their subreaper). One exception: a
    // child whose parent died before it exec'd is adopted by init (pid 1) or by
    // a reaper we do not know, which says nothing; it keeps the process that forked it.
    const previous = this.byPid.get(rec.proc.pid);
    const adopter = this.byPid.get(rec.proc.ppid);
    const forker = (rec.proc.ppid === 1 || !adopter) && previous ? this.byExecId.get(previous.process.parent_exec_id) : undefined;
    const entry = this.insert(rec.proc, rec.argv, rec.exe, rec.cwd, rec.ktime, execFlags(rec.proc, 'execve'), undefined, forker);
    if (previous) this.retire(previous);
    return { process: this.snapshot(entry), ...this.parentOf(entry) };
  }

  onFork(rec: ForkRecord): void {
    const parent = this.byPid.get(rec.proc.ppid);
    const previous = this.byPid.get(rec.proc.pid);
    if (previous) this.retire(previous);
    const { process } = parent ?? {};
    this.insert(rec.proc, [], process?.binary ?? '', process?.cwd ?? '', rec.ktime, 'clone', process?.arguments);
  }

  onExit(rec: ExitRecord): ProcessExit {
    const known = this.byPid.get(rec.pid);
    if (!known) this.misses++;
    const entry = known ?? { pid: rec.pid, nspid: rec.pid, alive: false, children: 0, process: this.unknownProcess(rec) };
    entry.alive = false;
    const signal = rec.exitStatus & 0x7f;
    const exit: ProcessExit = {
      process: this.snapshot(entry),
      ...this.parentOf(entry),
      signal: signal ? signalName(signal) : '',
      status: signal ? 0 : (rec.exitStatus >> 8) & 0xff,
      time: this.opts.clock.timestamp(rec.ktime),
    };
    if (known) {
      this.byPid.delete(rec.pid);
      this.release(known);
    }
    return exit;
  }

  private insert(proc: KernelProcess, argv: string[], exe: string, cwd: string, idTime: bigint, flags: string, args?: string, forker?: Entry): Entry {
    const parent = forker ?? this.byPid.get(proc.ppid);
    if (parent) parent.children++;
    const { nodeName, clock, hostNamespaces } = this.opts;
    const id = execId(nodeName, idTime, proc.pid);
    const pid = { value: proc.pid };
    const process: Process = {
      exec_id: id,
      pid,
      uid: sharedUserId('uid', proc.creds.uid),
      cwd,
      binary: exe,
      arguments: args ?? argumentsString(argv),
      flags: cwd === '/' ? `${flags} rootcwd` : flags,
      start_time: clock.timestamp(idTime),
      auid: sharedUserId('auid', proc.creds.auid),
      parent_exec_id: parent?.process.exec_id ?? '',
      refcnt: 0,
      cap: capabilities(proc),
      ns: namespaces(proc.ns, hostNamespaces),
      // A main thread's tid is its pid: one object serves both (the cache keeps one process per pid).
      tid: proc.tid === proc.pid ? pid : { value: proc.tid },
      process_credentials: credentials(proc),
    };
    const container = this.opts.containers?.ofCgroup(proc.cgroupId);
    if (container) process.docker = container.ref.id.slice(0, DOCKER_ID_LENGTH);
    const entry: Entry = { process, pid: proc.pid, nspid: proc.nspid, alive: true, children: 0, ...(container && { container }) };
    this.byExecId.set(id, entry);
    this.byPid.set(proc.pid, entry);
    this.evictOverflow();
    return entry;
  }

  /** A process image replaced (exec) or a pid reused: it no longer runs. */
  private retire(entry: Entry): void {
    entry.alive = false;
    if (this.byPid.get(entry.pid) === entry) this.byPid.delete(entry.pid);
    this.release(entry);
  }

  /** Drops a dead entry no child refers to, then its parent if that was its last reference. */
  private release(start: Entry): void {
    let entry: Entry | undefined = start;
    while (entry && !entry.alive && entry.children === 0) {
      this.byExecId.delete(entry.process.exec_id);
      const parent: Entry | undefined = this.byExecId.get(entry.process.parent_exec_id);
      if (parent) parent.children--;
      entry = parent;
    }
  }

  private evictOverflow(): void {
    if (this.byExecId.size <= this.maxEntries) return;
    for (const [id, entry] of this.byExecId) {
      if (this.byExecId.size <= this.maxEntries) return;
      this.byExecId.delete(id);
      if (this.byPid.get(entry.pid) === entry) this.byPid.delete(entry.pid);
      this.evicted++;
    }
  }

  private parentOf(entry: Entry): { parent?: Process } {
    const id = entry.process.parent_exec_id;
    if (!id) return {};
    const parent = this.byExecId.get(id);
    if (!parent) {
      this.misses++;
      return {};
    }
    return { parent: this.snapshot(parent) };
  }

  /**
   * The entry's process as of now: a copy, so later refcnt changes don't alter
   * emitted events; with its pod once known. A snapshot taken while the
   * container's metadata is awaited is remembered (latePod) so the pod can be
   * added to it when it arrives.
   */
  private snapshot(entry: Entry): Process {
    const process: Process = { ...entry.process, refcnt: entry.children + (entry.alive ? 1 : 0) };
    const { container, nspid } = entry;
    if (!container) return process;
    const pod = podOf(container, nspid);
    if (pod) process.pod = pod;
    else if (container.awaitingMetadata) this.awaitingPods.set(process, { settled: () => !container.awaitingMetadata, pod: () => podOf(container, nspid) });
    return process;
  }

  /** For a snapshot taken before its container's metadata arrived: how to get its pod later. */
  latePod(process: Process): LatePod | undefined {
    return this.awaitingPods.get(process);
  }

  private unknownProcess(rec: Pick<ExitRecord, 'pid' | 'tid' | 'ppid' | 'startBoottime'>): Process {
    const parent = this.byPid.get(rec.ppid);
    return {
      exec_id: execId(this.opts.nodeName, rec.startBoottime, rec.pid),
      pid: { value: rec.pid }, uid: { value: 0 }, cwd: '', binary: '', arguments: '', flags: 'miss',
      start_time: this.opts.clock.timestamp(rec.startBoottime), auid: { value: 4294967295 },
      parent_exec_id: parent?.process.exec_id ?? '', refcnt: 0, tid: { value: rec.tid },
    };
  }
}
