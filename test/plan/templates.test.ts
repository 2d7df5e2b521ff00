/**
 * The condition templates (src/plan/templates/): every PlanDefinition and ActivityDefinition is
 * valid R4 with Samplan's zone extension; each template has the codes, goals, measures and three
 * zones the plan model needs, with clinically sensible thresholds and a red zone that always
 * directs to emergency help; the zones are valid on a CarePlan (samplan-careplan); and installing
 * the templates is idempotent.
 */
import type { ActivityDefinition, Extension, PlanDefinition } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODE_SYSTEM as NO } from '../../src/no/codes.js';
import { EXTENSION, MEASURE_CATEGORIES, PATIENT_GOAL, PROFILE, SAMPLAN } from '../../src/plan/conventions.js';
import { registerSamplanProfiles } from '../../src/plan/profiles/index.js';
import { installTemplates, templateResources, TEMPLATES } from '../../src/plan/templates/index.js';
import { hasErrors, validateResource } from '../../src/fhir/validation/validator.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';

registerSamplanProfiles();

const sub = (ext: Extension, url: string) => (ext.extension ?? []).filter((e) => e.url === url);
const one = (ext: Extension, url: string) => sub(ext, url)[0];
const zonesOf = (pd: PlanDefinition) => (pd.extension ?? []).filter((e) => e.url === EXTENSION.zone);
const zone = (pd: PlanDefinition, level: string) => zonesOf(pd).find((z) => one(z, 'level')?.valueCode === level) as Extension;
const texts = (z: Extension, url: string) => sub(z, url).map((e) => e.valueString ?? '');
const thresholds = (z: Extension) =>
  sub(z, 'threshold').map((t) => ({
    code: one(t, 'measurement')?.valueCodeableConcept?.coding?.[0]?.code,
    comparator: one(t, 'comparator')?.valueCode,
    value: one(t, 'value')?.valueQuantity,
    percent: one(t, 'percentOfBaseline')?.valueDecimal,
    over: one(t, 'changeOver')?.valueDuration,
  }));
const contacts = (z: Extension) =>
  sub(z, 'contact').map((c) => ({ who: one(c, 'who')?.valueString ?? '', phone: one(c, 'phone')?.valueString, within: one(c, 'within')?.valueDuration }));
const template = (key: string) => TEMPLATES.find((t) => t.key === key)!;

describe('the templates', () => {
  it('are KOLS, astma, hjertesvikt and diabetes type 2', () => {
    expect(TEMPLATES.map((t) => t.planDefinition.id)).toEqual(['samplan-mal-kols', 'samplan-mal-astma', 'samplan-mal-hjertesvikt', 'samplan-mal-diabetes-type-2']);
  });

  it.each(templateResources().map((r) => [`${r.resourceType}/${r.id}`, r] as const))('%s is valid, without errors or warnings', (_name, resource) => {
    const issues = validateResource(resource);
    expect(issues, JSON.stringify(issues, null, 1)).toEqual([]);
  });

  it('have unique ids and canonical URLs under samplan.no', () => {
    const resources = templateResources();
    expect(new Set(resources.map((r) => r.id)).size).toBe(resources.length);
    expect(new Set(resources.map((r) => r.url)).size).toBe(resources.length);
    for (const r of resources) expect(r.url).toBe(`${SAMPLAN}/${r.resourceType}/${r.id}`);
  });

  describe.each(TEMPLATES.map((t) => [t.key, t] as const))('%s', (_key, t) => {
    const pd = t.planDefinition;

    it('is an active clinical protocol with a Norwegian title and description', () => {
      expect(pd.status).toBe('active');
      expect(pd.type?.coding?.[0]).toMatchObject({ system: 'http://terminology.hl7.org/CodeSystem/plan-definition-type', code: 'clinical-protocol' });
      expect(pd.title).toMatch(/^Behandlingsplan og egenbehandlingsplan ved /);
      expect(pd.description).toMatch(/Mal for en felles behandlingsplan/);
      expect(pd.purpose).toMatch(/^Planen hjelper deg/);
    });

    it('names its condition with ICD-10, ICPC-2 and SNOMED CT codes in topic and useContext', () => {
      for (const concept of [pd.topic?.[0], pd.useContext?.find((u) => u.code?.code === 'focus')?.valueCodeableConcept]) {
        const systems = concept?.coding?.map((c) => c.system);
        expect(systems).toEqual([NO.icd10, NO.icpc2, NO.snomed]);
        for (const c of concept?.coding ?? []) expect(c.display).toBeTruthy();
      }
    });

    it("has 2–4 goals, one of them the patient's own", () => {
      expect(pd.goal?.length).toBeGreaterThanOrEqual(2);
      expect(pd.goal?.length).toBeLessThanOrEqual(4);
      const own = pd.goal?.filter((g) => g.category?.coding?.some((c) => c.code === PATIENT_GOAL.code && c.system === PATIENT_GOAL.system)) ?? [];
      expect(own).toHaveLength(1);
      expect(own[0]?.description.text).toMatch(/^Hva er viktig for meg/);
    });

    it('has one action per measure, each an ActivityDefinition of the template', () => {
      const urls = t.activityDefinitions.map((a) => a.url);
      expect(pd.action?.map((a) => a.definitionCanonical)).toEqual(urls);
      const goalIds = new Set(pd.goal?.map((g) => g.id));
      for (const a of pd.action ?? []) for (const g of a.goalId ?? []) expect(goalIds.has(g)).toBe(true);
    });

    it('has measures with a category, a timing and a performer, covering medicines, measurements and activity', () => {
      const categories = new Set(MEASURE_CATEGORIES.map((c) => c.code));
      const used = new Set<string>();
      for (const ad of t.activityDefinitions as ActivityDefinition[]) {
        expect(ad).toMatchObject({ kind: 'ServiceRequest', intent: 'plan', status: 'active' });
        const code = ad.topic?.[0]?.coding?.[0];
        expect(code?.system).toBe(NO.snomed);
        expect(categories.has(code?.code as string)).toBe(true);
        used.add(code?.code as string);
        expect(ad.timingTiming?.code?.text).toBeTruthy();
        expect(ad.participant?.[0]?.type).toMatch(/^(patient|practitioner)$/);
        if (ad.participant?.[0]?.type === 'practitioner') expect(ad.participant[0].role?.text).toBeTruthy();
        expect(ad.description).toBeTruthy();
      }
      for (const needed of ['182832007', '122869004', '229064008']) expect(used.has(needed)).toBe(true);
      expect((t.activityDefinitions as ActivityDefinition[]).some((a) => a.participant?.[0]?.type === 'patient')).toBe(true);
      expect((t.activityDefinitions as ActivityDefinition[]).some((a) => a.participant?.[0]?.type === 'practitioner')).toBe(true);
    });

    it('has a green, a yellow and a red zone, each with a title in words, criteria, actions and contacts', () => {
      const zones = zonesOf(pd);
      expect(zones.map((z) => one(z, 'level')?.valueCode)).toEqual(['green', 'yellow', 'red']);
      const words = { green: /^Grønn sone – \S/, yellow: /^Gul sone – \S/, red: /^Rød sone – \S/ };
      for (const z of zones) {
        const level = one(z, 'level')?.valueCode as keyof typeof words;
        expect(one(z, 'title')?.valueString).toMatch(words[level]);
        expect(one(z, 'criteria')?.valueString).toBeTruthy();
        expect(texts(z, 'action').length).toBeGreaterThanOrEqual(3);
        expect(contacts(z).length).toBeGreaterThanOrEqual(1);
      }
    });

    it('sends the patient to the GP within a time limit in the yellow zone, and the legevakt when the GP is closed', () => {
      const yellow = zone(pd, 'yellow');
      expect(texts(yellow, 'symptom').length).toBeGreaterThanOrEqual(3);
      expect(one(yellow, 'emergency')?.valueBoolean).toBe(false);
      const list = contacts(yellow);
      expect(list.find((c) => /Fastlegen/.test(c.who))?.within).toMatchObject({ value: 24, code: 'h', system: 'http://unitsofmeasure.org' });
      expect(list.find((c) => c.phone === '116 117')?.who).toMatch(/^Legevakt/);
    });

    it('directs to emergency help in the red zone: emergency, Ring 113, at once', () => {
      const red = zone(pd, 'red');
      expect(one(red, 'emergency')?.valueBoolean).toBe(true);
      expect(one(red, 'title')?.valueString).toMatch(/^Rød sone – /);
      expect(texts(red, 'symptom').length).toBeGreaterThanOrEqual(3);
      expect(texts(red, 'action').join(' ')).toMatch(/113/);
      expect(contacts(red)[0]).toMatchObject({ phone: '113', within: { value: 0, code: 'min' } });
      // No daytime service in red: only 113 and the legevakt.
      for (const c of contacts(red)) expect(['113', '116 117']).toContain(c.phone);
    });

    it('gives zones that are valid on a CarePlan (samplan-careplan, spl-zone-1..4)', () => {
      const carePlan = {
        resourceType: 'CarePlan',
        meta: { profile: [PROFILE.carePlan] },
        extension: zonesOf(pd),
        status: 'draft',
        intent: 'plan',
        title: pd.title,
        subject: { reference: 'Patient/p1' },
      };
      const issues = validateResource(carePlan);
      expect(hasErrors(issues), JSON.stringify(issues, null, 1)).toBe(false);
    });
  });

  it('KOLS: more breathless or changed sputum → rescue pack (prednisolon, antibiotika) and the GP within 24 h; SpO2 limits', () => {
    const pd = template('kols').planDefinition;
    const yellow = zone(pd, 'yellow');
    expect(texts(yellow, 'symptom').join(' ')).toMatch(/mer tungpustet/);
    expect(texts(yellow, 'symptom').join(' ')).toMatch(/skiftet farge/);
    expect(texts(yellow, 'medication').join(' ')).toMatch(/Prednisolon/);
    expect(texts(yellow, 'medication').join(' ')).toMatch(/Antibiotika/);
    expect(thresholds(yellow)).toEqual([{ code: '59408-5', comparator: '<', value: expect.objectContaining({ value: 90, code: '%' }), percent: undefined, over: undefined }]);
    expect(thresholds(zone(pd, 'red'))[0]).toMatchObject({ code: '59408-5', comparator: '<', value: { value: 85 } });
    expect(texts(zone(pd, 'red'), 'symptom').join(' ')).toMatch(/hele setninger/);
  });

  it('astma: yellow below 80 % and red below 50 % of the personal best peak flow', () => {
    const pd = template('astma').planDefinition;
    expect(thresholds(zone(pd, 'green'))).toEqual([expect.objectContaining({ code: '19935-6', comparator: '>=', percent: 80 })]);
    expect(thresholds(zone(pd, 'yellow'))).toEqual([expect.objectContaining({ code: '19935-6', comparator: '<', percent: 80 })]);
    expect(thresholds(zone(pd, 'red'))).toEqual([expect.objectContaining({ code: '19935-6', comparator: '<', percent: 50 })]);
    expect(texts(zone(pd, 'red'), 'symptom').join(' ')).toMatch(/oftere enn hver 4\. time/);
  });

  it('hjertesvikt: weight up more than 2 kg over 3 days → extra diuretic as agreed', () => {
    const pd = template('hjertesvikt').planDefinition;
    const yellow = zone(pd, 'yellow');
    expect(thresholds(yellow)).toEqual([
      { code: '29463-7', comparator: '>', value: expect.objectContaining({ value: 2, code: 'kg' }), percent: undefined, over: expect.objectContaining({ value: 3, code: 'd' }) },
    ]);
    expect(texts(yellow, 'medication').join(' ')).toMatch(/vanndrivende/);
    expect(template('hjertesvikt').activityDefinitions.find((a) => a.id === 'samplan-mal-hjertesvikt-veiing')?.timingTiming?.repeat).toMatchObject({ when: ['MORN'] });
  });

  it('diabetes type 2: above 15 or below 4 mmol/L, sick-day rules; red above 20 mmol/L with 113 and the legevakt', () => {
    const pd = template('diabetes-type-2').planDefinition;
    const yellow = zone(pd, 'yellow');
    expect(thresholds(yellow).map((x) => [x.code, x.comparator, x.value?.value, x.value?.code])).toEqual([
      ['14743-9', '>', 15, 'mmol/L'],
      ['14743-9', '<', 4, 'mmol/L'],
    ]);
    expect(texts(yellow, 'medication').join(' ')).toMatch(/Sykedagsregler/);
    expect(texts(yellow, 'action').join(' ')).toMatch(/15 minutter/);
    const red = zone(pd, 'red');
    expect(thresholds(red)[0]).toMatchObject({ code: '14743-9', comparator: '>', value: { value: 20 } });
    expect(contacts(red).map((c) => c.phone)).toEqual(['113', '116 117']);
    expect(pd.goal?.find((g) => g.id === 'hba1c')?.target?.[0]).toMatchObject({ detailRange: { high: { value: 53, code: 'mmol/mol' } }, due: { value: 6, code: 'mo' } });
  });
});

describe('installTemplates', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
    // The app installs them at start; this installs them (again) either way.
    await installTemplates(t.app.engine, BASE);
  });
  afterAll(async () => t?.close());

  const versions = async () => {
    const out: Record<string, string> = {};
    for (const r of templateResources()) {
      const res = await t.system('GET', `${r.resourceType}/${r.id}`);
      expect(res.status).toBe(200);
      out[`${r.resourceType}/${r.id}`] = res.body.meta.versionId as string;
    }
    return out;
  };

  it('stores every template resource, readable by id and findable by diagnosis code', async () => {
    const before = await versions();
    expect(Object.keys(before)).toHaveLength(templateResources().length);
    const byCode = await t.system('GET', `PlanDefinition?topic=${encodeURIComponent(`${NO.icd10}|J44`)}`);
    expect(byCode.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(['samplan-mal-kols']);
    const byIcpc = await t.system('GET', `PlanDefinition?context=${encodeURIComponent(`${NO.icpc2}|K77`)}`);
    expect(byIcpc.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(['samplan-mal-hjertesvikt']);
  });

  it('is idempotent: running it again makes no new versions', async () => {
    const before = await versions();
    await installTemplates(t.app.engine, BASE);
    await installTemplates(t.app.engine, BASE);
    expect(await versions()).toEqual(before);
    const history = await t.system('GET', 'PlanDefinition/samplan-mal-astma/_history');
    expect(history.body.total ?? history.body.entry.length).toBe(Number(before['PlanDefinition/samplan-mal-astma']));
  });

  it('puts a changed template back, as one new version', async () => {
    const stored = (await t.system('GET', 'PlanDefinition/samplan-mal-kols')).body;
    const changed = await t.system('PUT', 'PlanDefinition/samplan-mal-kols', { ...stored, title: 'Endret lokalt' });
    expect(changed.status).toBe(200);
    const changedVersion = Number(changed.body.meta.versionId);
    await installTemplates(t.app.engine, BASE);
    const restored = (await t.system('GET', 'PlanDefinition/samplan-mal-kols')).body;
    expect(restored.title).toBe(template('kols').planDefinition.title);
    expect(Number(restored.meta.versionId)).toBe(changedVersion + 1);
  });
});
