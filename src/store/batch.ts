/**
 * Group commit for small writes that many concurrent requests make (audit records of reads, DPoP
 * proof ids): items added in the same turn of the event loop (or up to `maxSize`) are written by
 * one call — one multi-row INSERT — and each caller's promise settles when that write has
 * committed. A request therefore still waits for its own record to be stored; it just shares
 * the round trip with its neighbours.
 *
 * With `maxInFlight`, at most that many writes run at once; items added meanwhile wait and go
 * together in the next write once one is done. Under load the batches then grow with the load
 * instead of being one per turn: fewer statements, commits and round trips for the same rows.
 * When a write fails, the items that waited for it fail with it: they would otherwise each wait
 * out the same failure in turn (an unreachable database takes its connect timeout every time).
 */
export interface BatcherOptions {
  /** Most items in one write (default 500). */
  maxSize?: number;
  /** Most writes running at once (default: no limit, one write per turn of the event loop). */
  maxInFlight?: number;
}

interface Pending<T, R> {
  item: T;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class Batcher<T, R> {
  private pending: Array<Pending<T, R>> = [];
  private scheduled = false;
  private inFlight = 0;
  private readonly maxSize: number;
  private readonly maxInFlight: number;
  /** Whether items can be held back by writes in flight (else each turn's items go at once). */
  private readonly limited: boolean;

  constructor(
    private readonly write: (items: T[]) => Promise<R[]>,
    options: BatcherOptions = {},
  ) {
    this.maxSize = options.maxSize ?? 500;
    this.maxInFlight = options.maxInFlight ?? Infinity;
    this.limited = Number.isFinite(this.maxInFlight);
  }

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
    if (!this.pending.length || this.inFlight >= this.maxInFlight) return;
    const batch = this.pending.splice(0, this.maxSize);
    this.inFlight++;
    this.write(batch.map((b) => b.item)).then(
      (results) => {
        this.inFlight--;
        batch.forEach((b, i) => b.resolve(results[i] as R));
        if (this.limited) this.flush();
      },
      (err: unknown) => {
        this.inFlight--;
        const held = this.limited ? this.pending.splice(0) : [];
        for (const b of [...batch, ...held]) b.reject(err);
      },
    );
  }
}
