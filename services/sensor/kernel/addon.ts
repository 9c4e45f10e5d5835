/**
 * Typed access to the native addon (native/, vigil_bpf.node): BPF objects over
 * libbpf and a ring-buffer reader thread that hands JavaScript batches of records.
 *
 * Errors thrown by the addon are plain `Error`s whose message names the
 * operation, the object, map or program, and the errno text, e.g.
 * `mapLookup vigil_lost: key is 8 bytes, the map's is 4 (Invalid argument)`.
 * They carry `code` ('EPERM', 'ENOENT', …) and `errno` (the positive number) to
 * match on, and for open/load/attach `log`, libbpf's messages (the verifier log).
 * Bad argument types throw a `TypeError` with code 'ERR_INVALID_ARG_TYPE'.
 */
import { createRequire } from 'node:module';
import { addonPath } from '../../lib/paths.js';

/** Shape of a map, as declared in the object (max_entries may be changed before load). */
export interface MapInfo {
  /** `enum bpf_map_type` (1 HASH, 2 ARRAY, 6 PERCPU_ARRAY, 27 RINGBUF, …). */
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
}

/** One member of a struct, from BTF. */
export interface BtfMember {
  readonly name: string;
  /** Byte offset from the start of the struct. */
  readonly offset: number;
  /** Bytes; 0 for a flexible array member. */
  readonly size: number;
  /**
   * The type with typedefs and qualifiers resolved: 'u8'…'u64', 's8'…'s64',
   * 'char', 'bool', 'char[16]', 'char[]' (flexible), 'u32[2][3]',
   * 'struct vigil_process', 'union …', 'enum vigil_record_kind', 'u8*'.
   */
  readonly type: string;
}

/** A struct as the object's BTF describes it. */
export interface BtfStruct {
  readonly size: number;
  readonly members: readonly BtfMember[];
}

/** Counters of a RingReader. After close() and once `closed` has resolved they are final. */
export interface RingStats {
  /** Records handed to JS (queued or delivered). */
  readonly records: number;
  /** Record bytes in them, framing excluded. */
  readonly bytes: number;
  /** Batches handed to JS. */
  readonly batches: number;
  /** Records read from the ring but discarded because JS was `maxQueuedBatches` behind. */
  readonly droppedRecords: number;
  /** Batches discarded for the same reason (droppedRecords is their total). */
  readonly droppedBatches: number;
  /** Batches queued for onBatch and not yet delivered. */
  readonly queuedBatches: number;
}

/**
 * A BPF ELF object: open on construction, then configure, load, attach.
 * Every method throws (code 'EBADF') once the object is closed.
 */
export interface BpfObject {
  /**
   * Sets a `const volatile` global (in .rodata) before load; `value` must be
   * exactly the variable's size. Throws ENOENT for an unknown name, EBUSY after load.
   */
  setRodata(name: string, value: Buffer): void;
  /** Changes a map's max_entries before load (EBUSY after). */
  setMapMaxEntries(map: string, maxEntries: number): void;
  /** Whether load() loads the program (default true); before load (EBUSY after). A program not loaded cannot be attached. */
  setAutoload(program: string, autoload: boolean): void;
  /** Creates the maps and loads the programs; the error's `log` holds the verifier's messages. */
  load(): void;
  /**
   * Attaches one program by name, or every loaded program whose section names
   * its target, e.g. `tp_btf/sched_process_exec` (all or nothing: on failure
   * the ones attached by this call are detached again). Programs of a generic
   * section (`tp`, `uprobe`, `uretprobe`: the policy hooks) are skipped, and
   * naming one throws EINVAL: they are attached with attachTracepoint or
   * attachUprobe. Attaching an attached program does nothing. The message
   * names the program, its section and the errno text.
   */
  attach(programName?: string): void;
  /**
   * Attaches `program` (a `tp` program) to the tracepoint `category:name`
   * (e.g. 'syscalls', 'sys_enter_openat') with `cookie` (0 to 2^32-1) as its
   * BPF cookie, which the program reads with bpf_get_attach_cookie (the
   * policy hook id). A program may be attached many times, each with its own
   * cookie. Returns the link's id for detach(); close() detaches it too.
   * Throws e.g. ENOENT for an unknown tracepoint; the error's `log` holds
   * libbpf's messages.
   */
  attachTracepoint(program: string, category: string, name: string, cookie: number): number;
  /**
   * Attaches `program` (a `uprobe` or `uretprobe` program: `retprobe` must say
   * which) to the entry or return of function `symbol` of the ELF file
   * `binaryPath` (libbpf resolves the symbol), in process `pid` or, without
   * it, in every process, with `cookie` (0 to 2^32-1) as its BPF cookie.
   * Returns the link's id for detach(), like attachTracepoint.
   */
  attachUprobe(
    program: string,
    binaryPath: string,
    symbol: string,
    /** offset: from the symbol, or from the file's start when symbol is '' (a USDT probe); refCtrOffset: the file offset of its semaphore. */
    opts: { retprobe: boolean; cookie: number; pid?: number; offset?: number; refCtrOffset?: number },
  ): number;
  /**
   * Attaches a cgroup program (section `cgroup/…`) to the cgroup v2 directory
   * `cgroupPath` (it then runs for every process of that cgroup and those
   * below it, beside other programs there: a multi-attach link). Returns the
   * link's id for detach(), like attachTracepoint.
   */
  attachCgroup(program: string, cgroupPath: string): number;
  /**
   * Attaches `program` to the target its section names (e.g. `tp_btf/sys_enter`)
   * as a link of its own, which detach() removes: for programs attached only
   * while something needs them. Returns the link's id, like attachTracepoint.
   */
  attachTarget(program: string): number;
  /** Detaches a link made by attachTracepoint, attachUprobe, attachCgroup or attachTarget, removing its pin (ENOENT for an unknown id). */
  detach(linkId: number): void;
  /** Names of the object's programs. */
  programs(): string[];
  mapInfo(map: string): MapInfo;
  /**
   * The value for `key`, or null when there is none. For per-CPU maps, every
   * possible CPU's value, each padded to a multiple of 8 bytes, concatenated.
   */
  mapLookup(map: string, key: Buffer): Buffer | null;
  /**
   * Writes `value` (all CPUs' values for per-CPU maps, as mapLookup returns
   * them). `flags`: 0 BPF_ANY, 1 BPF_NOEXIST, 2 BPF_EXIST.
   */
  mapUpdate(map: string, key: Buffer, value: Buffer, flags?: number): void;
  /** Deletes `key`; false when it was not there. */
  mapDelete(map: string, key: Buffer): boolean;
  /** Every key, at most maxEntries of them (a concurrent delete restarts the kernel's walk). */
  mapKeys(map: string): Buffer[];
  /** The layout of `struct name` from the object's own BTF (available from open on). */
  btfStruct(name: string): BtfStruct;
  /**
   * Pins every link in the bpffs directory `dir` (which must exist), now and
   * for every link attached from now on: a program's link of attach() as
   * `dir/PROGRAM`, a link of attachTracepoint/attachUprobe as `dir/link-ID`.
   * A pinned link stays attached when this process dies (kill -9): the kernel
   * keeps running the program, and its maps stay alive with it. detach() and
   * close() remove the pin before they detach, so a clean stop leaves nothing.
   * Throws naming the pin path (e.g. EPERM when `dir` is not on bpffs).
   */
  pinLinks(dir: string): void;
  /** Detaches every program (removing the pins of pinLinks) and frees the object. Idempotent. RingReaders keep working until closed. */
  close(): void;
}

/** Options of a RingReader. */
export interface RingReaderOptions {
  /** Size of one batch buffer; a larger record gets a batch of its own. Default 256 KiB. */
  batchBytes?: number;
  /**
   * Batches that may wait for the JS thread. When that many are waiting, the
   * reader keeps filling its current batch; when that one is full as well it
   * is discarded and counted (droppedRecords, droppedBatches): the reader
   * never blocks and never grows without bound. Default 64.
   */
  maxQueuedBatches?: number;
  /** How long one ring_buffer__poll waits; it also bounds how long close() waits. Default 10. */
  pollTimeoutMs?: number;
  /**
   * The poll's wait once 100 polls in a row found the ring empty (back to
   * pollTimeoutMs at the first record): fewer wakeups of an idle reader, for
   * up to this long before the first record after a quiet spell is read
   * (and before close() returns). Default: pollTimeoutMs.
   */
  idlePollTimeoutMs?: number;
  /**
   * An ARRAY map whose first u32 the producers read (bpf/lib/ring.h's
   * vigil_reader_idle): the reader sets it when it turns to idlePollTimeoutMs,
   * and the next record forces a wakeup, so a burst after a quiet spell is read
   * at once, not after up to one idle poll.
   */
  idleWakeMap?: string;
  /**
   * The zero-allocation path (cilium/ebpf's ReadInto): each batch Buffer is
   * valid only during onBatch. When onBatch returns the Buffer is detached
   * (it and every slice of it read as empty, never as later records) and its
   * memory goes straight back to the free list, with no garbage collection
   * in between, so a few batches are reused for ever. Copy what you keep.
   * Default false: the Buffer is lent until garbage-collected.
   */
  reuseBatches?: boolean;
}

/**
 * Reads a BPF ring buffer on a native thread and calls `onBatch` on the JS
 * thread with batches of records.
 *
 * The thread loops: ring_buffer__poll(pollTimeoutMs), then ring_buffer__consume
 * (the kernel batches wakeups, so a poll that timed out can still leave
 * records). Each record is copied into the current batch. A cycle that read
 * under 64 KiB (a trickle) queues its batch for JS at once and then sleeps
 * until one poll timeout after it began, so that a steady stream is read in
 * one chunk per timeout rather than woken for record by record; longer cycles
 * (a burst) run back to back, and their batch is queued when it is full, when
 * the ring goes idle, or once it has waited one poll timeout. So a record
 * reaches JS about one poll timeout after it was written at most, and a busy
 * ring yields full batches (few JS calls). Once 8 batches
 * wait for JS, only full batches are queued: a JS thread that stalls (a long
 * garbage collection) is then covered by up to maxQueuedBatches full batches,
 * not by one small batch per poll cycle, and the partial batch goes at the
 * first cycle after JS took the queue.
 *
 * The batch Buffer is lent without a copy: its memory returns to the reader's
 * free list when the Buffer is garbage-collected, so keeping it (or a slice of
 * it) is safe; see `reuseBatches` for the path that needs no collection. Walk
 * it with forEachRecord.
 *
 * An open reader keeps the event loop alive (like a socket) unless unref()'d;
 * it is not garbage-collected before close(). Closing the BpfObject first is
 * safe: the reader holds its own descriptor of the map.
 */
export interface RingReader {
  /**
   * Stops reading: sets the stop flag and joins the thread, which notices it
   * within one poll timeout (at once if it is consuming: after the record in
   * hand); records still in the ring stay there. The partly filled batch is
   * queued (or counted as dropped if the queue is full). close() returns once
   * the thread has exited, so nothing more is read; batches queued before then
   * are still delivered to onBatch afterwards, and `closed` resolves after the
   * last one, when the reader stops keeping the event loop alive. Idempotent;
   * throws (once) the error that stopped the thread early, if one did.
   * stats() keeps working. Safe to call from onBatch.
   */
  close(): void;
  /** Resolves once close() was called and every queued batch has been delivered. */
  readonly closed: Promise<void>;
  stats(): RingStats;
  /** Keep the event loop alive while open (the default). */
  ref(): void;
  /** Let the process exit while this reader is open. */
  unref(): void;
}

/** Called on the JS thread with one batch and the number of records in it. */
export type BatchCallback = (batch: Buffer, records: number) => void;

interface Addon {
  BpfObject: new (path: string) => BpfObject;
  RingReader: new (obj: BpfObject, mapName: string, onBatch: BatchCallback, opts?: RingReaderOptions) => RingReader;
  trimNativeHeap: () => boolean;
}

const addon = loadAddon();

function loadAddon(): Addon {
  try {
    return createRequire(import.meta.url)(addonPath) as Addon;
  } catch (err) {
    throw new Error(`cannot load the native addon ${addonPath} (build it with npm run build)`, { cause: err });
  }
}

/**
 * Opens a BPF ELF object file (bpf_object__open_file). Throws naming the path,
 * e.g. code 'ENOENT' for a missing file.
 */
export const BpfObject: new (path: string) => BpfObject = addon.BpfObject;

/**
 * Starts reading `mapName` (a loaded RINGBUF map of `obj`) on a native thread.
 * The reader holds its own descriptor of the map, so closing `obj` first is safe.
 */
export const RingReader: new (obj: BpfObject, mapName: string, onBatch: BatchCallback, opts?: RingReaderOptions) => RingReader =
  addon.RingReader;

/**
 * Gives the free pages of the C heap back to the system (glibc's
 * malloc_trim(0)): a burst's ring batches are freed into the reader thread's
 * arena, which glibc otherwise keeps. Returns whether any page was given back.
 */
export const trimNativeHeap: () => boolean = addon.trimNativeHeap;

/**
 * Walks the framing of a batch, `[u32 length][record][zero padding to 8]`
 * repeated, calling `fn` with each record's offset in `batch` and its length.
 * Returns the number of records.
 */
export function forEachRecord(batch: Buffer, fn: (offset: number, length: number) => void): number {
  const end = batch.length;
  let offset = 0;
  let count = 0;
  while (offset + 4 <= end) {
    const length = batch.readUInt32LE(offset);
    fn(offset + 4, length);
    offset = (offset + 4 + length + 7) & ~7;
    count++;
  }
  return count;
}

/**
 * Sums a u64 field over every CPU's copy of a per-CPU map value, as mapLookup
 * returns them (each copy rounded up to 8 bytes). A missing entry sums to 0.
 */
export function sumPerCpu(values: Buffer | null, valueSize: number, fieldOffset = 0): number {
  const stride = Math.ceil(valueSize / 8) * 8;
  let total = 0;
  for (let cpu = 0; values && cpu + stride <= values.length; cpu += stride) total += Number(values.readBigUInt64LE(cpu + fieldOffset));
  return total;
}
