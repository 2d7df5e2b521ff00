/**
 * Storage per patient, for docs/scaling.md: starts a throwaway PostgreSQL cluster (.ci/postgres.sh)
 * and a server on it with the demo data (the plan models), loads N synthetic patients through the
 * API as `npm run generate` does, reads each patient's whole plan once (one AuditEvent each), and
 * prints, per table, the growth of pg_total_relation_size (heap, TOAST, indexes) per patient and
 * per row, and per resource type the row size and index rows per resource.
 *
 *   npx tsx bench/sizes.ts [--patients 200]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { call, clinicianHeaders, FNR, token } from './lib/api.js';
import { ingest, loadModels, MODEL_NINS } from './lib/population.js';
import { startProcess } from './lib/server.js';
import { AUDIT_SELECT, type AuditRow, renderAuditEvent } from '../src/security/audit.js';

const { values } = parseArgs({ options: { patients: { type: 'string', default: '200' } } });
const N = Number(values.patients);
const repo = path.resolve(import.meta.dirname, '..');

type Sizes = Record<string, { total: number; rows: number }>;

async function sizes(sql: postgres.Sql): Promise<Sizes> {
  await sql`VACUUM ANALYZE`;
  const tables = await sql<Array<{ t: string; total: string }>>`
    SELECT c.relname AS t, pg_total_relation_size(c.oid)::text AS total
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'`;
  const out: Sizes = {};
  for (const { t, total } of tables) {
    const [row] = await sql.unsafe<Array<{ n: string }>>(`SELECT count(*)::text AS n FROM "${t}"`);
    out[t] = { total: Number(total), rows: Number(row?.n ?? 0) };
  }
  return out;
}

function growth(after: Sizes, before: Sizes) {
  return Object.entries(after)
    .map(([t, a]) => {
      const b = before[t] ?? { total: 0, rows: 0 };
      return { table: t, rowsPerPatient: +((a.rows - b.rows) / N).toFixed(1), kbPerPatient: +((a.total - b.total) / N / 1024).toFixed(1), bytesPerRow: a.rows ? Math.round(a.total / a.rows) : 0 };
    })
    .filter((r) => r.rowsPerPatient !== 0)
    .sort((x, y) => y.kbPerPatient - x.kbPerPatient);
}

const started = execFileSync('bash', ['-c', '. .ci/postgres.sh; start_postgres >&2; echo "$PG_URL"; echo "$PG_DIR"; echo "$PG_BIN"'], {
  cwd: repo,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
const [url, dir, bin] = started.trim().split('\n') as [string, string, string];
const dataDir = mkdtempSync(path.join(tmpdir(), 'samplan-sizes-'));
const sql = postgres(url, { max: 1, onnotice: () => undefined });
try {
  const server = await startProcess(path.join(repo, 'src', 'main.ts'), { DATABASE_URL: url, SEED_DEMO_DATA: 'true', DATA_DIR: dataDir, RATE_LIMIT_PER_MINUTE: '1000000000' }, '/readyz', ['--import', 'tsx']);
  try {
    const before = await sizes(sql);
    const clinician = await token(server.url, dataDir, ['clinician', 'fastlege'], 'nhn:samplan/read nhn:samplan/write');
    const models = await loadModels(server.url, clinician, MODEL_NINS);
    const { loaded, result } = await ingest(server.url, clinician, models, 1000, 1000 + N, 4);
    const loadedSizes = await sizes(sql);
    // The whole plan of each patient, read once, as a GP's EHR does when the chart opens: one AuditEvent each.
    for (const p of loaded) await call(server.url, 'POST', 'CarePlan/_search', clinicianHeaders(clinician, p.nin), `subject:Patient.identifier=${FNR}|${p.nin}&_include=*`);
    const readSizes = await sizes(sql);
    const byType = await sql.unsafe(`
      SELECT r.type, count(*)::int AS resources, avg(pg_column_size(r.*))::int AS "rowBytes", avg(length(r.content))::int AS "jsonChars",
        avg((SELECT count(*) FROM idx_token i WHERE i.rid = r.rid) + (SELECT count(*) FROM idx_reference i WHERE i.rid = r.rid)
          + (SELECT count(*) FROM idx_composite i WHERE i.rid = r.rid) + (SELECT count(*) FROM idx_string i WHERE i.rid = r.rid)
          + (SELECT count(*) FROM idx_date i WHERE i.rid = r.rid) + (SELECT count(*) FROM idx_uri i WHERE i.rid = r.rid)
          + (SELECT count(*) FROM idx_quantity i WHERE i.rid = r.rid) + (SELECT count(*) FROM idx_number i WHERE i.rid = r.rid))::numeric(6,1)::text AS "indexRows"
      FROM resources r WHERE r.compartments <> '{}' GROUP BY 1 ORDER BY 2 DESC`);
    const [audit] = await sql`SELECT avg(length(content))::int AS stored, (SELECT count(*)::int FROM audit_agents) AS agents FROM audit_events`;
    const records = await sql.unsafe<AuditRow[]>(AUDIT_SELECT);
    const served = Math.round(records.reduce((n, r) => n + renderAuditEvent(r).length, 0) / records.length);
    console.log(`${result.patients} patients, ${result.resources} resources loaded in ${result.seconds} s`);
    console.log('\nper patient, loaded (plan written, published):');
    console.table(growth(loadedSizes, before));
    const total = growth(loadedSizes, before).reduce((s, r) => s + r.kbPerPatient, 0);
    console.log(`total: ${total.toFixed(0)} KB per patient`);
    console.log('\nper patient, one audited read of the whole plan:');
    console.table(growth(readSizes, loadedSizes));
    console.log(`audit record: ${audit?.stored} characters stored on average, the AuditEvent served from it ${served}; ${audit?.agents} sets of agents stored`);
    console.log('\nper resource type (patient data):');
    console.table(byType);
  } finally {
    await server.stop();
  }
} finally {
  await sql.end();
  execFileSync('bash', ['-c', `. .ci/postgres.sh; PG_DIR='${dir}' PG_BIN='${bin}' stop_postgres`], { cwd: repo, stdio: 'inherit' });
  rmSync(dataDir, { recursive: true, force: true });
}
