/**
 * The native addon on the real kernel: ringload.bpf.o (one record per getpid
 * of a getpid-load child) read through RingReader, the map API, BTF, errors,
 * the bounded queue and close(). These fail (never skip) when the kernel
 * refuses the program.
 */
import test from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { BpfObject, RingReader, forEachRecord, trimNativeHeap } from '../../services/sensor/kernel/addon.js';
import { benchBinaryPath, benchObjectPath } from '../../services/lib/paths.js';
import { lostRecords } from '../bench/ring-throughput.js';
import { waitFor } from '../support/wait.js';

const RECORD_BENCH = 100;
const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
const BPF_MAP_TYPE_RINGBUF = 27;
const BPF_NOEXIST = 1;

/** A getpid-load child waiting on stdin; release() starts its n getpid calls. */
interface Load {
  child: ChildProcess;
  pid: number;
  exit: Promise<unknown[]>;
  release(): void;
}

function startLoad(n: number): Load {
  const child = spawn(benchBinaryPath('getpid-load'), ['-w', String(n)], { stdio: ['pipe', 'ignore', 'inherit'] });
  return { child, pid: child.pid!, exit: once(child, 'exit'), release: () => child.stdin!.end('x') };
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

function u64(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return b;
}

/** ringload.bpf.o loaded and attached for `tgid`. */
function openRingload(tgid: number, recordBytes?: number): BpfObject {
  const obj = new BpfObject(benchObjectPath('ringload'));
  try {
    obj.setRodata('bench_tgid', u32(tgid));
    if (recordBytes !== undefined) obj.setRodata('bench_record_bytes', u32(recordBytes));
    obj.load();
    obj.attach();
  } catch (err) {
    obj.close();
    throw err;
  }
  return obj;
}

/** CPUs the kernel may ever bring up, as libbpf_num_possible_cpus() counts them. */
function possibleCpus(): number {
  let count = 0;
  for (const range of fs.readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split(',')) {
    const [lo, hi] = range.split('-').map(Number);
    count += (hi ?? lo!) - lo! + 1;
  }
  return count;
}

/**
 * Runs an ES module in a fresh node, calling `onLine` with each line it prints;
 * resolves with its exit code, what it printed and how long it ran.
 */
async function runNode(source: string, args: string[] = [], onLine?: (line: string) => void):
Promise<{ code: number | null; lines: string[]; ms: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--input-type=module', '-e', source, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      lines.push(line);
      onLine?.(line);
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, lines, ms: performance.now() - started };
}

const addonModule = new URL('../../services/sensor/kernel/addon.js', import.meta.url).href;

test('records arrive once each, in sequence, and the stats add up', async () => {
  const n = 200_000;
  const load = startLoad(n);
  const obj = openRingload(load.pid);
  let count = 0;
  let batches = 0;
  let announced = 0;
  let lastSeq = -1;
  const bad: string[] = [];
  const reader = new RingReader(obj, 'vigil_events', (batch, records) => {
    batches++;
    announced += records;
    const walked = forEachRecord(batch, (offset, length) => {
      const kind = batch.readUInt32LE(offset);
      const size = batch.readUInt32LE(offset + 4);
      const seq = Number(batch.readBigUInt64LE(offset + 16));
      if (kind !== RECORD_BENCH || size !== 320 || length !== 320) bad.push(`kind ${kind} size ${size} length ${length}`);
      if (seq <= lastSeq) bad.push(`seq ${seq} after ${lastSeq}`);
      lastSeq = seq;
      count++;
    });
    if (walked !== records) bad.push(`batch of ${records} records walked as ${walked}`);
  });
  try {
    load.release();
    await load.exit;
    await waitFor('every record', () => (count + lostRecords(obj) >= n ? true : undefined));
    assert.deepEqual(bad, []);
    assert.equal(count + lostRecords(obj), n);
    assert.equal(lastSeq, n - 1, 'the last getpid made the last record');
    const stats = reader.stats();
    assert.equal(stats.records, count);
    assert.equal(announced, count);
    assert.equal(stats.bytes, count * 320);
    assert.equal(stats.batches, batches);
    assert.equal(stats.droppedRecords, 0);
    assert.equal(stats.droppedBatches, 0);
    assert.equal(stats.queuedBatches, 0);
  } finally {
    reader.close();
    obj.close();
  }
  await reader.closed;
});

test('trimNativeHeap gives back the C heap pages of the batches the 200,000 records above left, once their buffers are collected', async () => {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
  await new Promise((resolve) => setImmediate(resolve)); // finalizers the collection deferred have run
  assert.equal(trimNativeHeap(), true, 'pages given back');
  assert.equal(typeof trimNativeHeap(), 'boolean');
});

test('idleWakeMap: a reader gone idle is woken by the first record, not after its idle poll', async () => {
  const load = startLoad(1);
  const obj = openRingload(load.pid);
  let count = 0;
  // A minute's idle poll: without the wake, the record would wait for it.
  const reader = new RingReader(obj, 'vigil_events', (_batch, records) => { count += records; },
    { pollTimeoutMs: 1, idlePollTimeoutMs: 60_000, idleWakeMap: 'vigil_reader_idle' });
  const flag = (): number => obj.mapLookup('vigil_reader_idle', u32(0))!.readUInt32LE(0);
  try {
    await waitFor('the reader to turn to idle polls and set the flag', () => (flag() === 1 ? true : undefined));
    load.release();
    await load.exit;
    await waitFor('the record', () => (count >= 1 ? true : undefined), 10_000);
    assert.equal(flag(), 0, 'the producer cleared the flag as it forced the wakeup');
  } finally {
    reader.close(); // busy polls again after the record: prompt
    obj.close();
  }
  await reader.closed;
  const other = openRingload(process.pid);
  try {
    assert.throws(() => new RingReader(other, 'vigil_events', () => {}, { idleWakeMap: 'vigil_lost' }),
      { message: /map 'vigil_lost' is a percpu_array map, not a array one/ });
  } finally {
    other.close();
  }
});


/** IRQ work interrupts on all CPUs (the IWI row of /proc/interrupts): a forced ring wakeup raises one. */
function irqWorkInterrupts(): number {
  const row = fs.readFileSync('/proc/interrupts', 'utf8').split('\n').find((l) => l.trimStart().startsWith('IWI:'));
  assert.ok(row, '/proc/interrupts has an IWI row');
  return row.trim().split(/\s+/).slice(1).filter((f) => /^\d+$/.test(f)).reduce((sum, f) => sum + Number(f), 0);
}

test('a reader that does not read is woken once at the wakeup mark, not by every record past it', async () => {
  // 5,000 records of 320 bytes: 1.6 MB, six times vigil_wakeup_bytes, and nobody reading.
  const n = 5000;
  const load = startLoad(n);
  const obj = openRingload(load.pid);
  try {
    const before = irqWorkInterrupts();
    load.release();
    await load.exit;
    const raised = irqWorkInterrupts() - before;
    assert.equal(lostRecords(obj), 0, 'the ring had room for every record');
    // A wakeup forced by each record past the mark would raise over 4,000.
    assert.ok(raised < n / 20, `${raised} IRQ work interrupts for ${n} records`);
  } finally {
    obj.close();
  }
});
test('setAutoload: a program left unloaded lets the object load, and cannot be attached', () => {
  const obj = new BpfObject(benchObjectPath('ringload'));
  try {
    const [program] = obj.programs();
    obj.setAutoload(program!, false);
    obj.load();
    assert.throws(() => obj.attach(program!), { message: new RegExp(`attach ${program}: .* is not loaded`) });
    assert.throws(() => obj.setAutoload(program!, true), { message: /is already loaded/ });
  } finally {
    obj.close();
  }
});

test('a record larger than a batch gets a batch of its own', async () => {
  const n = 500;
  const load = startLoad(n);
  const obj = openRingload(load.pid, 4096);
  const lengths = new Set<number>();
  let count = 0;
  const reader = new RingReader(obj, 'vigil_events', (batch, records) => {
    assert.equal(records, 1);
    forEachRecord(batch, (_offset, length) => { lengths.add(length); count++; });
  }, { batchBytes: 1024, maxQueuedBatches: n });
  try {
    load.release();
    await load.exit;
    await waitFor('every record', () => (count + lostRecords(obj) >= n ? true : undefined));
    assert.equal(count, n);
    assert.deepEqual([...lengths], [4096]);
    assert.equal(reader.stats().batches, n);
  } finally {
    reader.close();
    obj.close();
  }
});

test('close() returns promptly, later batches are only the queued ones, and closed resolves', async () => {
  const load = startLoad(50_000_000);
  const obj = openRingload(load.pid);
  let delivered = 0;
  let afterClosed = 0;
  let isClosed = false;
  const reader = new RingReader(obj, 'vigil_events', (_batch, records) => {
    delivered += records;
    if (isClosed) afterClosed++;
  });
  try {
    load.release();
    await waitFor('records flowing', () => (reader.stats().records > 50_000 ? true : undefined));
    const started = performance.now();
    reader.close();
    const closeMs = performance.now() - started;
    assert.ok(closeMs < 200, `close() took ${closeMs.toFixed(1)} ms`);
    const atClose = reader.stats();
    reader.close(); // idempotent
    await reader.closed;
    isClosed = true;
    await sleep(50);
    assert.equal(afterClosed, 0);
    const final = reader.stats();
    assert.equal(final.records, atClose.records, 'nothing is read after close() returns');
    assert.equal(final.droppedRecords, atClose.droppedRecords);
    assert.equal(final.queuedBatches, 0);
    assert.equal(delivered, final.records);
  } finally {
    load.child.kill();
    obj.close();
    await load.exit;
  }
});

test('with JS blocked the queue stays bounded: records are dropped and counted, none vanish', async () => {
  const n = 600_000;
  const load = startLoad(n);
  const obj = openRingload(load.pid);
  let count = 0;
  let lastSeq = -1;
  let ordered = true;
  const reader = new RingReader(obj, 'vigil_events', (batch) => {
    forEachRecord(batch, (offset) => {
      const seq = Number(batch.readBigUInt64LE(offset + 16));
      if (seq <= lastSeq) ordered = false;
      lastSeq = seq;
      count++;
    });
  }, { maxQueuedBatches: 2, batchBytes: 16 * 1024 });
  try {
    load.release();
    // Block the JS thread until the producer is done (a zombie, since nobody reaps it meanwhile).
    const deadline = Date.now() + 20_000;
    const stat = `/proc/${load.pid}/stat`;
    while (Date.now() < deadline && !/^\d+ \(.*\) Z/.test(fs.readFileSync(stat, 'utf8'))) { /* busy */ }
    const blocked = reader.stats();
    assert.ok(blocked.queuedBatches <= 2, `queued ${blocked.queuedBatches}`);
    await load.exit;
    await waitFor('every record accounted for', () => {
      const s = reader.stats();
      return s.queuedBatches === 0 && s.records + s.droppedRecords + lostRecords(obj) >= n ? true : undefined;
    });
    const stats = reader.stats();
    assert.ok(stats.droppedRecords > 0, 'records were dropped');
    assert.ok(stats.droppedBatches > 0, 'batches were dropped');
    assert.equal(stats.records + stats.droppedRecords + lostRecords(obj), n);
    assert.equal(count, stats.records);
    assert.ok(ordered, 'what was delivered is in sequence');
  } finally {
    reader.close();
    obj.close();
  }
});

test('reuseBatches: a Buffer is emptied when onBatch returns and its memory is reused', async () => {
  const n = 100_000;
  const load = startLoad(n);
  const obj = openRingload(load.pid);
  const kept: Buffer[] = [];
  let count = 0;
  const reader = new RingReader(obj, 'vigil_events', (batch) => {
    count += forEachRecord(batch, () => {});
    kept.push(batch);
  }, { reuseBatches: true });
  try {
    load.release();
    await load.exit;
    await waitFor('every record', () => (count + lostRecords(obj) >= n ? true : undefined));
    assert.ok(kept.length > 1);
    assert.ok(kept.every((b) => b.length === 0), 'kept Buffers are detached');
    assert.equal(reader.stats().records, count);
  } finally {
    reader.close();
    obj.close();
  }
});

test('maps: a per-CPU array (vigil_lost) and a hash (bench_kv)', () => {
  const obj = new BpfObject(benchObjectPath('ringload'));
  try {
    obj.load();
    assert.deepEqual(obj.mapInfo('vigil_lost'), { type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 });
    assert.equal(obj.mapInfo('vigil_events').type, BPF_MAP_TYPE_RINGBUF);
    const cpus = possibleCpus();
    const zero = u32(0);
    assert.equal(obj.mapLookup('vigil_lost', zero)!.length, cpus * 8);
    const perCpu = Buffer.concat(Array.from({ length: cpus }, (_, cpu) => u64(cpu + 1)));
    obj.mapUpdate('vigil_lost', zero, perCpu);
    assert.deepEqual(obj.mapLookup('vigil_lost', zero), perCpu);
    assert.deepEqual(obj.mapKeys('vigil_lost'), [zero]);
    assert.equal(obj.mapLookup('vigil_lost', u32(1)), null, 'past the end of the array');
    obj.mapUpdate('vigil_lost', zero, Buffer.alloc(cpus * 8));

    assert.deepEqual(obj.mapInfo('bench_kv'), { type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 8, maxEntries: 16 });
    assert.deepEqual(obj.mapKeys('bench_kv'), []);
    obj.mapUpdate('bench_kv', u32(7), u64(70));
    obj.mapUpdate('bench_kv', u32(9), u64(90));
    assert.deepEqual(obj.mapLookup('bench_kv', u32(7)), u64(70));
    assert.deepEqual(obj.mapKeys('bench_kv').map((k) => k.readUInt32LE()).sort(), [7, 9]);
    assert.throws(() => obj.mapUpdate('bench_kv', u32(7), u64(71), BPF_NOEXIST), { code: 'EEXIST', errno: 17 });
    assert.equal(obj.mapDelete('bench_kv', u32(7)), true);
    assert.equal(obj.mapDelete('bench_kv', u32(7)), false);
    assert.equal(obj.mapLookup('bench_kv', u32(7)), null);
    assert.deepEqual(obj.mapKeys('bench_kv'), [u32(9)]);
    assert.deepEqual(obj.programs(), ['bench_getpid']);
  } finally {
    obj.close();
  }
});

test('btfStruct reads layouts from the object BTF', () => {
  const obj = new BpfObject(benchObjectPath('ringload'));
  try {
    assert.deepEqual(obj.btfStruct('vigil_record_header'), {
      size: 16,
      members: [
        { name: 'kind', offset: 0, size: 4, type: 'u32' },
        { name: 'size', offset: 4, size: 4, type: 'u32' },
        { name: 'ktime', offset: 8, size: 8, type: 'u64' },
      ],
    });
    assert.deepEqual(obj.btfStruct('vigil_bench_record'), {
      size: 24,
      members: [
        { name: 'hdr', offset: 0, size: 16, type: 'struct vigil_record_header' },
        { name: 'seq', offset: 16, size: 8, type: 'u64' },
        { name: 'data', offset: 24, size: 0, type: 'char[]' },
      ],
    });
    assert.throws(() => obj.btfStruct('no_such_struct'), { code: 'ENOENT', message: /btfStruct no_such_struct: .*ringload\.bpf\.o/ });
  } finally {
    obj.close();
  }
});

test('errors name the operation and the object, map or program, and carry code and errno', () => {
  assert.throws(() => new BpfObject('/nonexistent/x.bpf.o'), {
    code: 'ENOENT', errno: 2, message: 'open /nonexistent/x.bpf.o: No such file or directory',
  });

  const obj = new BpfObject(benchObjectPath('ringload'));
  assert.throws(() => obj.setRodata('nope', u32(1)), { code: 'ENOENT', message: /setRodata nope: no const volatile variable named 'nope'/ });
  assert.throws(() => obj.setRodata('bench_tgid', u64(1)), { code: 'EINVAL', message: /setRodata bench_tgid: value is 8 bytes, the variable is 4/ });
  assert.throws(() => obj.mapLookup('vigil_lost', u32(0)), { code: 'EINVAL', message: /mapLookup vigil_lost: ringload\.bpf\.o is not loaded/ });
  assert.throws(() => new RingReader(obj, 'vigil_events', () => {}), { code: 'EINVAL', message: /RingReader vigil_events: .*not loaded/ });
  obj.setRodata('bench_tgid', u32(process.pid));
  obj.load();
  assert.throws(() => obj.setRodata('bench_tgid', u32(1)), { code: 'EBUSY', message: /already loaded/ });
  assert.throws(() => obj.setMapMaxEntries('bench_kv', 32), { code: 'EBUSY' });
  assert.throws(() => obj.mapInfo('nope'), { code: 'ENOENT', errno: 2, message: /mapInfo nope: no map named 'nope' in ringload\.bpf\.o/ });
  assert.throws(() => obj.mapLookup('vigil_lost', u64(0)), { code: 'EINVAL', errno: 22, message: /mapLookup vigil_lost: key is 8 bytes, the map's is 4/ });
  assert.throws(() => obj.mapUpdate('vigil_lost', u32(0), u64(0).subarray(0, 4)), { code: 'EINVAL', message: /value is 4 bytes/ });
  assert.throws(() => obj.attach('nope'), { code: 'ENOENT', message: /attach nope: no program named 'nope'/ });
  assert.throws(() => new RingReader(obj, 'bench_kv', () => {}), { code: 'EINVAL', message: /RingReader bench_kv: map 'bench_kv' is a hash map, not a ringbuf/ });
  assert.throws(() => obj.mapLookup('vigil_lost', 'key' as unknown as Buffer), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => new RingReader(obj, 'vigil_events', () => {}, { maxQueuedBatches: 0 }), { name: 'TypeError', message: /maxQueuedBatches/ });
  assert.throws(() => new RingReader(obj, 'vigil_events', () => {}, { pollTimeoutMs: 5, idlePollTimeoutMs: 2 }), { name: 'TypeError', message: /idlePollTimeoutMs must be an integer from 5 to/ });

  obj.close();
  obj.close(); // idempotent
  const closed = { code: 'EBADF', errno: 9, message: /ringload\.bpf\.o is closed/ };
  assert.throws(() => obj.mapLookup('vigil_lost', u32(0)), closed);
  assert.throws(() => obj.mapInfo('vigil_lost'), closed);
  assert.throws(() => obj.attach(), closed);
  assert.throws(() => obj.load(), closed);
  assert.throws(() => obj.programs(), closed);
  assert.throws(() => obj.btfStruct('vigil_record_header'), closed);
  assert.throws(() => new RingReader(obj, 'vigil_events', () => {}), closed);
});

test('a reader closed while records flow does not keep the process alive', async () => {
  // The producer belongs to this test; the script reads it, closes while it still runs, and must exit.
  const script = `
    import { BpfObject, RingReader } from ${JSON.stringify(addonModule)};
    const tgid = Buffer.alloc(4);
    tgid.writeUInt32LE(Number(process.argv[1]));
    const obj = new BpfObject(${JSON.stringify(benchObjectPath('ringload'))});
    obj.setRodata('bench_tgid', tgid);
    obj.load();
    obj.attach();
    const reader = new RingReader(obj, 'vigil_events', () => {});
    console.log('ready');
    while (reader.stats().records < 50000) await new Promise((r) => setTimeout(r, 5));
    const started = performance.now();
    reader.close();
    console.log(JSON.stringify({ closeMs: performance.now() - started }));
  `;
  const load = startLoad(50_000_000);
  try {
    const { code, lines, ms } = await runNode(script, [String(load.pid)], (line) => {
      if (line === 'ready') load.release();
    });
    assert.equal(code, 0);
    const { closeMs } = JSON.parse(lines[1]!) as { closeMs: number };
    assert.ok(closeMs < 200, `close() took ${closeMs.toFixed(1)} ms`);
    assert.equal(load.child.exitCode, null, 'the producer was still running');
    assert.ok(ms < 5_000, `the process took ${ms.toFixed(0)} ms to exit`);
  } finally {
    load.child.kill();
    await load.exit;
  }
});

test('an unref()ed reader lets the process exit without close()', async () => {
  const script = `
    import { BpfObject, RingReader } from ${JSON.stringify(addonModule)};
    const obj = new BpfObject(${JSON.stringify(benchObjectPath('ringload'))});
    obj.load();
    const reader = new RingReader(obj, 'vigil_events', () => {});
    reader.unref();
    console.log('open');
  `;
  const { code, lines, ms } = await runNode(script);
  assert.equal(code, 0);
  assert.deepEqual(lines, ['open']);
  assert.ok(ms < 5_000, `exit took ${ms.toFixed(0)} ms`);
});
