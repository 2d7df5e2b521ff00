/**
 * The demo data (src/demo/seed.ts): what an empty database gets — the population's organisations,
 * practitioners with HPR numbers and roles, patients with synthetic fødselsnummer, one active
 * published plan each made from a template and filled in, care teams, diagnoses, goals, measures,
 * approvals, check-ins with a Flag and a Task for the yellow ones — all valid, all written through
 * the pipeline by the people of the population (provenance), and reachable with their real tokens.
 * A second run changes nothing; a seed that fails midway leaves nothing behind and the next run
 * makes all of it; a database with other patients gets none; and the start-up path (createApp +
 * seedOnStart, as `npm start` runs it) seeds an empty data directory once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Bundle, CarePlan, CareTeam, Condition, Extension, Goal, Observation, PlanDefinition, Provenance, Resource, ServiceRequest, Task } from '@medplum/fhirtypes';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { DEMO_PLANS, PATIENTS_WITHOUT_PLAN } from '../../src/demo/plans.js';
import { citizenByKey, clinicianByKey, clinicians, organisations } from '../../src/demo/population.js';
import { fillIn, type SeedResult, seedDemoData, seedOnStart } from '../../src/demo/seed.js';
import { ERROR_CODE_SYSTEM } from '../../src/fhir/outcomes.js';
import { hasErrors, validateResource } from '../../src/fhir/validation/validator.js';
import { CODE_SYSTEM as NO } from '../../src/no/codes.js';
import { OID, parseNin } from '../../src/no/identifiers.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION, PROFILE } from '../../src/plan/conventions.js';
import { LAST_UPDATED_BY } from '../../src/plan/provenance.js';
import { TEMPLATES } from '../../src/plan/templates/index.js';
import { BASE, startTestServer, type TestResponse, type TestServer } from '../support/app.js';
import { capturedLogger } from '../support/logs.js';
import { asCitizen, asClinician, clinicianToken, nhnHeaders } from '../support/security.js';

const settings = loadConfig({ BASE_URL: BASE });
const resources = <T extends Resource>(bundle: Bundle) => (bundle.entry ?? []).map((e) => e.resource as T);
const errorCode = (res: TestResponse) => res.body.issue?.[0]?.details?.coding?.find((c: { system: string }) => c.system === ERROR_CODE_SYSTEM)?.code;
const zoneParts = (cp: CarePlan, level: string) =>
  (cp.extension ?? []).find((z) => z.url === EXTENSION.zone && z.extension?.some((e) => e.url === 'level' && e.valueCode === level))?.extension ?? [];

/** How much is stored: current rows, versions and audit records. */
async function footprint(t: TestServer): Promise<Record<string, number>> {
  const count = async (sql: string) => Number((await t.database.db.query<{ n: number }>(sql))[0]?.n);
  return {
    resources: await count('SELECT count(*)::int AS n FROM resources'),
    versions: await count('SELECT count(*)::int AS n FROM resource_versions'),
    published: await count('SELECT count(*)::int AS n FROM resources WHERE published_version IS NOT NULL'),
    audit: await count('SELECT count(*)::int AS n FROM audit_events'),
  };
}

describe('seeding an empty database', () => {
  let t: TestServer;
  let result: SeedResult;
  let after: Record<string, number>;
  /** Everything seeded, by type, as stored. */
  const all = new Map<string, Resource[]>();
  const patientId = new Map<string, string>();

  const ofPatient = <T extends Resource>(type: string, key: string): T[] =>
    ((all.get(type) ?? []) as T[]).filter((r) => JSON.stringify(r).includes(`"Patient/${patientId.get(key)}"`));
  const planOf = (key: string) => ofPatient<CarePlan>('CarePlan', key)[0] as CarePlan;

  beforeAll(async () => {
    t = await startTestServer({}, { auth: 'tokens' });
    result = await seedDemoData(t.app.engine, settings);
    after = await footprint(t);
    const types = ['Organization', 'Practitioner', 'PractitionerRole', 'Patient', 'Consent', 'RelatedPerson', 'Condition', 'CarePlan', 'Goal', 'ServiceRequest', 'CareTeam', 'Observation', 'Flag', 'Task', 'Provenance'];
    for (const type of types) {
      const res = await t.system<Bundle>('GET', `${type}?_count=1000`);
      expect(res.status).toBe(200);
      all.set(type, resources(res.body));
    }
    for (const p of all.get('Patient') ?? []) {
      const nin = (p as { identifier?: Array<{ value?: string }> }).identifier?.[0]?.value;
      const key = [...DEMO_PLANS.map((d) => d.patient), ...PATIENTS_WITHOUT_PLAN.map((d) => d.patient)].find((k) => citizenByKey(k).pid === nin);
      if (key) patientId.set(key, p.id as string);
    }
  });
  afterAll(async () => t?.close());

  it('reports what it made', () => {
    expect(result).toMatchObject({ seeded: true, patients: 6, plans: 5, flags: 2 });
    expect(result.checkIns).toBe(DEMO_PLANS.reduce((n, p) => n + p.checkIns.length, 0));
    console.info(`demo seed on ${t.database.db.kind}: ${result.ms} ms`);
  });

  it('makes the population\'s organisations (point of care under its legal entity) with valid organisation numbers', () => {
    const orgs = all.get('Organization') as Array<{ id: string; name: string; identifier: Array<{ system: string; value: string }>; partOf?: { reference: string } }>;
    for (const o of organisations) {
      const child = orgs.find((x) => x.identifier[0]?.value === o.orgnrChild);
      expect(child?.name).toBe(o.name);
      const parent = orgs.find((x) => `Organization/${x.id}` === child?.partOf?.reference);
      expect(parent?.identifier).toEqual([{ system: OID.orgnr, value: o.orgnrParent }]);
      expect(parent?.name).toBe(o.legalEntity);
    }
    // One Organization per legal entity, however many points of care it has.
    expect(orgs).toHaveLength(organisations.length + new Set(organisations.map((o) => o.orgnrParent)).size);
  });

  it('makes every clinician a Practitioner with their HPR number and a PractitionerRole with the Volven 9060 role at their organisation', () => {
    const roles = all.get('PractitionerRole') as Array<{ practitioner: { reference: string }; organization: { reference: string }; code: Array<{ coding: Array<{ system: string; code: string }> }> }>;
    for (const c of clinicians) {
      const practitioner = (all.get('Practitioner') ?? []).find((p) => (p as { identifier: Array<{ value: string }> }).identifier[0]?.value === c.hpr);
      expect((practitioner as { identifier: unknown }).identifier).toEqual([{ system: OID.hpr, value: c.hpr }]);
      const role = roles.find((r) => r.practitioner.reference === `Practitioner/${practitioner?.id}`);
      expect(role?.code[0]?.coding[0]).toMatchObject({ system: NO.personnelCategory, code: c.role });
      const org = (all.get('Organization') ?? []).find((o) => `Organization/${o.id}` === role?.organization.reference) as { identifier: Array<{ value: string }> };
      expect(org.identifier[0]?.value).toBe(organisations.find((o) => o.key === c.organisation)?.orgnrChild);
    }
  });

  it('registers the patients by synthetic fødselsnummer (Tenor: month + 80, valid check digits), the GP as their fastlege', () => {
    expect(all.get('Patient')).toHaveLength(6);
    expect(patientId.size).toBe(6);
    for (const p of all.get('Patient') as Array<{ identifier: Array<{ system: string; value: string }>; birthDate: string; generalPractitioner: Array<{ reference: string }> }>) {
      expect(p.identifier).toHaveLength(1);
      expect(p.identifier[0]?.system).toBe(OID.fnr);
      expect(parseNin(p.identifier[0]?.value as string)).toEqual({ kind: 'fnr', synthetic: true, birthDate: p.birthDate });
      expect(p.generalPractitioner[0]?.reference).toMatch(/^PractitionerRole\//);
    }
  });

  it('gives each patient with a plan exactly one plan: active, from the template, published, approved as the plan says', async () => {
    for (const plan of DEMO_PLANS) {
      const plans = ofPatient<CarePlan>('CarePlan', plan.patient);
      expect(plans, plan.patient).toHaveLength(1);
      const cp = plans[0] as CarePlan;
      const template = TEMPLATES.find((x) => x.key === plan.template)?.planDefinition as PlanDefinition;
      expect(cp).toMatchObject({ status: 'active', intent: 'plan', title: template.title, meta: { profile: [PROFILE.carePlan] } });
      expect(cp.instantiatesCanonical?.[0]).toBe(`${template.url}|${template.version}`);
      expect(cp.period?.start).toBeTruthy();
      const approvals = ofPatient<Task>('Task', plan.patient).filter((x) => x.code?.coding?.[0]?.code === 'plan-approval');
      expect(approvals.map((a) => a.status), plan.patient).toEqual([plan.approval.givenBy ? 'completed' : 'requested']);
      expect(approvals[0]?.focus?.reference).toBe(`CarePlan/${cp.id}/_history/${cp.meta?.versionId}`);
    }
    // Gunnar has not consented: registered, but no plan and no consent.
    expect(ofPatient('CarePlan', 'gunnar')).toEqual([]);
    expect(ofPatient('Consent', 'gunnar')).toEqual([]);
  });

  it('fills in the template: zones with the patient\'s medicines, baselines and phone numbers; no «fylles ut» or example text left', () => {
    for (const plan of DEMO_PLANS) {
      const cp = planOf(plan.patient);
      expect((cp.extension ?? []).filter((e) => e.url === EXTENSION.zone).map((z) => z.extension?.[0]?.valueCode)).toEqual(['green', 'yellow', 'red']);
      const text = JSON.stringify([cp, ...ofPatient('Goal', plan.patient), ...ofPatient('ServiceRequest', plan.patient)]);
      expect(text, plan.patient).not.toMatch(/fylles ut|Eksempel/);
      const contacts = ['green', 'yellow'].flatMap((l) => zoneParts(cp, l).filter((e) => e.url === 'contact'));
      for (const contact of contacts.filter((c) => c.extension?.[0]?.valueString?.startsWith('Fastlegen'))) {
        expect(contact.extension?.find((e) => e.url === 'phone')?.valueString).toBe('+47 77 00 10 00');
      }
      for (const [level, zone] of Object.entries(plan.zones)) {
        if (zone.medications) expect(zoneParts(cp, level).filter((e) => e.url === 'medication').map((e) => e.valueString)).toEqual(zone.medications);
      }
    }
    // Lilly's PEF thresholds are percentages of her own best value.
    const pef = zoneParts(planOf('lilly'), 'yellow').find((e) => e.url === 'threshold') as Extension;
    expect(pef.extension?.find((e) => e.url === 'baseline')?.valueQuantity).toMatchObject({ value: 260, code: 'L/min' });
  });

  it('addresses the patient\'s diagnoses, coded in ICD-10 with ICPC-2 and SNOMED CT, the template\'s one first', () => {
    for (const plan of DEMO_PLANS) {
      const cp = planOf(plan.patient);
      const conditions = ofPatient<Condition>('Condition', plan.patient);
      expect(conditions, plan.patient).toHaveLength(plan.diagnoses.length);
      expect(cp.addresses?.map((a) => a.reference).sort()).toEqual(conditions.map((c) => `Condition/${c.id}`).sort());
      const first = conditions.find((c) => `Condition/${c.id}` === cp.addresses?.[0]?.reference) as Condition;
      expect(first.code?.coding?.find((c) => c.system === NO.icd10)?.code).toBe(plan.diagnoses[0]?.icd10?.[0]);
      expect(first.verificationStatus?.coding?.[0]?.code).toBe('confirmed');
      for (const c of conditions) {
        const systems = c.code?.coding?.map((x) => x.system);
        expect(systems).toContain(NO.icd10);
        expect(systems).toContain(NO.snomed);
      }
    }
    expect(ofPatient<Condition>('Condition', 'eldar').length).toBeGreaterThanOrEqual(4); // the frail elderly patient
  });

  it('has active goals, the first the patient\'s own in their words, and active measures that the plan lists', () => {
    for (const plan of DEMO_PLANS) {
      const cp = planOf(plan.patient);
      const goals = ofPatient<Goal>('Goal', plan.patient);
      expect(cp.goal?.map((g) => g.reference).sort()).toEqual(goals.map((g) => `Goal/${g.id}`).sort());
      expect(goals.every((g) => g.lifecycleStatus === 'active')).toBe(true);
      const own = goals.filter((g) => g.expressedBy?.reference === `Patient/${patientId.get(plan.patient)}`);
      expect(own.map((g) => g.description.text)).toEqual([plan.ownGoal]);
      expect(cp.goal?.find((g) => g.reference === `Goal/${own[0]?.id}`)?.display).toBe(plan.ownGoal);

      const measures = ofPatient<ServiceRequest>('ServiceRequest', plan.patient);
      const template = TEMPLATES.find((x) => x.key === plan.template);
      expect(measures).toHaveLength((template?.activityDefinitions.length ?? 0) + (plan.extraMeasures?.length ?? 0));
      expect(cp.activity?.map((a) => a.reference?.reference).sort()).toEqual(measures.map((m) => `ServiceRequest/${m.id}`).sort());
      expect(measures.every((m) => m.status === 'active' && m.category?.[0]?.coding?.[0]?.system === NO.snomed)).toBe(true);
    }
    const inhaler = ofPatient<ServiceRequest>('ServiceRequest', 'anne').find((m) => m.code?.text === 'Faste inhalasjonsmedisiner');
    expect(inhaler?.patientInstruction).toContain('Spiolto Respimat');
    expect(inhaler?.patientInstruction).toMatch(/^Ta de faste inhalasjonsmedisinene/); // the template's own text is kept
  });

  it('has a care team across levels on each plan: GP, municipality, hospital, relatives', () => {
    const team = (key: string) => {
      const cp = planOf(key);
      const ct = (all.get('CareTeam') as CareTeam[]).find((c) => `CareTeam/${c.id}` === cp.careTeam?.[0]?.reference) as CareTeam;
      expect(ct.subject?.reference).toBe(`Patient/${patientId.get(key)}`);
      return ct.participant?.map((p) => p.member?.display ?? '') ?? [];
    };
    for (const plan of DEMO_PLANS) expect(team(plan.patient)).toHaveLength(plan.careTeam.length);
    const eldar = team('eldar').join(' | ');
    for (const who of ['Kari Lindqvist', 'Ola Pedersen', 'Ingrid Solberg', 'Aisha Rahman', 'Sigrid Berg', 'Eldar Berg']) expect(eldar).toContain(who);
    expect(team('anne').join(' | ')).toContain('Hanne Nilsen');
  });

  it('has a few days of check-ins per plan, and a Flag and an open follow-up Task for the care team for each yellow one', () => {
    for (const plan of DEMO_PLANS) {
      const checkIns = ofPatient<Observation>('Observation', plan.patient).filter((o) => o.code?.coding?.[0]?.code === CHECK_IN_CODE.code);
      expect(checkIns, plan.patient).toHaveLength(plan.checkIns.length);
      expect(new Set(checkIns.map((o) => o.effectiveDateTime?.slice(0, 10))).size).toBeGreaterThanOrEqual(3);
      expect(checkIns.every((o) => o.basedOn?.[0]?.reference === `CarePlan/${planOf(plan.patient).id}` && Date.parse(o.effectiveDateTime as string) <= Date.now())).toBe(true);
    }
    const followUps = (all.get('Task') as Task[]).filter((x) => x.code?.coding?.[0]?.code === 'check-in-follow-up');
    expect(followUps.map((x) => x.for?.reference).sort()).toEqual([`Patient/${patientId.get('anne')}`, `Patient/${patientId.get('eldar')}`].sort());
    for (const task of followUps) {
      expect(task.status).toBe('requested');
      const cp = (all.get('CarePlan') as CarePlan[]).find((p) => `CarePlan/${p.id}` === task.basedOn?.[0]?.reference);
      expect(task.owner?.reference).toBe(cp?.careTeam?.[0]?.reference);
    }
    // Anne says green, but her oxygen saturation (89 %) is under the yellow zone's 90 %.
    const anne = ofPatient<Task>('Task', 'anne').find((x) => x.code?.coding?.[0]?.code === 'check-in-follow-up');
    expect(anne?.description).toContain('89 %');
    const flags = all.get('Flag') as Array<{ status: string; code: { coding: Array<{ system: string; code: string }> } }>;
    expect(flags.map((f) => [f.status, f.code.coding[0]?.system, f.code.coding[0]?.code])).toEqual([
      ['active', CODE_SYSTEM.flag, 'zone-yellow'],
      ['active', CODE_SYSTEM.flag, 'zone-yellow'],
    ]);
  });

  it('stores only valid resources (profiles and all), as the write pipeline checked them', () => {
    for (const [type, list] of all) {
      for (const r of list) {
        const issues = validateResource(r);
        expect(hasErrors(issues), `${type}/${r.id}: ${JSON.stringify(issues)}`).toBe(false);
      }
    }
  });

  it('records the people who did the work: the clinician on the plan, the patient (or parent) on their check-ins and consent', () => {
    const cp = planOf('anne');
    const gp = clinicianByKey('fastlege');
    expect(cp.meta?.tag).toContainEqual({ system: LAST_UPDATED_BY.hpr, code: gp.hpr, display: 'Kari Lindqvist' });
    const provenance = (all.get('Provenance') as Provenance[]).filter((p) => p.target.some((t) => t.reference?.startsWith(`CarePlan/${cp.id}/`)));
    expect(provenance.map((p) => p.agent[0]?.who?.identifier?.value)).toEqual([gp.hpr, gp.hpr]); // $apply, then filled in
    // Eldar's plan is the coordinator's.
    expect(planOf('eldar').meta?.tag).toContainEqual({ system: LAST_UPDATED_BY.hpr, code: clinicianByKey('koordinator').hpr, display: 'Ingrid Solberg' });
    for (const o of ofPatient<Observation>('Observation', 'lilly')) {
      expect(o.meta?.tag).toContainEqual({ system: LAST_UPDATED_BY.userType, code: 'REPRESENTATIVE', display: 'Representant' });
    }
    for (const c of ofPatient('Consent', 'anne')) expect(c.meta?.tag).toContainEqual({ system: LAST_UPDATED_BY.userType, code: 'CITIZEN', display: 'Innbygger' });
  });

  it('is not an access by anyone: the seed leaves no audit records', () => {
    expect(after.audit).toBe(0);
  });

  it('lets the GP find her patient\'s plan with POST CarePlan/_search, the national id in the header, and _include=*', async () => {
    const token = await clinicianToken(t, 'fastlege');
    const res = await t.request('POST', 'CarePlan/_search', {
      raw: '_include=*&status=active',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', ...nhnHeaders({ nin: citizenByKey('anne').pid }) },
    });
    expect(res.status, res.text).toBe(200);
    const entries = (res.body as Bundle).entry ?? [];
    const matches = entries.filter((e) => e.search?.mode === 'match').map((e) => e.resource as CarePlan);
    expect(matches.map((m) => m.id)).toEqual([planOf('anne').id]);
    const included = new Set(entries.filter((e) => e.search?.mode === 'include').map((e) => e.resource?.resourceType));
    for (const type of ['Patient', 'Condition', 'Goal', 'ServiceRequest', 'CareTeam']) expect(included).toContain(type);
    expect(res.text).not.toContain('fylles ut');
  });

  it('keeps the patients\' privacy settings: Anne\'s blocked clinician and Gunnar without consent get nothing', async () => {
    const blocked = await asClinician(t, 'vikarlege', 'GET', 'CarePlan', { patient: 'anne' });
    expect(blocked.status).toBe(403);
    expect(errorCode(blocked)).toBe('BLOCKED');
    const noConsent = await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'gunnar' });
    expect(noConsent.status).toBe(403);
    expect(errorCode(noConsent)).toBe('CONSENT_MISSING');
  });

  it('shows each citizen their published plan; a parent sees their child\'s, a proxy their giver\'s', async () => {
    for (const [who, actingFor, patient] of [
      ['anne', undefined, 'anne'],
      ['eldar', undefined, 'eldar'],
      ['marte', 'lilly', 'lilly'],
      ['hanne', 'anne', 'anne'],
    ] as const) {
      const res = await asCitizen(t, who, 'GET', 'CarePlan', actingFor ? { actingFor } : {});
      expect(res.status, res.text).toBe(200);
      const plans = resources<CarePlan>(res.body as Bundle);
      expect(plans.map((p) => [p.id, p.status]), who).toEqual([[planOf(patient).id, 'active']]);
      expect(plans[0]?.meta?.versionId).toBe(planOf(patient).meta?.versionId); // the published version is the latest
    }
    const goals = resources<Goal>((await asCitizen(t, 'anne', 'GET', 'Goal')).body as Bundle);
    expect(goals.map((g) => g.description.text)).toContain(DEMO_PLANS[0]?.ownGoal);
  });

  it('changes nothing when run again', async () => {
    const before = await footprint(t);
    const again = await seedDemoData(t.app.engine, settings);
    expect(again).toMatchObject({ seeded: false, patients: 0, plans: 0 });
    expect(await footprint(t)).toEqual(before);
  });
});

describe('when the seed cannot finish', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => t?.close());

  it('leaves nothing behind, and the next run makes all of it', async () => {
    // The last plan's template is retired, so $apply refuses it after four patients are made.
    const astma = TEMPLATES.find((x) => x.key === 'astma')?.planDefinition as PlanDefinition;
    const retire = await t.system('PUT', `PlanDefinition/${astma.id}`, { ...astma, status: 'retired' });
    expect(retire.status).toBe(200);
    const before = await footprint(t);
    await expect(seedDemoData(t.app.engine, settings)).rejects.toThrow(/applying the astma template for lilly was refused \(422\)/);
    expect(await footprint(t)).toEqual(before);
    // At start the failure is logged and the server goes on without demo data.
    const captured = capturedLogger();
    expect(await seedOnStart(t.app.engine, { ...settings, seedDemoData: true }, captured.logger)).toBeUndefined();
    expect(captured.lines.join('\n')).toContain('demo data could not be seeded');
    expect(await footprint(t)).toEqual(before);

    expect((await t.system('PUT', `PlanDefinition/${astma.id}`, astma)).status).toBe(200);
    const result = await seedDemoData(t.app.engine, settings);
    expect(result).toMatchObject({ seeded: true, patients: 6, plans: 5 });
    expect((await t.system<Bundle>('GET', 'CarePlan?status=active&_summary=count')).body.total).toBe(5);
    expect((await t.system<Bundle>('GET', 'Patient?_summary=count')).body.total).toBe(6);
  });
});

describe('a database with other patients', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => t?.close());

  it('gets no demo data', async () => {
    const created = await t.system('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Ekte' }] });
    expect(created.status).toBe(201);
    const before = await footprint(t);
    expect(await seedDemoData(t.app.engine, settings)).toMatchObject({ seeded: false, reason: 'the database already has patients' });
    expect(await footprint(t)).toEqual(before);
  });
});

describe('start-up (npm start: createApp, then seedOnStart)', () => {
  it('seeds an empty data directory once, logs it without national ids, and finds it done after a restart', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'samplan-seed-'));
    try {
      // The environment `npm start` has with no settings: embedded database in DATA_DIR.
      const config = loadConfig({ DATA_DIR: dataDir, BASE_URL: BASE, LOG_LEVEL: 'silent' });
      expect(config.databaseUrl).toBeUndefined();
      expect(config.seedDemoData).toBe(true);
      const captured = capturedLogger();
      let app = await createApp(config, pino({ level: 'silent' }), { delivery: false });
      let result: SeedResult | undefined;
      try {
        result = await seedOnStart(app.engine, config, captured.logger);
        const token = await app.idp!.issueAccessToken(app.idp!.clinicianClaims('fastlege'));
        const res = await app.server.inject({
          method: 'POST',
          url: '/fhir/CarePlan/_search',
          payload: 'status=active',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', ...nhnHeaders({ nin: citizenByKey('bjorn').pid }) },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect((JSON.parse(res.body) as Bundle).total).toBe(1);
      } finally {
        await app.close();
      }
      expect(result).toMatchObject({ seeded: true, patients: 6, plans: 5 });
      const log = captured.lines.join('\n');
      expect(log).toContain('demo data seeded');
      for (const person of [...DEMO_PLANS.map((p) => p.patient), 'gunnar']) expect(log).not.toContain(citizenByKey(person).pid);

      app = await createApp(config, pino({ level: 'silent' }), { delivery: false });
      try {
        expect(await seedOnStart(app.engine, config, captured.logger)).toMatchObject({ seeded: false });
        const patients = await app.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM resources WHERE type = 'Patient'`);
        expect(patients[0]?.n).toBe(6);
      } finally {
        await app.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('does nothing when SEED_DEMO_DATA is off, which is the default with DATABASE_URL', async () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://db.example/samplan' }).seedDemoData).toBe(false);
    expect(loadConfig({ DATABASE_URL: 'postgres://db.example/samplan', SEED_DEMO_DATA: 'true' }).seedDemoData).toBe(true);
    expect(loadConfig({ SEED_DEMO_DATA: 'false' }).seedDemoData).toBe(false);
    expect(() => loadConfig({ SEED_DEMO_DATA: 'sometimes' })).toThrow(/SEED_DEMO_DATA must be true or false/);
    const t = await startTestServer();
    try {
      expect(await seedOnStart(t.app.engine, { ...settings, seedDemoData: false }, pino({ level: 'silent' }))).toBeUndefined();
      expect((await t.system<Bundle>('GET', 'Patient?_summary=count')).body.total).toBe(0);
    } finally {
      await t.close();
    }
  });
});

describe('fillIn', () => {
  it('replaces the sentence that says «fylles ut», or removes it, and keeps the rest as it was', () => {
    const text = 'Ta medisinen hver dag. Navn og dose: fylles ut av legen. Skyll munnen.';
    expect(fillIn(text, 'Navn og dose: Flutide 50 mikrogram.')).toBe('Ta medisinen hver dag. Navn og dose: Flutide 50 mikrogram. Skyll munnen.');
    expect(fillIn(text, '')).toBe('Ta medisinen hver dag. Skyll munnen.');
    expect(fillIn('1 drag hvert 30.–60. sekund. Bruk kammer.', 'x')).toBe('1 drag hvert 30.–60. sekund. Bruk kammer.');
  });
});
