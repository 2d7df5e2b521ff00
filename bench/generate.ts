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
 */
import { parseArgs } from 'node:util';
import { citizenByKey } from '../src/demo/population.js';
import { token } from './lib/api.js';
import { ingest, loadModels } from './lib/population.js';

const { values } = parseArgs({
  options: {
    patients: { type: 'string', default: '100' },
    from: { type: 'string', default: '0' },
    server: { type: 'string', default: 'http://localhost:8080' },
    'data-dir': { type: 'string', default: process.env.DATA_DIR ?? './data' },
    concurrency: { type: 'string', default: '8' },
  },
});

const server = values.server as string;
const clinician = await token(server, values['data-dir'] as string, ['clinician', 'fastlege'], 'nhn:samplan/read nhn:samplan/write');
const models = await loadModels(server, clinician, ['anne', 'bjorn', 'dagny', 'eldar'].map((k) => citizenByKey(k).pid));
const from = Number(values.from);
const to = from + Number(values.patients);
let done = 0;
const { result } = await ingest(server, clinician, models, from, to, Number(values.concurrency), () => {
  if (++done % 500 === 0) console.error(`${done} patients`);
});
console.log(`${result.patients} patients, ${result.resources} resources in ${result.seconds} s: ${result.resourcesPerSecond} resources/s`);
