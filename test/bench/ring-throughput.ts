/**
 * Ring-buffer throughput: records per second from the kernel to a consumer,
 * through the addon to a JS callback versus the C reference consumer
 * (test/bench/ring-reference.c). Both read ringload.bpf.o's records (one per
 * getpid of `getpid-load -w N`), both read every record's seq, both time from
 * releasing the load generator until the last record has been read.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchBinaryPath, benchObjectPath } from '../../services/lib/paths.js';
import { BpfObject, RingReader, forEachRecord, sumPerCpu, type RingReaderOptions } from '../../services/sensor/kernel/addon.js';

export interface Throughput {
  /** Records the consumer read. */
  records: number;
  /** Records the kernel had no ring space for (vigil_lost). */
  lost: number;
  /** Records read but discarded by the addon because JS fell behind (0 for the reference). */
  dropped: number;
  seconds: number;
  recordsPerSecond: number;
}

const DRAIN_TIMEOUT_MS = 30_000;

/** Sum of the per-CPU u64 counters of vigil_lost. */
export function lostRecords(obj: BpfObject): number {
  return sumPerCpu(obj.mapLookup('vigil_lost', Buffer.alloc(4)), 8);
}

/**
 * `n` getpid records through the addon's RingReader (default options unless
 * `opts` says otherwise) to a JS callback that reads every record's seq.
 */
export async function measureAddonThroughput(n: number, opts?: RingReaderOptions): Promise<Throughput> {
  const child = spawn(benchBinaryPath('getpid-load'), ['-w', String(n)], { stdio: ['pipe', 'ignore', 'inherit'] });
  const exit = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const obj = new BpfObject(benchObjectPath('ringload'));
  try {
    const tgid = Buffer.alloc(4);
    tgid.writeUInt32LE(child.pid!);
    obj.setRodata('bench_tgid', tgid);
    obj.load();
    obj.attach();

    let records = 0;
    let lastSeq = -1;
    let ordered = true;
    const reader = new RingReader(obj, 'vigil_events', (batch) => {
      forEachRecord(batch, (offset) => {
        // struct vigil_bench_record: 16-byte header, then u64 seq.
        const seq = batch.readUInt32LE(offset + 16) + batch.readUInt32LE(offset + 20) * 2 ** 32;
        if (seq <= lastSeq) ordered = false;
        lastSeq = seq;
        records++;
      });
    }, opts);
    try {
      const start = performance.now();
      child.stdin!.end('x');
      const [code, signal] = await exit;
      if (code !== 0) throw new Error(`getpid-load failed: ${signal ?? `exit code ${code}`}`);
      const deadline = Date.now() + DRAIN_TIMEOUT_MS;
      while (records + reader.stats().droppedRecords + lostRecords(obj) < n) {
        if (Date.now() > deadline) throw new Error(`only ${records} of ${n} records arrived`);
        await sleep(1);
      }
      const seconds = (performance.now() - start) / 1000;
      if (!ordered) throw new Error('records arrived out of sequence');
      return { records, lost: lostRecords(obj), dropped: reader.stats().droppedRecords, seconds, recordsPerSecond: records / seconds };
    } finally {
      reader.close();
    }
  } finally {
    obj.close();
    if (child.exitCode === null) child.kill();
  }
}

/** The same through build/bench/ring-reference (C, libbpf). */
export async function measureReferenceThroughput(n: number): Promise<Throughput> {
  const { stdout } = await promisify(execFile)(benchBinaryPath('ring-reference'), [String(n)]);
  const line = JSON.parse(stdout.trim().split('\n').pop()!) as {
    records: number; lost: number; ordered: boolean; seconds: number; recordsPerSecond: number;
  };
  if (!line.ordered) throw new Error('ring-reference: records arrived out of sequence');
  return { records: line.records, lost: line.lost, dropped: 0, seconds: line.seconds, recordsPerSecond: line.recordsPerSecond };
}
