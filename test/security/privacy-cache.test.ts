/**
 * The privacy settings are cached between requests (src/security/privacy-cache.ts), and a change
 * still takes effect at once: on the instance that made it before its answer is sent, and on a
 * second instance on the same database as soon as PostgreSQL's notification arrives.
 */
import type { Bundle, Consent } from '@medplum/fhirtypes';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { citizenByKey, clinicianByKey } from '../../src/demo/population.js';
import { OID } from '../../src/no/identifiers.js';
import type { Database } from '../../src/store/db.js';
import { openPostgres } from '../../src/store/postgres.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';
import { clinicianToken, consentOf, machineToken, nhnHeaders, seedPatient } from '../support/security.js';

let t: TestServer;
let second: App;
let secondDb: Database | undefined;
let lookups = 0;
let patientId: string;
const anne = citizenByKey('anne').pid;

/** Counts the privacy lookups (the one query that finds a patient's Consents by national id). */
function counting(db: Database): Database {
  return {
    ...db,
    query: (text, params) => {
      if (text.includes('c.content AS consent')) lookups++;
      return db.query(text, params);
    },
  };
}

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  patientId = await seedPatient(t, 'anne');
  // A second instance on the same database: its own connections on a server, the same embedded database otherwise.
  secondDb = t.database.url ? await openPostgres(t.database.url) : undefined;
  const config = loadConfig({ BASE_URL: BASE, LOG_LEVEL: 'silent', DATA_DIR: t.database.dataDir });
  second = await createApp(config, pino({ level: 'silent' }), { db: counting(secondDb ?? t.database.db), delivery: false });
});

afterAll(async () => {
  await second?.server.close();
  await secondDb?.close();
  await t?.close();
});

let gpToken: string | undefined;

/** The GP's search for Anne's plans, with the same token and headers every time (as an EHR sends them). */
async function readPlans(app: App): Promise<number> {
  const token = (gpToken ??= await clinicianToken(t, 'fastlege'));
  const res = await app.server.inject({
    method: 'GET',
    url: `/fhir/CarePlan?subject=Patient/${patientId}`,
    headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: anne }) },
  });
  return res.statusCode;
}

async function consents(): Promise<Consent[]> {
  const res = await t.system<Bundle<Consent>>('GET', `Consent?patient=Patient/${patientId}`);
  return (res.body.entry ?? []).map((e) => e.resource as Consent);
}

async function eventually(check: () => Promise<boolean>, ms = 3000): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

describe('the privacy cache', () => {
  it('answers repeated requests about a patient without looking the patient up again', async () => {
    expect(await readPlans(second)).toBe(200);
    const before = lookups;
    for (let i = 0; i < 5; i++) expect(await readPlans(second)).toBe(200);
    expect(lookups).toBe(before);
  });

  it('applies a withdrawn consent at once on the instance that stored it, and within moments on another', async () => {
    expect(await readPlans(t.app)).toBe(200);
    expect(await readPlans(second)).toBe(200);
    const plan = (await consents()).find((c) => c.category?.some((cat) => cat.coding?.some((x) => x.code === 'plan'))) as Consent;
    const withdrawn = await t.system('PUT', `Consent/${plan.id}`, { ...plan, status: 'inactive' });
    expect(withdrawn.status).toBe(200);
    // The first instance emptied its cache when the withdrawal committed.
    expect(await readPlans(t.app)).toBe(403);
    const took = await eventually(async () => (await readPlans(second)) === 403);
    expect(took).toBeLessThan(3000);

    const restored = await t.system('PUT', `Consent/${plan.id}`, { ...plan, status: 'active' });
    expect(restored.status).toBe(200);
    expect(await readPlans(t.app)).toBe(200);
    await eventually(async () => (await readPlans(second)) === 200);
  });

  it('answers the status check from the cache, and reports a withdrawn consent at once', async () => {
    const token = await machineToken(t);
    const status = async (app: App) => {
      const res = await app.server.inject({ method: 'POST', url: '/status', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify({ nin: anne }) });
      expect(res.statusCode, res.body).toBe(200);
      return JSON.parse(res.body) as { privacySetting: { consent: boolean } };
    };
    expect((await status(second)).privacySetting.consent).toBe(true);
    const before = lookups;
    for (let i = 0; i < 5; i++) expect((await status(second)).privacySetting.consent).toBe(true);
    expect(lookups).toBe(before);

    const plan = (await consents()).find((c) => c.category?.some((cat) => cat.coding?.some((x) => x.code === 'plan'))) as Consent;
    expect((await t.system('PUT', `Consent/${plan.id}`, { ...plan, status: 'inactive' })).status).toBe(200);
    expect((await status(t.app)).privacySetting.consent).toBe(false);
    await eventually(async () => (await status(second)).privacySetting.consent === false);
    expect((await t.system('PUT', `Consent/${plan.id}`, { ...plan, status: 'active' })).status).toBe(200);
    expect((await status(t.app)).privacySetting.consent).toBe(true);
  });

  it('applies a new block to the clinician on both instances', async () => {
    expect(await readPlans(second)).toBe(200);
    await seedBlock();
    expect(await readPlans(t.app)).toBe(403);
    await eventually(async () => (await readPlans(second)) === 403);
  });
});

async function seedBlock(): Promise<void> {
  const gp = clinicianByKey('fastlege');
  const res = await t.system(
    'POST',
    'Consent',
    consentOf(patientId, 'blokkering', {
      provision: { type: 'deny', actor: [{ role: { text: 'blokkert helsepersonell' }, reference: { identifier: { system: OID.hpr, value: gp.hpr } } }] },
    }),
  );
  expect(res.status).toBe(201);
}
