/**
 * Read replicas without giving up read-your-own-writes (docs/scaling.md, "Read replicas").
 *
 * `openReplicated` wraps the primary's Database. Everything goes to the primary — queries,
 * transactions, audit inserts, DPoP ids, workers — except what a caller sends through
 * `forReading(db)`: the read-only interactions (read, vread, search, history) and the status
 * check, outside any transaction. Such a query runs on the streaming replica only when the
 * replica has replayed the WAL up to the position the reader must see:
 *
 *   need = max(the end of the last transaction this instance committed,
 *              the client's consistency token (response header of its last write, echoed back),
 *              the primary's WAL position as sampled at most `maxStalenessMs` ago)
 *
 * The first term gives read-your-own-writes on one instance, the second across instances behind a
 * load balancer, the third bounds how stale a read can be for writes made elsewhere. The replica's
 * replay position (`pg_last_wal_replay_lsn()`) is cached and asked again at most every
 * `refreshMs` while it is behind; a reader waits for that answer at most `probeWaitMs`. Otherwise,
 * and whenever the replica fails a query, the query runs on the primary: the replica can make a
 * read slower, never wrong and never an error.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { DatabaseUnavailableError, type Database, type QueryOptions, type Transaction } from './db.js';

export interface ReplicaOptions {
  /** Bound on staleness for writes made by other instances (the primary's position is sampled at half this period). */
  maxStalenessMs?: number;
  /** How often, at most, the replica's replay position is asked again while it is behind. */
  refreshMs?: number;
  /** How long a reader waits for that answer before going to the primary. */
  probeWaitMs?: number;
  /** After a failure, how long the replica is left alone. */
  retryMs?: number;
  /** Told when the replica goes out of use or comes back (for the log). */
  onState?: (state: 'up' | 'down', cause?: unknown) => void;
}

/** Where reads went, for tests and metrics. */
export interface ReplicaStats {
  /** Queries served by the replica. */
  replica: number;
  /** Reads sent to the primary because the replica was behind, down or had failed. */
  primary: number;
  /** Queries that failed on the replica and were run again on the primary. */
  fallbacks: number;
  /** Replay position of the replica, and the position reads must see now, as `X/Y` text. */
  replayed: string | null;
  floor: string;
}

export interface ReplicatedDatabase extends Database {
  replicaStats(): ReplicaStats;
}

/** The HTTP header that carries a consistency token: set on the answer to a write, echoed by a client on later requests. */
export const CONSISTENCY_HEADER = 'samplan-consistency';

interface Scope {
  /** The position this request must see (from the client's token). */
  after: bigint;
  /** The end of the last transaction this request committed. */
  wrote?: bigint;
}

const scopes = new AsyncLocalStorage<Scope>();
/** True once a replicated database exists in this process; until then scopes cost nothing. */
let replicasInUse = false;

/**
 * Runs `fn` (the handling of one request) with the client's consistency token, if any; answers its
 * result and the token to send back when the request committed a write (only with a replica).
 */
export async function withConsistency<T>(token: string | undefined, fn: () => Promise<T>): Promise<{ result: T; token?: string }> {
  if (!replicasInUse) return { result: await fn() };
  const scope: Scope = { after: parseLsn(token) ?? 0n };
  const result = await scopes.run(scope, fn);
  return scope.wrote !== undefined ? { result, token: formatLsn(scope.wrote) } : { result };
}

/** `16/B374D848` → bigint; undefined for anything else. */
export function parseLsn(text: string | null | undefined): bigint | undefined {
  const m = typeof text === 'string' ? /^\s*([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})\s*$/.exec(text) : null;
  return m ? (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`) : undefined;
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

const max = (a: bigint, b: bigint) => (a > b ? a : b);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
// The insert position, not the write position: with synchronous_commit=off a commit is visible
// before its WAL is written, and the insert position is past its commit record either way.
const WAL_POSITION = 'SELECT pg_current_wal_insert_lsn()::text AS lsn';

/** The primary with a streaming replica for reads; `replica` is a pool that need not be reachable now. */
export async function openReplicated(primary: Database, replica: Database, options: ReplicaOptions = {}): Promise<ReplicatedDatabase> {
  const maxStalenessMs = options.maxStalenessMs ?? 1000;
  const refreshMs = options.refreshMs ?? 5;
  const probeWaitMs = options.probeWaitMs ?? 50;
  const retryMs = options.retryMs ?? 1000;

  let floor = 0n; // what every read must see: this instance's writes and the sampled primary position
  let unknownSince: number | undefined; // a write committed but its position could not be read: primary until a later sample
  let replayed: bigint | undefined; // the replica's replay position at the last probe
  let probedAt = 0;
  let downUntil = 0;
  let down = false;
  let probing: Promise<void> | undefined;
  const stats = { replica: 0, primary: 0, fallbacks: 0 };

  const markDown = (cause: unknown) => {
    downUntil = Date.now() + retryMs;
    if (!down) {
      down = true;
      options.onState?.('down', cause);
    }
  };

  const primaryPosition = async (): Promise<bigint> => {
    const rows = await primary.query<{ lsn: string }>(WAL_POSITION);
    const lsn = parseLsn(rows[0]?.lsn);
    if (lsn === undefined) throw new Error('the primary did not report its WAL position');
    return lsn;
  };

  const probe = (): Promise<void> => {
    probing ??= (async () => {
      try {
        // NULL when the server is not in recovery: then it is not our replica (or was promoted), so it is not used.
        const rows = await replica.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
        const lsn = parseLsn(rows[0]?.lsn);
        if (lsn === undefined) throw new Error('the replica is not a standby in recovery');
        replayed = replayed === undefined ? lsn : max(replayed, lsn);
        if (down) {
          down = false;
          options.onState?.('up');
        }
      } catch (err) {
        markDown(err);
      } finally {
        probedAt = Date.now();
        probing = undefined;
      }
    })();
    return probing;
  };

  /** Whether the replica has replayed up to `need` (asking it again when the cached answer is too old). */
  const caughtUp = async (need: bigint): Promise<boolean> => {
    if (unknownSince !== undefined || Date.now() < downUntil) return false;
    if (replayed !== undefined && replayed >= need) return true;
    if (probing || Date.now() - probedAt >= refreshMs) await Promise.race([probe(), sleep(probeWaitMs)]);
    return unknownSince === undefined && Date.now() >= downUntil && replayed !== undefined && replayed >= need;
  };

  const noteWrite = async () => {
    const scope = scopes.getStore();
    try {
      const lsn = await primaryPosition();
      floor = max(floor, lsn);
      if (scope) scope.wrote = scope.wrote === undefined ? lsn : max(scope.wrote, lsn);
    } catch {
      unknownSince ??= performance.now(); // the write stands; reads stay on the primary until its position is known again
    }
  };

  // The primary's position now and every half staleness period: writes by other instances become
  // visible through the replica within about maxStalenessMs even without a consistency token.
  const sample = async () => {
    const started = performance.now();
    try {
      floor = max(floor, await primaryPosition());
      if (unknownSince !== undefined && started > unknownSince) unknownSince = undefined;
    } catch {
      // the primary is unreachable: writes fail anyway; reads keep the last floor
    }
  };
  await sample();
  const sampler = setInterval(() => void sample(), Math.max(10, Math.floor(maxStalenessMs / 2)));
  sampler.unref();
  void probe();
  replicasInUse = true;

  const transaction = async <T>(fn: (tx: Transaction) => Promise<T>): Promise<T> => {
    const result = await primary.transaction(fn);
    await noteWrite();
    return result;
  };

  const read = async <R>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> => {
    const need = max(floor, scopes.getStore()?.after ?? 0n);
    if (await caughtUp(need)) {
      try {
        const rows = await replica.query<R>(text, params, options);
        stats.replica++;
        return rows;
      } catch (err) {
        // Recovery conflicts (40001), a read-only refusal (25006), a lost connection: the primary
        // answers instead. An error in the query itself costs a second try, nothing more.
        stats.fallbacks++;
        if (err instanceof DatabaseUnavailableError) markDown(err);
      }
    }
    stats.primary++;
    return primary.query<R>(text, params, options);
  };

  const db: ReplicatedDatabase = {
    kind: primary.kind,
    query: <R>(text: string, params?: readonly unknown[], options?: QueryOptions) => primary.query<R>(text, params, options),
    transaction,
    listen: (channel, onNotify, onListening) => primary.listen(channel, onNotify, onListening),
    // A Database too, so that a write that reaches it by mistake still goes to the primary.
    reader: { kind: primary.kind, query: read, transaction, listen: (channel, onNotify, onListening) => primary.listen(channel, onNotify, onListening), close: async () => undefined },
    replicaStats: () => ({ ...stats, replayed: replayed === undefined ? null : formatLsn(replayed), floor: formatLsn(floor) }),
    async close() {
      clearInterval(sampler);
      await Promise.all([primary.close(), replica.close()]);
    },
  };
  return db;
}
