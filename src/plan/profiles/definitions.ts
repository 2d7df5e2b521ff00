/**
 * Samplan's conformance resources: the profiles of a treatment and self-treatment plan, the
 * self-treatment zone extension, and the code systems and value sets they use. The server
 * validates writes against them and serves them (StructureDefinition?url=…); docs/profiles/
 * explains each with examples.
 */
import type { CodeSystem, ElementDefinition, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { CODE_SYSTEM as NO } from '../../no/codes.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION, MEASURE_CATEGORIES, PROFILE, VALUE_SET, ZONE_DISPLAY } from '../conventions.js';
import { withSnapshot } from './snapshot.js';

const VERSION = '0.1.0';
const DATE = '2026-11-26';
const HL7 = 'http://hl7.org/fhir/StructureDefinition';

const common = {
  version: VERSION,
  status: 'active' as const,
  date: DATE,
  publisher: 'Samplan',
};
const fhirVersion = '4.0.1' as const;

function profile(id: string, url: string, type: string, title: string, description: string, elements: ElementDefinition[]): StructureDefinition {
  return withSnapshot({
    resourceType: 'StructureDefinition',
    id,
    url,
    name: id.replace(/(^|-)([a-z])/g, (_, _d, c: string) => c.toUpperCase()),
    title,
    description,
    ...common,
    fhirVersion,
    kind: 'resource',
    abstract: false,
    type,
    baseDefinition: `${HL7}/${type}`,
    derivation: 'constraint',
    differential: { element: elements.map((e) => ({ id: e.path, ...e })) },
  });
}

const ref = (...types: string[]) => [{ code: 'Reference', targetProfile: types.map((t) => `${HL7}/${t}`) }];
const invariant = (key: string, human: string, expression: string, severity: 'error' | 'warning' = 'error') => ({ key, severity, human, expression });

const zone = `extension.where(url = '${EXTENSION.zone}')`;
const zoneLevel = `extension.where(url = 'level').value`;

export const carePlanProfile = profile(
  'samplan-careplan',
  PROFILE.carePlan,
  'CarePlan',
  'Samplan behandlingsplan og egenbehandlingsplan',
  'A patient\'s shared treatment plan: one active plan per patient, addressing their conditions, with goals, measures (activities referencing ServiceRequests), the care team, and a self-treatment part with green, yellow and red zones.',
  [
    {
      path: 'CarePlan',
      constraint: [
        invariant('spl-plan-1', 'Plan status is draft, active, completed, revoked or entered-in-error', "status in ('draft' | 'active' | 'completed' | 'revoked' | 'entered-in-error')"),
        invariant('spl-zone-1', 'At most one zone of each level', `${zone}.select(${zoneLevel}).isDistinct()`),
        invariant('spl-zone-2', 'The red zone directs to emergency help (113 / legevakt)', `${zone}.where(${zoneLevel} = 'red').all(extension.where(url = 'emergency' and value = true).exists())`),
        invariant('spl-zone-3', 'Every zone says what to do', `${zone}.all(extension.where(url = 'action').exists())`),
        invariant('spl-zone-4', 'Every zone says when it applies (criteria, symptoms or thresholds)', `${zone}.all(extension.where(url = 'criteria' or url = 'symptom' or url = 'threshold').exists())`),
      ],
    },
    { path: 'CarePlan.intent', fixedCode: 'plan' },
    { path: 'CarePlan.title', min: 1, short: 'Plan title, e.g. "Behandlingsplan KOLS"' },
    { path: 'CarePlan.subject', type: ref('Patient'), short: 'The patient (identified by fødselsnummer or D-nummer)' },
    { path: 'CarePlan.author', type: ref('Practitioner', 'PractitionerRole') },
    { path: 'CarePlan.contributor', type: ref('Patient', 'Practitioner', 'PractitionerRole', 'RelatedPerson') },
    { path: 'CarePlan.careTeam', type: ref('CareTeam') },
    { path: 'CarePlan.addresses', type: ref('Condition'), mustSupport: true },
    { path: 'CarePlan.goal', mustSupport: true },
    { path: 'CarePlan.activity.reference', type: ref('ServiceRequest'), short: 'A measure (tiltak)' },
  ],
);

export const conditionProfile = profile(
  'samplan-condition',
  PROFILE.condition,
  'Condition',
  'Samplan problem eller diagnose',
  'A problem or diagnosis the plan addresses, coded with ICD-10, ICPC-2, SNOMED CT (or ICD-11), or in free text.',
  [
    {
      path: 'Condition.code',
      min: 1,
      constraint: [
        invariant('spl-cond-1', 'A code or a text', 'coding.exists() or text.exists()'),
        invariant(
          'spl-cond-2',
          'Codes come from ICD-10, ICPC-2, SNOMED CT or ICD-11',
          `coding.all(system in ('${NO.icd10}' | '${NO.icpc2}' | 'urn:oid:2.16.578.1.12.4.1.1.7170' | '${NO.snomed}' | 'http://id.who.int/icd/release/11/mms'))`,
        ),
        invariant('spl-cond-3', 'Codes carry their display text', 'coding.all(display.exists())', 'warning'),
      ],
    },
    { path: 'Condition.subject', type: ref('Patient') },
  ],
);

export const goalProfile = profile(
  'samplan-goal',
  PROFILE.goal,
  'Goal',
  'Samplan mål',
  'A goal of the plan: clinical, or the patient\'s own ("hva er viktig for meg", expressedBy the patient), addressing conditions.',
  [
    { path: 'Goal.subject', type: ref('Patient') },
    { path: 'Goal.expressedBy', type: ref('Patient', 'Practitioner', 'PractitionerRole', 'RelatedPerson') },
    { path: 'Goal.addresses', type: ref('Condition') },
  ],
);

export const measureProfile = profile(
  'samplan-measure',
  PROFILE.measure,
  'ServiceRequest',
  'Samplan tiltak',
  'A measure (tiltak): done by the patient (self-treatment) or the health service, with a category, how often, and which conditions it is for.',
  [
    { path: 'ServiceRequest', constraint: [invariant('spl-measure-1', 'A measure has a title (code) or a category', 'code.exists() or category.exists()')] },
    { path: 'ServiceRequest.intent', fixedCode: 'plan' },
    { path: 'ServiceRequest.category', binding: { strength: 'extensible', valueSet: VALUE_SET.measureCategory } },
    { path: 'ServiceRequest.subject', type: ref('Patient') },
    { path: 'ServiceRequest.occurrence[x]', type: [{ code: 'Timing' }], short: 'How often' },
    { path: 'ServiceRequest.performer', type: ref('Patient', 'Practitioner', 'PractitionerRole', 'CareTeam'), short: 'The patient (self-treatment) or the health service' },
    { path: 'ServiceRequest.reasonReference', type: ref('Condition') },
  ],
);

export const careTeamProfile = profile(
  'samplan-careteam',
  PROFILE.careTeam,
  'CareTeam',
  'Samplan behandlingsteam',
  'Who is involved across levels — GP, municipal coordinator and home nursing, hospital, physiotherapist, relatives — with role, organisation and how to reach them.',
  [
    { path: 'CareTeam.subject', min: 1, type: ref('Patient') },
    { path: 'CareTeam.participant', min: 1 },
    { path: 'CareTeam.participant.role', min: 1 },
    { path: 'CareTeam.participant.member', min: 1, type: ref('Practitioner', 'PractitionerRole', 'RelatedPerson', 'Patient', 'Organization', 'CareTeam') },
  ],
);

export const checkInProfile = profile(
  'samplan-checkin',
  PROFILE.checkIn,
  'Observation',
  'Samplan daglig egenvurdering',
  'The patient\'s daily check-in against the zones: which zone they are in today, with optional measurements as components.',
  [
    { path: 'Observation.basedOn', min: 1, type: ref('CarePlan') },
    { path: 'Observation.code', patternCodeableConcept: { coding: [{ system: CHECK_IN_CODE.system, code: CHECK_IN_CODE.code }] } },
    { path: 'Observation.subject', min: 1, type: ref('Patient') },
    { path: 'Observation.effective[x]', min: 1, type: [{ code: 'dateTime' }] },
    { path: 'Observation.value[x]', min: 1, type: [{ code: 'CodeableConcept' }], binding: { strength: 'required', valueSet: VALUE_SET.zone } },
  ],
);

const sub = (name: string, min: number, max: string, value: ElementDefinition['type'] | undefined, short: string, prefix = 'Extension'): ElementDefinition[] => {
  const id = `${prefix}.extension:${name}`;
  return [
    { id, path: `${prefix}.extension`, sliceName: name, min, max, short },
    { id: `${id}.url`, path: `${prefix}.extension.url`, fixedUri: name },
    ...(value ? [{ id: `${id}.value[x]`, path: `${prefix}.extension.value[x]`, min: 1, type: value }] : [{ id: `${id}.value[x]`, path: `${prefix}.extension.value[x]`, max: '0' }]),
  ];
};

export const zoneExtension: StructureDefinition = {
  resourceType: 'StructureDefinition',
  id: 'self-treatment-zone',
  url: EXTENSION.zone,
  name: 'SelfTreatmentZone',
  title: 'Sone i egenbehandlingsplan',
  description:
    'One zone of a self-treatment plan: its level (green, yellow, red), when it applies (criteria in words, symptoms, measurement thresholds absolute or relative to a personal baseline, or a change over time), what to do (actions, rescue medication), whom to contact within what time, and whether it directs to emergency help. On a CarePlan, and on template PlanDefinitions.',
  ...common,
  fhirVersion,
  kind: 'complex-type',
  abstract: false,
  context: [
    { type: 'element', expression: 'CarePlan' },
    { type: 'element', expression: 'PlanDefinition' },
  ],
  type: 'Extension',
  baseDefinition: `${HL7}/Extension`,
  derivation: 'constraint',
  differential: {
    element: [
      { id: 'Extension', path: 'Extension', short: 'A self-treatment zone' },
      { id: 'Extension.extension', path: 'Extension.extension', slicing: { discriminator: [{ type: 'value', path: 'url' }], rules: 'open' } },
      ...sub('level', 1, '1', [{ code: 'code' }], 'green | yellow | red'),
      ...sub('title', 0, '1', [{ code: 'string' }], 'Heading shown to the patient'),
      ...sub('criteria', 0, '1', [{ code: 'string' }], 'When this zone applies, in words (NHN "condition")'),
      ...sub('symptom', 0, '*', [{ code: 'string' }], 'A symptom that puts the patient in this zone'),
      ...sub('threshold', 0, '*', undefined, 'A measurement threshold: measurement, comparator, and an absolute value, a % of baseline, or a change over a period'),
      ...sub('measurement', 1, '1', [{ code: 'CodeableConcept' }], 'What is measured (e.g. LOINC 19935-6 peak flow)', 'Extension.extension.extension'),
      ...sub('comparator', 1, '1', [{ code: 'code' }], '< | <= | > | >=', 'Extension.extension.extension'),
      ...sub('value', 0, '1', [{ code: 'Quantity' }], 'Absolute value, or the change for changeOver', 'Extension.extension.extension'),
      ...sub('percentOfBaseline', 0, '1', [{ code: 'decimal' }], 'Percent of the personal baseline', 'Extension.extension.extension'),
      ...sub('baseline', 0, '1', [{ code: 'Quantity' }], 'The personal baseline (e.g. best peak flow)', 'Extension.extension.extension'),
      ...sub('changeOver', 0, '1', [{ code: 'Duration' }], 'Period of a change (e.g. +2 kg over 3 days)', 'Extension.extension.extension'),
      ...sub('action', 1, '*', [{ code: 'string' }], 'What to do (NHN "action")'),
      ...sub('medication', 0, '*', [{ code: 'string' }], 'Rescue medication: drug, dose, when to start, how long'),
      ...sub('contact', 0, '*', undefined, 'Whom to contact, how, and within what time'),
      ...sub('who', 1, '1', [{ code: 'string' }, { code: 'Reference', targetProfile: [`${HL7}/PractitionerRole`, `${HL7}/CareTeam`, `${HL7}/Organization`] }], 'Who to contact', 'Extension.extension.extension'),
      ...sub('phone', 0, '1', [{ code: 'string' }], 'Phone number', 'Extension.extension.extension'),
      ...sub('within', 0, '1', [{ code: 'Duration' }], 'Within what time', 'Extension.extension.extension'),
      ...sub('emergency', 0, '1', [{ code: 'boolean' }], 'Directs to emergency help: 113 or legevakt 116 117'),
      { id: 'Extension.url', path: 'Extension.url', fixedUri: EXTENSION.zone },
      { id: 'Extension.value[x]', path: 'Extension.value[x]', max: '0' },
    ],
  },
};

export const zoneCodeSystem: CodeSystem = {
  resourceType: 'CodeSystem',
  id: 'zone',
  url: CODE_SYSTEM.zone,
  name: 'Zone',
  title: 'Soner i egenbehandlingsplan',
  ...common,
  caseSensitive: true,
  content: 'complete',
  concept: [
    { code: 'green', display: ZONE_DISPLAY.green, definition: 'Som vanlig: fortsett behandlingen.' },
    { code: 'yellow', display: ZONE_DISPLAY.yellow, definition: 'Verre: gjør det planen sier, og ta kontakt innen avtalt tid.' },
    { code: 'red', display: ZONE_DISPLAY.red, definition: 'Fare: ring 113 eller legevakt 116 117.' },
  ],
};

export const zoneValueSet: ValueSet = {
  resourceType: 'ValueSet',
  id: 'zone',
  url: VALUE_SET.zone,
  name: 'Zone',
  title: 'Soner',
  ...common,
  compose: { include: [{ system: CODE_SYSTEM.zone }] },
};

export const measureCategoryValueSet: ValueSet = {
  resourceType: 'ValueSet',
  id: 'measure-category',
  url: VALUE_SET.measureCategory,
  name: 'MeasureCategory',
  title: 'Kategorier av egenbehandlingstiltak (NHN TASK_CATEGORY)',
  ...common,
  compose: { include: [{ system: NO.snomed, concept: MEASURE_CATEGORIES.map((c) => ({ code: c.code, display: c.display })) }] },
};

export const observationCodeSystem: CodeSystem = {
  resourceType: 'CodeSystem',
  id: 'observation',
  url: CODE_SYSTEM.observation,
  name: 'SamplanObservation',
  title: 'Samplans observasjonskoder',
  ...common,
  caseSensitive: true,
  content: 'complete',
  concept: [{ code: CHECK_IN_CODE.code, display: CHECK_IN_CODE.display }],
};

/** Every conformance resource Samplan publishes. */
export const conformanceResources = [
  carePlanProfile,
  conditionProfile,
  goalProfile,
  measureProfile,
  careTeamProfile,
  checkInProfile,
  zoneExtension,
  zoneCodeSystem,
  zoneValueSet,
  measureCategoryValueSet,
  observationCodeSystem,
];
