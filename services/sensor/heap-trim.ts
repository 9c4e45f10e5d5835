/**
 * Gives back the heap a burst grew once the sensor has gone quiet.
 *
 * V8 returns memory to the system after full collections, and its memory
 * reducer makes one when allocation slows, but only once a full collection
 * during the growth armed it. A burst whose garbage the young generation
 * absorbed (50,000 forks at once: each record's objects die within the
 * turn) ends without one, and a sensor that then
 * handles few events allocates too little to ever make one: it keeps the
 * burst's heap for good (RssAnon 97 MiB held at rest against 62 MiB after a
 * collection, measured with 50,000 processes cached).
 *
 * So every 10 s the trimmer looks at the heap V8 has committed: when it has
 * grown by 16 MiB since the last collection the trimmer asked for (or since
 * the start), and the ring gave fewer than 1,000 records in those 10 s, it asks V8 for one full collection, run as a task of the
 * event loop (`execution: 'async'`), the way V8's own memory reducer does.
 * A busy sensor is never interrupted: its allocation makes V8 collect anyway.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

const INTERVAL_MS = 10_000;
const GROWTH_BYTES = 16 * 1024 * 1024;
const QUIET_RECORDS = 1000;

/** The decision alone, fed with what was measured (test/unit/heap-trim.test.ts). */
export class HeapTrimPolicy {
  private baseline: number;
  private lastRecords: number;

  constructor(heapBytes: number, records: number, private readonly growthBytes: number, private readonly quietRecords: number) {
    this.baseline = heapBytes;
    this.lastRecords = records;
  }

  /** Whether to collect now, given the committed heap and the records read so far. */
  tick(heapBytes: number, records: number): boolean {
    const quiet = records - this.lastRecords < this.quietRecords;
    this.lastRecords = records;
    // A heap V8 shrank by itself sets the mark lower: growth counts from there.
    this.baseline = Math.min(this.baseline, heapBytes);
    return quiet && heapBytes - this.baseline >= this.growthBytes;
  }

  /** After a collection: growth counts from the heap it left. */
  collected(heapBytes: number): void {
    this.baseline = heapBytes;
  }
}

type Collect = (options: { type: 'major'; execution: 'async' }) => Promise<void>;

let collect: Collect | undefined;

/** V8's gc(), made available in a context of its own (the process's global object gets no `gc`). */
function collector(): Collect {
  if (collect === undefined) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as Collect;
  }
  return collect;
}

/** Starts trimming; returns the function that stops it. `records`: ring records read so far. */
export function startHeapTrim(records: () => number): () => void {
  const heapBytes = (): number => v8.getHeapStatistics().total_heap_size;
  const policy = new HeapTrimPolicy(heapBytes(), records(), GROWTH_BYTES, QUIET_RECORDS);
  const gc = collector();
  let collecting = false;
  const timer = setInterval(() => {
    if (collecting || !policy.tick(heapBytes(), records())) return;
    collecting = true;
    void gc({ type: 'major', execution: 'async' }).then(() => {
      collecting = false;
      policy.collected(heapBytes());
    });
  }, INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
