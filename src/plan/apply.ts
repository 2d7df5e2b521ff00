/**
 * PlanDefinition/$apply (https://hl7.org/fhir/R4/plandefinition-operation-apply.html): turns a
 * condition template into a draft plan for one patient. Its OperationDefinition is Samplan's own,
 * based on the core one (see applyOperation).
 *
 *   POST PlanDefinition/{id}/$apply                    instance level
 *   POST PlanDefinition/$apply                         type level, with `planDefinition` (or `url`):
 *                                                      the template's canonical URL, or (R4) a
 *                                                      PlanDefinition resource
 *
 * Input (a Parameters body): `subject` = Patient/{id} (one), optional `practitioner`
 * (Practitioner/{id} or PractitionerRole/{id}: author, requester, recorder), optional
 * `organization` (accepted and checked, but Samplan's profiles have no place for it: name a
 * PractitionerRole instead), and Samplan's `persist` (boolean, default false).
 *
 * - persist=false, the preview the spec describes: 200 with a draft CarePlan whose Condition (when
 *   the patient has none with the template's code), Goals and ServiceRequests are contained.
 *   Nothing is stored.
 * - persist=true: the same content as separate resources, created in one transaction through the
 *   write pipeline (validation, access rules and plan rules apply as for any write), answered 201
 *   with the stored CarePlan and its Location. The plan is a draft: it is never activated unseen.
 *
 * The patient's existing Condition with the template's code (ICD-10 by prefix, so J44 finds J44.1;
 * ICPC-2 and SNOMED CT exactly) is addressed if there is one; else a new provisional Condition is
 * made. The zones are copied from the template. Measures come from the actions'
 * ActivityDefinitions (kind ServiceRequest): `topic` → category, `timingTiming` → occurrenceTiming,
 * `participant` → performer (Patient) or performerType (the health service's role), description →
 * patientInstruction. Applicability conditions and dynamic values are not evaluated.
 */
import type {
  ActivityDefinition,
  CarePlan,
  CodeableConcept,
  Coding,
  Condition,
  Extension,
  Goal,
  GoalTarget,
  Parameters,
  ParametersParameter,
  Patient,
  PlanDefinition,
  PlanDefinitionAction,
  PlanDefinitionGoal,
  Practitioner,
  PractitionerRole,
  Reference,
  Resource,
  ServiceRequest,
  Timing,
} from '@medplum/fhirtypes';
import { visibility } from '../fhir/access.js';
import type { Operation, OperationTarget } from '../fhir/operations.js';
import { ErrorCode, errors, FhirError, issue } from '../fhir/outcomes.js';
import { type LocalReference, parseLocalReference } from '../fhir/references.js';
import { versionResponse } from '../fhir/respond.js';
import type { Call, Services } from '../fhir/services.js';
import type { FhirResponse, ResourceRef } from '../fhir/types.js';
import type { WriteResult } from '../fhir/writer.js';
import { hasErrors, validateResource } from '../fhir/validation/validator.js';
import { CODE_SYSTEM as NO } from '../no/codes.js';
import { executeSearch } from '../search/execute.js';
import { parseSearch } from '../search/parse.js';
import { inTransaction } from '../store/db.js';
import { EXTENSION, PATIENT_GOAL, PROFILE } from './conventions.js';

// ---------------------------------------------------------------------------------------------
// Input

interface ApplyInput {
  subject: LocalReference;
  practitioner?: LocalReference;
  organization?: LocalReference;
  persist: boolean;
  /** Type level: the template inline (R4) … */
  planDefinition?: PlanDefinition;
  /** … or its canonical URL (optionally `|version`). */
  canonical?: string;
}

function parametersOf(body: unknown): ParametersParameter[] {
  if (body === undefined) throw errors.badRequest('$apply needs a Parameters resource with a subject (Patient/{id})');
  if (!body || typeof body !== 'object' || Array.isArray(body) || (body as Resource).resourceType !== 'Parameters') {
    throw errors.badRequest('The body of $apply must be a Parameters resource', 'resourceType');
  }
  const params = (body as Parameters).parameter ?? [];
  if (!Array.isArray(params)) throw errors.badRequest('Parameters.parameter must be a list', 'Parameters.parameter');
  return params;
}

function textValue(p: ParametersParameter): string | undefined {
  return p.valueString ?? p.valueReference?.reference ?? p.valueUri ?? p.valueCanonical ?? p.valueUrl ?? undefined;
}

function single(params: ParametersParameter[], name: string, what: string): ParametersParameter | undefined {
  const found = params.filter((p) => p?.name === name);
  if (found.length > 1) throw errors.badRequest(`Give at most one ${name}: Samplan applies a template to ${what} at a time`, name);
  return found[0];
}

function referenceParam(params: ParametersParameter[], name: string, types: string[], baseUrl: string): LocalReference | undefined {
  const p = single(params, name, `one ${types[0]?.toLowerCase()}`);
  if (!p) return undefined;
  const value = textValue(p);
  const example = `${types[0]}/{id}`;
  if (typeof value !== 'string' || !value.trim()) {
    throw errors.badRequest(`${name} must be a reference like ${example} (valueString or valueReference)`, name);
  }
  const local = parseLocalReference(value.trim(), baseUrl);
  if (!local || !types.includes(local.type) || local.version) {
    throw errors.badRequest(`${name} must refer to a ${types.join(' or ')} on this server, like ${example}; got "${value.slice(0, 100)}"`, name);
  }
  return local;
}

function readInput(call: Call, target: OperationTarget): ApplyInput {
  const params = parametersOf(call.req.body);
  const baseUrl = call.ctx.baseUrl;
  const subject = referenceParam(params, 'subject', ['Patient'], baseUrl);
  if (!subject) throw errors.badRequest('$apply needs a subject: the patient the plan is for, as Patient/{id}', 'subject');
  const practitioner = referenceParam(params, 'practitioner', ['Practitioner', 'PractitionerRole'], baseUrl);
  const organization = referenceParam(params, 'organization', ['Organization'], baseUrl);

  const persistParam = single(params, 'persist', 'one setting');
  if (persistParam && typeof persistParam.valueBoolean !== 'boolean') {
    throw errors.badRequest('persist must be a boolean (valueBoolean true or false)', 'persist');
  }
  const input: ApplyInput = { subject, persist: persistParam?.valueBoolean === true };
  if (practitioner) input.practitioner = practitioner;
  if (organization) input.organization = organization;

  const definition = single(params, 'planDefinition', 'one template') ?? single(params, 'url', 'one template');
  if (target.id) {
    if (definition) throw errors.badRequest('planDefinition is given by the URL (PlanDefinition/{id}/$apply), so it must not be a parameter too', 'planDefinition');
    return input;
  }
  if (definition?.resource) {
    const plan = definition.resource as PlanDefinition;
    if (plan.resourceType !== 'PlanDefinition') throw errors.badRequest(`planDefinition must be a PlanDefinition, not a ${String(plan.resourceType)}`, 'planDefinition');
    const issues = validateResource(plan);
    if (hasErrors(issues)) throw new FhirError(400, issues.filter((i) => i.severity === 'error' || i.severity === 'fatal'));
    input.planDefinition = plan;
  } else if (definition && textValue(definition)) {
    input.canonical = (textValue(definition) as string).trim();
  } else {
    throw errors.badRequest("At type level $apply needs planDefinition: the template's canonical URL, or a PlanDefinition", 'planDefinition');
  }
  return input;
}

// ---------------------------------------------------------------------------------------------
// Reading what the plan is made from

interface Found<T> {
  resource: T;
  ref?: ResourceRef;
}

/** The newest visible resource of `type` with this canonical URL (`url` or `url|version`). */
async function findByCanonical<T extends Resource>(call: Call, type: string, canonical: string): Promise<Found<T> | undefined> {
  const [url, version] = canonical.split('|', 2) as [string, string?];
  const query = parseSearch(type, [['url', url], ...(version ? [['version', version] as const] : []), ['_sort', '-_lastUpdated'], ['_count', '1']], {
    strict: true,
    baseUrl: call.ctx.baseUrl,
  });
  const row = (await executeSearch(call.q, query, visibility(call.ctx.access))).matches[0];
  return row ? { resource: JSON.parse(row.content) as T, ref: { type, id: row.id, version: row.version } } : undefined;
}

async function readVisible<T extends Resource>(s: Services, call: Call, ref: LocalReference): Promise<Found<T> | undefined> {
  const row = await s.store.read(call.q, ref.type, ref.id, visibility(call.ctx.access));
  if (!row || row.deleted || !row.content) return undefined;
  return { resource: JSON.parse(row.content) as T, ref: { type: ref.type, id: ref.id, version: row.version } };
}

async function resolvePlan(s: Services, call: Call, target: OperationTarget, input: ApplyInput): Promise<Found<PlanDefinition>> {
  if (target.id) {
    const found = await readVisible<PlanDefinition>(s, call, { type: 'PlanDefinition', id: target.id });
    if (!found) throw errors.notFound('PlanDefinition', target.id);
    return found;
  }
  if (input.planDefinition) return { resource: input.planDefinition };
  const found = await findByCanonical<PlanDefinition>(call, 'PlanDefinition', input.canonical as string);
  if (!found) throw errors.noMatch(`No PlanDefinition has the canonical URL ${(input.canonical as string).slice(0, 200)}`);
  return found;
}

/** A measure to be, from an ActivityDefinition or from an action without one. */
interface Activity {
  title: string;
  code: CodeableConcept;
  category: CodeableConcept[];
  description?: string;
  timing?: Timing;
  byPatient: boolean;
  performerType?: CodeableConcept;
  canonical?: string;
}

const unprocessable = (message: string, expression?: string) =>
  new FhirError(422, issue({ code: 'processing', errorCode: ErrorCode.ReferenceNotFound, message, ...(expression ? { expression } : {}) }));

/** Actions in document order; groups (actions with sub-actions and no definition) are opened. */
function flatten(actions: PlanDefinitionAction[] | undefined): PlanDefinitionAction[] {
  return (actions ?? []).flatMap((a) => [...(a.definitionCanonical || !a.action?.length ? [a] : []), ...flatten(a.action)]);
}

function participants(list: Array<{ type?: string; role?: CodeableConcept }> | undefined): Pick<Activity, 'byPatient' | 'performerType'> {
  const byPatient = (list ?? []).some((p) => p.type === 'patient');
  const role = (list ?? []).find((p) => p.type !== 'patient' && p.role)?.role;
  return { byPatient, ...(!byPatient && role ? { performerType: role } : {}) };
}

async function resolveActivities(call: Call, plan: PlanDefinition): Promise<{ activities: Activity[]; read: ResourceRef[] }> {
  const activities: Activity[] = [];
  const read: ResourceRef[] = [];
  const cache = new Map<string, ActivityDefinition>();
  for (const action of flatten(plan.action)) {
    const canonical = action.definitionCanonical;
    if (!canonical) {
      const title = action.title ?? action.code?.[0]?.text;
      if (!title) continue; // nothing to make a measure from
      activities.push({
        title,
        code: { text: title },
        category: [],
        ...(action.description ? { description: action.description } : {}),
        ...(action.timingTiming ? { timing: action.timingTiming } : {}),
        ...participants(action.participant),
      });
      continue;
    }
    let ad = cache.get(canonical);
    if (!ad) {
      if (canonical.startsWith('#')) {
        ad = (plan.contained ?? []).find((r): r is ActivityDefinition => r.resourceType === 'ActivityDefinition' && r.id === canonical.slice(1));
      } else {
        const found = await findByCanonical<ActivityDefinition>(call, 'ActivityDefinition', canonical);
        if (found?.ref) read.push(found.ref);
        ad = found?.resource;
      }
      if (!ad) throw unprocessable(`The template's action "${(action.title ?? canonical).slice(0, 100)}" refers to the ActivityDefinition ${canonical.slice(0, 200)}, which was not found`, 'PlanDefinition.action.definitionCanonical');
      cache.set(canonical, ad);
    }
    if (ad.kind !== 'ServiceRequest') {
      throw new FhirError(
        422,
        issue({ code: 'not-supported', errorCode: ErrorCode.NotSupported, message: `The ActivityDefinition ${canonical.slice(0, 200)} is of kind ${String(ad.kind)}; Samplan makes measures (ServiceRequest) only` }),
      );
    }
    const title = ad.title ?? ad.code?.text ?? ad.name ?? action.title ?? 'Tiltak';
    activities.push({
      title,
      code: ad.code ?? { text: title },
      category: ad.topic ?? [],
      ...((ad.description ?? action.description) ? { description: (ad.description ?? action.description) as string } : {}),
      ...((ad.timingTiming ?? action.timingTiming) ? { timing: (ad.timingTiming ?? action.timingTiming) as Timing } : {}),
      ...participants(ad.participant ?? action.participant),
      ...(ad.url ? { canonical: ad.version ? `${ad.url}|${ad.version}` : ad.url } : {}),
    });
  }
  return { activities, read };
}

// ---------------------------------------------------------------------------------------------
// The condition the plan addresses

const ICPC2_LEGACY = 'urn:oid:2.16.578.1.12.4.1.1.7170';
const ICD11 = 'http://id.who.int/icd/release/11/mms';
const DIAGNOSIS_SYSTEMS = new Set<string>([NO.icd10, NO.icpc2, ICPC2_LEGACY, NO.snomed, ICD11]);

/** The template's diagnosis codes: from topic and the `focus` use contexts. */
function templateConcepts(plan: PlanDefinition): CodeableConcept[] {
  return [
    ...(plan.topic ?? []),
    ...(plan.useContext ?? []).filter((u) => u.code?.code === 'focus' && u.valueCodeableConcept).map((u) => u.valueCodeableConcept as CodeableConcept),
  ];
}

function templateDiagnosis(plan: PlanDefinition): { codings: Coding[]; text?: string } {
  const concepts = templateConcepts(plan);
  const seen = new Set<string>();
  const codings: Coding[] = [];
  for (const c of concepts.flatMap((cc) => cc.coding ?? [])) {
    if (!c.system || !c.code || !DIAGNOSIS_SYSTEMS.has(c.system) || seen.has(`${c.system}|${c.code}`)) continue;
    seen.add(`${c.system}|${c.code}`);
    codings.push({ system: c.system, code: c.code, ...(c.display ? { display: c.display } : {}) });
  }
  const text = concepts.find((c) => c.text)?.text ?? codings[0]?.display;
  return { codings, ...(text ? { text } : {}) };
}

const systemOf = (system: string | undefined) => (system === ICPC2_LEGACY ? NO.icpc2 : system);
const compact = (code: string) => code.replace(/\./g, '').toUpperCase();

/** ICD-10 codes match by prefix (the template's J44 covers J44.1 and J441); others exactly. */
function codeMatches(template: Coding, coding: Coding): boolean {
  if (!template.code || !coding.code || systemOf(template.system) !== systemOf(coding.system)) return false;
  if (template.system === NO.icd10) return compact(coding.code).startsWith(compact(template.code));
  return template.code.toUpperCase() === coding.code.toUpperCase();
}

function statusRank(c: Condition): number {
  const verification = c.verificationStatus?.coding?.map((x) => x.code) ?? [];
  if (verification.includes('entered-in-error') || verification.includes('refuted')) return -1;
  const clinical = c.clinicalStatus?.coding?.map((x) => x.code) ?? [];
  if (!clinical.length) return 1;
  return clinical.some((x) => x === 'active' || x === 'recurrence' || x === 'relapse') ? 0 : 2;
}

/** The patient's Condition with the template's code (the active one first), if the caller may see one. */
async function findCondition(call: Call, patientId: string, codings: Coding[]): Promise<Found<Condition> | undefined> {
  if (!codings.length) return undefined;
  const query = parseSearch('Condition', [['subject', `Patient/${patientId}`], ['_count', '1000']], { strict: true, baseUrl: call.ctx.baseUrl });
  const rows = (await executeSearch(call.q, query, visibility(call.ctx.access))).matches;
  const candidates = rows
    .map((row) => ({ row, condition: JSON.parse(row.content) as Condition }))
    .filter(({ condition }) => (condition.code?.coding ?? []).some((c) => codings.some((t) => codeMatches(t, c))))
    .map((x) => ({ ...x, rank: statusRank(x.condition) }))
    .filter((x) => x.rank >= 0)
    .sort((a, b) => a.rank - b.rank);
  const best = candidates[0];
  return best ? { resource: best.condition, ref: { type: 'Condition', id: best.row.id, version: best.row.version } } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Building the draft

interface Draft {
  carePlan: CarePlan;
  condition?: Condition;
  goals: Goal[];
  measures: ServiceRequest[];
}

interface DraftInput {
  plan: PlanDefinition;
  activities: Activity[];
  patient: Reference<Patient>;
  practitioner?: Reference<Practitioner | PractitionerRole>;
  existingCondition?: Reference<Condition>;
  diagnosis: { codings: Coding[]; text?: string };
  now: string;
  /** Ids for the new resources, and how to refer to one (`#id` when contained, `Type/id` when stored). */
  ids: { condition: string; goals: string[]; measures: string[] };
  link(type: string, id: string): string;
}

const conceptText = (c: CodeableConcept | undefined) => c?.text ?? c?.coding?.find((x) => x.display)?.display;

function goalTargets(g: PlanDefinitionGoal): GoalTarget[] {
  return (g.target ?? []).map((t) => ({
    ...(t.measure ? { measure: t.measure } : {}),
    ...(t.detailQuantity ? { detailQuantity: t.detailQuantity } : {}),
    ...(t.detailRange ? { detailRange: t.detailRange } : {}),
    ...(t.detailCodeableConcept ? { detailCodeableConcept: t.detailCodeableConcept } : {}),
    ...(t.due ? { dueDuration: t.due } : {}),
  }));
}

const isPatientGoal = (g: PlanDefinitionGoal) => (g.category?.coding ?? []).some((c) => c.system === PATIENT_GOAL.system && c.code === PATIENT_GOAL.code);

function buildDraft(d: DraftInput): Draft {
  const { plan, patient, practitioner, now } = d;
  const title = plan.title ?? plan.name ?? 'Behandlingsplan';

  let condition: Condition | undefined;
  let conditionRef = d.existingCondition;
  if (!conditionRef && d.diagnosis.codings.length) {
    condition = {
      resourceType: 'Condition',
      id: d.ids.condition,
      meta: { profile: [PROFILE.condition] },
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active', display: 'Active' }] },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'provisional', display: 'Provisional' }] },
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item', display: 'Problem List Item' }] }],
      code: { coding: d.diagnosis.codings, ...(d.diagnosis.text ? { text: d.diagnosis.text } : {}) },
      subject: patient,
      recordedDate: now,
      ...(practitioner ? { recorder: practitioner } : {}),
      note: [{ text: `Registrert fra malen «${title}» fordi pasienten ikke hadde denne diagnosen i planen. Bekreft eller rett diagnosen.` }],
    };
    const display = conceptText(condition.code as CodeableConcept);
    conditionRef = { reference: d.link('Condition', d.ids.condition), ...(display ? { display } : {}) };
  }

  const goals: Goal[] = (plan.goal ?? []).map((g, i) => {
    const targets = goalTargets(g);
    const expressedBy = isPatientGoal(g) ? patient : practitioner;
    return {
      resourceType: 'Goal',
      id: d.ids.goals[i] as string,
      meta: { profile: [PROFILE.goal] },
      lifecycleStatus: 'proposed',
      ...(g.category ? { category: [g.category] } : {}),
      ...(g.priority ? { priority: g.priority } : {}),
      description: g.description,
      subject: patient,
      ...(g.start ? { startCodeableConcept: g.start } : {}),
      ...(targets.length ? { target: targets } : {}),
      ...(expressedBy ? { expressedBy } : {}),
      ...(conditionRef ? { addresses: [conditionRef] } : {}),
    };
  });

  const measures: ServiceRequest[] = d.activities.map((a, i) => ({
    resourceType: 'ServiceRequest',
    id: d.ids.measures[i] as string,
    meta: { profile: [PROFILE.measure] },
    ...(a.canonical ? { instantiatesCanonical: [a.canonical] } : {}),
    status: 'draft',
    intent: 'plan',
    ...(a.category.length ? { category: a.category } : {}),
    code: a.code,
    subject: patient,
    ...(a.timing ? { occurrenceTiming: a.timing } : {}),
    authoredOn: now,
    ...(practitioner ? { requester: practitioner } : {}),
    ...(a.byPatient ? { performer: [patient] } : {}),
    ...(a.performerType ? { performerType: a.performerType } : {}),
    ...(conditionRef ? { reasonReference: [conditionRef] } : {}),
    ...(a.description ? { patientInstruction: a.description } : {}),
  }));

  const zones: Extension[] = (plan.extension ?? []).filter((e) => e.url === EXTENSION.zone).map((e) => structuredClone(e));
  const canonical = plan.url ? (plan.version ? `${plan.url}|${plan.version}` : plan.url) : undefined;
  const description = plan.purpose ?? plan.description;
  const carePlan: CarePlan = {
    resourceType: 'CarePlan',
    meta: { profile: [PROFILE.carePlan] },
    ...(zones.length ? { extension: zones } : {}),
    ...(canonical ? { instantiatesCanonical: [canonical] } : {}),
    status: 'draft',
    intent: 'plan',
    title,
    ...(description ? { description } : {}),
    subject: patient,
    created: now,
    ...(practitioner ? { author: practitioner } : {}),
    ...(conditionRef ? { addresses: [conditionRef] } : {}),
    ...(goals.length
      ? { goal: goals.map((g) => ({ reference: d.link('Goal', g.id as string), ...(g.description.text ? { display: g.description.text } : {}) })) }
      : {}),
    ...(measures.length
      ? { activity: measures.map((m) => ({ reference: { reference: d.link('ServiceRequest', m.id as string), ...(m.code?.text ? { display: m.code.text } : {}) } })) }
      : {}),
    note: [
      {
        text: `Utkast laget fra malen «${title}»${plan.version ? ` (versjon ${plan.version})` : ''}. Tilpass planen og avtal den med pasienten før den tas i bruk.`,
      },
    ],
  };
  return { carePlan, ...(condition ? { condition } : {}), goals, measures };
}

// ---------------------------------------------------------------------------------------------
// The operation

async function handler(s: Services, call: Call, target: OperationTarget): Promise<FhirResponse> {
  const { ctx } = call;
  const input = readInput(call, target);
  const plan = await resolvePlan(s, call, target, input);
  if (plan.resource.status === 'retired') {
    throw new FhirError(422, issue({ code: 'business-rule', errorCode: ErrorCode.InvalidRequest, message: `The template ${plan.resource.url ?? plan.resource.id ?? ''} is retired and can no longer be applied` }));
  }

  // The patient: a personnel request names them in nhn-patient-nin (else 400), and one the
  // caller may not see is answered as if it did not exist.
  ctx.access.checkInteraction('read', 'Patient');
  const patient = await readVisible(s, call, input.subject);
  if (!patient) throw errors.notFound('Patient', input.subject.id);
  // A plan for this patient is plan content: refused without consent, for a blocked clinician,
  // an opted-out patient, or restricted access without an elevated basis — as a read would be.
  ctx.access.checkInteraction('search', 'Condition');
  for (const [ref, name] of [[input.practitioner, 'practitioner'], [input.organization, 'organization']] as const) {
    if (ref && !(await readVisible(s, call, ref))) throw errors.referenceNotFound(`${ref.type}/${ref.id} (${name}) was not found`, name);
  }

  const { activities, read } = await resolveActivities(call, plan.resource);
  const diagnosis = templateDiagnosis(plan.resource);
  const existing = await findCondition(call, input.subject.id, diagnosis.codings);
  const touched: ResourceRef[] = [...(plan.ref ? [plan.ref] : []), ...read, patient.ref as ResourceRef, ...(existing?.ref ? [existing.ref] : [])];

  const patientRef: Reference<Patient> = { reference: `Patient/${input.subject.id}` };
  const practitionerRef: Reference<Practitioner | PractitionerRole> | undefined = input.practitioner ? { reference: `${input.practitioner.type}/${input.practitioner.id}` } : undefined;
  const existingRef: Reference<Condition> | undefined = existing
    ? { reference: `Condition/${existing.ref?.id as string}`, ...(conceptText(existing.resource.code) ? { display: conceptText(existing.resource.code) as string } : {}) }
    : undefined;
  const goalCount = plan.resource.goal?.length ?? 0;
  const common = {
    plan: plan.resource,
    activities,
    patient: patientRef,
    ...(practitionerRef ? { practitioner: practitionerRef } : {}),
    ...(existingRef ? { existingCondition: existingRef } : {}),
    diagnosis,
    now: new Date().toISOString(),
  };

  if (!input.persist) {
    const draft = buildDraft({
      ...common,
      ids: {
        condition: 'tilstand',
        goals: Array.from({ length: goalCount }, (_, i) => `mal-${i + 1}`),
        measures: activities.map((_, i) => `tiltak-${i + 1}`),
      },
      link: (_type, id) => `#${id}`,
    });
    const carePlan: CarePlan = { ...draft.carePlan, contained: [...(draft.condition ? [draft.condition] : []), ...draft.goals, ...draft.measures] };
    const issues = validateResource(carePlan);
    if (hasErrors(issues)) {
      throw new FhirError(422, [
        issue({ code: 'processing', errorCode: ErrorCode.ValidationError, message: `The template ${plan.resource.url ?? ''} gives a plan that is not valid; the template must be corrected` }),
        ...issues.filter((i) => i.severity === 'error' || i.severity === 'fatal'),
      ]);
    }
    return { status: 200, body: JSON.stringify(carePlan), touched };
  }

  const draft = buildDraft({
    ...common,
    ids: {
      condition: crypto.randomUUID(),
      goals: Array.from({ length: goalCount }, () => crypto.randomUUID()),
      measures: activities.map(() => crypto.randomUUID()),
    },
    link: (type, id) => `${type}/${id}`,
  });
  // Writes need the write scope and write access to this patient's plan, type by type.
  for (const type of [...(draft.condition ? ['Condition'] : []), 'Goal', 'ServiceRequest', 'CarePlan']) ctx.access.checkInteraction('create', type);
  return inTransaction(call.q, async (tx) => {
    const written: ResourceRef[] = [];
    const create = async (resource: Resource, id = resource.id): Promise<WriteResult> => {
      const result = await s.writer.create(tx, ctx, resource, id);
      written.push({ type: result.version.type, id: result.version.id, version: result.version.version });
      return result;
    };
    if (draft.condition) await create(draft.condition);
    for (const goal of draft.goals) await create(goal);
    for (const measure of draft.measures) await create(measure);
    const carePlan = await create(draft.carePlan, crypto.randomUUID());
    const response = versionResponse(201, carePlan.version, call.req, ctx, {
      location: true,
      message: `Created a draft CarePlan/${carePlan.version.id} from the template, with ${draft.goals.length} goals and ${draft.measures.length} measures`,
    });
    return { ...response, touched: [...touched, ...written] };
  });
}

/**
 * FHIR's PlanDefinition/$apply as Samplan runs it: one subject, Samplan's `persist` and the
 * template's `url`, no CDS context (encounter, user or setting) — so its own definition, based on
 * the core one.
 */
export const applyOperation: Operation = {
  name: 'apply',
  definition: 'https://samplan.no/fhir/OperationDefinition/PlanDefinition-apply',
  type: 'PlanDefinition',
  system: false,
  typeLevel: true,
  instance: true,
  get: false,
  spec: {
    title: 'Lag et planutkast fra en mal',
    description:
      "Applies a condition template (PlanDefinition) to one patient and gives a draft plan: the template's zones, goals (the patient's own as goals expressed by the patient) and measures, addressing the patient's condition with the template's code (or a new provisional one). The plan is always a draft, never active unseen. Applicability conditions and dynamic values are not evaluated.",
    affectsState: true,
    base: 'http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply',
    comment:
      'persist=false (the default) previews the plan: 200 with a CarePlan whose parts are contained, nothing stored. persist=true stores the parts and the plan in one transaction through the write pipeline and answers 201 with the stored CarePlan and its Location. CDS context parameters (encounter, userType, userLanguage, userTaskContext, setting, settingContext) are not used.',
    parameter: [
      {
        name: 'planDefinition',
        use: 'in',
        min: 0,
        max: '1',
        type: 'PlanDefinition',
        documentation: "At type level, the template: a PlanDefinition resource, or (Samplan) its canonical URL as valueUri, valueCanonical or valueString. Not allowed at instance level.",
      },
      { name: 'url', use: 'in', min: 0, max: '1', type: 'uri', documentation: "Samplan: at type level, the template's canonical URL (url or url|version), instead of planDefinition" },
      { name: 'subject', use: 'in', min: 1, max: '1', type: 'string', searchType: 'reference', documentation: 'The patient the plan is for: Patient/{id} (one)' },
      { name: 'practitioner', use: 'in', min: 0, max: '1', type: 'string', searchType: 'reference', documentation: 'Practitioner/{id} or PractitionerRole/{id}: author, requester and recorder of what is made' },
      { name: 'organization', use: 'in', min: 0, max: '1', type: 'string', searchType: 'reference', documentation: "Organization/{id}: checked, but Samplan's profiles have no place for it (name a PractitionerRole instead)" },
      { name: 'persist', use: 'in', min: 0, max: '1', type: 'boolean', documentation: 'Samplan: true stores the draft plan and its parts; false (default) only previews it' },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'CarePlan', documentation: 'The draft plan: with its parts contained (preview), or as stored (persist=true)' },
    ],
  },
  handler,
};
