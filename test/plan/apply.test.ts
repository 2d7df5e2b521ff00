/**
 * PlanDefinition/$apply (src/plan/apply.ts): the preview (a draft CarePlan with contained goals
 * and measures, nothing stored), persist=true (separate draft resources in one transaction through
 * the write pipeline, linked and searchable, never a second active plan), the existing Condition
 * found by code, type-level application by canonical URL, and the errors for bad input. The access
 * rules are tested with real tokens: a patient without plan consent gets nothing, another
 * patient's id is not found.
 */
import type { CarePlan, Condition, Extension, Goal, Parameters, PlanDefinition, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODE_SYSTEM } from '../../src/fhir/outcomes.js';
import { hasErrors, validateResource } from '../../src/fhir/validation/validator.js';
import { CODE_SYSTEM as NO } from '../../src/no/codes.js';
import { EXTENSION, PROFILE } from '../../src/plan/conventions.js';
import { TEMPLATES } from '../../src/plan/templates/index.js';
import { startTestServer, type TestResponse, type TestServer } from '../support/app.js';
import { asCitizen, asClinician, seedPatient } from '../support/security.js';
import { auditEvents } from '../support/audit.js';

const KOLS = TEMPLATES.find((t) => t.key === 'kols')!;
const HF = TEMPLATES.find((t) => t.key === 'hjertesvikt')!;

const params = (...parameter: NonNullable<Parameters['parameter']>): Parameters => ({ resourceType: 'Parameters', parameter });
const subject = (id: string) => ({ name: 'subject', valueString: `Patient/${id}` });
const persist = { name: 'persist', valueBoolean: true };
const errorCode = (res: TestResponse) =>
  (res.body.issue as Array<{ details?: { coding?: Array<{ system: string; code: string }> } }>)?.[0]?.details?.coding?.find((c) => c.system === ERROR_CODE_SYSTEM)?.code;
const zoneLevels = (cp: CarePlan) =>
  (cp.extension ?? []).filter((e) => e.url === EXTENSION.zone).map((z) => z.extension?.find((e) => e.url === 'level')?.valueCode);
const redZone = (cp: CarePlan) =>
  (cp.extension ?? []).find((z) => z.url === EXTENSION.zone && z.extension?.some((e) => e.url === 'level' && e.valueCode === 'red')) as Extension;
const local = (ref: string | undefined) => ref?.replace(/^#/, '');

describe('$apply as the system (FHIR behaviour)', () => {
  let t: TestServer;
  let anne: string;
  let bjorn: string;

  beforeAll(async () => {
    t = await startTestServer();
    anne = await seedPatient(t, 'anne');
    bjorn = await seedPatient(t, 'bjorn');
    // Bjørn already has his heart failure registered, with a more specific ICD-10 code.
    const condition = await t.system('POST', 'Condition', {
      resourceType: 'Condition',
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      code: { coding: [{ system: NO.icd10, code: 'I50.0', display: 'Kongestiv hjertesvikt' }], text: 'Hjertesvikt' },
      subject: { reference: `Patient/${bjorn}` },
    });
    expect(condition.status, JSON.stringify(condition.body)).toBe(201);
    bjornCondition = condition.body.id as string;
  });
  let bjornCondition: string;
  afterAll(async () => t?.close());

  const count = async (query: string) => (await t.system('GET', `${query}&_summary=count`)).body.total as number;

  describe('the preview (persist=false)', () => {
    let res: TestResponse;
    let cp: CarePlan;
    let before: number;

    beforeAll(async () => {
      before = (await count(`Goal?subject=Patient/${anne}`)) + (await count(`ServiceRequest?subject=Patient/${anne}`)) + (await count(`CarePlan?subject=Patient/${anne}`));
      res = await t.request('POST', 'PlanDefinition/samplan-mal-kols/$apply', { body: params(subject(anne)) });
      cp = res.body as CarePlan;
    });

    it('answers 200 with a draft CarePlan that is valid against samplan-careplan', () => {
      expect(res.status, res.text).toBe(200);
      expect(cp).toMatchObject({
        resourceType: 'CarePlan',
        status: 'draft',
        intent: 'plan',
        title: KOLS.planDefinition.title,
        subject: { reference: `Patient/${anne}` },
        instantiatesCanonical: [`${KOLS.planDefinition.url}|${KOLS.planDefinition.version}`],
        meta: { profile: [PROFILE.carePlan] },
      });
      expect(cp.id).toBeUndefined();
      const issues = validateResource(cp);
      expect(hasErrors(issues), JSON.stringify(issues, null, 1)).toBe(false);
    });

    it('copies the three zones, with red directing to emergency help', () => {
      expect(zoneLevels(cp)).toEqual(['green', 'yellow', 'red']);
      const red = redZone(cp);
      expect(red.extension?.find((e) => e.url === 'emergency')?.valueBoolean).toBe(true);
      const phones = red.extension?.filter((e) => e.url === 'contact').map((c) => c.extension?.find((e) => e.url === 'phone')?.valueString);
      expect(phones).toContain('113');
    });

    it('contains a draft Condition with the template codes, since Anne has none, and addresses it', () => {
      const condition = cp.contained?.find((r) => r.resourceType === 'Condition') as Condition;
      expect(cp.addresses).toEqual([{ reference: `#${condition.id}`, display: 'KOLS' }]);
      expect(condition.code?.coding?.map((c) => `${c.system}|${c.code}`)).toEqual([`${NO.icd10}|J44`, `${NO.icpc2}|R95`, `${NO.snomed}|13645005`]);
      expect(condition.subject).toEqual({ reference: `Patient/${anne}` });
      expect(condition.verificationStatus?.coding?.[0]?.code).toBe('provisional');
    });

    it('contains proposed Goals for the patient, addressing the Condition, referenced from CarePlan.goal', () => {
      const goals = cp.contained?.filter((r): r is Goal => r.resourceType === 'Goal') ?? [];
      expect(goals).toHaveLength(KOLS.planDefinition.goal?.length ?? 0);
      expect(cp.goal?.map((g) => local(g.reference))).toEqual(goals.map((g) => g.id));
      for (const g of goals) {
        expect(g).toMatchObject({ lifecycleStatus: 'proposed', subject: { reference: `Patient/${anne}` }, addresses: [{ reference: cp.addresses?.[0]?.reference }] });
      }
      // The patient's own goal is expressed by the patient (so the patient may later change it).
      const own = goals.find((g) => g.description.text?.startsWith('Hva er viktig for meg'));
      expect(own?.expressedBy).toEqual({ reference: `Patient/${anne}` });
    });

    it('contains draft ServiceRequests (measures) with category, timing, performer and reason, referenced from the activities', () => {
      const measures = cp.contained?.filter((r): r is ServiceRequest => r.resourceType === 'ServiceRequest') ?? [];
      expect(measures).toHaveLength(KOLS.activityDefinitions.length);
      expect(cp.activity?.map((a) => local(a.reference?.reference))).toEqual(measures.map((m) => m.id));
      for (const m of measures) {
        expect(m).toMatchObject({ status: 'draft', intent: 'plan', subject: { reference: `Patient/${anne}` }, reasonReference: [{ reference: cp.addresses?.[0]?.reference }] });
        expect(m.category?.[0]?.coding?.[0]?.system).toBe(NO.snomed);
        expect(m.occurrenceTiming?.code?.text).toBeTruthy();
        expect(m.code?.text).toBeTruthy();
        expect(m.patientInstruction).toBeTruthy();
        expect(m.instantiatesCanonical?.[0]).toMatch(/\/ActivityDefinition\/samplan-mal-kols-/);
        // The patient does it, or the health service (by role).
        expect(!!m.performer !== !!m.performerType).toBe(true);
      }
      const spo2 = measures.find((m) => m.code?.text === 'Måle oksygenmetning');
      expect(spo2?.performer).toEqual([{ reference: `Patient/${anne}` }]);
      expect(spo2?.category?.[0]?.coding?.[0]?.code).toBe('122869004');
      const pack = measures.find((m) => m.code?.text?.startsWith('Beredskapspakke'));
      expect(pack?.performerType).toEqual({ text: 'Fastlege' });
    });

    it('stores nothing', async () => {
      const after = (await count(`Goal?subject=Patient/${anne}`)) + (await count(`ServiceRequest?subject=Patient/${anne}`)) + (await count(`CarePlan?subject=Patient/${anne}`));
      expect(after).toBe(before);
    });
  });

  it("addresses the patient's existing Condition (ICD-10 by prefix: I50 finds I50.0) instead of making one", async () => {
    const res = await t.request('POST', 'PlanDefinition/samplan-mal-hjertesvikt/$apply', { body: params(subject(bjorn)) });
    expect(res.status, res.text).toBe(200);
    const cp = res.body as CarePlan;
    expect(cp.addresses).toEqual([{ reference: `Condition/${bjornCondition}`, display: 'Hjertesvikt' }]);
    expect(cp.contained?.some((r) => r.resourceType === 'Condition')).toBe(false);
    const measures = cp.contained?.filter((r): r is ServiceRequest => r.resourceType === 'ServiceRequest') ?? [];
    expect(measures).toHaveLength(HF.activityDefinitions.length);
    for (const m of measures) expect(m.reasonReference).toEqual([{ reference: `Condition/${bjornCondition}`, display: 'Hjertesvikt' }]);
  });

  it('applies at type level by canonical URL, with the practitioner as author and requester', async () => {
    const gp = await t.system('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Lindqvist', given: ['Kari'] }] });
    const res = await t.request('POST', 'PlanDefinition/$apply', {
      body: params({ name: 'planDefinition', valueCanonical: 'https://samplan.no/fhir/PlanDefinition/samplan-mal-astma' }, subject(anne), { name: 'practitioner', valueReference: { reference: `Practitioner/${gp.body.id as string}` } }),
    });
    expect(res.status, res.text).toBe(200);
    const cp = res.body as CarePlan;
    expect(cp.title).toBe('Behandlingsplan og egenbehandlingsplan ved astma');
    expect(cp.author).toEqual({ reference: `Practitioner/${gp.body.id as string}` });
    const measures = cp.contained?.filter((r): r is ServiceRequest => r.resourceType === 'ServiceRequest') ?? [];
    expect(measures.every((m) => m.requester?.reference === `Practitioner/${gp.body.id as string}`)).toBe(true);
    const goals = cp.contained?.filter((r): r is Goal => r.resourceType === 'Goal') ?? [];
    expect(goals.filter((g) => g.expressedBy?.reference?.startsWith('Practitioner/')).length).toBe(goals.length - 1);
  });

  describe('persist=true', () => {
    let res: TestResponse;
    let cp: CarePlan;

    beforeAll(async () => {
      res = await t.request('POST', 'PlanDefinition/samplan-mal-kols/$apply', { body: params(subject(anne), persist) });
      cp = res.body as CarePlan;
    });

    it('answers 201 with the stored draft CarePlan and its Location', async () => {
      expect(res.status, res.text).toBe(201);
      expect(cp).toMatchObject({ resourceType: 'CarePlan', status: 'draft', intent: 'plan', meta: { versionId: '1' } });
      expect(res.headers.location).toBe(`http://test.local/fhir/CarePlan/${cp.id as string}/_history/1`);
      expect(cp.contained).toBeUndefined();
      expect(zoneLevels(cp)).toEqual(['green', 'yellow', 'red']);
      const read = await t.system('GET', `CarePlan/${cp.id as string}`);
      expect(read.status).toBe(200);
      expect(read.body).toEqual(cp);
    });

    it('stores the Condition, Goals and ServiceRequests as their own resources, linked from the CarePlan', async () => {
      const read = async <T extends Resource>(ref: string | undefined) => {
        const r = await t.system<T>('GET', ref as string);
        expect(r.status, ref).toBe(200);
        return r.body;
      };
      const condition = await read<Condition>(cp.addresses?.[0]?.reference);
      expect(condition).toMatchObject({ resourceType: 'Condition', subject: { reference: `Patient/${anne}` }, meta: { profile: [PROFILE.condition] } });
      expect(cp.goal).toHaveLength(KOLS.planDefinition.goal?.length ?? 0);
      for (const g of cp.goal ?? []) {
        const goal = await read<Goal>(g.reference);
        expect(goal).toMatchObject({ lifecycleStatus: 'proposed', addresses: [{ reference: `Condition/${condition.id as string}` }] });
      }
      expect(cp.activity).toHaveLength(KOLS.activityDefinitions.length);
      for (const a of cp.activity ?? []) {
        const sr = await read<ServiceRequest>(a.reference?.reference);
        expect(sr).toMatchObject({ status: 'draft', intent: 'plan', reasonReference: [{ reference: `Condition/${condition.id as string}` }], meta: { profile: [PROFILE.measure] } });
      }
    });

    it('makes them searchable, and the CarePlan found with its parts by _include', async () => {
      const plans = await t.system('GET', `CarePlan?subject=Patient/${anne}&status=draft&_include=CarePlan:goal&_include=CarePlan:activity-reference&_include=CarePlan:condition`);
      const types = (plans.body.entry as Array<{ resource: Resource; search: { mode: string } }>).map((e) => `${e.search.mode}:${e.resource.resourceType}`);
      expect(types.filter((x) => x === 'match:CarePlan')).toHaveLength(1);
      expect(types.filter((x) => x === 'include:Goal')).toHaveLength(KOLS.planDefinition.goal?.length ?? 0);
      expect(types.filter((x) => x === 'include:ServiceRequest')).toHaveLength(KOLS.activityDefinitions.length);
      expect(types.filter((x) => x === 'include:Condition')).toHaveLength(1);
      const measures = await count(`ServiceRequest?subject=Patient/${anne}&status=draft&category=${encodeURIComponent(`${NO.snomed}|122869004`)}`);
      expect(measures).toBe(KOLS.activityDefinitions.filter((a) => a.topic?.[0]?.coding?.[0]?.code === '122869004').length);
      const byTemplate = await count(`CarePlan?instantiates-canonical=${encodeURIComponent(`${KOLS.planDefinition.url}|${KOLS.planDefinition.version}`)}`);
      expect(byTemplate).toBeGreaterThanOrEqual(1);
    });

    it('does not make a second active plan: the patient keeps one active plan and gets a draft', async () => {
      expect(await count(`CarePlan?subject=Patient/${anne}&status=active`)).toBe(1);
      expect(await count(`CarePlan?subject=Patient/${anne}&status=draft`)).toBe(1);
    });

    it('uses the Condition it stored the first time when applied again', async () => {
      const again = await t.request('POST', 'PlanDefinition/samplan-mal-kols/$apply', { body: params(subject(anne), persist) });
      expect(again.status, again.text).toBe(201);
      expect((again.body as CarePlan).addresses).toEqual(cp.addresses);
      expect(await count(`Condition?subject=Patient/${anne}`)).toBe(1);
    });
  });

  describe('bad input', () => {
    const cases: Array<[string, string, unknown, number, string?]> = [
      ['an unknown template', 'PlanDefinition/finnes-ikke/$apply', params(subject('x')), 404, 'NOT_FOUND'],
      ['no body', 'PlanDefinition/samplan-mal-kols/$apply', undefined, 400, 'INVALID_REQUEST'],
      ['a body that is not Parameters', 'PlanDefinition/samplan-mal-kols/$apply', { resourceType: 'Basic', code: { text: 'x' } }, 400, 'INVALID_REQUEST'],
      ['no subject', 'PlanDefinition/samplan-mal-kols/$apply', params(persist), 400, 'INVALID_REQUEST'],
      ['a subject that is not a Patient', 'PlanDefinition/samplan-mal-kols/$apply', params({ name: 'subject', valueString: 'Practitioner/abc' }), 400, 'INVALID_REQUEST'],
      ['a subject that is not a reference', 'PlanDefinition/samplan-mal-kols/$apply', params({ name: 'subject', valueString: '12345678901' }), 400, 'INVALID_REQUEST'],
      ['two subjects', 'PlanDefinition/samplan-mal-kols/$apply', params(subject('a'), subject('b')), 400, 'INVALID_REQUEST'],
      ['a patient that does not exist', 'PlanDefinition/samplan-mal-kols/$apply', params(subject('finnes-ikke')), 404, 'NOT_FOUND'],
      ['persist that is not a boolean', 'PlanDefinition/samplan-mal-kols/$apply', params(subject('a'), { name: 'persist', valueString: 'ja' }), 400, 'INVALID_REQUEST'],
      ['type level without a template', 'PlanDefinition/$apply', params(subject('a')), 400, 'INVALID_REQUEST'],
      ['type level with an unknown canonical', 'PlanDefinition/$apply', params({ name: 'planDefinition', valueCanonical: 'https://example.org/PlanDefinition/nei' }, subject('a')), 404, 'NOT_FOUND'],
    ];
    it.each(cases)('%s → %i', async (_name, path, body, status, code) => {
      const res = await t.request('POST', path, body === undefined ? {} : { body });
      expect(res.status, res.text).toBe(status);
      expect(res.body.resourceType).toBe('OperationOutcome');
      if (code) expect(errorCode(res)).toBe(code);
    });

    it('a practitioner that does not exist is refused, and nothing is stored', async () => {
      const res = await t.request('POST', 'PlanDefinition/samplan-mal-kols/$apply', {
        body: params(subject(bjorn), { name: 'practitioner', valueString: 'Practitioner/finnes-ikke' }, persist),
      });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(errorCode(res)).toBe('REFERENCE_NOT_FOUND');
      expect(await count(`CarePlan?subject=Patient/${bjorn}&status=draft`)).toBe(0);
    });

    it('the planDefinition parameter at instance level', async () => {
      const res = await t.request('POST', 'PlanDefinition/samplan-mal-kols/$apply', {
        body: params({ name: 'planDefinition', valueCanonical: KOLS.planDefinition.url }, subject(anne)),
      });
      expect(res.status).toBe(400);
    });

    it('GET is not allowed', async () => {
      const res = await t.request('GET', `PlanDefinition/samplan-mal-kols/$apply?subject=Patient/${anne}`);
      expect(res.status).toBe(405);
    });

    it('a template whose ActivityDefinition cannot be found → 422, nothing stored', async () => {
      const broken = { ...KOLS.planDefinition, id: 'lokal-mal', url: 'https://example.org/PlanDefinition/lokal-mal', action: [{ title: 'X', definitionCanonical: 'https://example.org/ActivityDefinition/mangler' }] };
      const res = await t.request('POST', 'PlanDefinition/$apply', { body: params({ name: 'planDefinition', resource: broken }, subject(bjorn), persist) });
      expect(res.status, res.text).toBe(422);
      expect(errorCode(res)).toBe('REFERENCE_NOT_FOUND');
      expect(await count(`CarePlan?subject=Patient/${bjorn}&status=draft`)).toBe(0);
    });
  });

  it('applies a template given inline at type level (R4), with inline actions', async () => {
    const inline: PlanDefinition = {
      resourceType: 'PlanDefinition',
      status: 'draft',
      title: 'Lokal mal',
      topic: [{ coding: [{ system: NO.icpc2, code: 'K86', display: 'Hypertensjon ukomplisert' }], text: 'Høyt blodtrykk' }],
      goal: [{ description: { text: 'Blodtrykk under 140/90' } }],
      action: [{ title: 'Måle blodtrykk', description: 'Mål blodtrykket hjemme', timingTiming: { code: { text: 'Hver uke' } }, participant: [{ type: 'patient' }] }],
    };
    const res = await t.request('POST', 'PlanDefinition/$apply', { body: params({ name: 'planDefinition', resource: inline }, subject(bjorn)) });
    expect(res.status, res.text).toBe(200);
    const cp = res.body as CarePlan;
    const measure = cp.contained?.find((r): r is ServiceRequest => r.resourceType === 'ServiceRequest');
    expect(measure).toMatchObject({ code: { text: 'Måle blodtrykk' }, performer: [{ reference: `Patient/${bjorn}` }], occurrenceTiming: { code: { text: 'Hver uke' } } });
    expect(zoneLevels(cp)).toEqual([]);
  });
});

describe('$apply with real tokens (access rules)', () => {
  let t: TestServer;
  let anne: string;
  let gunnar: string;

  beforeAll(async () => {
    t = await startTestServer({}, { auth: 'tokens' });
    anne = await seedPatient(t, 'anne');
    gunnar = await seedPatient(t, 'gunnar', { consent: false });
  });
  afterAll(async () => t?.close());

  const apply = (patientKey: string, body: Parameters, options: { clinician?: string } = {}) =>
    asClinician(t, options.clinician ?? 'fastlege', 'POST', 'PlanDefinition/samplan-mal-kols/$apply', { patient: patientKey, body });
  const stored = async (patient: string) => {
    let n = 0;
    for (const type of ['CarePlan', 'Goal', 'ServiceRequest', 'Condition']) {
      n += (await t.system('GET', `${type}?subject=Patient/${patient}&_summary=count`)).body.total as number;
    }
    return n;
  };

  it('a clinician previews and stores a draft plan for a patient who consented, recorded in the audit trail', async () => {
    const preview = await apply('anne', params(subject(anne)));
    expect(preview.status, preview.text).toBe(200);
    expect(preview.body.status).toBe('draft');
    const saved = await apply('anne', params(subject(anne), persist));
    expect(saved.status, saved.text).toBe(201);
    expect(saved.headers.location).toMatch(/\/CarePlan\/[^/]+\/_history\/1$/);
    const read = await asClinician(t, 'fastlege', 'GET', `CarePlan/${saved.body.id as string}`, { patient: 'anne' });
    expect(read.status).toBe(200);
    expect(read.body.status).toBe('draft');

    // One audit record for the operation, naming the patient and every resource it wrote.
    const events = await auditEvents(t.database.db, 'WHERE e.patient_id = $1', [anne]);
    const written = events.find((e) => e.entity?.some((x) => x.what?.reference === `CarePlan/${saved.body.id as string}/_history/1`));
    expect(written?.action).toBe('E');
    const refs = written?.entity?.map((x) => x.what?.reference ?? '') ?? [];
    expect(refs).toContain(`Patient/${anne}`);
    expect(refs.some((r) => r.startsWith('PlanDefinition/samplan-mal-kols/_history/'))).toBe(true);
    expect(refs.filter((r) => r.startsWith('Goal/'))).toHaveLength(saved.body.goal.length);
    expect(refs.filter((r) => r.startsWith('ServiceRequest/'))).toHaveLength(saved.body.activity.length);
  });

  it('the patient does not see the draft plan (drafts stay with the clinicians)', async () => {
    const res = await asCitizen(t, 'anne', 'GET', 'CarePlan?status=draft');
    expect(res.status).toBe(200);
    expect(res.body.total ?? (res.body.entry ?? []).length).toBe(0);
  });

  it('refuses to store a plan for a patient without plan consent (403 CONSENT_MISSING), and stores nothing', async () => {
    const before = await stored(gunnar);
    const res = await apply('gunnar', params(subject(gunnar), persist));
    expect(res.status, res.text).toBe(403);
    expect(errorCode(res)).toBe('CONSENT_MISSING');
    expect(await stored(gunnar)).toBe(before);
  });

  it('refuses the preview too without plan consent', async () => {
    const res = await apply('gunnar', params(subject(gunnar)));
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('CONSENT_MISSING');
  });

  it("answers 404 for another patient's id than the request is about", async () => {
    const before = await stored(gunnar);
    const res = await apply('anne', params(subject(gunnar), persist));
    expect(res.status, res.text).toBe(404);
    expect(errorCode(res)).toBe('NOT_FOUND');
    expect(await stored(gunnar)).toBe(before);
  });

  it('needs nhn-patient-nin for personnel (400 MISSING_HEADER)', async () => {
    const res = await asClinician(t, 'fastlege', 'POST', 'PlanDefinition/samplan-mal-kols/$apply', { body: params(subject(anne)) });
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('MISSING_HEADER');
  });

  it('refuses a blocked clinician (403 BLOCKED)', async () => {
    const eldar = await seedPatient(t, 'eldar', { blocked: ['vikarlege'] });
    const res = await asClinician(t, 'vikarlege', 'POST', 'PlanDefinition/samplan-mal-kols/$apply', { patient: 'eldar', body: params(subject(eldar)) });
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('BLOCKED');
  });

  it('does not let a citizen store a plan from a template', async () => {
    const before = await stored(anne);
    const res = await asCitizen(t, 'anne', 'POST', 'PlanDefinition/samplan-mal-kols/$apply', { body: params(subject(anne), persist) });
    expect(res.status).toBe(403);
    expect(await stored(anne)).toBe(before);
  });
});
