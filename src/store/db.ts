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
  /**
   * Runs `check` after the transaction's work and before it commits (a throw rolls it back):
   * for rules that hold for the whole transaction, like references between entries of a Bundle.
   */
  beforeCommit(check: () => Promise<void>): void;
}

/** Wraps a driver's transaction body so that beforeCommit checks run last, in order. */
export async function runWithChecks<T>(query: Queryable['query'], fn: (tx: Transaction) => Promise<T>): Promise<T> {
  const checks: Array<() => Promise<void>> = [];
  const tx: Transaction = { inTransaction: true, query, beforeCommit: (check) => void checks.push(check) };
  const result = await fn(tx);
  for (let i = 0; i < checks.length; i++) await (checks[i] as () => Promise<void>)();
  return result;
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
