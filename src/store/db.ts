/**
 * The small database interface the rest of Samplan sees. Two drivers implement it: embedded
 * PGlite (the default) and a PostgreSQL server (postgres.js). Both speak the same SQL dialect and
 * run the same migrations; timestamps come back as Date, bigint as number, numeric as string.
 */
export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]>;
}

export interface QueryOptions {
  /**
   * A text column to return as the UTF-8 bytes the database sent (a Buffer) where the driver can
   * — the PostgreSQL server — so stored resource text is served as it came, never decoded into a
   * string and encoded again. PGlite gives it as a string.
   */
  bytes?: string;
}

/** JSON text of a stored resource: a string, or the bytes the database sent (see QueryOptions.bytes). */
export type StoredText = string | Buffer;

/** `text` as a string, decoding bytes. */
export function textOf(text: StoredText): string {
  return typeof text === 'string' ? text : text.toString('utf8');
}

/**
 * Settings of every session Samplan opens, on either driver.
 *
 * `plan_cache_mode`: every statement Samplan sends is built once per shape, its values bound, and
 * prepared on each connection. Left to itself (`auto`), PostgreSQL plans a prepared statement for
 * its values on its first five runs, then keeps a generic plan only if its estimated cost is no
 * higher than theirs. For Samplan's searches, whose access rule leaves the generic estimate
 * unsure, it is higher once the tables are large, and PostgreSQL then plans every run afresh: at
 * 100,000 patients the plan Bundle's search took 1.3–1.8 ms to plan and 0.2–0.6 ms to run, the
 * same plan each time (docs/performance.md, "Scale"). A generic plan is made once per connection
 * and statement. What it may not depend on, the values, the statements are built not to need: a
 * prefix is a range a B-tree serves, a type a literal where a partial index wants it, and the
 * EXPLAIN tests check the generic plans of every search and every statement of a day's work.
 *
 * `jit`: PostgreSQL compiles a statement whose estimated cost passes `jit_above_cost` (100,000),
 * on every run: a generic plan's estimate is for any values, and the plan Bundle's search, which
 * reads one patient's few rows in 3 ms, was estimated at 102,540 on a 100,000-patient database
 * and spent 86 ms of each run compiling (46–54 plan Bundles a second instead of 576–737). Samplan
 * sends short statements only; compiling never pays.
 */
export const SESSION_SETTINGS: Readonly<Record<string, string>> = { plan_cache_mode: 'force_generic_plan', jit: 'off' };

/** A connection inside an open transaction. */
export interface Transaction extends Queryable {
  readonly inTransaction: true;
  /**
   * Runs `check` after the transaction's work and before it commits (a throw rolls it back):
   * for rules that hold for the whole transaction, like references between entries of a Bundle.
   */
  beforeCommit(check: () => Promise<void>): void;
  /** Runs `done` once the transaction has committed (never after a rollback): for caches that must forget what it changed. */
  afterCommit(done: () => void): void;
  /**
   * Runs a statement whose result nobody needs (an INSERT of a record) as the transaction's last,
   * sent together with COMMIT: one round trip instead of two. If it fails, nothing commits and the
   * transaction throws `fail(error)` (the error itself without `fail`).
   */
  defer(statement: DeferredStatement): void;
  /**
   * Lets a statement already sent go unwaited for: the transaction commits only if it succeeds,
   * and throws what `statement` rejects with otherwise. For a statement whose answer is known
   * before it comes (the UPDATE of a row the transaction has locked, which fails rather than
   * change nothing): its answer then comes with COMMIT's instead of costing a round trip.
   */
  expect(statement: Promise<unknown>): void;
}

export interface DeferredStatement {
  text: string;
  /** Read when the statement is sent, after the transaction's body: may be a getter over what the body collected. */
  params: readonly unknown[];
  fail?: (err: unknown) => unknown;
}

/** What a transaction waits for at commit: statements to send with COMMIT, and statements sent and not yet waited for (Transaction.expect). */
export type AtCommit = DeferredStatement | { sent: Promise<unknown> };

/** What a transaction throws when what it waited for at commit failed with `err`. */
export function deferredFailure(statement: AtCommit | undefined, err: unknown): unknown {
  return statement && 'fail' in statement && statement.fail ? statement.fail(err) : err;
}

/** The failure of the first statement sent and not waited for that failed, once all have answered. */
async function sentFailure(atCommit: readonly AtCommit[]): Promise<{ err: unknown } | undefined> {
  const sent = atCommit.flatMap((a) => ('sent' in a ? [a.sent] : []));
  const failed = (await Promise.allSettled(sent)).find((r) => r.status === 'rejected');
  return failed ? { err: failed.reason } : undefined;
}

/**
 * Runs a driver's transaction with the Transaction interface: `begin` opens it, passes the
 * body its query function, and commits when the body resolves — with what is left for commit:
 * the deferred statements, which it sends with COMMIT, and the statements sent and not waited
 * for, whose answers it takes with COMMIT's. beforeCommit checks run last, in order (also those
 * added by a check); afterCommit callbacks once it has committed. When the body fails after a
 * statement it did not wait for failed (the rest of the transaction then fails as aborted), that
 * statement's failure is what it throws.
 */
export async function runTransaction<T>(
  begin: (body: (query: Queryable['query']) => Promise<T>, atCommit: readonly AtCommit[]) => Promise<T>,
  fn: (tx: Transaction) => Promise<T>,
): Promise<T> {
  const committed: Array<() => void> = [];
  const atCommit: AtCommit[] = [];
  const result = await begin(async (query) => {
    const checks: Array<() => Promise<void>> = [];
    const tx: Transaction = {
      inTransaction: true,
      query,
      beforeCommit: (check) => void checks.push(check),
      afterCommit: (done) => void committed.push(done),
      defer: (statement) => void atCommit.push(statement),
      expect: (statement) => {
        statement.catch(() => undefined); // looked at when the transaction ends
        atCommit.push({ sent: statement });
      },
    };
    try {
      const value = await fn(tx);
      for (let i = 0; i < checks.length; i++) await (checks[i] as () => Promise<void>)();
      return value;
    } catch (err) {
      throw (await sentFailure(atCommit))?.err ?? err;
    }
  }, atCommit);
  for (const done of committed) done();
  return result;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one database transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /**
   * Calls `onNotify` for every notification on `channel` (PostgreSQL LISTEN/NOTIFY, sent by any
   * instance, delivered after the sender's commit) and `onListening` whenever listening (again)
   * begins — after a reconnect notifications may have been missed.
   */
  listen(channel: string, onNotify: () => void, onListening: () => void): Promise<void>;
  /**
   * Where read-only work outside a transaction may run: with DATABASE_REPLICA_URL, a streaming
   * replica whenever it has caught up with what the reader must see (src/store/replica.ts).
   */
  readonly reader?: Database;
}

/**
 * The connection for read-only work (read, vread, search, history, the status check): the
 * database's reader when it has one and `q` is not inside a transaction, else `q` itself.
 */
export function forReading(q: Queryable): Queryable {
  if ((q as Partial<Transaction>).inTransaction) return q;
  return (q as Partial<Database>).reader ?? q;
}

/** Runs `fn` in a transaction, joining the one `q` is already in. */
export function inTransaction<T>(q: Queryable, fn: (tx: Transaction) => Promise<T>): Promise<T> {
  if ((q as Partial<Transaction>).inTransaction) return fn(q as Transaction);
  return (q as Database).transaction(fn);
}

/** Thrown by the drivers when the database cannot be reached; mapped to 503. */
export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super('The database is not available', { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

/** SQLSTATE of a PostgreSQL error, when the error came from the database. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Errors after which repeating the whole transaction is the right answer. */
export function isRetryable(err: unknown): boolean {
  const state = sqlState(err);
  return state === '40001' || state === '40P01';
}
