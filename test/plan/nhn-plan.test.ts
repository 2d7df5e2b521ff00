/**
 * The mapping between Samplan's plan and NHN's zone-based plan JSON (src/plan/nhn-plan.ts), and
 * `CarePlan/{id}/$nhn-plan`:
 * - the NHN shape exactly as the reference gives it (clinical_content {title, description?, zones
 *   [{condition, action, level}]}), nothing else in it;
 * - both round trips lossless, for every template's zones, hand-made edge cases, and generated
 *   plans and NHN contents (seeded, so a failure can be replayed);
 * - a changed half of a zone replaces that half's structure and keeps the other;
 * - through the real server with real tokens: NHN JSON out (application/json, ETag) and in
 *   (version / If-Match, comment → Provenance, the plan rules of the one write pipeline), bad input
 *   as OperationOutcomes pointing at the NHN field, and the access rules (published version for the
 *   patient, nothing for a clinician of another patient, read scope cannot write).
 */
import type { CarePlan, Extension, OperationOutcome, Provenance } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODE_SYSTEM } from '../../src/fhir/outcomes.js';
import { hasErrors, validateResource } from '../../src/fhir/validation/validator.js';
import { citizenByKey, clinicianByKey } from '../../src/demo/population.js';
import { EXTENSION, PROFILE, ZONE_LEVELS, type ZoneLevel } from '../../src/plan/conventions.js';
import {
  actionText,
  conditionText,
  directsToEmergency,
  fromNhn,
  type NhnClinicalContent,
  parseClinicalContent,
  parseUpdate,
  toNhn,
} from '../../src/plan/nhn-plan.js';
import { registerSamplanProfiles } from '../../src/plan/profiles/index.js';
import { TEMPLATES } from '../../src/plan/templates/index.js';
import { startTestServer, type TestResponse, type TestServer } from '../support/app.js';
import { asCitizen, asClinician, citizenToken, clinicianToken, machineToken, nhnHeaders, seedPatient } from '../support/security.js';
import { auditTrail } from '../support/audit.js';

registerSamplanProfiles();

const zonesOf = (plan: CarePlan) => (plan.extension ?? []).filter((e) => e.url === EXTENSION.zone);
const sub = (zone: Extension | undefined, url: string) => (zone?.extension ?? []).filter((e) => e.url === url);
const zoneAt = (plan: CarePlan, level: ZoneLevel) => zonesOf(plan).find((z) => sub(z, 'level')[0]?.valueCode === level);
const plan = (extension: Extension[] = [], extra: Partial<CarePlan> = {}): CarePlan => ({
  resourceType: 'CarePlan',
  meta: { profile: [PROFILE.carePlan] },
  status: 'active',
  intent: 'plan',
  title: 'Behandlingsplan',
  subject: { reference: 'Patient/p1' },
  ...(extension.length ? { extension } : {}),
  ...extra,
});
const str = (url: string, valueString: string): Extension => ({ url, valueString });
const zone = (level: ZoneLevel, ...parts: Extension[]): Extension => ({ url: EXTENSION.zone, extension: [{ url: 'level', valueCode: level }, ...parts] });
const errorsOf = (r: CarePlan) => validateResource(r).filter((i) => i.severity === 'error');
const KOLS = TEMPLATES.find((t) => t.key === 'kols')!;
const templatePlan = (t: (typeof TEMPLATES)[number]) =>
  plan(t.planDefinition.extension ?? [], { title: t.planDefinition.title as string, description: t.planDefinition.purpose as string });

// ---------------------------------------------------------------------------------------------
// Generated zones and contents: a small seeded generator (mulberry32), so failures replay.

function rng(seed: number) {
  let a = seed;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const WORDS = [
    'Pusten', 'er', 'tyngre', 'enn', 'vanlig', 'ring', '113', 'legevakt', 'fastlegen', 'innen', '24', 'timer', 'Åse', 'ærlig', 'økt',
    'slim', '😷', 'Ŋ', 'عربى', '漢字', 'e\u0301', '"sitat"', 'a\\b', '; ', 'Kontakt', 'tlf.', 'under', '90 %', 'av personlig beste verdi', '\t',
  ];
  const sentence = () => {
    const words = Array.from({ length: 1 + int(8) }, () => pick(WORDS)).join(pick([' ', ' ', '\n', '']));
    // Leading or trailing space is valid FHIR and must survive; whitespace only is not content.
    const s = pick(['', ' ']) + words + pick(['', '', '.', ' ']);
    return s.trim() === '' ? 'Tekst' : s;
  };
  return { next, int, pick, sentence };
}

type Gen = ReturnType<typeof rng>;

function genQuantity(g: Gen) {
  return g.pick([
    { value: g.int(200), unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
    { value: g.int(30) / 2, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
    { value: 2, unit: 'kg' },
    { value: 0.5 },
  ]);
}

function genZone(g: Gen, level: ZoneLevel): Extension {
  const parts: Extension[] = [{ url: 'level', valueCode: level }];
  if (g.next() < 0.5) parts.push(str('title', g.sentence()));
  const condition: Extension[] = [];
  if (g.next() < 0.7) condition.push(str('criteria', g.sentence()));
  for (let i = g.int(4); i > 0; i--) condition.push(str('symptom', g.sentence()));
  for (let i = g.int(3); i > 0; i--) {
    const kind = g.int(3);
    condition.push({
      url: 'threshold',
      extension: [
        { url: 'measurement', valueCodeableConcept: g.pick([{ text: g.sentence() }, { coding: [{ system: 'http://loinc.org', code: '19935-6', display: 'Peak flow' }] }, { coding: [{ code: 'x' }] }]) },
        { url: 'comparator', valueCode: g.pick(['<', '<=', '>', '>=']) },
        ...(kind === 0 ? [{ url: 'value', valueQuantity: genQuantity(g) }] : []),
        ...(kind === 1 ? [{ url: 'percentOfBaseline', valueDecimal: g.pick([80, 50, 62.5]) }, ...(g.next() < 0.5 ? [{ url: 'baseline', valueQuantity: genQuantity(g) }] : [])] : []),
        ...(kind === 2 ? [{ url: 'value', valueQuantity: genQuantity(g) }, { url: 'changeOver', valueDuration: { value: 1 + g.int(7), unit: 'døgn', system: 'http://unitsofmeasure.org', code: 'd' } }] : []),
      ],
    });
  }
  if (!condition.length) condition.push(str('criteria', g.sentence()));
  const action: Extension[] = [];
  for (let i = 1 + g.int(4); i > 0; i--) action.push(str('action', g.sentence()));
  for (let i = g.int(3); i > 0; i--) action.push(str('medication', g.sentence()));
  for (let i = g.int(3); i > 0; i--) {
    action.push({
      url: 'contact',
      extension: [
        g.next() < 0.8 ? str('who', g.sentence()) : { url: 'who', valueReference: { reference: 'PractitionerRole/x', display: g.sentence() } },
        ...(g.next() < 0.5 ? [str('phone', g.pick(['113', '116 117', '+47 77 00 10 00']))] : []),
        ...(g.next() < 0.5 ? [{ url: 'within', valueDuration: { value: g.pick([0, 1, 24, 48]), unit: g.pick(['timer', 'minutter (straks)']), system: 'http://unitsofmeasure.org', code: 'h' } }] : []),
      ],
    });
  }
  if (level === 'red') action.push({ url: 'emergency', valueBoolean: true });
  else if (g.next() < 0.3) action.push({ url: 'emergency', valueBoolean: false });
  return { url: EXTENSION.zone, extension: [...parts, ...condition, ...action] };
}

function genPlan(g: Gen): CarePlan {
  const levels = ZONE_LEVELS.filter(() => g.next() < 0.8);
  const zones = levels.map((l) => genZone(g, l));
  if (g.next() < 0.3) zones.reverse();
  const other: Extension = { url: 'https://example.org/fhir/StructureDefinition/other', valueString: g.sentence() };
  const extension = g.next() < 0.3 ? [...zones.slice(0, 1), other, ...zones.slice(1)] : zones;
  return plan(extension, { title: g.sentence(), ...(g.next() < 0.6 ? { description: g.sentence() } : {}) });
}

function genContent(g: Gen): NhnClinicalContent {
  const levels = ZONE_LEVELS.filter(() => g.next() < 0.8);
  return {
    title: g.sentence(),
    ...(g.next() < 0.6 ? { description: g.sentence() } : {}),
    zones: levels.map((level) => ({ condition: g.sentence(), action: g.sentence(), level })),
  };
}

// ---------------------------------------------------------------------------------------------

describe('the NHN shape', () => {
  const nhn = toNhn(templatePlan(KOLS));

  it('is clinical_content {title, description, zones[{condition, action, level}]} and nothing more', () => {
    expect(Object.keys(nhn).sort()).toEqual(['description', 'title', 'zones']);
    for (const z of nhn.zones) expect(Object.keys(z).sort()).toEqual(['action', 'condition', 'level']);
    expect(nhn.zones.map((z) => z.level)).toEqual(['green', 'yellow', 'red']);
    expect(nhn.title).toBe(KOLS.planDefinition.title);
  });

  it('writes every part of a zone out in words, one per line', () => {
    const yellow = nhn.zones[1]!;
    expect(yellow.condition.split('\n')[0]).toMatch(/^Du er tydelig verre enn vanlig/);
    expect(yellow.condition).toContain('Slimet har skiftet farge (gult, grønt eller brunt)');
    expect(yellow.condition.split('\n').at(-1)).toBe('Oksygenmetning (SpO2) under 90 %');
    expect(yellow.action).toContain('Prednisolon (kortisontabletter) fra beredskapspakken');
    expect(yellow.action).toContain('Kontakt Fastlegen – si fra at du har startet med beredskapspakken, innen 24 timer');
    expect(yellow.action).toContain('Kontakt Legevakt – når fastlegen er stengt og du blir verre, tlf. 116 117, innen 24 timer');
    expect(nhn.zones[2]!.action.split('\n').at(-1)).toBe('Kontakt Medisinsk nødtelefon – ring 113 med en gang, tlf. 113, straks');
  });

  it('writes thresholds absolute, relative to the personal best, and as a change over time', () => {
    const t = (...parts: Extension[]) => conditionText(zone('yellow', { url: 'threshold', extension: parts }));
    const pef = { url: 'measurement', valueCodeableConcept: { text: 'PEF' } };
    expect(t(pef, { url: 'comparator', valueCode: '<' }, { url: 'value', valueQuantity: { value: 7.5, unit: 'mmol/L' } })).toBe('PEF under 7,5 mmol/L');
    expect(t(pef, { url: 'comparator', valueCode: '<' }, { url: 'percentOfBaseline', valueDecimal: 80 })).toBe('PEF under 80 % av personlig beste verdi');
    expect(t(pef, { url: 'comparator', valueCode: '>=' }, { url: 'percentOfBaseline', valueDecimal: 50 }, { url: 'baseline', valueQuantity: { value: 450, unit: 'L/min' } })).toBe(
      'PEF minst 50 % av personlig beste verdi (450 L/min)',
    );
    expect(
      t({ url: 'measurement', valueCodeableConcept: { coding: [{ display: 'Vekt' }] } }, { url: 'comparator', valueCode: '>' }, { url: 'value', valueQuantity: { value: 2, code: 'kg' } }, {
        url: 'changeOver',
        valueDuration: { value: 3, unit: 'døgn' },
      }),
    ).toBe('Vekt endret over 2 kg på 3 døgn');
  });

  it('reads a zone of criteria and one action as exactly those texts', () => {
    const z = zone('green', str('criteria', 'Som vanlig'), str('action', 'Fortsett'));
    expect([conditionText(z), actionText(z)]).toEqual(['Som vanlig', 'Fortsett']);
  });
});

describe('round trips', () => {
  const samplanRoundTrip = (p: CarePlan) => fromNhn(toNhn(p), p);
  const nhnRoundTrip = (c: NhnClinicalContent, context: CarePlan) => toNhn(fromNhn(c, context));

  describe.each(TEMPLATES.map((t) => [t.key, t] as const))('the %s template', (_key, template) => {
    const p = templatePlan(template);

    it('Samplan → NHN → Samplan gives back the same zones and the same plan', () => {
      const back = samplanRoundTrip(p);
      expect(zonesOf(back)).toStrictEqual(zonesOf(p));
      expect(back).toStrictEqual(p);
    });

    it('NHN → Samplan → NHN gives back the same JSON, with and without the structured plan behind it', () => {
      const nhn = toNhn(p);
      expect(nhnRoundTrip(nhn, p)).toStrictEqual(nhn);
      expect(nhnRoundTrip(nhn, plan())).toStrictEqual(nhn);
    });

    it('imported into a plan without zones, the content is a valid plan whose red zone directs to emergency help', () => {
      const imported = fromNhn(toNhn(p), plan());
      expect(errorsOf(imported)).toEqual([]);
      expect(sub(zoneAt(imported, 'red'), 'emergency')[0]?.valueBoolean).toBe(true);
    });
  });

  const edgeCases: Array<[string, CarePlan]> = [
    ['criteria text only', plan([zone('green', str('criteria', 'Som vanlig'), str('action', 'Fortsett som før'))])],
    [
      'thresholds absolute, relative to baseline and as a change over time',
      plan([
        zone(
          'yellow',
          { url: 'threshold', extension: [{ url: 'measurement', valueCodeableConcept: { text: 'SpO2' } }, { url: 'comparator', valueCode: '<' }, { url: 'value', valueQuantity: { value: 90, unit: '%' } }] },
          {
            url: 'threshold',
            extension: [
              { url: 'measurement', valueCodeableConcept: { text: 'PEF' } },
              { url: 'comparator', valueCode: '<' },
              { url: 'percentOfBaseline', valueDecimal: 80 },
              { url: 'baseline', valueQuantity: { value: 450, unit: 'L/min' } },
            ],
          },
          {
            url: 'threshold',
            extension: [
              { url: 'measurement', valueCodeableConcept: { text: 'Vekt' } },
              { url: 'comparator', valueCode: '>' },
              { url: 'value', valueQuantity: { value: 2, unit: 'kg' } },
              { url: 'changeOver', valueDuration: { value: 3, unit: 'døgn' } },
            ],
          },
          str('action', 'Ring fastlegen'),
        ),
      ]),
    ],
    ['medication', plan([zone('yellow', str('criteria', 'Verre'), str('action', 'Start beredskapspakken'), str('medication', 'Prednisolon 40 mg i 5 dager'), str('medication', 'Amoksicillin'))])],
    [
      'contacts with phone, within-duration, straks and a reference',
      plan([
        zone(
          'red',
          str('symptom', 'Svært tungpustet'),
          str('action', 'Ring 113'),
          { url: 'contact', extension: [str('who', 'Medisinsk nødtelefon'), str('phone', '113'), { url: 'within', valueDuration: { value: 0, unit: 'minutter' } }] },
          { url: 'contact', extension: [{ url: 'who', valueReference: { reference: 'CareTeam/t', display: 'Hjemmesykepleien' } }, { url: 'within', valueDuration: { value: 2, unit: 'timer' } }] },
          { url: 'emergency', valueBoolean: true },
        ),
      ]),
    ],
    ['missing description', plan([zone('green', str('criteria', 'Bra'), str('action', 'Fortsett'))], {})],
    ['a description', plan([], { description: 'Oddfrid ønsker å kunna gå turar med barnebarna igjen' })],
    ['unicode', plan([zone('green', str('title', 'Grønn 🟢'), str('criteria', 'Ŋ ærlig Åse 漢字 عربى e\u0301'), str('action', '«sitat» \\ "x"\n\tneste linje'))], { title: 'Plan – æøå' })],
    ['an empty zones list', plan()],
    ['parts in another order than the profile lists them', plan([zone('yellow', str('action', 'Ring fastlegen'), { url: 'emergency', valueBoolean: false }, str('criteria', 'Verre'), str('title', 'Gul'), str('symptom', 'Hoste'))])],
    ['zones out of order, between other extensions', plan([{ url: 'https://example.org/a', valueString: 'a' }, zone('red', str('criteria', 'Fare'), str('action', 'Ring 113'), { url: 'emergency', valueBoolean: true }), { url: 'https://example.org/b', valueString: 'b' }, zone('green', str('criteria', 'Bra'), str('action', 'Fortsett'))])],
  ];

  it.each(edgeCases)('%s: both ways', (_name, p) => {
    expect(samplanRoundTrip(p)).toStrictEqual(p);
    const nhn = toNhn(p);
    expect(nhnRoundTrip(nhn, p)).toStrictEqual(nhn);
    expect(nhnRoundTrip(nhn, plan())).toStrictEqual(nhn);
  });

  it('an empty zones list is zones: [] in NHN and no zone extension in Samplan', () => {
    expect(toNhn(plan()).zones).toEqual([]);
    expect(fromNhn({ title: 'T', zones: [] }, templatePlan(KOLS)).extension).toBeUndefined();
  });

  it('generated plans: Samplan → NHN → Samplan gives back the same zones (1000 plans)', () => {
    const g = rng(20261126);
    for (let i = 0; i < 1000; i++) {
      const p = genPlan(g);
      const back = samplanRoundTrip(p);
      expect(zonesOf(back), `plan ${i}`).toStrictEqual(zonesOf(p));
      expect(back, `plan ${i}`).toStrictEqual(p);
    }
  });

  it('generated NHN contents: NHN → Samplan → NHN gives back the same JSON, whatever plan it lands on (1000 contents)', () => {
    const g = rng(4711);
    for (let i = 0; i < 1000; i++) {
      const content = genContent(g);
      const context = g.next() < 0.5 ? genPlan(g) : plan();
      expect(nhnRoundTrip(content, context), `content ${i}`).toStrictEqual(content);
    }
  });

  it('generated edits: an NHN client changing some halves of a plan still gets back exactly what it sent', () => {
    const g = rng(99);
    for (let i = 0; i < 500; i++) {
      const p = genPlan(g);
      const nhn = toNhn(p);
      const edited: NhnClinicalContent = {
        ...nhn,
        zones: nhn.zones.map((z) => ({ ...z, ...(g.next() < 0.3 ? { condition: g.sentence() } : {}), ...(g.next() < 0.3 ? { action: g.sentence() } : {}) })),
      };
      const applied = fromNhn(edited, p);
      expect(toNhn(applied), `edit ${i}`).toStrictEqual(edited);
      // A zone whose two texts are unchanged is the stored zone itself.
      edited.zones.forEach((z, k) => {
        if (z.condition === nhn.zones[k]!.condition && z.action === nhn.zones[k]!.action) expect(zoneAt(applied, z.level)).toStrictEqual(zoneAt(p, z.level));
      });
    }
  });
});

describe('changes from NHN', () => {
  const kols = templatePlan(KOLS);
  const nhn = toNhn(kols);
  const yellowBefore = zoneAt(kols, 'yellow')!;

  it('a changed condition replaces symptoms and thresholds with the text, and keeps the action, medication, contacts and heading', () => {
    const changed = fromNhn({ ...nhn, zones: nhn.zones.map((z) => (z.level === 'yellow' ? { ...z, condition: 'Oksygenmetning under 88 %' } : z)) }, kols);
    const yellow = zoneAt(changed, 'yellow')!;
    expect(sub(yellow, 'criteria').map((e) => e.valueString)).toEqual(['Oksygenmetning under 88 %']);
    expect(sub(yellow, 'symptom')).toEqual([]);
    expect(sub(yellow, 'threshold')).toEqual([]);
    for (const kept of ['title', 'action', 'medication', 'contact', 'emergency']) expect(sub(yellow, kept), kept).toStrictEqual(sub(yellowBefore, kept));
    expect(zoneAt(changed, 'green')).toStrictEqual(zoneAt(kols, 'green'));
    expect(errorsOf(changed)).toEqual([]);
  });

  it('a changed action replaces actions, medication and contacts, and keeps symptoms and thresholds', () => {
    const changed = fromNhn({ ...nhn, zones: nhn.zones.map((z) => (z.level === 'yellow' ? { ...z, action: 'Ring fastlegen i dag' } : z)) }, kols);
    const yellow = zoneAt(changed, 'yellow')!;
    expect(sub(yellow, 'action').map((e) => e.valueString)).toEqual(['Ring fastlegen i dag']);
    expect(sub(yellow, 'medication')).toEqual([]);
    expect(sub(yellow, 'contact')).toEqual([]);
    expect(sub(yellow, 'threshold')).toStrictEqual(sub(yellowBefore, 'threshold'));
    expect(sub(yellow, 'symptom')).toStrictEqual(sub(yellowBefore, 'symptom'));
    expect(yellow.extension?.map((e) => e.url)).toEqual(['level', 'title', 'criteria', ...sub(yellowBefore, 'symptom').map(() => 'symptom'), 'threshold', 'action']);
  });

  it('a red zone whose new action directs to 113 gets the emergency flag; one that does not is refused by the plan rule (spl-zone-2)', () => {
    const red = (action: string) => fromNhn({ ...nhn, zones: nhn.zones.map((z) => (z.level === 'red' ? { ...z, action } : z)) }, kols);
    expect(sub(zoneAt(red('Ring nødetatene umiddelbart'), 'red'), 'emergency')).toEqual([{ url: 'emergency', valueBoolean: true }]);
    const refused = red('Ring fastlegen i morgen');
    expect(sub(zoneAt(refused, 'red'), 'emergency')).toEqual([]);
    expect(errorsOf(refused).map((i) => i.details?.text)).toEqual([expect.stringContaining('spl-zone-2')]);
  });

  it('recognises emergency direction by 113, 116 117, legevakt, AMK and nødetatene only', () => {
    for (const yes of ['Ring 113', 'Ring 113.', '113', 'Ring legevakten', 'Legevakt 116 117', 'ring 116117', 'Ring nødetatene umiddelbart', 'Kontakt AMK', 'Ring nødtelefonen']) expect(directsToEmergency(yes), yes).toBe(true);
    for (const no of ['Ring fastlegen', 'Ring 1130', 'Ring 11 3', 'Tlf. 22113344', 'AMKA']) expect(directsToEmergency(no), no).toBe(false);
  });

  it('duplicate levels are refused by the plan rule (spl-zone-1), not by the mapping', () => {
    const twice = fromNhn({ title: 'T', zones: [{ level: 'green', condition: 'a', action: 'b' }, { level: 'green', condition: 'c', action: 'd' }] }, plan());
    expect(errorsOf(twice).map((i) => i.details?.text)).toEqual([expect.stringContaining('spl-zone-1')]);
  });

  it('title and description come from NHN; no description in NHN means none in the plan', () => {
    const changed = fromNhn({ title: 'Ny tittel', zones: [] }, kols);
    expect(changed.title).toBe('Ny tittel');
    expect(changed).not.toHaveProperty('description');
    expect(changed.subject).toEqual(kols.subject);
  });
});

describe('reading NHN JSON', () => {
  const bad = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      const o = (err as { outcome: OperationOutcome; status: number }).outcome;
      return { status: (err as { status: number }).status, text: o.issue[0]?.details?.text, expression: o.issue[0]?.expression?.[0] };
    }
    throw new Error('expected a refusal');
  };

  it('accepts the reference shape and keeps it as it is', () => {
    const content = { title: 'Astma', description: 'Mål', zones: [{ condition: '> 80 %', action: 'Fortsett', level: 'green' }] };
    expect(parseClinicalContent(content)).toStrictEqual(content);
    expect(parseUpdate({ version: 3, comment: 'Justert', status: 'active', updated_by: { hpr_number: '1' }, clinical_content: content })).toStrictEqual({
      version: 3,
      comment: 'Justert',
      status: 'active',
      clinical_content: content,
    });
  });

  it.each([
    ['not an object', [], 'clinical_content'],
    ['no title', { zones: [] }, 'clinical_content.title'],
    ['an empty title', { title: ' ', zones: [] }, 'clinical_content.title'],
    ['an empty description', { title: 'T', description: '', zones: [] }, 'clinical_content.description'],
    ['no zones', { title: 'T' }, 'clinical_content.zones'],
    ['zones not a list', { title: 'T', zones: {} }, 'clinical_content.zones'],
    ['a zone not an object', { title: 'T', zones: ['green'] }, 'clinical_content.zones[0]'],
    ['an unknown level', { title: 'T', zones: [{ condition: 'a', action: 'b', level: 'orange' }] }, 'clinical_content.zones[0].level'],
    ['a missing level', { title: 'T', zones: [{ condition: 'a', action: 'b' }] }, 'clinical_content.zones[0].level'],
    ['a missing action', { title: 'T', zones: [{ condition: 'a', level: 'red' }] }, 'clinical_content.zones[0].action'],
    ['a condition not a string', { title: 'T', zones: [{ condition: 5, action: 'b', level: 'red' }] }, 'clinical_content.zones[0].condition'],
    ['an unknown zone field', { title: 'T', zones: [{ condition: 'a', action: 'b', level: 'red', samplan_zone: {} }] }, 'clinical_content.zones[0].samplan_zone'],
    ['an unknown content field', { title: 'T', personal_goals: 'x', zones: [] }, 'clinical_content.personal_goals'],
  ])('refuses %s (400, pointing at the field)', (_name, content, expression) => {
    const r = bad(() => parseClinicalContent(content));
    expect(r.status).toBe(400);
    expect(r.expression).toBe(expression);
  });

  it.each([
    ['a body that is not an object', 'x', undefined],
    ['no clinical_content', { version: 1 }, 'clinical_content'],
    ['a version that is not a whole number', { version: '3', clinical_content: { title: 'T', zones: [] } }, 'version'],
    ['an unknown field', { version: 1, subject: { nin: 'x' }, clinical_content: { title: 'T', zones: [] } }, 'subject'],
    ['an empty comment', { version: 1, comment: '', clinical_content: { title: 'T', zones: [] } }, 'comment'],
    // The comment becomes the reason in the Provenance the server writes unvalidated.
    ['a comment with HTML', { version: 1, comment: 'se <script>alert(1)</script>', clinical_content: { title: 'T', zones: [] } }, 'comment'],
    ['a comment with control characters', { version: 1, comment: 'bell \u0007', clinical_content: { title: 'T', zones: [] } }, 'comment'],
    ['a comment of more than 1000 characters', { version: 1, comment: 'x'.repeat(1001), clinical_content: { title: 'T', zones: [] } }, 'comment'],
  ])('refuses an update with %s', (_name, body, expression) => {
    const r = bad(() => parseUpdate(body));
    expect(r.status).toBe(400);
    expect(r.expression).toBe(expression);
  });
});

// ---------------------------------------------------------------------------------------------
// Through the server, with real tokens

const errorCode = (res: TestResponse) =>
  (res.body.issue as OperationOutcome['issue'])?.find((i) => i.severity === 'error')?.details?.coding?.find((c) => c.system === ERROR_CODE_SYSTEM)?.code;

describe('CarePlan/{id}/$nhn-plan', () => {
  let t: TestServer;
  let anne: string;
  let bjorn: string;
  let planId: string;
  let bjornPlan: string;

  const send = async (method: string, body: unknown, options: { clinician?: string; patient?: string; headers?: Record<string, string>; raw?: string; scope?: string; id?: string } = {}) => {
    const token = await clinicianToken(t, options.clinician ?? 'fastlege', options.scope ? { scope: options.scope } : {});
    return t.request(method, `CarePlan/${options.id ?? planId}/$nhn-plan`, {
      ...(body !== undefined ? { body } : {}),
      ...(options.raw !== undefined ? { raw: options.raw } : {}),
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        ...nhnHeaders({ nin: citizenByKey(options.patient ?? 'anne').pid }),
        ...(options.headers ?? {}),
      },
    });
  };
  const get = (options: Parameters<typeof send>[2] = {}) => send('GET', undefined, options);
  const current = async () => (await t.system<CarePlan>('GET', `CarePlan/${planId}`)).body;
  const version = async () => Number((await current()).meta?.versionId);

  beforeAll(async () => {
    t = await startTestServer({}, { auth: 'tokens' });
    anne = await seedPatient(t, 'anne', { blocked: ['vikarlege'] });
    bjorn = await seedPatient(t, 'bjorn');
    const find = async (patient: string) => (await t.system('GET', `CarePlan?subject=Patient/${patient}`)).body.entry[0].resource as CarePlan;
    const seeded = await find(anne);
    planId = seeded.id as string;
    bjornPlan = (await find(bjorn)).id as string;
    // Anne's plan gets the KOLS zones, and she is shown that version.
    const { meta: _m, ...rest } = seeded;
    const put = await t.system('PUT', `CarePlan/${planId}`, { ...rest, title: KOLS.planDefinition.title, description: KOLS.planDefinition.purpose, extension: KOLS.planDefinition.extension });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect((await t.system('POST', `CarePlan/${planId}/$publish`, { resourceType: 'Parameters' })).status).toBe(200);
  });
  afterAll(async () => t?.close());

  it('GET answers NHN JSON (application/json) with the version as ETag', async () => {
    const res = await get();
    expect(res.status, res.text).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const plan = await current();
    expect(res.headers.etag).toBe(`W/"${plan.meta?.versionId}"`);
    expect(res.body).toStrictEqual({ id: planId, version: Number(plan.meta?.versionId), status: 'active', updated_at: plan.meta?.lastUpdated, clinical_content: toNhn(plan) });
    const again = await get({ headers: { 'if-none-match': res.headers.etag as string } });
    expect(again.status).toBe(304);
  });

  it('POST of the content as read changes nothing (no new version)', async () => {
    const before = await get();
    const res = await send('POST', { version: before.body.version, clinical_content: before.body.clinical_content });
    expect(res.status, res.text).toBe(200);
    expect(res.body.version).toBe(before.body.version);
    expect(res.body.clinical_content).toStrictEqual(before.body.clinical_content);
  });

  it('POST applies NHN content through the write pipeline: new version, kept structure, who and why recorded, and NHN → Samplan → NHN is exact', async () => {
    const before = await get();
    const content = structuredClone(before.body.clinical_content) as NhnClinicalContent;
    content.zones[1]!.action = 'Start beredskapspakken og ring fastlegen innen 24 timer';
    content.description = 'Anne vil gå tur med hunden hver dag 🐕';
    const res = await send('POST', { version: before.body.version, comment: 'Justert gul sone etter kontroll', clinical_content: content });
    expect(res.status, res.text).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.version).toBe(before.body.version + 1);
    expect(res.headers.etag).toBe(`W/"${res.body.version}"`);
    expect(res.body.clinical_content).toStrictEqual(content);
    expect(res.body.updated_by).toEqual({ hpr_number: clinicianByKey('fastlege').hpr, display_name: expect.any(String) });
    expect((await get()).body.clinical_content).toStrictEqual(content);

    const stored = await current();
    expect(errorsOf(stored)).toEqual([]);
    expect(sub(zoneAt(stored, 'yellow'), 'threshold')).toStrictEqual(sub(zoneAt(templatePlan(KOLS), 'yellow'), 'threshold'));
    expect(zoneAt(stored, 'red')).toStrictEqual(zoneAt(templatePlan(KOLS), 'red'));
    const provenance = await t.system('GET', `Provenance?target=CarePlan/${planId}/_history/${res.body.version}`);
    expect((provenance.body.entry[0].resource as Provenance).reason?.[0]?.text).toBe('Justert gul sone etter kontroll');
    const audit = await auditTrail(t.database.db, 'WHERE e.patient_id = $1', [anne]);
    expect(audit.at(-1)?.text).toContain(`CarePlan/${planId}/_history/${res.body.version}`);
  });

  it('takes the version from If-Match as well', async () => {
    const before = await get();
    const content = { ...before.body.clinical_content, title: 'KOLS-plan for Anne' };
    const res = await send('POST', { clinical_content: content }, { headers: { 'if-match': before.headers.etag as string } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.clinical_content.title).toBe('KOLS-plan for Anne');
  });

  it('refuses a stale version (412 VERSION_CONFLICT), in the body or in If-Match, and changes nothing', async () => {
    const v = await version();
    const content = { ...(await get()).body.clinical_content, title: 'Utdatert' };
    for (const res of [await send('POST', { version: v - 1, clinical_content: content }), await send('POST', { clinical_content: content }, { headers: { 'if-match': `W/"${v - 1}"` } })]) {
      expect(res.status, res.text).toBe(412);
      expect(errorCode(res)).toBe('VERSION_CONFLICT');
    }
    expect(await version()).toBe(v);
  });

  it('takes the reason from comment or X-Provenance, and refuses two different ones', async () => {
    const before = await get();
    const content = { ...before.body.clinical_content, title: 'KOLS-plan' };
    const header = { 'x-provenance': JSON.stringify({ resourceType: 'Provenance', reason: [{ text: 'Fra kontrollen' }] }) };
    const two = await send('POST', { version: before.body.version, comment: 'Noe annet', clinical_content: content }, { headers: header });
    expect(two.status, two.text).toBe(400);
    expect(two.body.issue[0].expression).toEqual(['comment']);
    const res = await send('POST', { version: before.body.version, clinical_content: content }, { headers: header });
    expect(res.status, res.text).toBe(200);
    const provenance = await t.system('GET', `Provenance?target=CarePlan/${planId}/_history/${res.body.version}`);
    expect((provenance.body.entry[0].resource as Provenance).reason?.[0]?.text).toBe('Fra kontrollen');
  });

  it('refuses an update without a version, or with two different ones', async () => {
    const content = (await get()).body.clinical_content;
    const none = await send('POST', { clinical_content: content });
    expect(none.status).toBe(400);
    expect(none.body.issue[0].expression).toEqual(['version']);
    const two = await send('POST', { version: 1, clinical_content: content }, { headers: { 'if-match': 'W/"2"' } });
    expect(two.status).toBe(400);
  });

  it.each<[string, { body?: unknown; raw?: string }, string, string | undefined]>([
    ['malformed JSON', { raw: '{"version": 1, "clinical_content": {' }, 'INVALID_JSON', undefined],
    ['a list instead of an object', { body: [] }, 'INVALID_REQUEST', undefined],
    ['an unknown level', { body: { version: 1, clinical_content: { title: 'T', zones: [{ condition: 'a', action: 'b', level: 'lilla' }] } } }, 'INVALID_REQUEST', 'clinical_content.zones[0].level'],
    ['a missing title', { body: { version: 1, clinical_content: { zones: [] } } }, 'INVALID_REQUEST', 'clinical_content.title'],
  ])('refuses %s with an OperationOutcome (400)', async (_name, input, code, expression) => {
    const res = await send('POST', input.body, input.raw !== undefined ? { raw: input.raw } : {});
    expect(res.status, res.text).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(errorCode(res)).toBe(code);
    if (expression) expect(res.body.issue[0].expression).toEqual([expression]);
  });

  it('refuses a red zone that does not direct to emergency help, by the plan rule, pointing at the NHN zone', async () => {
    const v = await version();
    const content = structuredClone((await get()).body.clinical_content) as NhnClinicalContent;
    content.zones[2]!.action = 'Ring fastlegen i morgen';
    const res = await send('POST', { version: v, clinical_content: content });
    expect(res.status, res.text).toBe(400);
    const issues = res.body.issue as OperationOutcome['issue'];
    expect(issues?.[0]).toMatchObject({ severity: 'error', details: { coding: [{ code: 'VALIDATION_ERROR' }], text: expect.stringContaining('emergency help') } });
    expect(issues?.find((i) => i.severity === 'information')?.expression).toEqual(['clinical_content.zones[2].action']);
    expect(await version()).toBe(v);
  });

  it('points validation errors at the NHN field they come from', async () => {
    const v = await version();
    const content = structuredClone((await get()).body.clinical_content) as NhnClinicalContent;
    content.zones[0]!.condition = 'Som vanlig <script>alert(1)</script>';
    const res = await send('POST', { version: v, clinical_content: content });
    expect(res.status, res.text).toBe(400);
    expect(res.body.issue[0].expression[0]).toBe('clinical_content.zones[0].condition');
  });

  it('applies the plan rules to status too (no going back from active to draft: 409)', async () => {
    const before = await get();
    const res = await send('POST', { version: before.body.version, status: 'draft', clinical_content: before.body.clinical_content });
    expect(res.status, res.text).toBe(409);
    expect(errorCode(res)).toBe('INVALID_TRANSITION');
  });

  it('a clinician about another patient gets nothing (404), for GET and POST', async () => {
    expect((await get({ patient: 'bjorn' })).status).toBe(404);
    const res = await send('POST', { version: 1, clinical_content: { title: 'T', zones: [] } }, { patient: 'bjorn' });
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('NOT_FOUND');
    // Bjørn's own plan, asked about as Bjørn, is there.
    expect((await get({ patient: 'bjorn', id: bjornPlan })).status).toBe(200);
  });

  it('a blocked clinician gets nothing (403 BLOCKED)', async () => {
    const res = await get({ clinician: 'vikarlege' });
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('BLOCKED');
  });

  it('a token with the read scope only can read but not apply (403 INSUFFICIENT_SCOPE)', async () => {
    const read = await get({ scope: 'nhn:samplan/read' });
    expect(read.status).toBe(200);
    const res = await send('POST', { version: read.body.version, clinical_content: { ...read.body.clinical_content, title: 'Nei' } }, { scope: 'nhn:samplan/read' });
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('INSUFFICIENT_SCOPE');
  });

  it('a machine token gets nothing', async () => {
    const token = await machineToken(t);
    const res = await t.request('GET', `CarePlan/${planId}/$nhn-plan`, { headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: citizenByKey('anne').pid }) } });
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('MACHINE_TOKEN_NOT_ALLOWED');
  });

  it('the patient sees the published version only, and cannot apply content', async () => {
    const published = (await t.database.db.query<{ v: number }>("SELECT published_version AS v FROM resources WHERE type = 'CarePlan' AND id = $1", [planId]))[0]!.v;
    const mine = await asCitizen(t, 'anne', 'GET', `CarePlan/${planId}/$nhn-plan`);
    expect(mine.status, mine.text).toBe(200);
    expect(mine.body.version).toBe(published);
    expect(mine.body.version).toBeLessThan(await version());
    const shown = (await t.system<CarePlan>('GET', `CarePlan/${planId}/_history/${published}`)).body;
    expect(mine.body.clinical_content).toStrictEqual(toNhn(shown));

    const token = await citizenToken(t, 'anne');
    const res = await t.request('POST', `CarePlan/${planId}/$nhn-plan`, {
      body: { version: await version(), clinical_content: { title: 'Min plan', zones: [] } },
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    expect(res.status).toBe(403);

    // Once published, the patient sees the clinicians' changes.
    expect((await asClinician(t, 'fastlege', 'POST', `CarePlan/${planId}/$publish`, { patient: 'anne', body: { resourceType: 'Parameters' } })).status).toBe(200);
    const after = await asCitizen(t, 'anne', 'GET', `CarePlan/${planId}/$nhn-plan`);
    expect(after.body.version).toBe(await version());
  });

  it('an empty zones list removes the zones', async () => {
    const before = await get({ patient: 'bjorn', id: bjornPlan });
    const res = await send('POST', { version: before.body.version, clinical_content: { title: 'Plan for Bjørn', zones: [] } }, { patient: 'bjorn', id: bjornPlan });
    expect(res.status, res.text).toBe(200);
    expect(res.body.clinical_content).toStrictEqual({ title: 'Plan for Bjørn', zones: [] });
    expect(zonesOf((await t.system<CarePlan>('GET', `CarePlan/${bjornPlan}`)).body)).toEqual([]);
  });

  it('the pilot API\'s search works as NHN documents it: POST CarePlan/_search by national id in the form body, _include=*', async () => {
    const token = await clinicianToken(t, 'fastlege');
    const nin = citizenByKey('anne').pid;
    const res = await t.request('POST', 'CarePlan/_search', {
      raw: new URLSearchParams({ 'subject:Patient.identifier': nin, status: 'active', _include: '*' }).toString(),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', ...nhnHeaders({ nin }) },
    });
    expect(res.status, res.text).toBe(200);
    const entries = res.body.entry as Array<{ resource: { resourceType: string; id: string }; search: { mode: string } }>;
    expect(entries.filter((e) => e.search.mode === 'match').map((e) => e.resource.id)).toEqual([planId]);
    expect(JSON.stringify(res.body.link)).not.toContain(nin); // nor in a paging link
    // … and never in a URL: the same search by GET is refused.
    const get = await t.request('GET', `CarePlan?subject:Patient.identifier=${nin}`, { headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin }) } });
    expect(get.status).toBe(400);
    expect(errorCode(get)).toBe('NIN_IN_URL');
  });

  it('is listed in the CapabilityStatement', async () => {
    const res = await t.request('GET', 'metadata');
    expect(JSON.stringify(res.body)).toContain('CarePlan-nhn-plan');
  });
});

it('the generated zones are valid against the profile (the generator makes real zones)', () => {
  const g = rng(7);
  for (let i = 0; i < 50; i++) {
    // Without the other party's extension, which this server has no definition of.
    const zones = zonesOf(genPlan(g));
    const p = plan(zones);
    expect(hasErrors(validateResource(p)), `plan ${i}: ${JSON.stringify(validateResource(p))}`).toBe(false);
  }
});
