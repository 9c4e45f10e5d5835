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
 *
 * The C heap keeps a burst too: the ring reader's batches are freed into its
 * thread's malloc arena, and glibc gives back only the top of a heap (9 MiB
 * of a 12 MiB RssAnon drop, measured after 50,000 forks). So at the first
 * quiet interval after a busy one (the start-up counts as busy), and after
 * each collection the trimmer asks for (it frees the batches' buffers), the
 * trimmer also has the free pages of the C heap given back (~1.3 ms then).
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
  private busy = true;

  constructor(heapBytes: number, records: number, private readonly growthBytes: number, private readonly quietRecords: number) {
    this.baseline = heapBytes;
    this.lastRecords = records;
  }

  /**
   * Given the committed heap and the records read so far: whether to collect
   * now, and whether the C heap is to be trimmed (the first quiet interval
   * after a busy one; a collection is followed by a trim anyway).
   */
  tick(heapBytes: number, records: number): { collect: boolean; trimNative: boolean } {
    const quiet = records - this.lastRecords < this.quietRecords;
    this.lastRecords = records;
    const trimNative = quiet && this.busy;
    this.busy = !quiet;
    // A heap V8 shrank by itself sets the mark lower: growth counts from there.
    this.baseline = Math.min(this.baseline, heapBytes);
    return { collect: quiet && heapBytes - this.baseline >= this.growthBytes, trimNative };
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

/**
 * Starts trimming; returns the function that stops it. `records`: ring
 * records read so far; `trimNative`: gives the C heap's free pages back.
 */
export function startHeapTrim(records: () => number, trimNative: () => void): () => void {
  const heapBytes = (): number => v8.getHeapStatistics().total_heap_size;
  const policy = new HeapTrimPolicy(heapBytes(), records(), GROWTH_BYTES, QUIET_RECORDS);
  const gc = collector();
  let collecting = false;
  const timer = setInterval(() => {
    if (collecting) return;
    const { collect, trimNative: trim } = policy.tick(heapBytes(), records());
    if (!collect) {
      if (trim) trimNative();
      return;
    }
    collecting = true;
    void gc({ type: 'major', execution: 'async' }).then(() => {
      collecting = false;
      policy.collected(heapBytes());
      trimNative();
    });
  }, INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
