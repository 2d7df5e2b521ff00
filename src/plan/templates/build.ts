/**
 * Building blocks for Samplan's condition templates: one PlanDefinition per condition, with its
 * goals, its measures (one ActivityDefinition each, kind ServiceRequest, intent plan) and the
 * self-treatment zones as the zone extension on the PlanDefinition. The condition modules
 * (kols.ts, astma.ts, …) only state clinical content in these small shapes; everything FHIR is
 * made here, the same way for every template, so `$apply` (../apply.ts) can rely on it.
 *
 * Conventions a template follows, and `$apply` reads:
 * - the condition's codes are in `topic` and in `useContext` (code `focus`);
 * - a goal that is the patient's own ("hva er viktig for meg") has the category
 *   PATIENT_GOAL (conventions.ts): `$apply` makes it a Goal expressed by the patient;
 * - a measure's category (the six SNOMED CT codes) is the ActivityDefinition's `topic`, its
 *   frequency `timingTiming`, and who does it `participant` (type `patient`, or `practitioner`
 *   with the role as text);
 * - text that the clinician must fill in for the patient says "fylles ut …".
 */
import type {
  ActivityDefinition,
  CodeableConcept,
  Coding,
  Duration,
  Extension,
  PlanDefinition,
  PlanDefinitionGoal,
  Quantity,
  RelatedArtifact,
  Timing,
} from '@medplum/fhirtypes';
import { CODE_SYSTEM as NO } from '../../no/codes.js';
import { EXTENSION, MEASURE_CATEGORIES, PATIENT_GOAL, SAMPLAN, type ZoneLevel } from '../conventions.js';

/** Version and date of the template content; change both when the clinical content changes. */
export const TEMPLATE_VERSION = '0.1.0';
export const TEMPLATE_DATE = '2026-11-26';

export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';

/** The six SNOMED CT self-treatment categories by a short name. */
export type MeasureCategory = 'medication' | 'diet' | 'activity' | 'measurement' | 'mentalHealth' | 'lifestyle';
const CATEGORY_CODE: Record<MeasureCategory, string> = {
  medication: '182832007',
  diet: '384760004',
  activity: '229064008',
  measurement: '122869004',
  mentalHealth: '390808007',
  lifestyle: '313204009',
};

export function measureCategory(category: MeasureCategory): Coding {
  const code = CATEGORY_CODE[category];
  const found = MEASURE_CATEGORIES.find((c) => c.code === code);
  if (!found) throw new Error(`No measure category ${code}`);
  return { system: NO.snomed, code, display: found.display };
}

// ---------------------------------------------------------------------------------------------
// Small value helpers

export type TimeUnit = 'min' | 'h' | 'd' | 'wk' | 'mo' | 'a';

/** A UCUM Duration, with a unit text in bokmål for people (`timer`, `døgn`, …). */
export function duration(value: number, code: TimeUnit, unit: string): Duration {
  return { value, unit, system: UCUM, code };
}

export const hours = (n: number): Duration => duration(n, 'h', n === 1 ? 'time' : 'timer');
export const days = (n: number): Duration => duration(n, 'd', 'døgn');
export const months = (n: number): Duration => duration(n, 'mo', n === 1 ? 'måned' : 'måneder');
export const years = (n: number): Duration => duration(n, 'a', 'år');
/** "Straks": a contact to make at once (113). */
export const immediately: Duration = duration(0, 'min', 'minutter (straks)');

export function quantity(value: number, code: string, unit = code): Quantity {
  return { value, unit, system: UCUM, code };
}

export function loinc(code: string, display: string, text: string): CodeableConcept {
  return { coding: [{ system: LOINC, code, display }], text };
}

/** Measurements used in zone thresholds and goal targets. */
export const MEASUREMENT = {
  spo2: loinc('59408-5', 'Oxygen saturation in Arterial blood by Pulse oximetry', 'Oksygenmetning (SpO2)'),
  peakFlow: loinc('19935-6', 'Maximum expiratory gas flow Respiratory system airway by Peak flow meter', 'PEF (peak flow)'),
  weight: loinc('29463-7', 'Body weight', 'Vekt'),
  glucose: loinc('14743-9', 'Glucose [Moles/volume] in Capillary blood by Glucometer', 'Blodsukker (fingerstikk)'),
  hba1c: loinc('59261-8', 'Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol', 'Langtidsblodsukker (HbA1c)'),
} as const;

/** Timing with a human text in `code.text` (the whole schedule in words, as the spec allows). */
export function timing(text: string, repeat?: Timing['repeat']): Timing {
  return { ...(repeat ? { repeat } : {}), code: { text } };
}

export const daily = (text: string, extra: NonNullable<Timing['repeat']> = {}): Timing =>
  timing(text, { frequency: 1, period: 1, periodUnit: 'd', ...extra });
export const weekly = (text: string, frequency: number, extra: NonNullable<Timing['repeat']> = {}): Timing =>
  timing(text, { frequency, period: 1, periodUnit: 'wk', ...extra });
export const yearly = (text: string, frequency = 1): Timing => timing(text, { frequency, period: 1, periodUnit: 'a' });
export const asNeeded = (text: string): Timing => timing(text);

// ---------------------------------------------------------------------------------------------
// Shapes the condition modules fill in

export interface DiagnosisCode {
  code: string;
  display: string;
}

export interface ConditionCodes {
  /** Short name in bokmål ("KOLS"). */
  text: string;
  icd10: DiagnosisCode;
  icpc2: DiagnosisCode;
  snomed: DiagnosisCode;
}

export interface ThresholdSpec {
  measurement: CodeableConcept;
  comparator: '<' | '<=' | '>' | '>=';
  value?: Quantity;
  percentOfBaseline?: number;
  baseline?: Quantity;
  changeOver?: Duration;
}

export interface ContactSpec {
  who: string;
  phone?: string;
  within?: Duration;
}

export interface ZoneSpec {
  level: ZoneLevel;
  /** Heading with the colour *and* its meaning in words, e.g. "Rød sone – fare". */
  title: string;
  criteria: string;
  symptoms?: string[];
  thresholds?: ThresholdSpec[];
  actions: string[];
  medications?: string[];
  contacts: ContactSpec[];
  emergency?: boolean;
}

export interface GoalSpec {
  /** Element id of the goal in the PlanDefinition, referenced from actions' goalId. */
  id: string;
  description: string;
  /** The patient's own goal ("hva er viktig for meg"). */
  own?: boolean;
  priority?: 'high-priority' | 'medium-priority' | 'low-priority';
  target?: PlanDefinitionGoal['target'];
}

/** The patient's own goal, first in every plan, with an example to be rewritten in the patient's words. */
export function whatMatters(example: string): GoalSpec {
  return {
    id: 'hva-er-viktig',
    own: true,
    priority: 'high-priority',
    description: `Hva er viktig for meg: for eksempel ${example} (Eksempel – skrives sammen med pasienten, med pasientens egne ord.)`,
  };
}

export interface MeasureSpec {
  /** Id suffix, ASCII: `samplan-mal-kols-<key>`. */
  key: string;
  title: string;
  /** What to do, written for the patient. */
  description: string;
  category: MeasureCategory;
  timing: Timing;
  /** The patient, or the health service (the role, e.g. "Fastlege"). */
  performer: 'patient' | { role: string };
  goals?: string[];
}

export interface TemplateSpec {
  /** Short ASCII key: the PlanDefinition id is `samplan-mal-<key>`. */
  key: string;
  title: string;
  subtitle: string;
  /** For clinicians: what the template is and how to use it (markdown). */
  description: string;
  /** For the patient: what the plan is for; becomes the CarePlan's description. */
  purpose: string;
  /** For clinicians: what must be individualised before the plan is used. */
  usage: string;
  condition: ConditionCodes;
  goals: GoalSpec[];
  measures: MeasureSpec[];
  zones: [ZoneSpec, ZoneSpec, ZoneSpec];
  sources: RelatedArtifact[];
}

export interface Template {
  key: string;
  planDefinition: PlanDefinition;
  activityDefinitions: ActivityDefinition[];
}

// ---------------------------------------------------------------------------------------------
// Building

const PREFIX = 'samplan-mal';
const NORWAY = [{ coding: [{ system: 'urn:iso:std:iso:3166', code: 'NO', display: 'Norway' }] }];
const common = {
  version: TEMPLATE_VERSION,
  status: 'active' as const,
  experimental: false,
  date: TEMPLATE_DATE,
  publisher: 'Samplan',
  jurisdiction: NORWAY,
};

/** `samplan-mal-kols-inhalasjon` → `SamplanMalKolsInhalasjon` (a computable name, pdf-0/adf-0). */
function computableName(id: string): string {
  return id
    .split('-')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
}

export function conditionConcept(c: ConditionCodes): CodeableConcept {
  return {
    coding: [
      { system: NO.icd10, code: c.icd10.code, display: c.icd10.display },
      { system: NO.icpc2, code: c.icpc2.code, display: c.icpc2.display },
      { system: NO.snomed, code: c.snomed.code, display: c.snomed.display },
    ],
    text: c.text,
  };
}

function zoneExtension(z: ZoneSpec): Extension {
  const ext: Extension[] = [
    { url: 'level', valueCode: z.level },
    { url: 'title', valueString: z.title },
    { url: 'criteria', valueString: z.criteria },
    ...(z.symptoms ?? []).map((s) => ({ url: 'symptom', valueString: s })),
    ...(z.thresholds ?? []).map((t) => ({
      url: 'threshold',
      extension: [
        { url: 'measurement', valueCodeableConcept: t.measurement },
        { url: 'comparator', valueCode: t.comparator },
        ...(t.value ? [{ url: 'value', valueQuantity: t.value }] : []),
        ...(t.percentOfBaseline !== undefined ? [{ url: 'percentOfBaseline', valueDecimal: t.percentOfBaseline }] : []),
        ...(t.baseline ? [{ url: 'baseline', valueQuantity: t.baseline }] : []),
        ...(t.changeOver ? [{ url: 'changeOver', valueDuration: t.changeOver }] : []),
      ],
    })),
    ...z.actions.map((a) => ({ url: 'action', valueString: a })),
    ...(z.medications ?? []).map((m) => ({ url: 'medication', valueString: m })),
    ...z.contacts.map((c) => ({
      url: 'contact',
      extension: [
        { url: 'who', valueString: c.who },
        ...(c.phone ? [{ url: 'phone', valueString: c.phone }] : []),
        ...(c.within ? [{ url: 'within', valueDuration: c.within }] : []),
      ],
    })),
    ...(z.emergency !== undefined ? [{ url: 'emergency', valueBoolean: z.emergency }] : []),
  ];
  return { url: EXTENSION.zone, extension: ext };
}

function activityDefinition(spec: TemplateSpec, m: MeasureSpec): ActivityDefinition {
  const id = `${PREFIX}-${spec.key}-${m.key}`;
  return {
    resourceType: 'ActivityDefinition',
    id,
    url: `${SAMPLAN}/ActivityDefinition/${id}`,
    name: computableName(id),
    title: m.title,
    ...common,
    description: m.description,
    topic: [{ coding: [measureCategory(m.category)] }],
    kind: 'ServiceRequest',
    intent: 'plan',
    code: { text: m.title },
    timingTiming: m.timing,
    participant: m.performer === 'patient' ? [{ type: 'patient' }] : [{ type: 'practitioner', role: { text: m.performer.role } }],
  };
}

function goal(g: GoalSpec, condition: CodeableConcept): PlanDefinitionGoal {
  return {
    id: g.id,
    ...(g.own ? { category: { coding: [PATIENT_GOAL], text: 'Hva er viktig for meg' } } : {}),
    description: { text: g.description },
    ...(g.priority
      ? { priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/goal-priority', code: g.priority }] } }
      : {}),
    addresses: [condition],
    ...(g.target ? { target: g.target } : {}),
  };
}

/** The PlanDefinition and its ActivityDefinitions for a template spec. */
export function buildTemplate(spec: TemplateSpec): Template {
  const id = `${PREFIX}-${spec.key}`;
  const condition = conditionConcept(spec.condition);
  const activityDefinitions = spec.measures.map((m) => activityDefinition(spec, m));
  const goalIds = new Set(spec.goals.map((g) => g.id));
  for (const m of spec.measures) {
    for (const g of m.goals ?? []) if (!goalIds.has(g)) throw new Error(`${id}: measure ${m.key} names an unknown goal ${g}`);
  }
  const levels = spec.zones.map((z) => z.level).join(',');
  if (levels !== 'green,yellow,red') throw new Error(`${id}: zones must be green, yellow, red in that order (got ${levels})`);
  const planDefinition: PlanDefinition = {
    resourceType: 'PlanDefinition',
    id,
    extension: spec.zones.map(zoneExtension),
    url: `${SAMPLAN}/PlanDefinition/${id}`,
    name: computableName(id),
    title: spec.title,
    subtitle: spec.subtitle,
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/plan-definition-type', code: 'clinical-protocol', display: 'Clinical Protocol' }] },
    ...common,
    description: spec.description,
    useContext: [{ code: { system: 'http://terminology.hl7.org/CodeSystem/usage-context-type', code: 'focus', display: 'Clinical Focus' }, valueCodeableConcept: condition }],
    purpose: spec.purpose,
    usage: spec.usage,
    topic: [condition],
    relatedArtifact: spec.sources,
    goal: spec.goals.map((g) => goal(g, condition)),
    action: spec.measures.map((m, i) => ({
      title: m.title,
      description: m.description,
      ...(m.goals?.length ? { goalId: m.goals } : {}),
      definitionCanonical: (activityDefinitions[i] as ActivityDefinition).url as string,
    })),
  };
  return { key: spec.key, planDefinition, activityDefinitions };
}

// ---------------------------------------------------------------------------------------------
// Text shared by the templates

export const EMERGENCY_113: ContactSpec = { who: 'Medisinsk nødtelefon – ring 113 med en gang', phone: '113', within: immediately };
export const LEGEVAKT = (when: string, within: Duration): ContactSpec => ({ who: `Legevakt – ${when}`, phone: '116 117', within });

/** Where the common model of an egenbehandlingsplan comes from (norway-context §4.1). */
export const DHO_SOURCE: RelatedArtifact = {
  type: 'documentation',
  display: 'Helsedirektoratet: Bruk av egenbehandlingsplan i digital hjemmeoppfølging',
  url: 'https://www.helsedirektoratet.no/rapporter/digital-hjemmeoppfolging-sluttrapport-fra-nasjonal-utproving-2018-2021/organisering-av-en-baerekraftig-tjeneste/bruk-av-egenbehandlingsplan-i-dho',
};

export const USAGE_COMMON =
  'Malen er et utgangspunkt og må tilpasses hver pasient: skriv inn pasientens egne mål med pasientens ord, legemidler med navn og dose, ' +
  'pasientens vanlige verdier (for eksempel beste PEF, vanlig oksygenmetning eller tørrvekt) og grensene for sonene, og hvem pasienten ' +
  'skal kontakte med telefonnummer. Tekst som sier «fylles ut» må fylles ut eller fjernes. Planen avtales med pasienten og fastlegen ' +
  '(eventuelt spesialist og kommunen) før den tas i bruk. Rød sone skal alltid vise til akutthjelp (113 eller legevakt 116 117), ' +
  'ikke til en dagtidstjeneste.';
