/**
 * The small database interface the rest of Samplan sees. Two drivers implement it: embedded
 * PGlite (the default) and a PostgreSQL server (postgres.js). Both speak the same SQL dialect and
 * run the same migrations; timestamps come back as Date, bigint as number, numeric as string.
 */
export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<R[]>;
}

/** A connection inside an open transaction. */
export interface Transaction extends Queryable {
  readonly inTransaction: true;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one database transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
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
