/**
 * `npm run bench`: starts Samplan (`node dist/main.js`, as in production) on a fresh database with
 * the demo data, loads a synthetic population through the API, and runs each scenario with
 * autocannon on loopback — warm-up, then a fixed duration with N connections — reporting req/s,
 * p50/p95/p99, errors and the server's memory. Each scenario is also a share of the ceiling (a bare
 * Fastify route doing the same indexed SELECT on the same database), measured just before and after
 * it on PostgreSQL; then that route with the AuditEvent every read must store first (the floor the
 * audit rule sets). Results go to bench/results/ as JSON and are printed as a Markdown table.
 *
 *   npm run bench -- [--db pglite|postgres|both] [--patients 1000] [--duration 15] [--warmup 5]
 *                    [--connections 32] [--only "read by id,status check"] [--server-args="--cpu-prof"]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Goal } from '@medplum/fhirtypes';
import { call, clinicianHeaders, token } from './lib/api.js';
import { type BenchDatabase, type DbKind, openBenchDatabase } from './lib/database.js';
import { type LoadOptions, type LoadResult, runLoad } from './lib/load.js';
import { type IngestResult, ingest, loadModels, MODEL_NINS } from './lib/population.js';
import { productionCommand, type Running, startProcess } from './lib/server.js';
import { auditedCeilingScenario, ceilingScenario, type Fixture, scenarios } from './scenarios.js';

const { values } = parseArgs({
  options: {
    db: { type: 'string', default: 'both' },
    patients: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    only: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    // Extra Node options for the server, e.g. --server-args="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile a scenario.
    'server-args': { type: 'string', default: '' },
  },
});

const repo = path.resolve(import.meta.dirname, '..');
const load: LoadOptions = { connections: Number(values.connections), durationSeconds: Number(values.duration), warmupSeconds: Number(values.warmup) };
const only = values.only?.split(',').map((s) => s.trim());

interface Run {
  db: string;
  ingest: IngestResult;
  /** Each scenario with the ceiling it is a share of (`ceilingRps`). */
  results: Array<LoadResult & { ceilingRps: number }>;
  /** Every measurement of the bare ceiling, in the order taken. */
  ceilings: LoadResult[];
  audited: LoadResult & { ceilingRps: number };
}

const mean = (a: LoadResult, b: LoadResult) => Math.round((a.rps + b.rps) / 2);
const share = (r: { rps: number; ceilingRps: number }) => (r.ceilingRps ? `${Math.round((r.rps / r.ceilingRps) * 100)} %` : '–');
/** A run's figures besides its throughput, as the progress log shows them. */
const measured = (r: LoadResult) =>
  `p50 ${r.p50} ms, p95 ${r.p95} ms, p99 ${r.p99} ms, cpu ${r.cpuPerRequestMs} ms/req, database cpu ${r.databaseCpuPerRequestMs} ms/req, errors ${r.errors}, non-2xx ${r.failures}${r.failures ? ` ${JSON.stringify(r.failedStatuses)}` : ''}, peak ${r.peakMemoryMb} MB, machine busy ${r.machine.busyPercent} %, steal ${r.machine.stealPercent} %`;

async function benchmark(kind: DbKind): Promise<Run> {
  const db: BenchDatabase = await openBenchDatabase(kind);
  try {
    const production = productionCommand();
    const env = { ...production.env, ...db.env, SEED_DEMO_DATA: 'true', RATE_LIMIT_PER_MINUTE: '1000000000' };
    const serverArgs = [...production.args, ...(values['server-args'] as string).split(' ').filter(Boolean)];
    const server = await startProcess(path.join(repo, 'dist', 'main.js'), env, '/readyz', serverArgs);
    // Stopped on every path, a failure before or during the scenarios included (stopping twice is harmless).
    try {
      console.error(`[${kind}] server up (pid ${server.pid}, ${server.rssMb()} MB); getting tokens`);
      const clinician = await token(server.url, db.dataDir, ['clinician', 'fastlege'], 'nhn:samplan/read nhn:samplan/write');
      const machine = await token(server.url, db.dataDir, ['machine'], 'nhn:samplan/status');
      const models = await loadModels(server.url, clinician, MODEL_NINS);
      const patients = Number(values.patients);
      console.error(`[${kind}] loading ${patients} patients through the API (${values.concurrency} clients)`);
      const { loaded, result: ingested } = await ingest(server.url, clinician, models, 0, patients, Number(values.concurrency));
      console.error(`[${kind}] ingest: ${ingested.resources} resources in ${ingested.seconds} s = ${ingested.resourcesPerSecond}/s`);
      loaded.sort((a, b) => a.nin.localeCompare(b.nin));
      const goals: Array<Fixture['goals'][number]> = [];
      for (const p of loaded.slice(0, Math.max(64, load.connections * 2))) {
        const made = await call<Goal>(server.url, 'POST', 'Goal', clinicianHeaders(clinician, p.nin), {
          resourceType: 'Goal',
          lifecycleStatus: 'active',
          description: { text: 'Benchmark goal' },
          subject: { reference: `Patient/${p.patientId}` },
        });
        goals.push({ id: made.body.id as string, nin: p.nin, patientId: p.patientId, version: 1 });
      }
      await db.settle();
      const fixture: Fixture = { url: server.url, clinician, machine, patients: loaded, goals, model: models[0] as Fixture['model'] };
      const all = scenarios(fixture);
      // A misspelt name would otherwise measure nothing and say nothing.
      const unknown = only?.filter((name) => !all.some((s) => s.name === name)) ?? [];
      if (unknown.length) throw new Error(`--only names no scenario: ${unknown.map((n) => JSON.stringify(n)).join(', ')}; the scenarios are ${all.map((s) => JSON.stringify(s.name)).join(', ')}`);
      const startCeiling = () => startProcess(path.join(repo, 'bench', 'ceiling.ts'), env, '/readyz', ['--import', 'tsx']);
      const ceilings: LoadResult[] = [];
      const measureCeiling = async (on: Running) => {
        const r = await runLoad(on, ceilingScenario(fixture), load);
        console.error(`[${kind}] ${r.scenario}: ${r.rps} req/s, ${measured(r)}`);
        ceilings.push(r);
        return r;
      };
      // The host's speed drifts over minutes (the same ceiling measured 6,800 and 11,000 req/s within
      // the hour), so a ratio is only as good as its ceiling is near. A PostgreSQL server can serve
      // the ceiling's process beside Samplan's: it is measured just before and just after each
      // scenario, and the scenario is a share of the two's mean. The embedded database belongs to
      // one process: there the ceiling opens it once the server is gone, and every ratio is to it.
      const beside = db.kind === 'postgres' ? await startCeiling() : undefined;
      let ceilingServer = beside;
      try {
        const results: Run['results'] = [];
        let before = beside ? await measureCeiling(beside) : undefined;
        for (const scenario of all) {
          if (only && !only.includes(scenario.name)) continue;
          const r = await runLoad(server, scenario, load);
          const after = beside ? await measureCeiling(beside) : undefined;
          const ceilingRps = before && after ? mean(before, after) : 0;
          before = after;
          console.error(`[${kind}] ${r.scenario}: ${r.rps} req/s${ceilingRps ? ` (${share({ ...r, ceilingRps })} of ${ceilingRps})` : ''}, ${measured(r)}`);
          results.push({ ...r, ceilingRps });
        }
        // Before the ceiling's last measurements: on the embedded database it must own the data.
        await server.stop();
        ceilingServer ??= await startCeiling();
        const first = beside ? (ceilings.at(-1) as LoadResult) : await measureCeiling(ceilingServer);
        const audited = await runLoad(ceilingServer, auditedCeilingScenario(fixture), load);
        const last = await measureCeiling(ceilingServer);
        console.error(`[${kind}] ${audited.scenario}: ${audited.rps} req/s, ${measured(audited)}`);
        if (!beside) for (const r of results) r.ceilingRps = mean(first, last);
        return { db: db.description, ingest: ingested, results, ceilings, audited: { ...audited, ceilingRps: mean(first, last) } };
      } finally {
        await ceilingServer?.stop();
      }
    } finally {
      await server.stop();
    }
  } finally {
    await db.close();
  }
}

function table(run: Run): string {
  const row = (r: LoadResult, ceiling: string, ofCeiling: string) =>
    `| ${r.scenario} | ${r.rps} | ${ceiling} | ${ofCeiling} | ${r.p50} | ${r.p95} | ${r.p99} | ${r.cpuPerRequestMs} | ${r.databaseCpuPerRequestMs || '–'} | ${r.errors + r.failures} | ${r.peakMemoryMb} |`;
  const sorted = [...run.ceilings].sort((a, b) => a.rps - b.rps);
  const median = sorted[Math.floor(sorted.length / 2)] as LoadResult;
  const range = `${(sorted[0] as LoadResult).rps}–${(sorted.at(-1) as LoadResult).rps}`;
  return [
    `**${run.db}** — ingest ${run.ingest.patients} patients, ${run.ingest.resources} resources: ${run.ingest.resourcesPerSecond} resources/s`,
    '',
    '| scenario | req/s | its ceiling req/s | of ceiling | p50 ms | p95 ms | p99 ms | server CPU ms/req | database CPU ms/req | errors | peak RSS MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...run.results.map((r) => row(r, String(r.ceilingRps), share(r))),
    row(run.audited, String(run.audited.ceilingRps), share(run.audited)),
    row({ ...median, scenario: `ceiling (bare SELECT), median of ${sorted.length}` }, range, '100 %'),
  ].join('\n');
}

const kinds: DbKind[] = values.db === 'both' ? ['postgres', 'pglite'] : [values.db as DbKind];
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
const runs = [];
for (const kind of kinds) runs.push(await benchmark(kind));
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
mkdirSync(path.join(repo, 'bench', 'results'), { recursive: true });
const file = path.join(repo, 'bench', 'results', `${stamp}.json`);
writeFileSync(file, JSON.stringify({ when: new Date().toISOString(), machine, load, patients: Number(values.patients), runs }, null, 2));
console.log(`Machine: ${machine}. ${load.connections} connections, ${load.warmupSeconds} s warm-up, ${load.durationSeconds} s measured.\n`);
for (const run of runs) console.log(`${table(run)}\n`);
console.log(`(results: ${path.relative(repo, file)})`);
