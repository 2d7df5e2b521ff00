/**
 * The plan's rules, however a write arrives: Samplan's profiles are applied and enforced (a plan
 * has a title, zones are complete, the red zone directs to emergency help), Norwegian identifiers
 * are valid, a patient has one active plan (also under concurrent creation), the plan's status
 * moves forward only, business identifiers are unique, and references resolve — with entries of
 * one transaction free to refer to each other in any order.
 */
import type { Bundle, CarePlan, Extension, OperationOutcome } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXTENSION, PROFILE } from '../../src/plan/conventions.js';
import { ERROR_CODE_SYSTEM } from '../../src/fhir/outcomes.js';
import { OID, syntheticNin } from '../../src/no/identifiers.js';
import { startTestServer, type TestResponse, type TestServer } from '../support/app.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => t?.close());

let births = 0;
async function newPatient(): Promise<string> {
  const nin = syntheticNin(`1950-01-${String(1 + (births++ % 28)).padStart(2, '0')}`, births);
  const res = await t.request('POST', 'Patient', { body: { resourceType: 'Patient', identifier: [{ system: OID.fnr, value: nin }] } });
  expect(res.status, res.text).toBe(201);
  return res.body.id;
}

const plan = (patient: string, extra: Partial<CarePlan> = {}): CarePlan => ({
  resourceType: 'CarePlan',
  status: 'active',
  intent: 'plan',
  title: 'Behandlingsplan KOLS',
  subject: { reference: `Patient/${patient}` },
  ...extra,
});

function zone(level: 'green' | 'yellow' | 'red', parts: Extension[] = []): Extension {
  return {
    url: EXTENSION.zone,
    extension: [
      { url: 'level', valueCode: level },
      { url: 'criteria', valueString: `Kriterier for ${level}` },
      { url: 'action', valueString: `Gjør dette i ${level}` },
      ...parts,
    ],
  };
}
const emergency: Extension = { url: 'emergency', valueBoolean: true };

function codes(res: TestResponse): string[] {
  return ((res.body as OperationOutcome).issue ?? []).flatMap((i) => (i.details?.coding ?? []).filter((c) => c.system === ERROR_CODE_SYSTEM).map((c) => c.code as string));
}
const texts = (res: TestResponse) => ((res.body as OperationOutcome).issue ?? []).map((i) => `${i.details?.text ?? i.diagnostics ?? ''} @ ${(i.expression ?? []).join(',')}`).join('\n');

describe('profiles', () => {
  it('puts Samplan\'s profile on plan resources and holds them to it', async () => {
    const patient = await newPatient();
    const made = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft' }) });
    expect(made.status, made.text).toBe(201);
    expect(made.body.meta.profile).toContain(PROFILE.carePlan);
    const untitled = await t.request('POST', 'CarePlan', { body: { ...plan(patient, { status: 'draft' }), title: undefined } });
    expect(untitled.status).toBe(400);
    expect(codes(untitled)).toContain('VALIDATION_ERROR');
    expect(texts(untitled)).toContain('CarePlan.title');
  });

  it('refuses a red zone that does not direct to emergency help, and accepts it when it does', async () => {
    const patient = await newPatient();
    const without = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', extension: [zone('green'), zone('yellow'), zone('red')] }) });
    expect(without.status).toBe(400);
    expect(texts(without)).toMatch(/113|emergency/i);
    const withIt = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', extension: [zone('green'), zone('yellow'), zone('red', [emergency])] }) });
    expect(withIt.status, withIt.text).toBe(201);
  });

  it('refuses two zones of one level, a zone without an action, and a zone without criteria', async () => {
    const patient = await newPatient();
    const twice = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', extension: [zone('yellow'), zone('yellow')] }) });
    expect(twice.status).toBe(400);
    expect(texts(twice)).toMatch(/one zone of each level/);
    const noAction: Extension = { url: EXTENSION.zone, extension: [{ url: 'level', valueCode: 'green' }, { url: 'criteria', valueString: 'Som vanlig' }] };
    const a = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', extension: [noAction] }) });
    expect(a.status).toBe(400);
    expect(texts(a)).toMatch(/what to do/);
    const noCriteria: Extension = { url: EXTENSION.zone, extension: [{ url: 'level', valueCode: 'green' }, { url: 'action', valueString: 'Fortsett' }] };
    const c = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', extension: [noCriteria] }) });
    expect(c.status).toBe(400);
    expect(texts(c)).toMatch(/when it applies/);
  });

  it('checks each zone\'s level, thresholds and contacts, part by part', async () => {
    const patient = await newPatient();
    const spo2 = { coding: [{ system: 'http://loinc.org', code: '59408-5', display: 'SpO2' }] };
    const cases: Array<[string, Extension, RegExp]> = [
      ['an unknown level', { url: EXTENSION.zone, extension: [{ url: 'level', valueCode: 'purple' }, { url: 'criteria', valueString: 'x' }, { url: 'action', valueString: 'y' }] }, /green, yellow or red/],
      ['a threshold without a comparator', zone('yellow', [{ url: 'threshold', extension: [{ url: 'measurement', valueCodeableConcept: spo2 }, { url: 'value', valueQuantity: { value: 92, unit: '%' } }] }]), /comparator/],
      ['a threshold without a value', zone('yellow', [{ url: 'threshold', extension: [{ url: 'measurement', valueCodeableConcept: spo2 }, { url: 'comparator', valueCode: '<' }] }]), /value or a percentage/],
      ['a contact without who', zone('yellow', [{ url: 'contact', extension: [{ url: 'phone', valueString: '116 117' }] }]), /contact says who/],
      ['an unknown part', zone('yellow', [{ url: 'colour', valueString: 'gul' }]), /only the parts/],
    ];
    for (const [what, z, message] of cases) {
      const res = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', extension: [z] }) });
      expect(res.status, what).toBe(400);
      expect(texts(res), what).toMatch(message);
    }
    const complete = zone('yellow', [
      { url: 'threshold', extension: [{ url: 'measurement', valueCodeableConcept: spo2 }, { url: 'comparator', valueCode: '<' }, { url: 'value', valueQuantity: { value: 92, unit: '%' } }] },
      { url: 'contact', extension: [{ url: 'who', valueString: 'Fastlegen' }, { url: 'within', valueDuration: { value: 24, unit: 'timer', system: 'http://unitsofmeasure.org', code: 'h' } }] },
    ]);
    expect((await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', extension: [complete] }) })).status).toBe(201);
  });

  it('refuses a plan resource that names its patient only by identifier', async () => {
    const res = await t.request('POST', 'CarePlan', { body: plan('x', { subject: { identifier: { system: OID.fnr, value: syntheticNin('1950-02-02', 9) } } }) });
    expect(res.status).toBe(400);
    expect(texts(res)).toContain('CarePlan.subject');
    expect(res.text).not.toMatch(/\d{11}/);
  });

  it('requires a coded or described condition from the allowed code systems', async () => {
    const patient = await newPatient();
    const ok = await t.request('POST', 'Condition', {
      body: { resourceType: 'Condition', subject: { reference: `Patient/${patient}` }, code: { coding: [{ system: 'urn:oid:2.16.578.1.12.4.1.1.7110', code: 'J44', display: 'Kronisk obstruktiv lungesykdom' }] } },
    });
    expect(ok.status, ok.text).toBe(201);
    const free = await t.request('POST', 'Condition', { body: { resourceType: 'Condition', subject: { reference: `Patient/${patient}` }, code: { text: 'Tung pust' } } });
    expect(free.status, free.text).toBe(201);
    const foreign = await t.request('POST', 'Condition', {
      body: { resourceType: 'Condition', subject: { reference: `Patient/${patient}` }, code: { coding: [{ system: 'http://example.org/codes', code: 'x', display: 'X' }] } },
    });
    expect(foreign.status).toBe(400);
    expect(texts(foreign)).toMatch(/ICD-10, ICPC-2, SNOMED CT/);
  });
});

describe('Norwegian identifiers', () => {
  it('refuses a fødselsnummer with a wrong check digit, without echoing it', async () => {
    const good = syntheticNin('1961-07-14', 3);
    const bad = good.slice(0, 10) + String((Number(good[10]) + 1) % 10);
    const res = await t.request('POST', 'Patient', { body: { resourceType: 'Patient', identifier: [{ system: OID.fnr, value: bad }] } });
    expect(res.status).toBe(400);
    expect(codes(res)).toContain('INVALID_IDENTIFIER');
    expect(texts(res)).toContain('Patient.identifier[0].value');
    expect(res.text).not.toContain(bad);
  });

  it('accepts a D-nummer and synthetic (Tenor) numbers, and checks HPR and organisation numbers in references', async () => {
    const dnr = syntheticNin('1977-02-03', 4, 'dnr');
    const d = await t.request('POST', 'Patient', { body: { resourceType: 'Patient', identifier: [{ system: OID.dnr, value: dnr }] } });
    expect(d.status, d.text).toBe(201);
    const patient = d.body.id as string;
    const author = (hpr: string) => plan(patient, { status: 'draft', author: { identifier: { system: OID.hpr, value: hpr }, display: 'Kari Lindqvist' } });
    expect((await t.request('POST', 'CarePlan', { body: author('9144901') })).status).toBe(201);
    const badHpr = await t.request('POST', 'CarePlan', { body: author('91449O1') });
    expect(badHpr.status).toBe(400);
    expect(codes(badHpr)).toContain('INVALID_IDENTIFIER');
    const badOrg = await t.request('POST', 'Organization', { body: { resourceType: 'Organization', name: 'Feil', identifier: [{ system: OID.orgnr, value: '123456789' }] } });
    expect(badOrg.status).toBe(400);
    expect(texts(badOrg)).toMatch(/organisation number/);
  });
});

describe('one active plan per patient', () => {
  it('refuses a second active plan with an error naming the existing plan; drafts are fine', async () => {
    const patient = await newPatient();
    const first = await t.request('POST', 'CarePlan', { body: plan(patient) });
    expect(first.status).toBe(201);
    const second = await t.request('POST', 'CarePlan', { body: plan(patient) });
    expect(second.status).toBe(409);
    expect(codes(second)).toEqual(['ACTIVE_PLAN_EXISTS']);
    expect(texts(second)).toContain(`CarePlan/${first.body.id}`);
    const draft = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', title: 'Ny plan' }) });
    expect(draft.status).toBe(201);
    // Activating the draft is the same as creating a second active plan.
    const activate = await t.request('PUT', `CarePlan/${draft.body.id}`, { body: { ...draft.body, status: 'active' } });
    expect(activate.status).toBe(409);
    expect(codes(activate)).toEqual(['ACTIVE_PLAN_EXISTS']);
    // Once the first is completed, the new one can take over.
    expect((await t.request('PUT', `CarePlan/${first.body.id}`, { body: { ...first.body, status: 'completed' } })).status).toBe(200);
    expect((await t.request('PUT', `CarePlan/${draft.body.id}`, { body: { ...draft.body, status: 'active' } })).status).toBe(200);
  });

  it('lets exactly one of many concurrent creations win', async () => {
    const patient = await newPatient();
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => t.request('POST', 'CarePlan', { body: plan(patient, { title: `Plan ${i}` }) })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    const active = await t.request<Bundle>('GET', `CarePlan?subject=Patient/${patient}&status=active&_summary=count`);
    expect(active.body.total).toBe(1);
  });

  it('applies inside a transaction too', async () => {
    const patient = await newPatient();
    const tx = await t.request('POST', '', {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: plan(patient, { title: 'En' }), request: { method: 'POST', url: 'CarePlan' } },
          { resource: plan(patient, { title: 'To' }), request: { method: 'POST', url: 'CarePlan' } },
        ],
      },
    });
    expect(tx.status).toBe(409);
    expect(codes(tx)).toContain('ACTIVE_PLAN_EXISTS');
    const count = await t.request<Bundle>('GET', `CarePlan?subject=Patient/${patient}&_summary=count`);
    expect(count.body.total).toBe(0);
  });
});

describe('plan status', () => {
  it('moves forward only: draft → active → completed; no way back', async () => {
    const patient = await newPatient();
    const made = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft' }) });
    const put = (status: CarePlan['status'], from: TestResponse) => t.request('PUT', `CarePlan/${made.body.id}`, { body: { ...from.body, status } });
    const active = await put('active', made);
    expect(active.status).toBe(200);
    const back = await put('draft', active);
    expect(back.status).toBe(409);
    expect(codes(back)).toEqual(['INVALID_TRANSITION']);
    expect(texts(back)).toContain('allowed next');
    const done = await put('completed', active);
    expect(done.status).toBe(200);
    expect((await put('active', done)).status).toBe(409);
    expect((await put('entered-in-error', done)).status).toBe(200);
  });

  it('has no on-hold: a plan is paused by editing it', async () => {
    const patient = await newPatient();
    const made = await t.request('POST', 'CarePlan', { body: plan(patient) });
    const held = await t.request('PUT', `CarePlan/${made.body.id}`, { body: { ...made.body, status: 'on-hold' } });
    expect(held.status).toBe(409);
    expect(codes(held)).toEqual(['INVALID_TRANSITION']);
    expect(texts(held)).toContain('allowed next: active, completed, revoked, entered-in-error');
  });

  it('keeps the plan with its patient', async () => {
    const [a, b] = [await newPatient(), await newPatient()];
    const made = await t.request('POST', 'CarePlan', { body: plan(a, { status: 'draft' }) });
    const moved = await t.request('PUT', `CarePlan/${made.body.id}`, { body: { ...made.body, subject: { reference: `Patient/${b}` } } });
    expect(moved.status).toBe(400);
    expect(texts(moved)).toContain('CarePlan.subject');
  });
});

describe('identifiers and references', () => {
  it('refuses a second resource with the same business identifier', async () => {
    const patient = await newPatient();
    const identifier = [{ system: 'urn:oid:2.16.578.1.12.4.1.2.9999', value: `plan-${patient}` }];
    expect((await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', identifier }) })).status).toBe(201);
    const again = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', identifier }) });
    expect(again.status).toBe(409);
    expect(codes(again)).toEqual(['DUPLICATE_IDENTIFIER']);
  });

  it('refuses a reference to a resource that does not exist, naming where it is', async () => {
    const patient = await newPatient();
    const res = await t.request('POST', 'CarePlan', { body: plan(patient, { status: 'draft', goal: [{ reference: 'Goal/finnes-ikke' }] }) });
    expect(res.status).toBe(422);
    expect(codes(res)).toEqual(['REFERENCE_NOT_FOUND']);
    expect(texts(res)).toContain('CarePlan.goal[0].reference');
  });

  it('refuses a reference to another patient\'s data', async () => {
    const [a, b] = [await newPatient(), await newPatient()];
    const condition = await t.request('POST', 'Condition', { body: { resourceType: 'Condition', subject: { reference: `Patient/${b}` }, code: { text: 'B sin diagnose' } } });
    const res = await t.request('POST', 'CarePlan', { body: plan(a, { status: 'draft', addresses: [{ reference: `Condition/${condition.body.id}` }] }) });
    expect(res.status).toBe(422);
    expect(codes(res)).toEqual(['PATIENT_MISMATCH']);
    expect(texts(res)).toContain('CarePlan.addresses[0].reference');
  });

  // An update's references are looked up with its row lock, from the content it sends.
  it('refuses an update that refers to what does not exist or to another patient\'s data', async () => {
    const [a, b] = [await newPatient(), await newPatient()];
    const made = await t.request('POST', 'CarePlan', { body: plan(a, { status: 'draft' }) });
    expect(made.status).toBe(201);
    const missing = await t.request('PUT', `CarePlan/${made.body.id}`, { body: { ...made.body, goal: [{ reference: 'Goal/finnes-ikke' }] } });
    expect(missing.status).toBe(422);
    expect(codes(missing)).toEqual(['REFERENCE_NOT_FOUND']);
    expect(texts(missing)).toContain('CarePlan.goal[0].reference');
    const condition = await t.request('POST', 'Condition', { body: { resourceType: 'Condition', subject: { reference: `Patient/${b}` }, code: { text: 'B sin diagnose' } } });
    const foreign = await t.request('PUT', `CarePlan/${made.body.id}`, { body: { ...made.body, addresses: [{ reference: `Condition/${condition.body.id}` }] } });
    expect(foreign.status).toBe(422);
    expect(codes(foreign)).toEqual(['PATIENT_MISMATCH']);
    expect((await t.request('GET', `CarePlan/${made.body.id}`)).body.meta.versionId).toBe(made.body.meta.versionId);
  });

  it('checks an update\'s references against what the rest of its transaction writes after it', async () => {
    const [a, b] = [await newPatient(), await newPatient()];
    const condition = await t.request('POST', 'Condition', { body: { resourceType: 'Condition', subject: { reference: `Patient/${a}` }, code: { text: 'KOLS' } } });
    const made = await t.request('POST', 'CarePlan', { body: plan(a, { status: 'draft' }) });
    expect([condition.status, made.status]).toEqual([201, 201]);
    const tx = await t.request('POST', '', {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: { ...made.body, addresses: [{ reference: `Condition/${condition.body.id}` }] }, request: { method: 'PUT', url: `CarePlan/${made.body.id}` } },
          { resource: { ...condition.body, subject: { reference: `Patient/${b}` } }, request: { method: 'PUT', url: `Condition/${condition.body.id}` } },
        ],
      },
    });
    expect(tx.status, tx.text).toBe(422);
    expect(codes(tx)).toEqual(['PATIENT_MISMATCH']);
    expect((await t.request('GET', `Condition/${condition.body.id}`)).body.subject).toEqual({ reference: `Patient/${a}` });
  });

  // A single write's references are looked up as it is stored (with its own statement); what a
  // later entry of the same transaction changes must still count. (Deletions are processed
  // before creations; updates after them.)
  it('checks references against what the whole transaction leaves: an entry moving a target to another patient is refused', async () => {
    const [a, b] = [await newPatient(), await newPatient()];
    const condition = await t.request('POST', 'Condition', { body: { resourceType: 'Condition', subject: { reference: `Patient/${a}` }, code: { text: 'KOLS' } } });
    expect(condition.status).toBe(201);
    const tx = await t.request('POST', '', {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: plan(a, { status: 'draft', addresses: [{ reference: `Condition/${condition.body.id}` }] }), request: { method: 'POST', url: 'CarePlan' } },
          { resource: { ...condition.body, subject: { reference: `Patient/${b}` } }, request: { method: 'PUT', url: `Condition/${condition.body.id}` } },
        ],
      },
    });
    expect(tx.status, tx.text).toBe(422);
    expect(codes(tx)).toEqual(['PATIENT_MISMATCH']);
    expect((await t.request('GET', `Condition/${condition.body.id}`)).body.subject).toEqual({ reference: `Patient/${a}` });
    const alone = await t.request('POST', 'CarePlan', { body: plan(a, { status: 'draft', addresses: [{ reference: `Condition/${condition.body.id}` }] }) });
    expect(alone.status, alone.text).toBe(201);
  });

  it('lets entries of a transaction refer to each other in any order', async () => {
    const patient = await newPatient();
    const tx = await t.request<Bundle>('POST', '', {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { fullUrl: 'urn:uuid:6f1c2a8e-0000-4000-8000-000000000001', resource: plan(patient, { goal: [{ reference: 'urn:uuid:6f1c2a8e-0000-4000-8000-000000000002' }] }), request: { method: 'POST', url: 'CarePlan' } },
          {
            fullUrl: 'urn:uuid:6f1c2a8e-0000-4000-8000-000000000002',
            resource: { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Gå tur hver dag' }, subject: { reference: `Patient/${patient}` } },
            request: { method: 'POST', url: 'Goal' },
          },
        ],
      },
    });
    expect(tx.status, tx.text).toBe(200);
    expect(tx.body.entry?.map((e) => e.response?.status)).toEqual(['201 Created', '201 Created']);
  });
});
