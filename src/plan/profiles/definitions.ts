/**
 * Samplan's conformance resources: the profiles of a treatment and self-treatment plan, the
 * self-treatment zone extension and the Subscription extensions, and (from ./terminology.ts) the
 * code systems and value sets they and the rest of Samplan use. The server validates writes
 * against them and serves them (StructureDefinition?url=…); docs/profiles/ explains each with
 * examples. The NamingSystem and the OperationDefinitions Samplan publishes besides are in
 * ./terminology.ts and ./operations.ts; ./index.ts installs them all.
 */
import type { CodeSystem, ElementDefinition, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { CODE_SYSTEM as NO } from '../../no/codes.js';
import { CHECK_IN_CODE, EXTENSION, PROFILE, VALUE_SET } from '../conventions.js';
import { common } from './meta.js';
import { withSnapshot } from './snapshot.js';
import { terminologyResources } from './terminology.js';

const HL7 = 'http://hl7.org/fhir/StructureDefinition';
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
        invariant('spl-zone-5', 'Every zone has one level: green, yellow or red', `${zone}.all(extension.where(url = 'level').count() = 1 and ${zoneLevel} in ('green' | 'yellow' | 'red'))`),
        invariant(
          'spl-zone-6',
          'A threshold names the measurement, a comparator (<, <=, >, >=) and a value or a percentage of the baseline, and nothing else',
          `${zone}.extension.where(url = 'threshold').all(extension.where(url = 'measurement').count() = 1 and extension.where(url = 'comparator').value in ('<' | '<=' | '>' | '>=') and (extension.where(url = 'value').exists() or extension.where(url = 'percentOfBaseline').exists()) and extension.url.subsetOf(('measurement' | 'comparator' | 'value' | 'percentOfBaseline' | 'baseline' | 'changeOver')))`,
        ),
        invariant(
          'spl-zone-7',
          'A contact says who (and may give a phone number and within what time), and nothing else',
          `${zone}.extension.where(url = 'contact').all(extension.where(url = 'who').count() = 1 and extension.url.subsetOf(('who' | 'phone' | 'within')))`,
        ),
        invariant(
          'spl-zone-8',
          'A zone has only the parts the zone extension defines',
          `${zone}.all(extension.url.subsetOf(('level' | 'title' | 'criteria' | 'symptom' | 'threshold' | 'action' | 'medication' | 'contact' | 'emergency')))`,
        ),
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

/**
 * A slice of the zone's sub-extensions; `parent` names the slice a part belongs to (threshold,
 * contact), whose own parts then sit at `Extension.extension:<parent>.extension:<name>`.
 */
const sub = (name: string, min: number, max: string, value: ElementDefinition['type'] | undefined, short: string, parent?: string): ElementDefinition[] => {
  const id = parent ? `Extension.extension:${parent}.extension:${name}` : `Extension.extension:${name}`;
  const path = parent ? 'Extension.extension.extension' : 'Extension.extension';
  return [
    { id, path, sliceName: name, min, max, short },
    { id: `${id}.url`, path: `${path}.url`, fixedUri: name },
    ...(value ? [{ id: `${id}.value[x]`, path: `${path}.value[x]`, min: 1, type: value }] : [{ id: `${id}.value[x]`, path: `${path}.value[x]`, max: '0' }]),
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
      { id: 'Extension.extension:threshold.extension', path: 'Extension.extension.extension', slicing: { discriminator: [{ type: 'value', path: 'url' }], rules: 'closed' } },
      ...sub('measurement', 1, '1', [{ code: 'CodeableConcept' }], 'What is measured (e.g. LOINC 19935-6 peak flow)', 'threshold'),
      ...sub('comparator', 1, '1', [{ code: 'code' }], '< | <= | > | >=', 'threshold'),
      ...sub('value', 0, '1', [{ code: 'Quantity' }], 'Absolute value, or the change for changeOver', 'threshold'),
      ...sub('percentOfBaseline', 0, '1', [{ code: 'decimal' }], 'Percent of the personal baseline', 'threshold'),
      ...sub('baseline', 0, '1', [{ code: 'Quantity' }], 'The personal baseline (e.g. best peak flow)', 'threshold'),
      ...sub('changeOver', 0, '1', [{ code: 'Duration' }], 'Period of a change (e.g. +2 kg over 3 days)', 'threshold'),
      ...sub('action', 1, '*', [{ code: 'string' }], 'What to do (NHN "action")'),
      ...sub('medication', 0, '*', [{ code: 'string' }], 'Rescue medication: drug, dose, when to start, how long'),
      ...sub('contact', 0, '*', undefined, 'Whom to contact, how, and within what time'),
      { id: 'Extension.extension:contact.extension', path: 'Extension.extension.extension', slicing: { discriminator: [{ type: 'value', path: 'url' }], rules: 'closed' } },
      ...sub('who', 1, '1', [{ code: 'string' }, { code: 'Reference', targetProfile: [`${HL7}/PractitionerRole`, `${HL7}/CareTeam`, `${HL7}/Organization`] }], 'Who to contact', 'contact'),
      ...sub('phone', 0, '1', [{ code: 'string' }], 'Phone number', 'contact'),
      ...sub('within', 0, '1', [{ code: 'Duration' }], 'Within what time', 'contact'),
      ...sub('emergency', 0, '1', [{ code: 'boolean' }], 'Directs to emergency help: 113 or legevakt 116 117'),
      { id: 'Extension.url', path: 'Extension.url', fixedUri: EXTENSION.zone },
      { id: 'Extension.value[x]', path: 'Extension.value[x]', max: '0' },
    ],
  },
};

/** A simple extension (one value, no sub-extensions) on `context`. */
function simpleExtension(id: string, url: string, name: string, title: string, description: string, context: string, valueType: string): StructureDefinition {
  return {
    resourceType: 'StructureDefinition',
    id,
    url,
    name,
    title,
    description,
    ...common,
    fhirVersion,
    kind: 'complex-type',
    abstract: false,
    context: [{ type: 'element', expression: context }],
    type: 'Extension',
    baseDefinition: `${HL7}/Extension`,
    derivation: 'constraint',
    differential: {
      element: [
        { id: 'Extension', path: 'Extension', short: title, definition: description, min: 0, max: '1' },
        { id: 'Extension.extension', path: 'Extension.extension', max: '0' },
        { id: 'Extension.url', path: 'Extension.url', fixedUri: url },
        { id: 'Extension.value[x]', path: 'Extension.value[x]', min: 1, type: [{ code: valueType }] },
      ],
    },
  };
}

export const subscriptionSecretExtension = simpleExtension(
  'subscription-secret',
  EXTENSION.subscriptionSecret,
  'SubscriptionSecret',
  'Hemmelighet for signering av varsler',
  "The client's secret for signing its notifications (HMAC-SHA256 in the X-Samplan-Signature header): required when a Subscription is created, given again on an update to change it, 16 to 512 characters. Samplan keeps it apart: a stored or returned Subscription never carries this extension.",
  'Subscription',
  'string',
);

export const subscriptionOwnerExtension = simpleExtension(
  'subscription-owner',
  EXTENSION.subscriptionOwner,
  'SubscriptionOwner',
  'Eier av abonnementet',
  'Set by Samplan: the client (client_id) that created the Subscription and alone may read, change or delete it. A value sent by a client is replaced.',
  'Subscription',
  'string',
);

/**
 * The profiles, extensions, code systems and value sets Samplan publishes (each found by its
 * canonical URL: `StructureDefinition?url=…`, `CodeSystem?url=…`, `ValueSet?url=…`).
 */
export const conformanceResources: Array<StructureDefinition | CodeSystem | ValueSet> = [
  carePlanProfile,
  conditionProfile,
  goalProfile,
  measureProfile,
  careTeamProfile,
  checkInProfile,
  zoneExtension,
  subscriptionSecretExtension,
  subscriptionOwnerExtension,
  ...terminologyResources,
];
