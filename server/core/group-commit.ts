/**
 * Group commit: concurrent submissions are coalesced into batches run by `flush`, at most
 * `parallel` batches at a time. Under light load every item goes alone at once (no added
 * latency); under heavy load items queue while the batches in flight commit, and the next batch
 * takes them all: fewer transactions, one round trip for many rows. Each caller still gets its
 * own answer only after its batch committed.
 */
export class GroupCommit<I, O> {
  private queue: Array<{ item: I; resolve: (o: O) => void; reject: (e: unknown) => void }> = [];
  private inflight = 0;

  constructor(
    private readonly flush: (items: I[]) => Promise<O[]>,
    private readonly parallel = 4,
    private readonly maxBatch = 256,
  ) {}

  /** Submit one item; resolves with its own outcome once its batch committed. */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    while (this.inflight < this.parallel && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inflight++;
      void this.run(batch).finally(() => {
        this.inflight--;
        this.kick();
      });
    }
  }

  private async run(batch: typeof this.queue): Promise<void> {
    try {
      const out = await this.flush(batch.map((b) => b.item));
      batch.forEach((b, i) => b.resolve(out[i]!));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // One bad item must not fail its neighbours: run them one by one.
      await Promise.all(
        batch.map(async (b) => {
          try {
            b.resolve((await this.flush([b.item]))[0]!);
          } catch (e) {
            b.reject(e);
          }
        }),
      );
    }
  }
}
