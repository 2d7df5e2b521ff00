/**
 * Every statement the server sends while it does a day's work — a GP's EHR reading and changing
 * the plan and listing the patient's goals and conditions, the patient's check-in, plans and
 * access log, the status check, a subscription and its delivery worker — is answered from indexes,
 * and by the ones that find the patient's rows. The statements are recorded as the server sends
 * them (with the access rules of a real clinician's and citizen's token), on a database with the
 * demo data and 500 copies of its patients (the benchmark's bulk path) and the planner's
 * statistics for them. Each is given the generic plan the server runs it with:
 * - with sequential scans disabled, a Seq Scan that remains on a table that grows with the
 *   population means no index can serve the statement;
 * - with the planner's own choice, a Seq Scan of a large table, or an index scan of one whose
 *   condition names no value (only the type or the search parameter: all Goals, all of a
 *   parameter's rows), means the statement reads rows of the whole population. That is how a
 *   citizen's `GET CarePlan` once walked every resource (1.5 s at 30,000 patients,
 *   src/store/compartments.ts) and a GP's `CarePlan?status=active` every active plan (search/sql.ts).
 * (test/search/index-usage.test.ts checks every search parameter of every type on an empty database.)
 */
import type { Bundle, CarePlan, Extension, Goal, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { OID } from '../../src/no/identifiers.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION } from '../../src/plan/conventions.js';
import { MEASUREMENT } from '../../src/plan/templates/build.js';
import { SUBSCRIPTION_EXTENSION } from '../../src/plan/subscriptions/index.js';
import type { Database, Queryable, Transaction } from '../../src/store/db.js';
import { startTestServer, type TestServer } from '../support/app.js';
import { genericPlan, largeRelations, populationReads } from '../support/explain.js';
import { populate } from '../support/population.js';
import { asCitizen, asClinician, clinicianToken, machineToken, nhnHeaders } from '../support/security.js';

const recorded = new Map<string, readonly unknown[]>();
let t: TestServer;
let patient: string;
const anne = citizenByKey('anne').pid;

function record(query: Queryable['query']): Queryable['query'] {
  return (text, params) => {
    if (!recorded.has(text)) recorded.set(text, params ?? []);
    return query(text, params);
  };
}

/** The database, with every statement (in and outside transactions) recorded once by its text. */
function recording(db: Database): Database {
  return {
    ...db,
    query: record(db.query.bind(db)),
    transaction: (fn) => db.transaction((tx) => fn({ ...tx, query: record(tx.query) } as Transaction)),
  };
}

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens', wrapDb: recording });
  await populate(t, 500);
  const found = await t.system<Bundle<Patient>>('GET', `Patient?identifier=${OID.fnr}|${anne}`);
  patient = found.body.entry?.[0]?.resource?.id as string;
  expect(patient).toBeDefined();
  const subject = { reference: `Patient/${patient}` };
  const clinician = (method: string, path: string, body?: unknown, extra: Record<string, string> = {}) =>
    asClinician(t, 'fastlege', method, path, { patient: 'anne', ...(body !== undefined ? { body } : {}), ...extra });

  const goal = await clinician('POST', 'Goal', { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Gå til butikken' }, subject });
  expect(goal.status, goal.text).toBe(201);
  const token = await clinicianToken(t, 'fastlege');
  const headers = { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: anne }) };
  const changed = await t.request('PUT', `Goal/${goal.body.id}`, { body: { ...goal.body, description: { text: 'Gå til butikken to ganger i uka' } }, headers: { ...headers, 'if-match': 'W/"1"' } });
  expect(changed.status, changed.text).toBe(200);
  const tx = await clinician('POST', '', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:6f1c2a52-4c1e-4a43-9d52-0d2f8f7a1c01', resource: { resourceType: 'Condition', subject, code: { text: 'KOLS' } }, request: { method: 'POST', url: 'Condition' } },
      {
        resource: { resourceType: 'Goal', lifecycleStatus: 'proposed', description: { text: 'Sove bedre' }, subject, addresses: [{ reference: 'urn:uuid:6f1c2a52-4c1e-4a43-9d52-0d2f8f7a1c01' }] },
        request: { method: 'POST', url: 'Goal' },
      },
    ],
  });
  expect(tx.status, tx.text).toBe(200);

  const plans = await clinician('GET', `CarePlan?subject=Patient/${patient}&status=active`);
  const plan = (plans.body as Bundle<CarePlan>).entry?.[0]?.resource as CarePlan;
  // A change-over threshold (weight up more than 2 kg in 3 days), so that the check-in below looks up earlier ones.
  const yellow = {
    url: EXTENSION.zone,
    extension: [
      { url: 'level', valueCode: 'yellow' },
      { url: 'action', valueString: 'Ta en ekstra vanndrivende tablett' },
      {
        url: 'threshold',
        extension: [
          { url: 'measurement', valueCodeableConcept: MEASUREMENT.weight },
          { url: 'comparator', valueCode: '>' },
          { url: 'value', valueQuantity: { value: 2, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } },
          { url: 'changeOver', valueDuration: { value: 3, unit: 'døgn', system: 'http://unitsofmeasure.org', code: 'd' } },
        ],
      },
    ],
  };
  // In place of the demo plan's own yellow zone: a plan has at most one zone of each level.
  const isYellow = (e: Extension) => e.url === EXTENSION.zone && !!e.extension?.some((x) => x.url === 'level' && x.valueCode === 'yellow');
  const extension = [...(plan.extension ?? []).filter((e) => !isYellow(e)), yellow];
  const updated = await clinician('PUT', `CarePlan/${plan.id}`, { ...plan, extension, goal: [...(plan.goal ?? []), { reference: `Goal/${goal.body.id}` }] });
  expect(updated.status, updated.text).toBe(200);
  for (const path of [
    `CarePlan/${plan.id}`,
    `CarePlan/${plan.id}/_history/1`,
    `CarePlan/${plan.id}/_history`,
    `CarePlan/${plan.id}/$versions`,
    `CarePlan/${plan.id}/$diff?from=1&to=2`,
    `Goal?subject=Patient/${patient}&_sort=-_lastUpdated&_count=5`,
    // Scoped by the patient in nhn-patient-nin alone, and by a status every patient's plan shares.
    'Goal',
    'Condition',
    'CarePlan?status=active',
    'Observation?_sort=-date&_count=10',
    'Observation?date=ge2020-01-01',
    `Patient/${patient}/Goal`,
  ]) {
    const res = await clinician('GET', path);
    expect(res.status, `${path}: ${res.text}`).toBe(200);
  }
  const bundle = await t.request('POST', 'CarePlan/_search', {
    raw: new URLSearchParams({ 'subject:Patient.identifier': `${OID.fnr}|${anne}`, status: 'active', _include: '*', _revinclude: 'Observation:based-on' }).toString(),
    headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
  });
  expect(bundle.status, bundle.text).toBe(200);
  expect((await clinician('POST', `CarePlan/${plan.id}/$publish`, { resourceType: 'Parameters' })).status).toBe(200);

  const checkIn = await asCitizen(t, 'anne', 'POST', 'Observation', {
    body: {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ ...CHECK_IN_CODE }] },
      subject,
      performer: [subject],
      basedOn: [{ reference: `CarePlan/${plan.id}` }],
      effectiveDateTime: new Date().toISOString(),
      valueCodeableConcept: { coding: [{ system: CODE_SYSTEM.zone, code: 'yellow' }] },
      component: [{ code: MEASUREMENT.weight, valueQuantity: { value: 81, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } }],
    },
  });
  expect(checkIn.status, checkIn.text).toBe(201);
  for (const path of ['CarePlan', 'Goal', 'Observation', 'Patient']) expect((await asCitizen(t, 'anne', 'GET', path)).status).toBe(200);
  expect((await asCitizen(t, 'anne', 'GET', 'AuditEvent')).status).toBe(200);

  const status = await t.app.server.inject({
    method: 'POST',
    url: '/status',
    headers: { authorization: `Bearer ${await machineToken(t)}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ nin: anne }),
  });
  expect(status.statusCode, status.body).toBe(200);

  const subscription = await clinician('POST', 'Subscription', {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Varsle journalsystemet',
    criteria: `Goal?patient=Patient/${patient}`,
    channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/samplan-hook', payload: 'application/fhir+json' },
    extension: [{ url: SUBSCRIPTION_EXTENSION.secret, valueString: 'statement-plans-secret-0123456789' }],
  });
  expect(subscription.status, subscription.text).toBe(201);
  const again = await clinician('PUT', `Goal/${goal.body.id}`, { ...(goal.body as Goal), lifecycleStatus: 'completed' } as Goal);
  expect(again.status, again.text).toBe(200);
  expect((await clinician('DELETE', `Goal/${goal.body.id}`)).status).toBe(204);
  // Let the delivery worker claim and try the notification.
  await new Promise((r) => setTimeout(r, 1500));
}, 300_000);
afterAll(async () => t?.close());

/** Tables that grow with the population (and the audit trail and the outbox with use). */
const GROWING = /Seq Scan on (resources|resource_versions|idx_\w+|audit_events\w*|audit_agents|subscription_outbox|subscriptions|dpop_proofs|export_\w+)\b/;
/** Statements that plan nothing: transaction control, locks, notifications, settings. */
const NOT_PLANNED = /^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|SET|LISTEN|UNLISTEN|SELECT pg_notify|SELECT pg_advisory|SELECT 1\b|select 1\b)/i;

describe('every statement of a day of plan work', () => {
  it('is answered from indexes', async () => {
    const statements = [...recorded].filter(([text]) => !NOT_PLANNED.test(text));
    expect(statements.length).toBeGreaterThan(40);
    // Among them the check-in's look for the earliest weight in the threshold's period.
    expect(statements.some(([text, params]) => /^\s*SELECT/i.test(text) && params.includes('29463-7'))).toBe(true);
    const failures: string[] = [];
    for (const [text, params] of statements) {
      const plan = await genericPlan(t.database.db, text, params);
      if (GROWING.test(plan)) failures.push(`${text.replace(/\s+/g, ' ').slice(0, 300)}\n${plan}`);
    }
    expect(failures.join('\n\n')).toBe('');
  });

  it('finds the rows it needs without reading the population\'s', async () => {
    const large = await largeRelations(t.database.db);
    expect([...large.tables]).toEqual(expect.arrayContaining(['resources', 'resource_versions', 'idx_token', 'idx_reference']));
    const failures: string[] = [];
    let analysed = 0;
    for (const [text, params] of [...recorded].filter(([text]) => !NOT_PLANNED.test(text) && !ONCE_AT_START.includes(text))) {
      // Run with the values it was sent with, where it still can be (a write may no longer apply: a version moved on).
      const plan = await genericPlan(t.database.db, text, params, { free: true, analyze: true }).then(
        (p) => {
          analysed++;
          return p;
        },
        () => genericPlan(t.database.db, text, params, { free: true }),
      );
      const reads = populationReads(plan, large);
      if (reads.length) failures.push(`${text.replace(/\s+/g, ' ').slice(0, 300)}\n  reads: ${reads.join('; ')}\n${plan}`);
    }
    expect(analysed).toBeGreaterThan(40);
    expect(failures.join('\n\n')).toBe('');
  });
});

/**
 * Statements the seed sends once, at start, as the server's own system context: whether the
 * database is empty (they read until the first row, which the plan does not show), and how many
 * flags its check-ins raised.
 */
const ONCE_AT_START = [
  `SELECT NOT EXISTS (SELECT 1 FROM resources) AS empty`,
  `SELECT EXISTS (SELECT 1 FROM resources WHERE type = 'Patient') AS found`,
  `SELECT count(*)::int AS total FROM resources AS r WHERE (NOT "r"."deleted" AND "r"."type" = $1)`,
];
