/**
 * The plan's workflow with real tokens: the patient sees what was published to them, never a
 * draft; approval by a physician is per version and separate from the status; every change by a
 * person says who (tags and Provenance) and why (X-Provenance); clinicians read the version
 * history and a plain-words difference between versions.
 */
import type { Bundle, CarePlan, Goal, Parameters, ParametersParameter, Provenance, Task } from '@medplum/fhirtypes';
import { hasErrors, validateResource } from '../../src/fhir/validation/validator.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { ERROR_CODE_SYSTEM } from '../../src/fhir/outcomes.js';
import { OID } from '../../src/no/identifiers.js';
import { EXTENSION } from '../../src/plan/conventions.js';
import { LAST_UPDATED_BY } from '../../src/plan/provenance.js';
import { startTestServer, type TestResponse, type TestServer } from '../support/app.js';
import { asCitizen, asClinician, clinicianToken, nhnHeaders, seedPatient } from '../support/security.js';
import { auditEvents } from '../support/audit.js';

let t: TestServer;
const ANNE = 'anne';
let patient: string;
let planId: string;

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  patient = await seedPatient(t, ANNE);
  const plans = await t.system<Bundle<CarePlan>>('GET', `CarePlan?subject=Patient/${patient}`);
  planId = plans.body.entry?.[0]?.resource?.id as string;
});
afterAll(async () => t?.close());

const gp = (method: string, path: string, body?: unknown) => asClinician(t, 'fastlege', method, path, { patient: ANNE, ...(body !== undefined ? { body } : {}) });
const nurse = (method: string, path: string, body?: unknown) => asClinician(t, 'hjemmesykepleier', method, path, { patient: ANNE, role: 'SP', ...(body !== undefined ? { body } : {}) });
const anne = (method: string, path: string, body?: unknown) => asCitizen(t, ANNE, method, path, body !== undefined ? { body } : {});
const code = (res: TestResponse) => res.body.issue?.[0]?.details?.coding?.find((c: { system: string }) => c.system === ERROR_CODE_SYSTEM)?.code;
const param = (p: Parameters | ParametersParameter, name: string): ParametersParameter | undefined =>
  ((p as Parameters).parameter ?? (p as ParametersParameter).part)?.find((x) => x.name === name);

async function changePlan(change: (p: CarePlan) => CarePlan, headers: Record<string, string> = {}): Promise<CarePlan> {
  const current = (await gp('GET', `CarePlan/${planId}`)).body as CarePlan;
  const token = await clinicianToken(t, 'fastlege');
  const res = await t.request('PUT', `CarePlan/${planId}`, {
    body: change(current),
    headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: citizenByKey(ANNE).pid }), 'if-match': `W/"${current.meta?.versionId}"`, ...headers },
  });
  expect(res.status, res.text).toBe(200);
  return res.body as CarePlan;
}

describe('publication', () => {
  it('shows the patient the published version while the next one is drafted, and the new one once published', async () => {
    const before = (await anne('GET', `CarePlan/${planId}`)).body as CarePlan;
    const changed = await changePlan((p) => ({ ...p, description: 'Ny beskrivelse fra fastlegen' }));
    expect(Number(changed.meta?.versionId)).toBeGreaterThan(Number(before.meta?.versionId));
    // The patient still sees the published version, by read and by search, and nothing tells
    // them a newer draft exists.
    const read = await anne('GET', `CarePlan/${planId}`);
    expect(read.body.meta.versionId).toBe(before.meta?.versionId);
    expect(read.body.description).toBeUndefined();
    expect(read.headers.etag).toBe(`W/"${before.meta?.versionId}"`);
    expect(new Date(String(read.headers['last-modified'])).getTime()).toBe(Math.floor(Date.parse(before.meta?.lastUpdated as string) / 1000) * 1000);
    const searched = await anne('GET', 'CarePlan');
    expect(searched.body.entry?.[0]?.resource?.description).toBeUndefined();
    // The clinician sees the draft of the next version.
    expect((await gp('GET', `CarePlan/${planId}`)).body.description).toBe('Ny beskrivelse fra fastlegen');
    const published = await gp('POST', `CarePlan/${planId}/$publish`, { resourceType: 'Parameters' });
    expect(published.status, published.text).toBe(200);
    expect(param(published.body as Parameters, 'plan')?.valueReference?.reference).toBe(`CarePlan/${planId}/_history/${changed.meta?.versionId}`);
    const after = await anne('GET', `CarePlan/${planId}`);
    expect(after.body.description).toBe('Ny beskrivelse fra fastlegen');
    // The audit trail names the operation that ran.
    const audit = (await auditEvents(t.app.db, "WHERE e.content LIKE '%CarePlan-publish%'")).at(-1);
    expect(audit?.subtype).toEqual([
      { system: 'http://hl7.org/fhir/restful-interaction', code: 'operation' },
      { system: 'urn:ietf:rfc:3986', code: 'https://samplan.no/fhir/OperationDefinition/CarePlan-publish', display: '$publish' },
    ]);
    // And the patient's access log says it in words.
    const log = await anne('GET', 'AuditEvent?_count=200');
    const texts = ((log.body as Bundle).entry ?? []).map((e) => (e.resource as { text?: { div?: string } }).text?.div ?? '');
    expect(texts.join('\n')).toMatch(/Kari Lindqvist \(lege, [^)]+\) gjorde en ny versjon av planen synlig for deg/);
  });

  it('publishes the plan\'s parts with it: a new goal reaches the patient when the plan is published', async () => {
    const goal = await gp('POST', 'Goal', { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Gå til butikken uten pause' }, subject: { reference: `Patient/${patient}` } });
    expect(goal.status, goal.text).toBe(201);
    await changePlan((p) => ({ ...p, goal: [...(p.goal ?? []), { reference: `Goal/${goal.body.id}` }] }));
    expect((await anne('GET', `Goal/${goal.body.id}`)).status).toBe(404);
    expect((await gp('POST', `CarePlan/${planId}/$publish`, { resourceType: 'Parameters' })).status).toBe(200);
    const seen = await anne('GET', `Goal/${goal.body.id}`);
    expect(seen.status).toBe(200);
    expect(seen.body.description.text).toBe('Gå til butikken uten pause');
  });

  it('never shows a draft plan to the patient, and refuses to publish one', async () => {
    const draft = await gp('POST', 'CarePlan', { resourceType: 'CarePlan', status: 'draft', intent: 'plan', title: 'Utkast til ny plan', subject: { reference: `Patient/${patient}` } });
    expect(draft.status, draft.text).toBe(201);
    expect((await anne('GET', `CarePlan/${draft.body.id}`)).status).toBe(404);
    expect(((await anne('GET', 'CarePlan')).body as Bundle).entry?.map((e) => e.resource?.id)).not.toContain(draft.body.id);
    const refused = await gp('POST', `CarePlan/${draft.body.id}/$publish`, { resourceType: 'Parameters' });
    expect(refused.status).toBe(409);
    expect(code(refused)).toBe('INVALID_TRANSITION');
  });

  it('shows the patient what they write themselves at once, and lets the clinicians see it too', async () => {
    const own: Goal = { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Gå tur med hunden hver dag' }, subject: { reference: `Patient/${patient}` }, expressedBy: { reference: `Patient/${patient}` } };
    const made = await anne('POST', 'Goal', own);
    expect(made.status, made.text).toBe(201);
    expect((await anne('GET', `Goal/${made.body.id}`)).status).toBe(200);
    expect((await gp('GET', `Goal/${made.body.id}`)).body.expressedBy.reference).toBe(`Patient/${patient}`);
  });

  it('lets only health personnel publish', async () => {
    const res = await anne('POST', `CarePlan/${planId}/$publish`, { resourceType: 'Parameters' });
    expect(res.status).toBe(403);
  });
});

describe('approval', () => {
  it('is requested by anyone on the team, given or rejected only by a physician, per version', async () => {
    const requested = await nurse('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Parameters', parameter: [{ name: 'action', valueCode: 'request' }] });
    expect(requested.status, requested.text).toBe(201);
    const taskPath = String(requested.headers.location).replace(/^.*\/fhir\//, '').replace(/\/_history\/.*$/, '');
    const task = (await gp('GET', taskPath)).body as Task;
    expect(task.status).toBe('requested');
    const version = (await gp('GET', `CarePlan/${planId}`)).body.meta.versionId;
    expect(task.focus?.reference).toBe(`CarePlan/${planId}/_history/${version}`);
    expect(task.requester?.identifier).toEqual({ system: OID.hpr, value: '9144902' });

    const byNurse = await nurse('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Parameters', parameter: [{ name: 'action', valueCode: 'give' }] });
    expect(byNurse.status).toBe(403);
    expect(code(byNurse)).toBe('ROLE_NOT_ALLOWED');

    const given = await gp('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Parameters', parameter: [{ name: 'action', valueCode: 'give' }, { name: 'comment', valueString: 'Gjennomgått med pasienten' }] });
    expect(given.status, given.text).toBe(200);
    const approved = (await gp('GET', taskPath)).body as Task;
    expect(approved.status).toBe('completed');
    expect(approved.owner?.identifier?.value).toBe('9144901');
    expect(approved.note?.[0]?.text).toBe('Gjennomgått med pasienten');

    // Active is not approved: the next version has no approval until someone gives it.
    await changePlan((p) => ({ ...p, note: [{ text: 'Justert etter kontroll' }] }));
    const versions = (await gp('GET', `CarePlan/${planId}/$versions`)).body as Parameters;
    const [latest, previous] = versions.parameter ?? [];
    expect(param(latest!, 'approval')).toBeUndefined();
    expect(param(previous!, 'approval')?.valueCode).toBe('given');
  });

  it('explains bad requests', async () => {
    const none = await gp('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Parameters' });
    expect(none.status).toBe(400);
    expect(none.body.issue[0].details.text).toMatch(/request, give or reject/);
    const noVersion = await gp('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Parameters', parameter: [{ name: 'action', valueCode: 'request' }, { name: 'version', valueInteger: 999 }] });
    expect(noVersion.status).toBe(400);
    const notParameters = await gp('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Basic', code: { text: 'x' } });
    expect(notParameters.status).toBe(400);
    expect((await anne('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Parameters', parameter: [{ name: 'action', valueCode: 'request' }] })).status).toBe(403);
  });
});

describe('provenance', () => {
  it('tags each version with who last changed it and records a Provenance with the reason given', async () => {
    const reason = { resourceType: 'Provenance', reason: [{ text: 'Ny medisin etter sykehusopphold' }] };
    const changed = await changePlan((p) => ({ ...p, description: 'Oppdatert etter utskriving' }), { 'x-provenance': JSON.stringify(reason) });
    const tags = changed.meta?.tag ?? [];
    expect(tags).toEqual(
      expect.arrayContaining([
        { system: LAST_UPDATED_BY.userType, code: 'HEALTH_CARE_PROFESSIONAL', display: 'Helsepersonell' },
        { system: LAST_UPDATED_BY.hpr, code: '9144901', display: 'Kari Lindqvist' },
        { system: LAST_UPDATED_BY.role, code: 'LE' },
      ]),
    );
    expect(tags.some((tag) => tag.system === LAST_UPDATED_BY.organization && /^\d{9}$/.test(tag.code ?? ''))).toBe(true);
    const provenances = await t.system<Bundle<Provenance>>('GET', `Provenance?target=CarePlan/${planId}/_history/${changed.meta?.versionId}`);
    const p = provenances.body.entry?.[0]?.resource;
    expect(p?.reason?.[0]?.text).toBe('Ny medisin etter sykehusopphold');
    expect(p?.agent[0]?.who?.identifier).toEqual({ system: OID.hpr, value: '9144901' });
    expect(p?.activity?.coding?.[0]?.code).toBe('UPDATE');
    // The reason shows in the version history.
    const versions = (await gp('GET', `CarePlan/${planId}/$versions`)).body as Parameters;
    const latest = versions.parameter?.[0];
    expect(param(latest!, 'reason')?.valueString).toBe('Ny medisin etter sykehusopphold');
    expect(param(latest!, 'author')?.valueString).toBe('Kari Lindqvist (HPR 9144901)');
  });

  it('stores a change only with its Provenance: when the record cannot be written, the change is not made', async () => {
    const db = t.database.db;
    const before = (await gp('GET', `CarePlan/${planId}`)).body as CarePlan;
    const provenances = async () => (await t.system<Bundle>('GET', 'Provenance?_summary=count')).body.total;
    const recorded = await provenances();
    const goals = async () => (await gp('GET', `Goal?subject=Patient/${patient}&_summary=count`)).body.total;
    const goalsBefore = await goals();
    await db.query(`CREATE FUNCTION fail_provenance() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$`);
    await db.query(`CREATE TRIGGER provenance_broken BEFORE INSERT ON resources FOR EACH ROW WHEN (NEW.type = 'Provenance') EXECUTE FUNCTION fail_provenance()`);
    try {
      const res = await gp('PUT', `CarePlan/${planId}`, { ...before, description: 'Skal ikke lagres' });
      expect(res.status).toBe(500);
      expect(res.body.resourceType).toBe('OperationOutcome');
      const goal = await gp('POST', 'Goal', { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Skal ikke lagres' }, subject: { reference: `Patient/${patient}` } });
      expect(goal.status).toBe(500);
    } finally {
      await db.query('DROP TRIGGER provenance_broken ON resources');
      await db.query('DROP FUNCTION fail_provenance()');
    }
    const after = (await gp('GET', `CarePlan/${planId}`)).body as CarePlan;
    expect(after.meta?.versionId).toBe(before.meta?.versionId);
    expect(after.description).toBe(before.description);
    expect(await goals()).toBe(goalsBefore);
    expect(await provenances()).toBe(recorded);
  });

  it('tags what the patient and their representative write', async () => {
    const own = { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Klare trappene hjemme' }, subject: { reference: `Patient/${patient}` }, expressedBy: { reference: `Patient/${patient}` } };
    const self = await anne('POST', 'Goal', own);
    expect(self.body.meta.tag).toEqual(expect.arrayContaining([expect.objectContaining({ system: LAST_UPDATED_BY.userType, code: 'CITIZEN' })]));
    const byDaughter = await asCitizen(t, 'hanne', 'POST', 'Goal', { body: own, actingFor: ANNE });
    expect(byDaughter.status, byDaughter.text).toBe(201);
    expect(byDaughter.body.meta.tag).toEqual(expect.arrayContaining([expect.objectContaining({ system: LAST_UPDATED_BY.userType, code: 'REPRESENTATIVE' })]));
  });

  it('ignores tags and refuses a malformed X-Provenance', async () => {
    const current = (await gp('GET', `CarePlan/${planId}`)).body as CarePlan;
    // The same content with no tags is no change: tags say who wrote, not what.
    const { meta: _meta, ...same } = current;
    const unchanged = await gp('PUT', `CarePlan/${planId}`, same);
    expect(unchanged.status).toBe(200);
    expect(unchanged.body.meta.versionId).toBe(current.meta?.versionId);
    const token = await clinicianToken(t, 'fastlege');
    const bad = await t.request('PUT', `CarePlan/${planId}`, {
      body: { ...same, description: 'x' },
      headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: citizenByKey(ANNE).pid }), 'x-provenance': 'not json' },
    });
    expect(bad.status).toBe(400);
    expect(code(bad)).toBe('INVALID_HEADER');
    // A reason that is not a list of objects (found by the fuzzer: a 500); text no R4 string or
    // Samplan text may hold (it goes into the Provenance the server writes unvalidated).
    for (const reason of ['[null]', '"x"', '[{"coding":null},{"coding":[null]},null]', '[{"text":"<script>alert(1)</script>"}]', '[{"text":"ok <img src=x onerror=alert(1)>"}]', '[{"text":"bell \\u0007"}]', '[{"coding":[{"display":"nul \\u0000"}]}]']) {
      const odd = await t.request('PUT', `CarePlan/${planId}`, {
        body: { ...same, description: 'x' },
        headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: citizenByKey(ANNE).pid }), 'x-provenance': `{"resourceType":"Provenance","reason":${reason}}` },
      });
      expect(odd.status, reason).toBe(400);
      expect(code(odd)).toBe('INVALID_HEADER');
    }
  });

  it('writes only valid Provenance (it is built from checked values, not validated per write), whoever writes and whatever reason they give', async () => {
    const reason = { resourceType: 'Provenance', reason: [{ text: 'SpO2 < 92 % og "akutt" forverring;\nny plan\tfra 1. mai' }, { coding: [{ display: 'Ønske fra pasient' }] }] };
    const changed = await changePlan((p) => ({ ...p, description: 'Endret med en grunn som har tegn i seg' }), { 'x-provenance': JSON.stringify(reason) });
    const withReason = await t.system<Bundle<Provenance>>('GET', `Provenance?target=CarePlan/${planId}/_history/${changed.meta?.versionId}`);
    expect(withReason.body.entry?.[0]?.resource?.reason?.[0]?.text).toBe('SpO2 < 92 % og "akutt" forverring;\nny plan\tfra 1. mai; Ønske fra pasient');
    // Every Provenance written so far in this file: clinicians with and without a reason, the patient, a representative.
    const all = await t.system<Bundle<Provenance>>('GET', 'Provenance?_count=1000');
    const provenances = (all.body.entry ?? []).map((e) => e.resource as Provenance);
    expect(provenances.length).toBeGreaterThan(5);
    expect(new Set(provenances.map((p) => (p.agent[0]?.who?.identifier?.system ?? 'none')))).toEqual(new Set([OID.hpr, OID.fnr]));
    for (const p of provenances) {
      const issues = validateResource(p);
      expect(hasErrors(issues), JSON.stringify({ p, issues })).toBe(false);
    }
  });

  it('refuses a malformed meta or coding as invalid (400), though the hooks see the body before the validator', async () => {
    // Found by the fuzzer: the tagging and profile hooks failed on these with a 500.
    const goal = { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'x' }, subject: { reference: `Patient/${patient}` } };
    const checkIn = { resourceType: 'Observation', status: 'final', code: { coding: [null] }, subject: { reference: `Patient/${patient}` } };
    for (const body of [{ ...goal, meta: { tag: 'x' } }, { ...goal, meta: { tag: [null] } }, { ...goal, meta: 'x' }, { ...goal, meta: { profile: { 0: 'x' } } }, { ...goal, meta: { profile: [null] } }, checkIn]) {
      const res = await gp('POST', body.resourceType, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(code(res)).toBe('VALIDATION_ERROR');
    }
  });
});

describe('version history', () => {
  it('lists versions newest first and says in words what changed between two', async () => {
    const before = (await gp('GET', `CarePlan/${planId}`)).body as CarePlan;
    const after = await changePlan((p) => ({
      ...p,
      title: 'Behandlingsplan KOLS – revidert',
      extension: [
        ...(p.extension ?? []),
        { url: EXTENSION.zone, extension: [{ url: 'level', valueCode: 'yellow' }, { url: 'criteria', valueString: 'Mer tung pust enn vanlig' }, { url: 'action', valueString: 'Start beredskapspakken' }] },
      ],
    }));
    const versions = (await gp('GET', `CarePlan/${planId}/$versions`)).body as Parameters;
    const numbers = versions.parameter?.map((v) => param(v, 'version')?.valueInteger);
    expect(numbers?.[0]).toBe(Number(after.meta?.versionId));
    expect([...(numbers ?? [])].sort((a, b) => (b ?? 0) - (a ?? 0))).toEqual(numbers);
    const diff = await gp('GET', `CarePlan/${planId}/$diff?from=${before.meta?.versionId}&to=${after.meta?.versionId}`);
    expect(diff.status, diff.text).toBe(200);
    const summary = param(diff.body as Parameters, 'summary')?.valueString;
    expect(summary).toContain('Planen endret: title (Plan for Anne → Behandlingsplan KOLS – revidert)');
    expect(summary).toContain('Sone lagt til: Gul sone');
  });

  it('is for health personnel, and explains bad version numbers', async () => {
    expect((await anne('GET', `CarePlan/${planId}/$versions`)).status).toBe(403);
    const bad = await gp('GET', `CarePlan/${planId}/$diff?from=1&to=abc`);
    expect(bad.status).toBe(400);
    expect(bad.body.issue[0].details.text).toMatch(/to as a version number/);
    expect((await gp('GET', `CarePlan/${planId}/$diff?from=1&to=9999`)).status).toBe(404);
  });
});
