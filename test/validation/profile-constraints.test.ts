/**
 * What a profile states beyond the base definition (src/fhir/validation/profile-constraints.ts):
 * cardinality at any depth, the types of choice elements, reference targets, fixed and pattern
 * values, added invariants (warning-level ones as warnings), and slice counts — for Samplan's
 * profiles and for a partner's profile defined here. Resources without a profile are validated as
 * before.
 */
import type { ElementDefinition, OperationOutcomeIssue, StructureDefinition } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { definitions } from '../../src/fhir/definitions.js';
import { referencedType } from '../../src/fhir/validation/profile-constraints.js';
import { hasErrors, registerProfile, validateResource } from '../../src/fhir/validation/validator.js';
import { CODE_SYSTEM as NO } from '../../src/no/codes.js';
import { OID, syntheticNin } from '../../src/no/identifiers.js';
import { CHECK_IN_CODE, CODE_SYSTEM, PROFILE } from '../../src/plan/conventions.js';
import { registerSamplanProfiles } from '../../src/plan/profiles/index.js';

registerSamplanProfiles();

type Json = Record<string, unknown>;
/** Validates the resource as it arrives in a request: JSON (so `key: undefined` below means "left out"). */
const issues = (resource: unknown, options = {}) => validateResource(JSON.parse(JSON.stringify(resource)), options);
const errorsOf = (resource: unknown, options = {}) => issues(resource, options).filter((i) => i.severity === 'error' || i.severity === 'fatal');
const at = (list: OperationOutcomeIssue[]) => list.map((i) => i.expression?.[0]);
const text = (list: OperationOutcomeIssue[]) => list.map((i) => i.details?.text ?? '').join('\n');
const profiled = (url: string, resource: Json): Json => ({ ...resource, meta: { profile: [url] } });
const withoutProfile = ({ meta: _meta, ...rest }: Json): Json => rest;

// ---------------------------------------------------------------------------------------------
// Samplan's profiles

const careTeam = profiled(PROFILE.careTeam, {
  resourceType: 'CareTeam',
  subject: { reference: 'Patient/p1' },
  participant: [
    {
      role: [{ text: 'Fastlege' }],
      member: { reference: 'Practitioner/lege' },
    },
  ],
});

const checkIn = profiled(PROFILE.checkIn, {
  resourceType: 'Observation',
  status: 'final',
  basedOn: [{ reference: 'CarePlan/cp1' }],
  code: { coding: [{ system: CHECK_IN_CODE.system, code: CHECK_IN_CODE.code }] },
  subject: { reference: 'Patient/p1' },
  effectiveDateTime: '2026-11-20T08:00:00+01:00',
  valueCodeableConcept: { coding: [{ system: CODE_SYSTEM.zone, code: 'green' }] },
});

const carePlan = profiled(PROFILE.carePlan, {
  resourceType: 'CarePlan',
  status: 'draft',
  intent: 'plan',
  title: 'Behandlingsplan KOLS',
  subject: { reference: 'Patient/p1' },
  activity: [{ reference: { reference: 'ServiceRequest/sr1' } }],
});

const condition = profiled(PROFILE.condition, {
  resourceType: 'Condition',
  subject: { reference: 'Patient/p1' },
  code: { coding: [{ system: NO.icd10, code: 'J44', display: 'Kronisk obstruktiv lungesykdom' }] },
});

describe("Samplan's profiles: cardinality", () => {
  it('requires what a backbone element of the profile requires (CareTeam.participant.role, .member)', () => {
    expect(errorsOf(careTeam)).toEqual([]);
    const noRole = { ...careTeam, participant: [{ member: { reference: 'Practitioner/lege' } }, { role: [{ text: 'Sykepleier' }] }] };
    const found = errorsOf(noRole);
    expect(at(found)).toEqual(['CareTeam.participant[0].role', 'CareTeam.participant[1].member']);
    expect(found[0]).toMatchObject({ code: 'required', details: { coding: [{ code: 'VALIDATION_ERROR' }] } });
    expect(found[0]?.details?.text).toBe(`Missing element 'role' at CareTeam.participant[0].role, which profile ${PROFILE.careTeam} requires`);
  });

  it("still requires the resource's own elements, once (CareTeam.subject, CarePlan.title)", () => {
    expect(at(errorsOf({ ...careTeam, subject: undefined }))).toEqual(['CareTeam.subject']);
    expect(at(errorsOf({ ...carePlan, title: undefined }))).toEqual(['CarePlan.title']);
  });

  it('requires a choice element in one of its types (Observation.value[x])', () => {
    expect(at(errorsOf({ ...checkIn, valueCodeableConcept: undefined }))).toEqual(['Observation.value[x]']);
  });
});

describe("Samplan's profiles: types of choice elements", () => {
  it('refuses a type the profile leaves out, naming the element (samplan-checkin: effective[x] dateTime, value[x] CodeableConcept)', () => {
    expect(errorsOf(checkIn)).toEqual([]);
    const wrong = { ...checkIn, effectiveDateTime: undefined, effectivePeriod: { start: '2026-11-20' }, valueCodeableConcept: undefined, valueQuantity: { value: 300, unit: 'L/min' } };
    const found = errorsOf(wrong);
    expect(at(found)).toEqual(['Observation.effectivePeriod', 'Observation.valueQuantity']);
    expect(found[1]?.details?.text).toBe(
      `Observation.valueQuantity: profile ${PROFILE.checkIn} allows Observation.value[x] only as CodeableConcept (valueCodeableConcept), not as Quantity`,
    );
  });

  it('refuses a primitive type given only by its extension (_valueString)', () => {
    const wrong = { ...checkIn, valueCodeableConcept: undefined, _valueString: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] } };
    expect(at(errorsOf(wrong))).toEqual(['Observation.valueString']);
  });

  it('samplan-measure: occurrence[x] only as Timing', () => {
    const measure = profiled(PROFILE.measure, { resourceType: 'ServiceRequest', status: 'active', intent: 'plan', subject: { reference: 'Patient/p1' }, code: { text: 'Gå tur' } });
    expect(errorsOf({ ...measure, occurrenceTiming: { repeat: { frequency: 1, period: 1, periodUnit: 'd' } } })).toEqual([]);
    expect(at(errorsOf({ ...measure, occurrenceDateTime: '2026-12-01' }))).toEqual(['ServiceRequest.occurrenceDateTime']);
  });
});

describe("Samplan's profiles: reference targets", () => {
  it('refuses a local reference to a type the profile does not allow, as an error', () => {
    expect(errorsOf(carePlan)).toEqual([]);
    const group = issues({ ...carePlan, subject: { reference: 'Group/g1' } });
    expect(group.map((i) => [i.severity, i.expression?.[0]])).toEqual([['error', 'CarePlan.subject']]);
    expect(group[0]?.details?.text).toBe(`The reference at CarePlan.subject refers to a Group, but profile ${PROFILE.carePlan} allows only a Patient there`);
  });

  it('says it once, without the base validation repeating it as a warning', () => {
    const practitioner = issues({ ...carePlan, subject: { reference: 'Practitioner/lege' } });
    expect(practitioner.map((i) => [i.severity, i.expression?.[0]])).toEqual([['error', 'CarePlan.subject']]);
  });

  it('checks references inside backbone elements (CarePlan.activity.reference: ServiceRequest)', () => {
    const task = { ...carePlan, activity: [{ reference: { reference: 'Task/t1' } }] };
    expect(at(errorsOf(task))).toEqual(['CarePlan.activity[0].reference']);
    expect(text(errorsOf(task))).toContain('allows only a ServiceRequest there');
  });

  it('refuses a versioned, conditional or RESTful absolute reference of the wrong type, and a wrong Reference.type', () => {
    for (const subject of [
      { reference: 'Group/g1/_history/2' },
      { reference: 'Group?identifier=x' },
      { reference: 'https://fhir.example.no/fhir/Group/g1' },
      { reference: 'https://fhir.example.no/fhir/Group/g1/_history/3' },
      { type: 'Group', identifier: { system: 'urn:oid:1.2.3', value: 'g1' } },
      { type: 'http://hl7.org/fhir/StructureDefinition/Group', identifier: { system: 'urn:oid:1.2.3', value: 'g1' } },
    ]) {
      expect(at(errorsOf({ ...carePlan, subject })), JSON.stringify(subject)).toEqual(['CarePlan.subject']);
    }
  });

  it('leaves logical, contained, urn:uuid and other absolute references alone', () => {
    const logical = { identifier: { system: OID.fnr, value: syntheticNin('1948-03-15') } };
    for (const subject of [
      logical,
      { ...logical, type: 'Patient' },
      { reference: 'urn:uuid:4b1c3b8e-9d2f-4c1a-8f3e-2a6b7c8d9e0f' },
      { reference: 'https://fhir.example.no/fhir/Patient/p1' },
      { reference: 'https://example.org/people/kari' },
      { display: 'Kari Nordmann' },
    ]) {
      expect(errorsOf({ ...carePlan, subject }), JSON.stringify(subject)).toEqual([]);
    }
    const contained = { ...carePlan, contained: [{ resourceType: 'Group', id: 'g', type: 'person', actual: true }], subject: { reference: '#g' } };
    expect(at(errorsOf(contained)).filter((p) => p === 'CarePlan.subject')).toEqual([]);
  });

  it('never echoes the reference itself (a conditional reference may carry a national identity number)', () => {
    const nin = syntheticNin('1948-03-15');
    const found = errorsOf({ ...carePlan, subject: { reference: `Group?identifier=${OID.fnr}|${nin}` } });
    expect(at(found)).toEqual(['CarePlan.subject']);
    expect(JSON.stringify(found)).not.toContain(nin);
  });
});

describe("Samplan's profiles: invariants and fixed values", () => {
  it("reports a profile's warning-level invariant as a warning, which does not block the write (spl-cond-3)", () => {
    expect(issues(condition)).toEqual([]);
    const noDisplay = { ...condition, code: { coding: [{ system: NO.icd10, code: 'J44' }] } };
    const found = issues(noDisplay);
    expect(found.map((i) => [i.severity, i.code, i.expression?.[0]])).toEqual([['warning', 'invariant', 'Condition.code']]);
    expect(found[0]?.details?.text).toBe(`Constraint failed: spl-cond-3 at Condition.code: Codes carry their display text (profile ${PROFILE.condition})`);
    expect(hasErrors(found)).toBe(false);
  });

  it("still refuses what the profile's error-level invariants and fixed and pattern values refuse", () => {
    expect(at(errorsOf({ ...condition, code: { coding: [{ system: 'http://example.org/codes', code: 'x', display: 'X' }] } }))).toEqual(['Condition.code']);
    expect(at(errorsOf({ ...carePlan, intent: 'order' }))).toEqual(['CarePlan.intent']);
    expect(at(errorsOf({ ...checkIn, code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] } }))).toEqual(['Observation.code']);
    const measure = profiled(PROFILE.measure, { resourceType: 'ServiceRequest', status: 'active', intent: 'plan', subject: { reference: 'Patient/p1' } });
    expect(text(errorsOf(measure))).toContain('spl-measure-1');
  });
});

describe('resources without a profile', () => {
  it('are validated against the base type only, as before', () => {
    expect(errorsOf(withoutProfile({ ...careTeam, participant: [{ member: { reference: 'Practitioner/lege' } }] }))).toEqual([]);
    expect(errorsOf(withoutProfile({ ...checkIn, valueCodeableConcept: undefined, valueQuantity: { value: 1 } }))).toEqual([]);
    expect(issues(withoutProfile({ ...carePlan, subject: { reference: 'Group/g1' }, activity: [{ reference: { reference: 'Task/t1' } }] }))).toEqual([]);
    expect(issues(withoutProfile({ ...condition, code: { coding: [{ system: NO.icd10, code: 'J44' }] } }))).toEqual([]);
  });

  it('keep the base R4 warning for a reference to a type the base definition does not allow', () => {
    const found = issues(withoutProfile({ ...carePlan, subject: { reference: 'Practitioner/lege' } }));
    expect(found.map((i) => [i.severity, i.expression?.[0]])).toEqual([['warning', 'CarePlan.subject']]);
  });
});

// ---------------------------------------------------------------------------------------------
// A partner's profile

const PARTNER = 'https://partner.example.no/fhir/StructureDefinition';

/** A profile snapshot: the base snapshot with `changes` applied by path, and `slices` (with their children) after the element they slice. */
function snapshotProfile(url: string, type: string, changes: Record<string, Partial<ElementDefinition>>, slices: ElementDefinition[] = []): StructureDefinition {
  const base = definitions().structureDefinitions.get(type) as StructureDefinition;
  const element: ElementDefinition[] = [];
  for (const e of structuredClone(base.snapshot?.element ?? [])) {
    element.push({ ...e, ...(changes[e.path as string] ?? {}) });
    element.push(...slices.filter((s) => s.id?.startsWith(`${e.id}:`)));
  }
  return {
    resourceType: 'StructureDefinition',
    url,
    name: url.slice(url.lastIndexOf('/') + 1).replace(/-/g, ''),
    status: 'active',
    kind: 'resource',
    abstract: false,
    type,
    baseDefinition: `http://hl7.org/fhir/StructureDefinition/${type}`,
    derivation: 'constraint',
    snapshot: { element },
  };
}

const ref = (...targets: string[]) => [{ code: 'Reference', targetProfile: targets.map((t) => (t.includes('/') ? t : `http://hl7.org/fhir/StructureDefinition/${t}`)) }];

registerProfile(snapshotProfile(`${PARTNER}/partner-organization`, 'Organization', {}));
registerProfile(
  snapshotProfile(
    `${PARTNER}/partner-patient`,
    'Patient',
    {
      'Patient.identifier': { slicing: { discriminator: [{ type: 'value', path: 'system' }], rules: 'open' } },
      'Patient.deceased[x]': { type: [{ code: 'boolean' }] },
      'Patient.generalPractitioner': { type: ref('Practitioner') },
      'Patient.managingOrganization': { type: ref(`${PARTNER}/partner-organization`) },
      'Patient.contact': {
        constraint: [{ key: 'partner-1', severity: 'warning', human: 'A contact has a phone number or an e-mail address', expression: 'telecom.exists()' }],
      },
      'Patient.contact.name': { min: 1, constraint: [{ key: 'partner-2', severity: 'error', human: 'A contact has a family name', expression: 'family.exists()' }] },
      'Patient.contact.telecom': { max: '2' },
      'Patient.contact.relationship': { patternCodeableConcept: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131' }] } },
      'Patient.link.other': { type: ref('Patient') },
      'Patient.link.type': { fixedCode: 'seealso' },
      'Patient.communication': { max: '0' },
    },
    [
      { id: 'Patient.identifier:local', path: 'Patient.identifier', sliceName: 'local', min: 1, max: '1', type: [{ code: 'Identifier' }] },
      { id: 'Patient.identifier:local.system', path: 'Patient.identifier.system', min: 1, max: '1', type: [{ code: 'uri' }], fixedUri: 'urn:oid:1.2.3.4' },
    ],
  ),
);

const partnerPatient = profiled(`${PARTNER}/partner-patient`, {
  resourceType: 'Patient',
  identifier: [{ system: 'urn:oid:1.2.3.4', value: 'L-1' }],
  deceasedBoolean: false,
  generalPractitioner: [{ reference: 'Practitioner/lege' }],
  managingOrganization: { reference: 'Organization/o1' },
  contact: [
    {
      relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'N' }] }],
      name: { family: 'Nordmann', given: ['Ola'] },
      telecom: [{ system: 'phone', value: '+47 22 00 00 00' }],
    },
  ],
  link: [{ other: { reference: 'Patient/p2' }, type: 'seealso' }],
});

describe("a partner's profile", () => {
  it('accepts a resource that conforms', () => {
    expect(issues(partnerPatient)).toEqual([]);
  });

  it('applies cardinality inside backbone elements: min, max and prohibited', () => {
    const contact = { relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'N' }] }], telecom: [1, 2, 3].map((n) => ({ system: 'phone', value: `+47 2200000${n}` })) };
    const found = errorsOf({ ...partnerPatient, contact: [contact], communication: [{ language: { text: 'norsk' } }] });
    expect(at(found)).toEqual(['Patient.communication', 'Patient.contact[0].name', 'Patient.contact[0].telecom']);
    expect(text(found)).toContain(`Patient.contact[0].telecom has 3 values, but profile ${PARTNER}/partner-patient allows at most 2`);
    expect(text(found)).toContain('Patient.communication is not allowed by profile');
  });

  it('applies the types of choice elements', () => {
    expect(at(errorsOf({ ...partnerPatient, deceasedBoolean: undefined, deceasedDateTime: '2026-01-01' }))).toEqual(['Patient.deceasedDateTime']);
  });

  it('applies reference targets, at the root and in backbone elements, and targets that name a registered profile', () => {
    expect(at(errorsOf({ ...partnerPatient, generalPractitioner: [{ reference: 'Organization/o1' }] }))).toEqual(['Patient.generalPractitioner[0]']);
    expect(at(errorsOf({ ...partnerPatient, link: [{ other: { reference: 'RelatedPerson/r1' }, type: 'seealso' }] }))).toEqual(['Patient.link[0].other']);
    expect(at(errorsOf({ ...partnerPatient, managingOrganization: { reference: 'Location/l1' } }))).toEqual(['Patient.managingOrganization']);
  });

  it('leaves a reference alone when a target profile is not known here', () => {
    const url = `${PARTNER}/partner-patient-2`;
    registerProfile(snapshotProfile(url, 'Patient', { 'Patient.generalPractitioner': { type: ref(`${PARTNER}/unknown-practitioner`) } }));
    expect(errorsOf(profiled(url, { resourceType: 'Patient', generalPractitioner: [{ reference: 'Organization/o1' }] }))).toEqual([]);
  });

  it('applies fixed and pattern values inside backbone elements', () => {
    const relationship = [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'MTH' }] }];
    const contact = { ...(partnerPatient.contact as Json[])[0], relationship };
    const found = errorsOf({ ...partnerPatient, contact: [contact], link: [{ other: { reference: 'Patient/p2' }, type: 'refer' }] });
    expect(at(found)).toEqual(['Patient.contact[0].relationship[0]', 'Patient.link[0].type']);
    expect(found.map((i) => i.code)).toEqual(['value', 'value']);
    expect(text(found)).toContain('Patient.link[0].type must be exactly "seealso"');
  });

  it('evaluates its invariants in backbone elements: error-level as errors, warning-level as warnings', () => {
    const contact = { ...(partnerPatient.contact as Json[])[0], name: { given: ['Ola'] }, telecom: undefined };
    const found = issues({ ...partnerPatient, contact: [contact] });
    expect(found.map((i) => [i.severity, i.expression?.[0], i.details?.text?.slice(0, 29)])).toEqual([
      ['warning', 'Patient.contact[0]', 'Constraint failed: partner-1 '],
      ['error', 'Patient.contact[0].name', 'Constraint failed: partner-2 '],
    ]);
  });

  it('counts slices of its own elements (by Medplum, on the slicing alone)', () => {
    const found = errorsOf({ ...partnerPatient, identifier: [{ system: 'urn:oid:9.9.9', value: 'x' }] });
    expect(at(found)).toEqual(['Patient.identifier']);
    expect(text(found)).toContain("slice 'local'");
  });

  it('counts extension slices that name their extension by type.profile', () => {
    const birthPlace = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
    const url = `${PARTNER}/partner-patient-3`;
    registerProfile(
      snapshotProfile(url, 'Patient', { 'Patient.extension': { slicing: { discriminator: [{ type: 'value', path: 'url' }], rules: 'open' } } }, [
        { id: 'Patient.extension:birthPlace', path: 'Patient.extension', sliceName: 'birthPlace', min: 1, max: '1', type: [{ code: 'Extension', profile: [birthPlace] }] },
      ]),
    );
    expect(issues(profiled(url, { resourceType: 'Patient', extension: [{ url: birthPlace, valueAddress: { city: 'Bergen' } }] }))).toEqual([]);
    const other = errorsOf(profiled(url, { resourceType: 'Patient', extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired', valueBoolean: true }] }));
    expect(at(other)).toEqual(['Patient.extension']);
    expect(text(other)).toContain("slice 'birthPlace'");
    // With no extension at all, Medplum does not look at the slices: the element itself is required.
    const none = errorsOf(profiled(url, { resourceType: 'Patient', birthDate: '1948-03-15' }));
    expect(at(none)).toEqual(['Patient.extension']);
    expect(text(none)).toContain("slice 'birthPlace'");
  });

  it('is applied when asked for by $validate, and not to contained resources', () => {
    const bare = withoutProfile({ ...partnerPatient, deceasedBoolean: undefined, deceasedDateTime: '2026-01-01' });
    expect(errorsOf(bare)).toEqual([]);
    expect(at(errorsOf(bare, { profile: `${PARTNER}/partner-patient` }))).toEqual(['Patient.deceasedDateTime']);
    const container = { ...carePlan, contained: [{ ...partnerPatient, id: 'pt', deceasedDateTime: '2026-01-01', deceasedBoolean: undefined }], subject: { reference: '#pt' } };
    expect(errorsOf(container)).toEqual([]);
  });
});

describe('referencedType', () => {
  it.each([
    ['Patient/p1', 'Patient'],
    ['Patient/p1/_history/2', 'Patient'],
    ['Patient?identifier=x', 'Patient'],
    ['https://fhir.example.no/fhir/Patient/p1', 'Patient'],
    ['http://fhir.example.no/Patient/p1/_history/1', 'Patient'],
    ['#p1', undefined],
    ['urn:uuid:4b1c3b8e-9d2f-4c1a-8f3e-2a6b7c8d9e0f', undefined],
    ['urn:oid:1.2.3', undefined],
    ['Nope/p1', undefined],
    ['Patient', undefined],
    ['Patient/p1/extra', undefined],
    ['https://example.org/people/kari', undefined],
    ['Patient/not an id', undefined],
  ])('%s → %s', (reference, type) => {
    expect(referencedType(reference)).toBe(type);
  });
});
