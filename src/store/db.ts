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
}

export interface DeferredStatement {
  text: string;
  /** Read when the statement is sent, after the transaction's body: may be a getter over what the body collected. */
  params: readonly unknown[];
  fail?: (err: unknown) => unknown;
}

/** What a transaction throws when its deferred statement failed with `err`. */
export function deferredFailure(statement: DeferredStatement | undefined, err: unknown): unknown {
  return statement?.fail ? statement.fail(err) : err;
}

/**
 * Runs a driver's transaction with the Transaction interface: `begin` opens it, passes the
 * body its query function, and commits when the body resolves — with the deferred statements,
 * which it sends with COMMIT. beforeCommit checks run last, in order (also those added by a
 * check); afterCommit callbacks once it has committed.
 */
export async function runTransaction<T>(
  begin: (body: (query: Queryable['query']) => Promise<T>, deferred: readonly DeferredStatement[]) => Promise<T>,
  fn: (tx: Transaction) => Promise<T>,
): Promise<T> {
  const committed: Array<() => void> = [];
  const deferred: DeferredStatement[] = [];
  const result = await begin(async (query) => {
    const checks: Array<() => Promise<void>> = [];
    const tx: Transaction = {
      inTransaction: true,
      query,
      beforeCommit: (check) => void checks.push(check),
      afterCommit: (done) => void committed.push(done),
      defer: (statement) => void deferred.push(statement),
    };
    const value = await fn(tx);
    for (let i = 0; i < checks.length; i++) await (checks[i] as () => Promise<void>)();
    return value;
  }, deferred);
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
