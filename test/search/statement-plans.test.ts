/**
 * Every statement the server sends while it does a day's work — a GP's EHR reading and changing
 * the plan, the patient's check-in and access log, the status check, a subscription and its
 * delivery worker — can be answered from indexes. The statements are recorded as the server
 * sends them (with the access rules of a real clinician's and citizen's token), then each is
 * given the generic plan the server runs it with, with sequential scans disabled: a Seq Scan that
 * remains on a table that grows with the population means no index can serve it, and at national
 * scale it would read the whole table.
 * (test/search/index-usage.test.ts does the same for every search parameter of every type.)
 */
import type { Bundle, CarePlan, Goal } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { OID } from '../../src/no/identifiers.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION } from '../../src/plan/conventions.js';
import { MEASUREMENT } from '../../src/plan/templates/build.js';
import { SUBSCRIPTION_EXTENSION } from '../../src/plan/subscriptions/index.js';
import type { Database, Queryable, Transaction } from '../../src/store/db.js';
import { startTestServer, type TestServer } from '../support/app.js';
import { genericPlan } from '../support/explain.js';
import { asCitizen, asClinician, clinicianToken, machineToken, nhnHeaders, seedPatient } from '../support/security.js';

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
  patient = await seedPatient(t, 'anne');
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

  const plans = await clinician('GET', `CarePlan?subject=Patient/${patient}`);
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
  const updated = await clinician('PUT', `CarePlan/${plan.id}`, { ...plan, extension: [...(plan.extension ?? []), yellow], goal: [{ reference: `Goal/${goal.body.id}` }] });
  expect(updated.status, updated.text).toBe(200);
  for (const path of [`CarePlan/${plan.id}`, `CarePlan/${plan.id}/_history/1`, `CarePlan/${plan.id}/_history`, `CarePlan/${plan.id}/$versions`, `CarePlan/${plan.id}/$diff?from=1&to=2`, `Goal?subject=Patient/${patient}&_sort=-_lastUpdated&_count=5`]) {
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
  expect((await asCitizen(t, 'anne', 'GET', 'CarePlan')).status).toBe(200);
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
});
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
});
