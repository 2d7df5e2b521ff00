import postgres from 'postgres';
import { DatabaseUnavailableError, type DeferredStatement, deferredFailure, type Queryable, runTransaction, sqlState, type Database, type Transaction } from './db.js';

export interface PostgresOptions {
  max?: number;
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

/** A pool of connections to a PostgreSQL server. */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Database> {
  const sql = postgres(url, {
    max: options.max ?? 10,
    connect_timeout: options.connectTimeout ?? 5,
    idle_timeout: 60,
    // Requests waiting for a connection wait out the reconnect delay; postgres.js's default grows
    // to 20 s during an outage (requests hang). A short cap keeps failures fast and recovery prompt.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
    onnotice: () => undefined,
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
  const run = async <R>(q: postgres.Sql | postgres.TransactionSql, text: string, params?: readonly unknown[]): Promise<R[]> => {
    try {
      return (await q.unsafe(text, (params ?? []) as postgres.ParameterOrJSON<never>[], { prepare: true })) as unknown as R[];
    } catch (err) {
      throw translate(err);
    }
  };
  /**
   * A transaction on a reserved connection. BEGIN is sent with the transaction's first statement
   * and the deferred statements with COMMIT: each pair goes out in one socket write, one round
   * trip instead of two (a round trip costs ~0.1 ms of server CPU on this kind of machine, most of
   * it the kernel's loopback send). When a deferred statement fails, PostgreSQL has answered
   * COMMIT by rolling back, and that failure is thrown. A connection that failed under the
   * transaction belongs to the pool's reconnect logic and is not handed back.
   */
  async function transaction<T>(body: (query: Queryable['query']) => Promise<T>, deferred: readonly DeferredStatement[]): Promise<T> {
    let conn: postgres.ReservedSql;
    try {
      conn = await sql.reserve();
    } catch (err) {
      throw translate(err);
    }
    let begun = false;
    let ended = false;
    let broken = false;
    const send = async <R>(text: string, params?: readonly unknown[]): Promise<R[]> => {
      try {
        return await run<R>(conn, text, params);
      } catch (err) {
        if (err instanceof DatabaseUnavailableError) broken = true;
        throw err;
      }
    };
    const begin = () => {
      if (begun) return;
      begun = true;
      // Its failure (a lost connection) fails the statement queued behind it as well.
      send('BEGIN').catch(() => undefined);
    };
    try {
      const result = await body(<R>(text: string, params?: readonly unknown[]) => {
        begin();
        return send<R>(text, params);
      });
      if (!begun && !deferred.length) return result;
      begin();
      // Handled from now on (a rejection must never go unhandled), looked at once COMMIT is answered.
      const settling = Promise.allSettled(deferred.map((d) => send(d.text, d.params)));
      ended = true;
      await send('COMMIT');
      const settled = await settling;
      const failed = settled.findIndex((r) => r.status === 'rejected');
      if (failed >= 0) throw deferredFailure(deferred[failed], (settled[failed] as PromiseRejectedResult).reason);
      return result;
    } catch (err) {
      if (begun && !ended && !broken) await send('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      if (!broken) conn.release();
    }
  }
  // Fail at start-up rather than on the first request when the server is unreachable.
  if (options.check !== false) await run(sql, 'SELECT 1');
  return {
    kind: 'postgres',
    query: <R>(text: string, params?: readonly unknown[]) => run<R>(sql, text, params),
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
      await sql.end({ timeout: 5 });
    },
  };
}
