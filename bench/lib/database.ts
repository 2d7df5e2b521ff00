/**
 * The database a benchmark runs on: a fresh embedded one (PGlite in a new data directory), or a
 * fresh PostgreSQL database — on the server in DATABASE_URL, or on a throwaway cluster started
 * from the Debian binaries with PostgreSQL's durable defaults (fsync and synchronous commit on).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';

export type DbKind = 'pglite' | 'postgres';

export interface BenchDatabase {
  kind: DbKind;
  /** Environment for the server and the ceiling: DATA_DIR, and DATABASE_URL for PostgreSQL. */
  env: Record<string, string>;
  dataDir: string;
  /** What it runs on, for the report. */
  description: string;
  /**
   * Brings a freshly loaded database to where its maintenance leaves it in use: VACUUM ANALYZE on
   * PostgreSQL, whose autovacuum gets to new tables only a minute or so later (until then the
   * planner works from empty statistics and a plan may pick the wrong index: the plan Bundle's
   * patient lookup read 370 blocks instead of about 100); nothing on PGlite, whose server analyses
   * every so many commits by itself.
   */
  settle(): Promise<void>;
  close(): Promise<void>;
}

const repo = path.resolve(import.meta.dirname, '..', '..');

/** A throwaway PostgreSQL cluster (.ci/postgres.sh) that can be stopped and started again on its data. */
export interface Cluster {
  url: string;
  dir: string;
  bin: string;
  port: number;
  version: string;
  /** `pg_ctl stop` (default `-m immediate`: as after a crash, recovery on the next start). */
  stop(mode?: 'immediate' | 'fast'): void;
  /** Starts the server again on the same data directory and port. */
  start(): void;
  /** Stops it and removes its directory. */
  destroy(): void;
}

/** Starts a cluster; `durable` keeps PostgreSQL's defaults (fsync, synchronous commit), else both off. */
export function startCluster(options: { durable?: boolean; opts?: string } = {}): Cluster {
  const durable = options.durable ?? true;
  const out = execFileSync('bash', ['-c', '. .ci/postgres.sh; start_postgres >&2; echo "$PG_URL"; echo "$PG_DIR"; echo "$PG_BIN"'], {
    cwd: repo,
    env: { ...process.env, PG_DURABLE: durable ? '1' : '0', PG_OPTS: options.opts ?? '' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [url, dir, bin] = out.trim().split('\n') as [string, string, string];
  const version = execFileSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
  const port = Number(new URL(url).port);
  // initdb refuses root, so as root the cluster belongs to `postgres` (as in .ci/postgres.sh).
  const as = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  const pgCtl = (...args: string[]) => {
    const [cmd, ...rest] = [...as, path.join(bin, 'pg_ctl'), '-D', path.join(dir, 'data'), ...args] as [string, ...string[]];
    execFileSync(cmd, rest, { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  // The options start_postgres gives, so a restart listens where it did.
  const serverOpts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 ${durable ? '' : '-c fsync=off -c synchronous_commit=off'} -c max_connections=200 ${options.opts ?? ''}`;
  return {
    url,
    dir,
    bin,
    port,
    version,
    stop: (mode = 'immediate') => pgCtl('-m', mode, '-w', 'stop'),
    start: () => pgCtl('-l', path.join(dir, 'server.log'), '-w', '-t', '60', '-o', serverOpts, 'start'),
    destroy: () => execFileSync('bash', ['-c', `. .ci/postgres.sh; PG_DIR='${dir}' PG_BIN='${bin}' stop_postgres`], { cwd: repo, stdio: 'inherit' }),
  };
}

export async function openBenchDatabase(kind: DbKind): Promise<BenchDatabase> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'samplan-bench-'));
  if (kind === 'pglite') {
    return {
      kind,
      env: { DATA_DIR: dataDir },
      dataDir,
      description: 'PGlite (embedded, in the server process)',
      settle: async () => undefined,
      close: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const given = process.env.DATABASE_URL;
  const started = given ? undefined : startCluster({ durable: true, opts: '-c shared_buffers=512MB' });
  const serverUrl = given ?? (started as { url: string }).url;
  const name = `samplan_bench_${Date.now()}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const [{ version } = { version: '' }] = await admin<Array<{ version: string }>>`SELECT current_setting('server_version') AS version`;
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    kind,
    env: { DATA_DIR: dataDir, DATABASE_URL: url.toString() },
    dataDir,
    description: `PostgreSQL ${version} server on loopback${started ? ' (throwaway cluster, durable defaults, shared_buffers 512MB)' : ''}`,
    async settle() {
      const sql = postgres(url.toString(), { max: 1, onnotice: () => undefined });
      await sql.unsafe('VACUUM ANALYZE');
      await sql.end();
    },
    async close() {
      if (started) {
        started.destroy();
      } else {
        const again = postgres(serverUrl, { max: 1, onnotice: () => undefined });
        await again.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await again.end();
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
