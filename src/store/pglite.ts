import { mkdirSync } from 'node:fs';
import { PGlite, types } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { type Database, deferredFailure, runTransaction, SESSION_SETTINGS, type Transaction } from './db.js';
import { PreparedStatements } from './pglite-statements.js';

export interface PgliteOptions {
  /** Directory for the data files; `undefined` keeps the database in memory. */
  dataDir?: string;
  /** A data directory dump (from `dumpDataDir`) to start from, used by tests to skip initdb. */
  loadDataDir?: Blob | File;
}

const MAINTAIN_EVERY = 1000;

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
  await pg.exec(Object.entries(SESSION_SETTINGS).map(([name, value]) => `SET ${name} = ${value}`).join('; '));
  // PGlite runs PostgreSQL in single-user mode: no autovacuum. Two parts of its work matter here,
  // done like autovacuum's thresholds — after every MAINTAIN_EVERY committed transactions, and at
  // open: statistics for the planner (without them it misjudges, e.g., the status check's plan by
  // 20×), and merging GIN indexes' pending lists (a search reads the whole list; migration 010
  // turns the list off for the compartment indexes, the trigram index keeps it for cheap writes).
  let committed = 0;
  const maintain = () =>
    void pg
      .exec(`ANALYZE; SELECT gin_clean_pending_list(c.oid) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'gin' AND c.relkind = 'i'`)
      .catch(() => undefined);
  maintain();
  const statements = new PreparedStatements(pg);
  return {
    kind: 'pglite',
    query<R>(text: string, params?: readonly unknown[]): Promise<R[]> {
      // PGlite's locks, as its own query() takes them: no transaction open, one statement at a time.
      return pg._runExclusiveTransaction(() =>
        pg._runExclusiveQuery(async () => {
          const rows = await statements.run<R>(text, params);
          await pg.syncToFs();
          return rows;
        }),
      );
    },
    async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
      const result = await runTransaction(
        (body, atCommit) =>
          pg.transaction(async (t) => {
            const run = <R>(text: string, params?: readonly unknown[]): Promise<R[]> => {
              if (t.closed) throw new Error('Transaction is closed');
              return pg._runExclusiveQuery(() => statements.run<R>(text, params));
            };
            const value = await body(run);
            // In process there is no round trip to save: the deferred statements simply run last,
            // after the answers of those sent and not waited for.
            for (const s of atCommit) {
              try {
                await ('sent' in s ? s.sent : run(s.text, s.params));
              } catch (err) {
                throw deferredFailure(s, err);
              }
            }
            return value;
          }),
        fn,
      );
      if (++committed % MAINTAIN_EVERY === 0) maintain();
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
