/**
 * Keeps the stored search index the one the current extraction makes. When extraction changes
 * what rows (or compartments) a resource gets, INDEX_VERSION goes up; a server started on a
 * database indexed by an older version rebuilds the index in the background, in rid order, a
 * batch of resources per transaction, recording how far it has come in `search_index_state`
 * (migration 012), so a restart goes on where it stopped and several instances share the work
 * one batch at a time. Until it is done, a search may miss what only the new extraction finds —
 * as it did before the upgrade — and never loses what it found.
 *
 * Each batch locks its resources, so a concurrent update either comes before (and the batch
 * indexes the new content) or after (and writes its own index rows); such an update waits for
 * that one batch only. The rebuild gives way to writers: a batch gives up on any lock it cannot
 * get within LOCK_TIMEOUT (a write in progress, another instance's batch) and is tried again.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { WorkerLogger } from '../log.js';
import { type Database, sqlState } from '../store/db.js';
import type { Reindexed, ResourceStore } from '../store/resources.js';
import { extractIndex } from './extract.js';

/**
 * The version of extractIndex the stored index must be made by. Raise it when a change to
 * extraction changes the rows or compartments of resources already stored.
 * 2: plain paths walked without FHIRPath (src/search/paths.ts): primitives that have extensions
 *    are indexed, `path.as(Type)` filters by type.
 * 3: a composite's value pair is one row, its components' codes and systems in columns
 *    (migration 014), not one row for every way to name it.
 * 4: a parameter that is the union of others (Observation's combo-*) has no rows of its own.
 */
export const INDEX_VERSION = 4;

const LOCK_TIMEOUT = '200ms';
const RETRY_MS = 1000;
const LOCK_NOT_AVAILABLE = '55P03';

export interface ReindexOptions {
  baseUrl: string;
  logger?: WorkerLogger;
  /** Resources per transaction (default 200 on a server, 100 embedded). */
  batchSize?: number;
}

export interface Reindexer {
  /** Resolves when the index is current, or the rebuild was stopped. */
  readonly done: Promise<void>;
  /** Stops after the batch in flight (the next start goes on from there). */
  stop(): Promise<void>;
}

interface State {
  version: number;
  next_rid: number;
}

/**
 * Checks the index's version and, where it is older than INDEX_VERSION, starts rebuilding it in
 * the background. A database without resources is marked current at once.
 */
export async function startReindex(db: Database, store: ResourceStore, options: ReindexOptions): Promise<Reindexer> {
  const log = options.logger;
  // PGlite runs on the server's event loop: smaller batches keep requests moving during a rebuild.
  const batchSize = options.batchSize ?? (db.kind === 'pglite' ? 100 : 200);
  const from = await db.transaction(async (tx) => {
    const [state] = await tx.query<State>('SELECT version, next_rid FROM search_index_state FOR UPDATE');
    if (!state || state.version >= INDEX_VERSION) return undefined;
    const [{ empty } = { empty: true }] = await tx.query<{ empty: boolean }>('SELECT NOT EXISTS (SELECT 1 FROM resources) AS empty');
    if (!empty) return state.version;
    await tx.query('UPDATE search_index_state SET version = $1, next_rid = 0', [INDEX_VERSION]);
    return undefined;
  });
  if (from === undefined) return { done: Promise.resolve(), stop: async () => undefined };

  log?.info({ from, to: INDEX_VERSION }, 'the search index was made by an older extraction: rebuilding it in the background');
  let stopping = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  /** One batch; how many resources it indexed, or undefined when the index is current. */
  const batch = () =>
    db.transaction(async (tx) => {
      await tx.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
      const [state] = await tx.query<State>('SELECT version, next_rid FROM search_index_state FOR UPDATE');
      if (!state || state.version >= INDEX_VERSION) return undefined;
      const rows = await tx.query<{ rid: number; content: string }>(
        'SELECT rid, content FROM resources WHERE rid >= $1 AND NOT deleted ORDER BY rid LIMIT $2 FOR UPDATE',
        [state.next_rid, batchSize],
      );
      const last = rows.at(-1);
      if (!last) {
        await tx.query('UPDATE search_index_state SET version = $1, next_rid = 0', [INDEX_VERSION]);
        return undefined;
      }
      const items: Reindexed[] = [];
      for (const row of rows) {
        try {
          const { rows: index, compartments } = extractIndex(JSON.parse(row.content) as Resource, options.baseUrl);
          items.push({ rid: row.rid, index, compartments });
        } catch (err) {
          // One resource the extraction fails on keeps its rows rather than stopping the rebuild.
          log?.warn({ err, rid: row.rid }, 'search index rebuild: a resource could not be indexed; its rows are left as they were');
        }
      }
      await store.reindex(tx, items);
      await tx.query('UPDATE search_index_state SET next_rid = $1', [last.rid + 1]);
      return rows.length;
    });

  const done = (async () => {
    let total = 0;
    while (!stopping) {
      let indexed: number | undefined;
      try {
        indexed = await batch();
      } catch (err) {
        if (stopping) break;
        if (sqlState(err) !== LOCK_NOT_AVAILABLE) log?.warn({ err }, 'search index rebuild: a batch failed; trying it again');
        await pause(RETRY_MS);
        continue;
      }
      if (indexed === undefined) {
        log?.info({ resources: total, version: INDEX_VERSION }, 'search index rebuilt');
        break;
      }
      total += indexed;
      if (Math.floor(total / 50_000) > Math.floor((total - indexed) / 50_000)) log?.info({ resources: total }, 'search index rebuild in progress');
      // Leave the event loop (and PGlite, which runs on it) to requests between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  return {
    done,
    async stop() {
      stopping = true;
      wake?.();
      await done;
    },
  };
}
