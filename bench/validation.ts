/**
 * `npm run bench:validation`: what validating one resource costs, in a loop on one thread, over
 * the demo data (seeded through the write pipeline into a fresh embedded database and read back):
 * the plans' clinical resources and all of it (with the large conformance resources: profiles,
 * code systems, templates). For comparison, Medplum's structural validator alone on the same
 * resources — what every write ran before the structure check (src/fhir/validation/structure.ts)
 * let valid ones skip it.
 *
 *   npm run bench:validation -- [--rounds 20]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { seedDemoData } from '../src/demo/seed.js';
import { medplumIssues } from '../src/fhir/validation/medplum.js';
import { validateResource } from '../src/fhir/validation/validator.js';

const CLINICAL = new Set(['CarePlan', 'Goal', 'ServiceRequest', 'Observation', 'Condition', 'CareTeam', 'Patient', 'Task', 'Flag', 'Provenance', 'Consent', 'RelatedPerson']);

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' } } });
const rounds = Number(values.rounds);

async function demoResources(): Promise<Array<Record<string, unknown>>> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'samplan-bench-validation-'));
  try {
    const config = loadConfig({ DATA_DIR: dataDir, BASE_URL: 'http://localhost/fhir', LOG_LEVEL: 'silent' });
    const app = await createApp(config, pino({ level: 'silent' }));
    await seedDemoData(app.engine, { baseUrl: config.baseUrl, security: config.security });
    const rows = await app.db.query<{ content: string }>('SELECT content FROM resources WHERE content IS NOT NULL ORDER BY type, id');
    await app.close();
    return rows.map((r) => JSON.parse(r.content) as Record<string, unknown>);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Microseconds a resource: a warm-up, then the best of three timed runs of `rounds` passes. */
function perResource(resources: ReadonlyArray<Record<string, unknown>>, validate: (r: Record<string, unknown>) => unknown): number {
  for (let i = 0; i < 3; i++) for (const r of resources) validate(r);
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) for (const r of resources) validate(r);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / rounds / resources.length);
  }
  return best;
}

const all = await demoResources();
const clinical = all.filter((r) => CLINICAL.has(r.resourceType as string));
console.log(`Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}; demo data: ${all.length} resources, ${clinical.length} of them clinical`);
console.log('| resources | validation µs/resource | Medplum\'s validator alone µs/resource |');
console.log('|---|---:|---:|');
for (const [name, set] of [['clinical', clinical], ['all', all]] as const) {
  console.log(`| ${name} (${set.length}) | ${perResource(set, (r) => validateResource(r)).toFixed(1)} | ${perResource(set, (r) => medplumIssues(r)).toFixed(1)} |`);
}
