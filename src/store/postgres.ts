import postgres from 'postgres';
import { type AtCommit, DatabaseUnavailableError, deferredFailure, type Queryable, type QueryOptions, runTransaction, SESSION_SETTINGS, sqlState, type Database, type Transaction } from './db.js';

export interface PostgresOptions {
  /** Connections for transactions (default 10). */
  max?: number;
  /**
   * Connections for single statements (default 4, at most `max`). Few, so that concurrent
   * requests' statements queue on a busy connection and go out together in one socket write
   * (postgres.js pipelines them) instead of each waking a backend of its own: half the socket
   * writes per read (0.9 → 0.45; docs/performance.md). Transactions have their own pool, so a
   * long one never holds up a read.
   */
  statements?: number;
  /** Seconds to wait for a connection before giving up (fail fast during an outage). */
  connectTimeout?: number;
  /** Check the server answers before returning (default true); false for a replica that may be down at start. */
  check?: boolean;
}

const connectionErrors = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'EPIPE', 'ENOTFOUND']);

function translate(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && connectionErrors.has(code)) return new DatabaseUnavailableError(err);
  // 57P01..57P03: admin shutdown, crash shutdown, cannot connect now; 08xxx: connection exceptions.
  const state = sqlState(err);
  if (state && (state.startsWith('08') || state.startsWith('57P'))) return new DatabaseUnavailableError(err);
  return err;
}

const PREPARED: postgres.UnsafeQueryOptions = { prepare: true };

function pool(url: string, max: number, options: PostgresOptions): postgres.Sql {
  return postgres(url, {
    max,
    connect_timeout: options.connectTimeout ?? 5,
    idle_timeout: 60,
    // A connection attempt waits out the reconnect delay; postgres.js's default grows to 20 s
    // during an outage. With a quarter second the server serves again that soon after the
    // database is back (and the requests waiting meanwhile fail at once: patch fix 7).
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.25),
    onnotice: () => undefined,
    // Sent with the connection's start-up message: in force before its first statement.
    connection: { ...SESSION_SETTINGS },
    types: {
      bigint: { to: 20, from: [20], serialize: (v: number) => String(v), parse: (v: string) => Number(v) },
      // Strings pass through untouched so PostgreSQL's own 'infinity' and '-infinity' reach it.
      date: {
        to: 1184,
        from: [1082, 1114, 1184],
        serialize: (v: Date | string) => (v instanceof Date ? v.toISOString() : v),
        parse: (v: string) => new Date(v),
      },
    },
  });
}

/** Pools of connections to a PostgreSQL server: one for single statements, one for transactions. */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Database> {
  const max = options.max ?? 10;
  const transactionPool = pool(url, max, options);
  const sql = pool(url, Math.min(options.statements ?? 4, max), options);
  const run = async <R>(q: postgres.Sql | postgres.TransactionSql, text: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> => {
    try {
      // `bytes` is read by the patched driver (scripts/patch-postgres.mjs, fix 5).
      const unsafeOptions = options?.bytes ? ({ ...PREPARED, bytes: options.bytes } as postgres.UnsafeQueryOptions) : PREPARED;
      return (await q.unsafe(text, (params ?? []) as postgres.ParameterOrJSON<never>[], unsafeOptions)) as unknown as R[];
    } catch (err) {
      throw translate(err);
    }
  };
  /**
   * sql.begin (which also fails the transaction when its connection closes mid-way), with the
   * deferred statements sent without waiting just before it sends COMMIT, and the answers of
   * statements sent earlier and not waited for taken with COMMIT's: they go out together,
   * one round trip instead of two (~0.1 ms of server CPU each on this kind of machine). When one
   * fails, PostgreSQL has answered COMMIT by rolling back, and that failure is thrown.
   */
  async function transaction<T>(body: (query: Queryable['query']) => Promise<T>, atCommit: readonly AtCommit[]): Promise<T> {
    let settling: Promise<Array<PromiseSettledResult<unknown>>> = Promise.resolve([]);
    const value = (await transactionPool.begin(async (t) => {
      const result = await body(<R>(text: string, params?: readonly unknown[], options?: QueryOptions) => run<R>(t, text, params, options));
      // Handled from now on (a rejection must never go unhandled), looked at once COMMIT is answered.
      settling = Promise.allSettled(atCommit.map((a) => ('sent' in a ? a.sent : run(t, a.text, a.params))));
      return result;
    })) as T;
    const settled = await settling;
    const failed = settled.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) throw deferredFailure(atCommit[failed], (settled[failed] as PromiseRejectedResult).reason);
    return value;
  }
  // Fail at start-up rather than on the first request when the server is unreachable.
  if (options.check !== false) await run(sql, 'SELECT 1');
  return {
    kind: 'postgres',
    query: <R>(text: string, params?: readonly unknown[], options?: QueryOptions) => run<R>(sql, text, params, options),
    async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
      try {
        return await runTransaction(transaction, fn);
      } catch (err) {
        throw translate(err);
      }
    },
    async listen(channel, onNotify, onListening) {
      // postgres.js keeps a connection for listening and re-subscribes after it reconnects.
      await sql.listen(channel, () => onNotify(), onListening).catch((err: unknown) => {
        throw translate(err);
      });
    },
    async close(): Promise<void> {
      await Promise.all([sql.end({ timeout: 5 }), transactionPool.end({ timeout: 5 })]);
    },
  };
}
