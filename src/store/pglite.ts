import { mkdirSync } from 'node:fs';
import { PGlite, types } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { type Database, deferredFailure, runTransaction, type Transaction } from './db.js';

export interface PgliteOptions {
  /** Directory for the data files; `undefined` keeps the database in memory. */
  dataDir?: string;
  /** A data directory dump (from `dumpDataDir`) to start from, used by tests to skip initdb. */
  loadDataDir?: Blob | File;
}

const ANALYZE_EVERY = 1000;

/** Embedded PostgreSQL (WASM). One connection: queries and transactions are serialised by PGlite. */
export async function openPglite(options: PgliteOptions = {}): Promise<Database & { dump(): Promise<Blob> }> {
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const pg = new PGlite({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
    extensions: { pg_trgm },
    parsers: { [types.INT8]: (v: string) => Number(v) },
  });
  await pg.waitReady;
  // PGlite runs PostgreSQL in single-user mode: no autovacuum, so nothing keeps the planner's
  // statistics current (without them it misjudges, e.g., the status check's plan by 20×). Like
  // autovacuum's analyze threshold: after every ANALYZE_EVERY committed transactions, and at open.
  let committed = 0;
  const analyze = () => void pg.query('ANALYZE').catch(() => undefined);
  analyze();
  return {
    kind: 'pglite',
    async query<R>(text: string, params?: readonly unknown[]): Promise<R[]> {
      const result = await pg.query<R>(text, params as unknown[] | undefined);
      return result.rows;
    },
    async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
      const result = await runTransaction(
        (body, deferred) =>
          pg.transaction(async (t) => {
            const value = await body(async <R>(text: string, params?: readonly unknown[]) => (await t.query<R>(text, params as unknown[] | undefined)).rows);
            // In process there is no round trip to save: the deferred statements simply run last.
            for (const s of deferred) {
              try {
                await t.query(s.text, s.params as unknown[]);
              } catch (err) {
                throw deferredFailure(s, err);
              }
            }
            return value;
          }),
        fn,
      );
      if (++committed % ANALYZE_EVERY === 0) analyze();
      return result;
    },
    async listen(channel, onNotify, onListening) {
      await pg.listen(channel, () => onNotify());
      onListening();
    },
    async close(): Promise<void> {
      await pg.close();
    },
    dump: () => pg.dumpDataDir('none'),
  };
}
