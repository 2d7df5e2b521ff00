/**
 * The patient's daily check-in ("which zone am I in today", with optional measurements) and what
 * follows: green is just recorded; yellow or red — as the patient says, or as the measurements
 * show against the plan's thresholds, whichever is worse — raises a Flag and a follow-up Task the
 * care team finds at once. And the status check an EHR's badge uses: has the patient an active
 * plan, when did it change — without content, without an audit record, for machine tokens too.
 */
import type { Bundle, CarePlan, Extension, Flag, Goal, Observation, Task } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION, PROFILE } from '../../src/plan/conventions.js';
import { planStatus } from '../../src/plan/status.js';
import { migrate } from '../../src/store/migrate.js';
import { MEASUREMENT } from '../../src/plan/templates/build.js';
import { startTestServer, type TestServer } from '../support/app.js';
import { asCitizen, asClinician, machineToken, seedPatient } from '../support/security.js';

let t: TestServer;
const ANNE = 'anne';
let patient: string;
let plan: CarePlan;

const threshold = (measurement: typeof MEASUREMENT.spo2, comparator: string, parts: Extension[]): Extension => ({
  url: 'threshold',
  extension: [{ url: 'measurement', valueCodeableConcept: measurement }, { url: 'comparator', valueCode: comparator }, ...parts],
});

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  patient = await seedPatient(t, ANNE);
  const plans = await t.system<Bundle<CarePlan>>('GET', `CarePlan?subject=Patient/${patient}`);
  const current = plans.body.entry?.[0]?.resource as CarePlan;
  const zone = (level: string, parts: Extension[]): Extension => ({
    url: EXTENSION.zone,
    extension: [{ url: 'level', valueCode: level }, { url: 'action', valueString: `Gjør som avtalt i ${level} sone` }, ...parts],
  });
  const updated = await t.system<CarePlan>('PUT', `CarePlan/${current.id}`, {
    ...current,
    extension: [
      zone('green', [{ url: 'criteria', valueString: 'Som vanlig' }]),
      zone('yellow', [
        { url: 'symptom', valueString: 'Mer tung pust enn vanlig' },
        threshold(MEASUREMENT.peakFlow, '<', [{ url: 'percentOfBaseline', valueDecimal: 80 }, { url: 'baseline', valueQuantity: { value: 400, unit: 'L/min', system: 'http://unitsofmeasure.org', code: 'L/min' } }]),
        threshold(MEASUREMENT.weight, '>', [
          { url: 'value', valueQuantity: { value: 2, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } },
          { url: 'changeOver', valueDuration: { value: 3, unit: 'døgn', system: 'http://unitsofmeasure.org', code: 'd' } },
        ]),
      ]),
      zone('red', [
        threshold(MEASUREMENT.spo2, '<', [{ url: 'value', valueQuantity: { value: 88, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } }]),
        threshold(MEASUREMENT.weight, '>', [
          { url: 'value', valueQuantity: { value: 4, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } },
          { url: 'changeOver', valueDuration: { value: 3, unit: 'døgn', system: 'http://unitsofmeasure.org', code: 'd' } },
        ]),
        { url: 'emergency', valueBoolean: true },
      ]),
    ],
  });
  expect(updated.status, JSON.stringify(updated.body)).toBe(200);
  plan = updated.body;
  await t.system('POST', `CarePlan/${plan.id}/$publish`, { resourceType: 'Parameters' });
});
afterAll(async () => t?.close());

function checkIn(zone: 'green' | 'yellow' | 'red' | undefined, measurements: Array<[typeof MEASUREMENT.spo2, number, string]> = [], at = new Date()): Observation {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ ...CHECK_IN_CODE }] },
    subject: { reference: `Patient/${patient}` },
    performer: [{ reference: `Patient/${patient}` }],
    basedOn: [{ reference: `CarePlan/${plan.id}` }],
    effectiveDateTime: at.toISOString(),
    valueCodeableConcept: { coding: [{ system: CODE_SYSTEM.zone, code: zone ?? 'green' }] },
    ...(measurements.length
      ? { component: measurements.map(([code, value, unit]) => ({ code, valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit } })) }
      : {}),
  };
}

async function followUps(focus: string): Promise<{ tasks: Task[]; flags: Flag[] }> {
  const tasks = await asClinician(t, 'fastlege', 'GET', `Task?focus=${focus}`, { patient: ANNE });
  const flags = await asClinician(t, 'fastlege', 'GET', `Flag?patient=Patient/${patient}&_sort=-_lastUpdated&_count=1`, { patient: ANNE });
  return {
    tasks: ((tasks.body as Bundle<Task>).entry ?? []).map((e) => e.resource as Task),
    flags: ((flags.body as Bundle<Flag>).entry ?? []).map((e) => e.resource as Flag),
  };
}

describe('check-ins', () => {
  it('records a green check-in and raises nothing', async () => {
    const res = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn('green') });
    expect(res.status, res.text).toBe(201);
    expect(res.body.meta.profile).toContain(PROFILE.checkIn);
    expect((await followUps(`Observation/${res.body.id}`)).tasks).toEqual([]);
  });

  it('raises a Flag and an urgent Task for a yellow check-in, which the care team sees at once', async () => {
    const res = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn('yellow') });
    expect(res.status, res.text).toBe(201);
    const { tasks, flags } = await followUps(`Observation/${res.body.id}`);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.priority).toBe('urgent');
    expect(tasks[0]?.status).toBe('requested');
    expect(tasks[0]?.basedOn?.[0]?.reference).toBe(`CarePlan/${plan.id}`);
    expect(tasks[0]?.description).toContain('Pasienten melder gul sone');
    expect(flags[0]?.code.coding?.[0]?.code).toBe('zone-yellow');
    expect(flags[0]?.status).toBe('active');
  });

  it('goes by the measurements when they are worse than what the patient says: SpO2 under the red limit', async () => {
    const res = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn('green', [[MEASUREMENT.spo2, 86, '%']]) });
    expect(res.status, res.text).toBe(201);
    const { tasks, flags } = await followUps(`Observation/${res.body.id}`);
    expect(tasks[0]?.priority).toBe('stat');
    expect(tasks[0]?.description).toContain('målingene viser rød sone');
    expect(tasks[0]?.description).toContain('86 %');
    expect(flags[0]?.code.coding?.[0]?.code).toBe('zone-red');
  });

  it('compares with the personal baseline: peak flow under 80 % of best is yellow, above it is not', async () => {
    const low = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn(undefined, [[MEASUREMENT.peakFlow, 300, 'L/min']]) });
    expect((await followUps(`Observation/${low.body.id}`)).tasks[0]?.description).toContain('320 L/min');
    const fine = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn(undefined, [[MEASUREMENT.peakFlow, 350, 'L/min']]) });
    expect((await followUps(`Observation/${fine.body.id}`)).tasks).toEqual([]);
  });

  it('follows up a check-in made by PUT to a new id, and not again when it is corrected', async () => {
    const id = `innsjekk-${Date.now()}`;
    const made = await asCitizen(t, ANNE, 'PUT', `Observation/${id}`, { body: { ...checkIn('red'), id } });
    expect(made.status, made.text).toBe(201);
    expect((await followUps(`Observation/${id}`)).tasks).toHaveLength(1);
    const corrected = await asCitizen(t, ANNE, 'PUT', `Observation/${id}`, { body: { ...made.body, note: [{ text: 'Feil knapp' }] } });
    expect(corrected.status, corrected.text).toBe(200);
    expect((await followUps(`Observation/${id}`)).tasks).toHaveLength(1);
  });

  it('compares a weight with the earlier check-ins: up more than 2 kg in 3 days is yellow', async () => {
    const day = 86_400_000;
    const now = Date.now();
    const weigh = async (kg: number, daysAgo: number) => {
      const res = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn('green', [[MEASUREMENT.weight, kg, 'kg']], new Date(now - daysAgo * day)) });
      expect(res.status, res.text).toBe(201);
      return (await followUps(`Observation/${res.body.id}`)).tasks;
    };
    // Five days ago is outside every period below; for today, two days ago is the first value inside it.
    expect(await weigh(78, 5)).toEqual([]);
    expect(await weigh(80, 2)).toEqual([]);
    expect(await weigh(81.5, 1)).toEqual([]);
    const gained = await weigh(82.5, 0);
    expect(gained).toHaveLength(1);
    expect(gained[0]?.description).toContain('Vekt har endret seg +2.5 kg på 3 døgn');
  });

  it('measures a change from the earliest weight in the period, however many check-ins came after it, and in whatever order they arrived', async () => {
    const day = 86_400_000;
    // A month back, clear of the other tests' check-ins: a scale that sends a reading every few
    // minutes (210 in one day), then, synchronised late, one from the day before them.
    const today = Date.now() - 30 * day;
    const at = (offset: number) => new Date(today - offset).toISOString();
    for (let i = 0; i < 210; i++) {
      const res = await t.system('POST', 'Observation', checkIn('green', [[MEASUREMENT.weight, 80, 'kg']], new Date(at(day - i * 60_000))));
      expect(res.status).toBe(201);
    }
    const late = await t.system('POST', 'Observation', checkIn('green', [[MEASUREMENT.weight, 79, 'kg']], new Date(at(2 * day))));
    expect(late.status).toBe(201);
    const res = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn('green', [[MEASUREMENT.weight, 81.5, 'kg']], new Date(today)) });
    expect(res.status, res.text).toBe(201);
    const { tasks } = await followUps(`Observation/${res.body.id}`);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.description).toContain('Vekt har endret seg +2.5 kg på 3 døgn');
  });

  it('weighs a change against both zones\' thresholds over the same days: up more than 4 kg is red', async () => {
    const day = 86_400_000;
    const today = Date.now() - 60 * day;
    const before = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn('green', [[MEASUREMENT.weight, 80, 'kg']], new Date(today - 2 * day)) });
    expect(before.status, before.text).toBe(201);
    const res = await asCitizen(t, ANNE, 'POST', 'Observation', { body: checkIn('green', [[MEASUREMENT.weight, 84.5, 'kg']], new Date(today)) });
    expect(res.status, res.text).toBe(201);
    const { tasks } = await followUps(`Observation/${res.body.id}`);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.priority).toBe('stat');
    expect(tasks[0]?.description).toContain('Vekt har endret seg +4.5 kg på 3 døgn');
  });

  it('refuses a check-in without a zone or a plan, with the element named', async () => {
    const { valueCodeableConcept: _v, ...noZone } = checkIn('green');
    const a = await asCitizen(t, ANNE, 'POST', 'Observation', { body: noZone });
    expect(a.status).toBe(400);
    expect(JSON.stringify(a.body)).toContain('Observation.value');
    const { basedOn: _b, ...noPlan } = checkIn('green');
    const b = await asCitizen(t, ANNE, 'POST', 'Observation', { body: noPlan });
    expect(b.status).toBe(400);
    expect(JSON.stringify(b.body)).toContain('Observation.basedOn');
    const c = await asCitizen(t, ANNE, 'POST', 'Observation', { body: { ...checkIn('green'), valueCodeableConcept: { coding: [{ system: CODE_SYSTEM.zone, code: 'purple' }] } } });
    expect(c.status).toBe(400);
  });
});

describe('status check', () => {
  const nin = () => citizenByKey(ANNE).pid;

  it('answers NHN\'s POST /status for a machine token: active plan and last change, no content, no audit record', async () => {
    const token = await machineToken(t);
    const audits = async () => (await t.app.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events'))[0]?.n;
    const before = await audits();
    const res = await t.app.server.inject({ method: 'POST', url: '/status', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify({ nin: nin() }) });
    expect(res.statusCode, res.body).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.activeCarePlan).toBe(true);
    expect(Date.parse(body.lastChangedDateTime)).toBeGreaterThan(Date.now() - 10 * 60_000);
    expect(body.privacySetting).toEqual({ consent: true, hasReservationKjernejournal: false, isRestricted: false, isBlocked: false });
    expect(Object.keys(body).sort()).toEqual(['activeCarePlan', 'lastChangedDateTime', 'privacySetting']);
    expect(await audits()).toBe(before);
  });

  it('moves the last change when the plan changes, and says no plan for a patient without one', async () => {
    const token = await machineToken(t);
    const ask = async (n: string) => {
      const res = await t.request('POST', 'Patient/$plan-status', { body: { resourceType: 'Parameters', parameter: [{ name: 'nin', valueString: n }] }, headers: { authorization: `Bearer ${token}` } });
      expect(res.status, res.text).toBe(200);
      return res.body.parameter as Array<{ name: string; valueBoolean?: boolean; valueDateTime?: string }>;
    };
    const first = (await ask(nin())).find((p) => p.name === 'lastChangedDateTime')?.valueDateTime;
    await new Promise((r) => setTimeout(r, 5));
    await t.system('PUT', `CarePlan/${plan.id}`, { ...(await t.system<CarePlan>('GET', `CarePlan/${plan.id}`)).body, description: 'Endret' });
    const second = (await ask(nin())).find((p) => p.name === 'lastChangedDateTime')?.valueDateTime;
    expect(Date.parse(second as string)).toBeGreaterThan(Date.parse(first as string));
    const nobody = await ask(citizenByKey('gunnar').pid);
    expect(nobody.find((p) => p.name === 'activeCarePlan')?.valueBoolean).toBe(false);
    expect(nobody.find((p) => p.name === 'lastChangedDateTime')).toBeUndefined();
  });

  it('counts a deleted part of the plan as a change, and keeps patients apart', async () => {
    const token = await machineToken(t);
    const changed = async (n: string) => {
      const res = await t.app.server.inject({ method: 'POST', url: '/status', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify({ nin: n }) });
      expect(res.statusCode, res.body).toBe(200);
      return JSON.parse(res.body).lastChangedDateTime as string | null;
    };
    const other = await seedPatient(t, 'bjorn');
    const goal = (await t.system<Goal>('POST', 'Goal', { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Gå til postkassen' }, subject: { reference: `Patient/${patient}` } })).body;
    const afterCreate = await changed(nin());
    expect(afterCreate).toBe(goal.meta?.lastUpdated);
    const bjorn = await changed(citizenByKey('bjorn').pid);
    await new Promise((r) => setTimeout(r, 5));
    expect((await t.system('DELETE', `Goal/${goal.id}`)).status).toBe(204);
    const afterDelete = await changed(nin());
    expect(Date.parse(afterDelete as string)).toBeGreaterThan(Date.parse(afterCreate as string));
    expect(await changed(citizenByKey('bjorn').pid)).toBe(bjorn);
    expect(other).toBeTruthy();
  });

  it('keeps the latest change when many write the plan at once, and survives the upgrade that introduced it', async () => {
    const token = await machineToken(t);
    const changed = async () => {
      const res = await t.app.server.inject({ method: 'POST', url: '/status', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify({ nin: nin() }) });
      expect(res.statusCode, res.body).toBe(200);
      return JSON.parse(res.body).lastChangedDateTime as string;
    };
    const made = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        t.system<Goal>('POST', 'Goal', { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: `Samtidig ${i}` }, subject: { reference: `Patient/${patient}` } }),
      ),
    );
    expect(made.map((r) => r.status)).toEqual(made.map(() => 201));
    const latest = Math.max(...made.map((r) => Date.parse(r.body.meta?.lastUpdated as string)));
    expect(Date.parse(await changed())).toBe(latest);
    // A database from before migration 011: the migration fills the table from what is stored.
    await t.app.db.query('DROP TABLE plan_changes');
    await t.app.db.query(`DELETE FROM schema_migrations WHERE id = '011-plan-changes'`);
    expect(await migrate(t.app.db)).toEqual(['011-plan-changes']);
    expect(Date.parse(await changed())).toBe(latest);
  });

  // "Last changed" used to be the newest of the patient's plan resources, read one by one: the
  // check grew with everything the patient had. It reads a few index pages, however many.
  it('reads a few pages, however many plan resources the patient has', async () => {
    const goals = Array.from({ length: 1000 }, (_, i) => ({
      resource: { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: `Delmål ${i}` }, subject: { reference: `Patient/${patient}` } },
      request: { method: 'POST', url: 'Goal' },
    }));
    expect((await t.system('POST', '', { resourceType: 'Bundle', type: 'transaction', entry: goals })).status).toBe(200);
    const statements: Array<[string, readonly unknown[]]> = [];
    const recording = { query: <R>(text: string, params?: readonly unknown[]) => (statements.push([text, params ?? []]), t.app.db.query<R>(text, params)) };
    const status = await planStatus(recording, t.app.engine.services.privacy, undefined, nin());
    expect(status.activeCarePlan).toBe(true);
    const [text, params] = statements.find(([sql]) => sql.includes('plan_changes')) as [string, readonly unknown[]];
    const [{ 'QUERY PLAN': [plan] }] = (await t.app.db.query<{ 'QUERY PLAN': Array<{ Plan: Record<string, number> }> }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, params)) as [{ 'QUERY PLAN': Array<{ Plan: Record<string, number> }> }];
    const pages = (plan?.Plan['Shared Hit Blocks'] ?? 0) + (plan?.Plan['Shared Read Blocks'] ?? 0);
    expect(pages).toBeLessThan(30);
  });

  it('refuses a bad national id, a mismatch with nhn-patient-nin, and a citizen', async () => {
    const token = await machineToken(t);
    const post = (payload: string, headers: Record<string, string> = {}) =>
      t.app.server.inject({ method: 'POST', url: '/status', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers }, payload });
    const bad = await post(JSON.stringify({ nin: '12345678901' }));
    expect(bad.statusCode).toBe(400);
    expect(bad.body).not.toContain('12345678901');
    expect((await post('[1,2]')).statusCode).toBe(400);
    const gp = await asClinician(t, 'fastlege', 'POST', 'Patient/$plan-status', { patient: 'bjorn', body: { resourceType: 'Parameters', parameter: [{ name: 'nin', valueString: nin() }] } });
    expect(gp.status).toBe(403);
    const citizen = await asCitizen(t, ANNE, 'POST', 'Patient/$plan-status', { body: { resourceType: 'Parameters', parameter: [{ name: 'nin', valueString: nin() }] } });
    expect(citizen.status).toBe(403);
  });
});
