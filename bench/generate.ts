/**
 * `npm run generate -- --patients N`: loads N synthetic patients, each with a plan like the demo
 * patients' (about 25 resources: the patient, consent, conditions, goals, measures, care team, the
 * active plan with its zones, check-ins), into a running Samplan through its API — as a GP's EHR
 * would: register the patient, record the consent, write the plan in one transaction, publish it.
 * Reports resources per second. The server must have the demo data (the models); `npm start` on
 * an empty database seeds it.
 *
 *   npm run generate -- --patients 1000 [--from 0] [--server http://localhost:8080] [--data-dir ./data] [--concurrency 8]
 *
 * `--from` numbers the people (patient n has the n-th synthetic fødselsnummer), so runs can add
 * to a population without collisions.
 *
 * The bulk path, for large populations (the API takes hours for 100,000 patients):
 *
 *   npm run generate -- --bulk --patients 100000 --database-url postgres://… [--from 0] [--batch 80] [--concurrency 3]
 *                       [--rebuild-indexes] [--base-url …]
 *
 * writes copies of the demo patients (every resource of theirs, with new ids and the n-th
 * fødselsnummer) straight into a PostgreSQL database, `--batch` patients per SQL statement — the
 * rows the API would have stored, made by the server's own code (`serialize`, `extractIndex`,
 * `ResourceStore.insertMany`), but without validation (the copies are of validated resources; only
 * ids and the national id change). The database must be migrated and hold the demo data: start
 * the server on it once with SEED_DEMO_DATA=true. See bench/lib/bulk.ts. `--base-url` is the
 * server's BASE_URL (default: $BASE_URL, else http://localhost:8080/fhir). `--rebuild-indexes` drops
 * the tables' secondary indexes for the load and builds them again after it (much faster for large
 * loads; do not serve the database meanwhile).
 */
import { parseArgs } from 'node:util';
import { token } from './lib/api.js';
import { bulkLoad } from './lib/bulk.js';
import { ingest, loadModels, MODEL_NINS } from './lib/population.js';

const { values } = parseArgs({
  options: {
    patients: { type: 'string', default: '100' },
    from: { type: 'string', default: '0' },
    server: { type: 'string', default: 'http://localhost:8080' },
    'data-dir': { type: 'string', default: process.env.DATA_DIR ?? './data' },
    concurrency: { type: 'string' },
    bulk: { type: 'boolean', default: false },
    'database-url': { type: 'string', default: process.env.DATABASE_URL },
    batch: { type: 'string', default: '80' },
    'base-url': { type: 'string', default: process.env.BASE_URL ?? 'http://localhost:8080/fhir' },
    'rebuild-indexes': { type: 'boolean', default: false },
  },
});

const from = Number(values.from);
const to = from + Number(values.patients);

if (values.bulk) {
  const databaseUrl = values['database-url'];
  if (!databaseUrl) throw new Error('--bulk needs --database-url postgres://… (or DATABASE_URL): a migrated database with the demo data');
  let reported = 0;
  const result = await bulkLoad({
    databaseUrl,
    modelNins: MODEL_NINS,
    from,
    to,
    batch: Number(values.batch),
    concurrency: Number(values.concurrency ?? 3),
    baseUrl: (values['base-url'] as string).replace(/\/+$/, ''),
    rebuildIndexes: values['rebuild-indexes'] as boolean,
    log: (line) => console.error(line),
    onProgress: (patients, resources, seconds) => {
      if (patients - reported < 5000 && patients !== to - from) return;
      reported = patients;
      console.error(`${patients} patients, ${resources} resources, ${Math.round(resources / seconds)} resources/s`);
    },
  });
  const indexes = result.indexSeconds !== undefined ? ` (of which ${result.indexSeconds} s building the indexes again)` : '';
  console.log(`bulk: ${result.patients} patients, ${result.resources} resources in ${result.seconds} s${indexes}: ${result.resourcesPerSecond} resources/s`);
} else {
  const server = values.server as string;
  const clinician = await token(server, values['data-dir'] as string, ['clinician', 'fastlege'], 'nhn:samplan/read nhn:samplan/write');
  const models = await loadModels(server, clinician, MODEL_NINS);
  let done = 0;
  const { result } = await ingest(server, clinician, models, from, to, Number(values.concurrency ?? 8), () => {
    if (++done % 500 === 0) console.error(`${done} patients`);
  });
  console.log(`${result.patients} patients, ${result.resources} resources in ${result.seconds} s: ${result.resourcesPerSecond} resources/s`);
}
