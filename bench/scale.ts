/**
 * `npm run bench:scale`: does the plan Bundle stay fast as the population grows? On a throwaway
 * durable PostgreSQL cluster (bench/lib/database.ts; shared_buffers 512MB, max_wal_size 4GB for
 * the load), with the server as a child process (`node dist/main.js`, as in production):
 *
 * 1. seed the demo data (the models), bulk-load 1,000 patients (bench/lib/bulk.ts), VACUUM ANALYZE,
 *    restart the server, run the plan Bundle scenario (bench/scenarios.ts) over all of them;
 * 2. bulk-load up to `--patients` (default 100,000) with the indexes rebuilt after the load, VACUUM
 *    ANALYZE, restart the server, run the same scenario over patients spread across the whole
 *    population (and, for comparison, over the first 1,000 again);
 * 3. capture the plans of the SQL a plan Bundle request runs (auto_explain: EXPLAIN ANALYZE with
 *    BUFFERS of every statement of a few requests, nested ones included).
 *
 * The same for searches scoped by the access rule alone (bench/scenarios.ts: `GET Goal` and the like
 * with the patient in `nhn-patient-nin`), at both sizes.
 *
 * Reports p50/p95/p99 at both sizes, the ratio p95(large)/p95(1k), the database size and rows per
 * table; writes bench/results/scale-*.json and prints a Markdown table and the plans.
 *
 *   npm run bench:scale -- [--patients 100000] [--base 1000] [--duration 20] [--warmup 5] [--connections 8]
 *                          [--spread 2000] [--max-load-minutes 45] [--keep]
 *
 * `--max-load-minutes` bounds the bulk load: the run measures at the population reached.
 * `--keep` leaves the cluster running (its URL is printed) for a closer look.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Bundle } from '@medplum/fhirtypes';
import postgres from 'postgres';
import { inCompartments } from '../src/store/compartments.js';
import { INDEX_TABLE_NAMES } from '../src/store/resources.js';
import { call, clinicianHeaders, FNR, token } from './lib/api.js';
import { type BulkResult, bulkLoad } from './lib/bulk.js';
import { startCluster } from './lib/database.js';
import { type LoadOptions, runLoad, type Scenario } from './lib/load.js';
import { type LoadedPatient, MODEL_NINS, person } from './lib/population.js';
import { type Running, startProcess } from './lib/server.js';
import { type Fixture, scenarios } from './scenarios.js';

const { values } = parseArgs({
  options: {
    patients: { type: 'string', default: '100000' },
    base: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
    connections: { type: 'string', default: '8' },
    spread: { type: 'string', default: '2000' },
    batch: { type: 'string', default: '80' },
    concurrency: { type: 'string', default: '3' },
    'max-load-minutes': { type: 'string', default: '45' },
    keep: { type: 'boolean', default: false },
  },
});

const repo = path.resolve(import.meta.dirname, '..');
const load: LoadOptions = { connections: Number(values.connections), durationSeconds: Number(values.duration), warmupSeconds: Number(values.warmup) };
const SCENARIO = 'plan Bundle (_include=*)';
/** Searches scoped by the access rule alone (no patient named in the query): they must not grow with the population either. */
const SCOPED = 'searches by the access rule';
const log = (line: string) => console.error(`[scale ${new Date().toISOString().slice(11, 19)}] ${line}`);
const loadAverage = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

const cluster = startCluster({ durable: true, opts: '-c shared_buffers=512MB -c max_wal_size=4GB' });
const admin = postgres(cluster.url, { max: 1, onnotice: () => undefined });
await admin.unsafe('CREATE DATABASE samplan_scale');
const url = new URL(cluster.url);
url.pathname = '/samplan_scale';
const databaseUrl = url.toString();
const sql = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'samplan-scale-'));
const env = { DATA_DIR: dataDir, DATABASE_URL: databaseUrl, SEED_DEMO_DATA: 'true', RATE_LIMIT_PER_MINUTE: '1000000000' };
let server: Running | undefined;

const clinicianToken = (s: Running) => token(s.url, dataDir, ['clinician', 'fastlege'], 'nhn:samplan/read nhn:samplan/write');

async function startServer(): Promise<Running> {
  const s = await startProcess(path.join(repo, 'dist', 'main.js'), env, '/readyz');
  log(`server up (pid ${s.pid})`);
  return s;
}

/** Patients `first`..`to`-1 as the scenarios name them (ids looked up; the plan Bundle needs only the fødselsnummer). */
async function patientsAt(ns: readonly number[]): Promise<LoadedPatient[]> {
  const nins = ns.map((n) => person(n).nin);
  const rows = await sql<Array<{ nin: string; patient: string; plan: string }>>`
    SELECT t.code AS nin, p.id AS patient, c.id AS plan
      FROM idx_token t JOIN resources p ON p.rid = t.rid
      JOIN resources c ON c.type = 'CarePlan' AND NOT c.deleted AND ${sql.unsafe(inCompartments(String.raw, 'c.compartments', `ARRAY['Patient/' || p.id]`))}
     WHERE t.system = ${FNR} AND t.code = ANY(${sql.array(nins)}::text[]) AND p.type = 'Patient'`;
  const byNin = new Map(rows.map((r) => [r.nin, r]));
  return nins.map((nin) => {
    const r = byNin.get(nin);
    if (!r) throw new Error(`patient ${nin} was not loaded`);
    return { nin, patientId: r.patient, planId: r.plan, resources: 0 };
  });
}

/** The scenario `name` over `patients` (scenarios() takes 200 patients per fixture: chunks of 200, joined). */
function scenarioOver(name: string, fixture: Omit<Fixture, 'patients'>, patients: readonly LoadedPatient[]): Scenario {
  const requests: Scenario['requests'] = [];
  for (let i = 0; i < patients.length; i += 200) {
    const scenario = scenarios({ ...fixture, patients: patients.slice(i, i + 200) }).find((s) => s.name === name);
    if (!scenario) throw new Error(`no scenario "${name}"`);
    requests.push(...scenario.requests);
  }
  return { name, requests };
}

/** Resource types and counts of a patient's plan Bundle. */
async function bundleShape(s: Running, clinician: string, nin: string): Promise<string> {
  const body = new URLSearchParams({ 'subject:Patient.identifier': `${FNR}|${nin}`, status: 'active', _include: '*' }).toString();
  const bundle = await call<Bundle>(s.url, 'POST', 'CarePlan/_search', clinicianHeaders(clinician, nin), body);
  const counts = new Map<string, number>();
  for (const e of bundle.body.entry ?? []) counts.set(e.resource?.resourceType as string, (counts.get(e.resource?.resourceType as string) ?? 0) + 1);
  return [...counts].sort().map(([t, n]) => `${t} ${n}`).join(', ');
}

async function vacuumAnalyze(): Promise<number> {
  const started = performance.now();
  await sql.unsafe('VACUUM ANALYZE');
  return Math.round((performance.now() - started) / 100) / 10;
}

async function databaseFigures() {
  const [{ size, bytes } = { size: '', bytes: 0 }] = await sql<Array<{ size: string; bytes: number }>>`
    SELECT pg_size_pretty(pg_database_size(current_database())) AS size, pg_database_size(current_database())::float8 AS bytes`;
  const tables: Record<string, { rows: number; size: string }> = {};
  for (const table of ['resources', 'resource_versions', ...INDEX_TABLE_NAMES, 'audit_events']) {
    // A partitioned table (the audit trail, by month) is the sum of its partitions; a plain one has
    // no partition tree (the sum is null) and is its own size.
    const [row] = await sql.unsafe<Array<{ rows: number; size: string }>>(
      `SELECT count(*)::float8 AS rows, pg_size_pretty(coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('${table}'))::bigint, pg_total_relation_size('${table}'))) AS size FROM ${table}`,
    );
    tables[table] = row as { rows: number; size: string };
  }
  return { size, bytes, tables };
}

async function bulk(from: number, to: number, rebuildIndexes: boolean, stopAt?: number): Promise<BulkResult> {
  let reported = 0;
  const result = await bulkLoad({
    databaseUrl,
    modelNins: MODEL_NINS,
    from,
    to,
    batch: Number(values.batch),
    concurrency: Number(values.concurrency),
    baseUrl: 'http://localhost:8080/fhir',
    rebuildIndexes,
    ...(stopAt ? { stopAt } : {}),
    log,
    onProgress: (patients, resources, seconds) => {
      if (patients - reported < 5000) return;
      reported = patients;
      log(`${from + patients} patients (${resources} resources in this load, ${Math.round(resources / seconds)}/s; load average ${loadAverage()})`);
    },
  });
  log(`bulk ${from}..${from + result.patients}: ${result.resources} resources in ${result.seconds} s = ${result.resourcesPerSecond}/s${result.indexSeconds !== undefined ? ` (indexes ${result.indexSeconds} s)` : ''}`);
  return result;
}

/** Runs the scenario, noting the machine's load average before and after. */
async function measure(s: Running, scenario: Scenario, label: string) {
  const before = loadAverage();
  const result = await runLoad(s, scenario, load);
  const after = loadAverage();
  log(`${label}: p50 ${result.p50} ms, p95 ${result.p95} ms, p99 ${result.p99} ms, ${result.rps} req/s, server CPU ${result.cpuPerRequestMs} ms/req, database CPU ${result.databaseCpuPerRequestMs} ms/req, errors ${result.errors + result.failures}; load average ${before} → ${after}`);
  return { label, ...result, loadAverage: { before, after } };
}

/** EXPLAIN (ANALYZE, BUFFERS) of every statement a few plan Bundle requests run, by auto_explain in the server's connections. */
async function capturePlans(patients: readonly LoadedPatient[]): Promise<string[]> {
  const logFile = path.join(cluster.dir, 'server.log');
  await admin.unsafe(`LOAD 'auto_explain'`);
  await admin.unsafe(`ALTER SYSTEM SET session_preload_libraries = 'auto_explain'`);
  for (const [k, v] of Object.entries({ log_min_duration: '0', log_analyze: 'on', log_buffers: 'on', log_nested_statements: 'on', log_timing: 'on' })) {
    await admin.unsafe(`ALTER SYSTEM SET auto_explain.${k} = '${v}'`);
  }
  await admin.unsafe('SELECT pg_reload_conf()');
  const s = await startServer();
  try {
    const clinician = await clinicianToken(s);
    const headers = (nin: string) => clinicianHeaders(clinician, nin);
    const body = (nin: string) => new URLSearchParams({ 'subject:Patient.identifier': `${FNR}|${nin}`, status: 'active', _include: '*' }).toString();
    // Warm: the first requests also load the access rules' and the search code's caches.
    for (const p of patients.slice(0, 3)) await call(s.url, 'POST', 'CarePlan/_search', headers(p.nin), body(p.nin));
    const offset = statSync(logFile).size;
    const p = patients[patients.length - 1] as LoadedPatient;
    await call(s.url, 'POST', 'CarePlan/_search', headers(p.nin), body(p.nin));
    await new Promise((r) => setTimeout(r, 500));
    const text = readFileSync(logFile, 'utf8').slice(offset);
    return text.split(/\n(?=\S)/).filter((block) => /LOG:\s+duration: [\d.]+ ms\s+plan:/.test(block));
  } finally {
    await s.stop();
    await admin.unsafe('ALTER SYSTEM RESET ALL');
    await admin.unsafe('SELECT pg_reload_conf()');
  }
}

try {
  const target = Number(values.patients);
  const base = Number(values.base);
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${cluster.version}`;
  log(`cluster ${cluster.url} (${cluster.dir}); seeding the demo data`);
  server = await startServer();
  await server.stop();

  // 1. The base population.
  const baseLoad = await bulk(0, base, false);
  const baseVacuum = await vacuumAnalyze();
  server = await startServer();
  let clinician = await clinicianToken(server);
  // Only the plan Bundle runs; the other scenarios are built but need a Goal to name.
  const fixture = { url: server.url, clinician, machine: '', goals: [{ id: 'unused', nin: '', patientId: '', version: 1 }], model: { resources: [] } };
  const basePatients = await patientsAt(Array.from({ length: base }, (_, n) => n));
  const shapes = { model: await bundleShape(server, clinician, MODEL_NINS[0] as string), copy: await bundleShape(server, clinician, (basePatients[0] as LoadedPatient).nin) };
  log(`plan Bundle of the model (anne): ${shapes.model}`);
  log(`plan Bundle of copy 0:           ${shapes.copy}`);
  const atBase = await measure(server, scenarioOver(SCENARIO, fixture, basePatients), `${base} patients`);
  const scopedAtBase = await measure(server, scenarioOver(SCOPED, fixture, basePatients), `${base} patients, ${SCOPED}`);
  const baseDb = await databaseFigures();
  await server.stop();

  // 2. The large population.
  const stopAt = Date.now() + Number(values['max-load-minutes']) * 60_000;
  const bigLoad = await bulk(base, target, true, stopAt);
  const reached = base + bigLoad.patients;
  const bigVacuum = await vacuumAnalyze();
  log(`VACUUM ANALYZE: ${bigVacuum} s`);
  server = await startServer();
  clinician = await clinicianToken(server);
  const spreadCount = Math.min(Number(values.spread), reached);
  const spread = await patientsAt(Array.from({ length: spreadCount }, (_, i) => Math.floor(((i + Math.random()) * reached) / spreadCount)));
  // Shuffled, so the connections do not walk the population in order.
  spread.sort(() => Math.random() - 0.5);
  const atScale = await measure(server, scenarioOver(SCENARIO, { ...fixture, url: server.url, clinician }, spread), `${reached} patients (spread over all)`);
  const atScaleFirst = await measure(server, scenarioOver(SCENARIO, { ...fixture, url: server.url, clinician }, basePatients), `${reached} patients (the first ${base})`);
  const scopedAtScale = await measure(server, scenarioOver(SCOPED, { ...fixture, url: server.url, clinician }, spread), `${reached} patients (spread over all), ${SCOPED}`);
  const bigDb = await databaseFigures();
  await server.stop();
  server = undefined;

  // 3. The plans.
  const plans = await capturePlans(spread);
  const ratio = Math.round((atScale.p95 / atBase.p95) * 100) / 100;
  const scopedRatio = Math.round((scopedAtScale.p95 / scopedAtBase.p95) * 100) / 100;

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  mkdirSync(path.join(repo, 'bench', 'results'), { recursive: true });
  const file = path.join(repo, 'bench', 'results', `scale-${stamp}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        when: new Date().toISOString(),
        machine,
        load,
        shapes,
        base: { patients: base, bulk: baseLoad, vacuumSeconds: baseVacuum, result: atBase, database: baseDb },
        scale: { patients: reached, bulk: bigLoad, vacuumSeconds: bigVacuum, result: atScale, firstPatients: atScaleFirst, database: bigDb },
        ratioP95: ratio,
        scoped: { base: scopedAtBase, scale: scopedAtScale, ratioP95: scopedRatio },
        plans,
      },
      null,
      2,
    ),
  );
  const row = (r: typeof atBase, patients: number, db: typeof baseDb) =>
    `| ${r.label} | ${patients} | ${db.tables.resources?.rows} | ${db.size} | ${r.p50} | ${r.p95} | ${r.p99} | ${r.rps} | ${r.cpuPerRequestMs} | ${r.errors + r.failures} | ${r.loadAverage.before} → ${r.loadAverage.after} |`;
  const table = (rows: string[]) =>
    console.log(['| population | patients | resources | database | p50 ms | p95 ms | p99 ms | req/s | server CPU ms/req | errors | load average |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|', ...rows].join('\n'));
  console.log(`Machine: ${machine}. ${load.connections} connections, ${load.warmupSeconds} s warm-up, ${load.durationSeconds} s measured; plan Bundle = POST CarePlan/_search subject:Patient.identifier + status=active + _include=*.\n`);
  table([row(atBase, base, baseDb), row(atScale, reached, bigDb), row(atScaleFirst, reached, bigDb)]);
  console.log(`\np95 ratio (${reached} / ${base}): **${ratio}** (target ≤ 1.5)`);
  console.log(`\n${SCOPED} (GET Goal, CarePlan?status=active, Observation?_sort=-date&_count=10, Condition; the patient in nhn-patient-nin):\n`);
  table([row(scopedAtBase, base, baseDb), row(scopedAtScale, reached, bigDb)]);
  console.log(`\np95 ratio (${reached} / ${base}): **${scopedRatio}**`);
  console.log(`\nBulk load: ${bigLoad.resources} resources in ${bigLoad.seconds} s${bigLoad.indexSeconds !== undefined ? ` (${bigLoad.indexSeconds} s of it building the indexes)` : ''}: ${bigLoad.resourcesPerSecond} resources/s; VACUUM ANALYZE ${bigVacuum} s.`);
  console.log(`\nRows per table at ${reached} patients:\n`);
  console.log('| table | rows | size |\n|---|---:|---:|');
  for (const [table, t] of Object.entries(bigDb.tables)) console.log(`| ${table} | ${t.rows} | ${t.size} |`);
  console.log(`\nPlans of one plan Bundle request at ${reached} patients (auto_explain):\n`);
  for (const plan of plans) console.log(`\`\`\`\n${plan.replace(/^.*?LOG:\s+/, '')}\n\`\`\`\n`);
  console.log(`(results: ${path.relative(repo, file)})`);
} finally {
  await server?.stop();
  await sql.end();
  await admin.end();
  if (values.keep) {
    console.error(`cluster kept: ${databaseUrl} (${cluster.dir}); stop it with: . .ci/postgres.sh; PG_DIR=${cluster.dir} PG_BIN=${cluster.bin} stop_postgres`);
  } else {
    cluster.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
