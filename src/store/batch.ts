/**
 * Group commit for small writes that many concurrent requests make (audit records of reads, DPoP
 * proof ids): items added in the same turn of the event loop (or up to `maxSize`) are written by
 * one call — one multi-row INSERT — and each caller's promise settles when that write has
 * committed. A request therefore still waits for its own record to be stored; it just shares
 * the round trip with its neighbours.
 */
export class Batcher<T, R> {
  private pending: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  private scheduled = false;

  constructor(
    private readonly write: (items: T[]) => Promise<R[]>,
    private readonly maxSize = 500,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.maxSize) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (!batch.length) return;
    this.pending = [];
    this.write(batch.map((b) => b.item)).then(
      (results) => batch.forEach((b, i) => b.resolve(results[i] as R)),
      (err) => batch.forEach((b) => b.reject(err)),
    );
  }
}
