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
  close(): Promise<void>;
}

const repo = path.resolve(import.meta.dirname, '..', '..');

function cluster(): { url: string; dir: string; bin: string; version: string } {
  const out = execFileSync('bash', ['-c', '. .ci/postgres.sh; start_postgres >&2; echo "$PG_URL"; echo "$PG_DIR"; echo "$PG_BIN"'], {
    cwd: repo,
    env: { ...process.env, PG_DURABLE: '1', PG_OPTS: '-c shared_buffers=512MB' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [url, dir, bin] = out.trim().split('\n') as [string, string, string];
  const version = execFileSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
  return { url, dir, bin, version };
}

export async function openBenchDatabase(kind: DbKind): Promise<BenchDatabase> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'samplan-bench-'));
  if (kind === 'pglite') {
    return {
      kind,
      env: { DATA_DIR: dataDir },
      dataDir,
      description: 'PGlite (embedded, in the server process)',
      close: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const given = process.env.DATABASE_URL;
  const started = given ? undefined : cluster();
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
    async close() {
      if (started) {
        execFileSync('bash', ['-c', `. .ci/postgres.sh; PG_DIR='${started.dir}' PG_BIN='${started.bin}' stop_postgres`], { cwd: repo, stdio: 'inherit' });
      } else {
        const again = postgres(serverUrl, { max: 1, onnotice: () => undefined });
        await again.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await again.end();
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
