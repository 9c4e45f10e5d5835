/**
 * Hands the ring reader's batches to the pipeline one per event-loop turn.
 *
 * The native reader's batches reach JS together when JS was busy (N-API runs
 * every queued call in one go): handled there and then, a burst of 50,000
 * events was one second of JS with no I/O in between, so a gRPC subscriber's
 * socket never drained and its queue overflowed, however fast it read. Taken
 * one per turn (setImmediate runs after the I/O phase), sockets drain
 * between batches.
 *
 * At most `maxPending` batches wait here; past that the oldest is handled at
 * once, so a JS thread that cannot keep up holds a bounded amount and the
 * native reader's own bound (maxQueuedBatches, with counted drops) still
 * applies behind it.
 */
export class BatchTurns {
  private pending: Buffer[] = [];
  private head = 0;
  private scheduled = false;

  constructor(private readonly handle: (batch: Buffer) => void, private readonly maxPending = 64) {}

  push(batch: Buffer): void {
    if (this.pending.length - this.head >= this.maxPending) this.handleNext();
    this.pending.push(batch);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.turn);
    }
  }

  /** Handles every waiting batch now (before the pipeline closes). */
  flush(): void {
    while (this.head < this.pending.length) this.handleNext();
  }

  private readonly turn = (): void => {
    this.scheduled = false;
    if (this.head < this.pending.length) this.handleNext();
    if (this.head < this.pending.length) {
      this.scheduled = true;
      setImmediate(this.turn);
    }
  };

  private handleNext(): void {
    const batch = this.pending[this.head]!;
    this.pending[this.head++] = undefined as unknown as Buffer;
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
    }
    this.handle(batch);
  }
}
