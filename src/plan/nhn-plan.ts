/**
 * The mapping between Samplan's plan and NHN's zone-based plan JSON (the Planer API:
 * `clinical_content {title, description, zones[{condition, action, level}]}`), and the operation
 * that serves it: `GET CarePlan/{id}/$nhn-plan` answers in NHN's shape, `POST CarePlan/{id}/$nhn-plan`
 * applies NHN content to the plan through the one write pipeline. docs/nhn-mapping.md explains
 * the design field by field.
 *
 * NHN's zone is three strings; Samplan's zone extension holds the same (level, when it applies,
 * what to do) with structure: criteria text, symptoms, thresholds, actions, rescue medication,
 * contacts, the emergency flag, a heading. Samplan → NHN writes the structure out in words (one
 * line per part), so an NHN reader sees everything. NHN → Samplan cannot rebuild structure from
 * words, and NHN's JSON has no place to carry it, so the structure is kept where it always is:
 * in the stored plan. Each NHN zone is matched to the plan's zone of the same level, and each of
 * its two halves — when it applies (`condition`), what to do (`action`) — keeps the stored
 * structure when its text is exactly what that structure reads as, and becomes plain text when an
 * NHN client changed it. Hence both round trips are lossless:
 * - NHN → Samplan → NHN gives back the same JSON, whatever the plan held before: a kept half reads
 *   as the text it was matched by, a new half is stored as that very text;
 * - Samplan → NHN → Samplan gives back the same zones: every half reads as itself and is kept.
 */
import type { CarePlan, Duration, Extension, OperationOutcomeIssue, Quantity } from '@medplum/fhirtypes';
import { read } from '../fhir/interactions/read.js';
import type { Operation, OperationTarget } from '../fhir/operations.js';
import { errors, FhirError, issue } from '../fhir/outcomes.js';
import type { Call, Services } from '../fhir/services.js';
import type { FhirResponse } from '../fhir/types.js';
import { parseETag } from '../fhir/writer.js';
import { reasonProblem } from '../fhir/validation/security.js';
import { EXTENSION, ZONE_LEVELS, type ZoneLevel } from './conventions.js';
import { LAST_UPDATED_BY } from './provenance.js';
import { textOf } from '../store/db.js';

// ---------------------------------------------------------------------------------------------
// NHN's shapes (reference: nhn-careplan-api.md §6.1 ClinicalContentRequest, Zone, Response,
// UpdateRequest; §6.2 HealthPersonnel)

export interface NhnZone {
  condition: string;
  action: string;
  level: ZoneLevel;
}

export interface NhnClinicalContent {
  title: string;
  description?: string;
  zones: NhnZone[];
}

/** NHN's Response for a plan, as far as Samplan holds its fields (docs/nhn-mapping.md). */
export interface NhnPlan {
  id: string;
  version: number;
  status: string;
  updated_at: string;
  updated_by?: { hpr_number: string; display_name?: string };
  clinical_content: NhnClinicalContent;
}

/** NHN's UpdateRequest. `updated_by` is accepted and not used: who changes the plan is the token's person. */
export interface NhnUpdate {
  version?: number;
  status?: string;
  comment?: string;
  clinical_content: NhnClinicalContent;
}

// ---------------------------------------------------------------------------------------------
// Samplan zone → words

const parts = (zone: Extension, url: string) => (zone.extension ?? []).filter((e) => e.url === url);
const part = (ext: Extension, url: string) => (ext.extension ?? []).find((e) => e.url === url);
const levelOf = (zone: Extension) => part(zone, 'level')?.valueCode;
const zonesOf = (plan: CarePlan) => (plan.extension ?? []).filter((e) => e.url === EXTENSION.zone);

/** Sub-extensions that say when a zone applies (NHN `condition`) and what to do (NHN `action`). */
const CONDITION_PARTS = ['criteria', 'symptom', 'threshold'];
// The emergency flag belongs to the action: it says the action directs to emergency help.
const ACTION_PARTS = ['action', 'medication', 'contact', 'emergency'];
/** The order of the extension's slices (profiles/definitions.ts), for zones rebuilt from halves. */
const SLICE_ORDER = ['level', 'title', ...CONDITION_PARTS, ...ACTION_PARTS];

const COMPARATOR_TEXT: Record<string, string> = { '<': 'under', '<=': 'høyst', '>': 'over', '>=': 'minst' };

/** Numbers as Norwegians write them: decimal comma. */
const number = (n: number | undefined) => (n === undefined ? '' : String(n).replace('.', ','));
const amount = (q: Quantity | Duration | undefined) => [number(q?.value), q?.unit ?? q?.code ?? ''].filter(Boolean).join(' ');

function thresholdText(t: Extension): string {
  const measured = part(t, 'measurement')?.valueCodeableConcept;
  const what = measured?.text ?? measured?.coding?.[0]?.display ?? measured?.coding?.[0]?.code ?? 'Måling';
  const comparator = part(t, 'comparator')?.valueCode ?? '';
  const cmp = COMPARATOR_TEXT[comparator] ?? comparator;
  const percent = part(t, 'percentOfBaseline')?.valueDecimal;
  const baseline = part(t, 'baseline')?.valueQuantity;
  const value = part(t, 'value')?.valueQuantity;
  const over = part(t, 'changeOver')?.valueDuration;
  if (percent !== undefined) return `${what} ${cmp} ${number(percent)} % av personlig beste verdi${baseline ? ` (${amount(baseline)})` : ''}`;
  if (over) return `${what} endret ${cmp} ${amount(value)} på ${amount(over)}`;
  return [what, cmp, amount(value)].filter(Boolean).join(' ');
}

function contactText(c: Extension): string {
  const who = part(c, 'who');
  const name = who?.valueString ?? who?.valueReference?.display ?? who?.valueReference?.reference ?? 'behandler';
  const phone = part(c, 'phone')?.valueString;
  const within = part(c, 'within')?.valueDuration;
  // "Straks" rather than "innen 0 minutter": the emergency contacts of the templates.
  const when = within ? (within.value === 0 ? 'straks' : `innen ${amount(within)}`) : undefined;
  return [`Kontakt ${name}`, ...(phone ? [`tlf. ${phone}`] : []), ...(when ? [when] : [])].join(', ');
}

/**
 * When the zone applies, in words: the criteria, each symptom, each threshold, one per line. A
 * zone with criteria only reads as exactly its criteria — what makes NHN → Samplan → NHN exact.
 */
export function conditionText(zone: Extension): string {
  return [
    ...parts(zone, 'criteria').map((e) => e.valueString ?? ''),
    ...parts(zone, 'symptom').map((e) => e.valueString ?? ''),
    ...parts(zone, 'threshold').map(thresholdText),
  ].join('\n');
}

/** What to do, in words: each action, each medication, each contact, one per line. */
export function actionText(zone: Extension): string {
  return [
    ...parts(zone, 'action').map((e) => e.valueString ?? ''),
    ...parts(zone, 'medication').map((e) => e.valueString ?? ''),
    ...parts(zone, 'contact').map(contactText),
  ].join('\n');
}

/** The plan's clinical content in NHN's shape. */
export function toNhn(plan: CarePlan): NhnClinicalContent {
  return {
    title: plan.title ?? '',
    ...(plan.description !== undefined ? { description: plan.description } : {}),
    zones: zonesOf(plan).map((zone) => ({ condition: conditionText(zone), action: actionText(zone), level: levelOf(zone) as ZoneLevel })),
  };
}

// ---------------------------------------------------------------------------------------------
// NHN zone → Samplan

/**
 * Whether an action text sends the patient to emergency help: 113, legevakt (116 117), AMK or
 * the emergency services ("nødetatene", as in NHN's own example). NHN has no flag for this, and
 * the plan rule (spl-zone-2) needs one on the red zone; a red zone whose words are not recognised
 * gets none, so the rule refuses it rather than the import claiming a direction the text lacks.
 */
export function directsToEmergency(text: string): boolean {
  return /(^|\D)113(\D|$)|116 ?117|legevakt|nødetat|nødtelefon|nødnummer|\bAMK\b/i.test(text);
}

function zoneFromNhn(zone: NhnZone, stored: Extension | undefined): Extension {
  const keepCondition = stored !== undefined && conditionText(stored) === zone.condition;
  const keepAction = stored !== undefined && actionText(stored) === zone.action;
  if (stored && keepCondition && keepAction) return stored;
  const storedParts = stored?.extension ?? [];
  const side = (names: string[]) => storedParts.filter((e) => names.includes(e.url));
  // What NHN has no field for (the heading, other parties' sub-extensions) stays as it was.
  const rest = storedParts.filter((e) => e.url !== 'level' && !CONDITION_PARTS.includes(e.url) && !ACTION_PARTS.includes(e.url));
  const emergency = zone.level === 'red' && directsToEmergency(zone.action) ? [{ url: 'emergency', valueBoolean: true }] : [];
  const extension: Extension[] = [
    { url: 'level', valueCode: zone.level },
    ...rest,
    ...(keepCondition ? side(CONDITION_PARTS) : [{ url: 'criteria', valueString: zone.condition }]),
    ...(keepAction ? side(ACTION_PARTS) : [{ url: 'action', valueString: zone.action }, ...emergency]),
  ];
  const rank = (e: Extension) => (SLICE_ORDER.includes(e.url) ? SLICE_ORDER.indexOf(e.url) : SLICE_ORDER.length);
  return { url: EXTENSION.zone, extension: extension.sort((a, b) => rank(a) - rank(b)) };
}

/**
 * The plan with NHN's clinical content applied: its title, its description (none when NHN gives
 * none) and its zones, matched to the plan's zones by level. Other extensions and fields stay.
 */
export function fromNhn(content: NhnClinicalContent, plan: CarePlan): CarePlan {
  const stored = new Map(zonesOf(plan).map((z) => [levelOf(z), z]));
  const zones = content.zones.map((z) => zoneFromNhn(z, stored.get(z.level)));
  // The zones fill the places the plan's zones had, in order (the last place takes any extra
  // zones), so extensions of others between them stay where they were.
  const places = zonesOf(plan).length;
  const extension: Extension[] = [];
  let place = 0;
  for (const e of plan.extension ?? []) {
    if (e.url !== EXTENSION.zone) extension.push(e);
    else extension.push(...zones.splice(0, ++place === places ? zones.length : 1));
  }
  extension.push(...zones);
  // Fields keep their places in the JSON, so a stored plan reads (and diffs) as before.
  const next: CarePlan = { ...plan, title: content.title, description: content.description, extension };
  if (content.description === undefined) delete next.description;
  if (!extension.length) delete next.extension;
  return next;
}

// ---------------------------------------------------------------------------------------------
// Reading NHN JSON from a request: strict, so nothing a client sends is silently dropped (which
// would break the round trip), with the NHN field at fault in `expression`.

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyFields(value: Json, allowed: readonly string[], path: string, what: string): void {
  const unknown = Object.keys(value).filter((k) => !allowed.includes(k));
  if (unknown.length) {
    const where = path ? `${path}.${unknown[0]}` : (unknown[0] as string);
    throw errors.badRequest(`Unknown field ${where}: ${what} has ${allowed.join(', ')}`, where);
  }
}

function text(value: Json, field: string, path: string, required: boolean): string | undefined {
  const v = value[field];
  const where = `${path}.${field}`;
  if (v === undefined && !required) return undefined;
  // FHIR strings cannot be empty or only whitespace, so such content could not be stored as it came.
  if (typeof v !== 'string' || v.trim() === '') throw errors.badRequest(`${where} must be a non-empty string${required ? '' : ' (or left out)'}`, where);
  return v;
}

export function parseClinicalContent(value: unknown, path = 'clinical_content'): NhnClinicalContent {
  if (!isObject(value)) throw errors.badRequest(`${path} must be an object with title, description and zones`, path);
  onlyFields(value, ['title', 'description', 'zones'], path, 'clinical content');
  const title = text(value, 'title', path, true) as string;
  const description = text(value, 'description', path, false);
  if (!Array.isArray(value.zones)) throw errors.badRequest(`${path}.zones must be a list of zones (it may be empty)`, `${path}.zones`);
  const zones = value.zones.map((z, i): NhnZone => {
    const where = `${path}.zones[${i}]`;
    if (!isObject(z)) throw errors.badRequest(`${where} must be an object with condition, action and level`, where);
    onlyFields(z, ['condition', 'action', 'level'], where, 'a zone');
    if (!ZONE_LEVELS.includes(z.level as ZoneLevel)) {
      throw errors.badRequest(`${where}.level must be green, yellow or red, not ${JSON.stringify(z.level)?.slice(0, 40) ?? 'missing'}`, `${where}.level`);
    }
    return { condition: text(z, 'condition', where, true) as string, action: text(z, 'action', where, true) as string, level: z.level as ZoneLevel };
  });
  return { title, ...(description !== undefined ? { description } : {}), zones };
}

export function parseUpdate(body: unknown): NhnUpdate {
  if (!isObject(body)) throw errors.badRequest('The body must be an NHN plan update: {"version": …, "clinical_content": {"title": …, "zones": […]}}');
  onlyFields(body, ['version', 'status', 'comment', 'updated_by', 'clinical_content'], '', 'an update (NHN UpdateRequest)');
  const { version, status, comment } = body;
  if (version !== undefined && !(Number.isInteger(version) && (version as number) >= 1)) throw errors.badRequest('version must be the plan version you read (a whole number from 1)', 'version');
  if (status !== undefined && (typeof status !== 'string' || !status)) throw errors.badRequest('status must be a plan status (draft, active, on-hold, completed, revoked, entered-in-error)', 'status');
  if (comment !== undefined && (typeof comment !== 'string' || comment.trim() === '')) throw errors.badRequest('comment must be a non-empty string (or left out)', 'comment');
  const problem = typeof comment === 'string' ? reasonProblem(comment) : undefined;
  if (problem) throw errors.badRequest(`comment ${problem}`, 'comment');
  if (body.clinical_content === undefined) throw errors.badRequest('clinical_content is required: the plan\'s title, description and zones', 'clinical_content');
  return {
    clinical_content: parseClinicalContent(body.clinical_content),
    ...(version !== undefined ? { version: version as number } : {}),
    ...(status !== undefined ? { status: status as string } : {}),
    ...(comment !== undefined ? { comment: comment as string } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The operation

/** The plan in NHN's Response shape. */
export function nhnPlan(plan: CarePlan): NhnPlan {
  const hpr = plan.meta?.tag?.find((t) => t.system === LAST_UPDATED_BY.hpr);
  return {
    id: plan.id as string,
    version: Number(plan.meta?.versionId),
    status: plan.status,
    updated_at: plan.meta?.lastUpdated as string,
    ...(hpr?.code ? { updated_by: { hpr_number: hpr.code, ...(hpr.display ? { display_name: hpr.display } : {}) } } : {}),
    clinical_content: toNhn(plan),
  };
}

/**
 * The plan as the caller may see it — a citizen the published version, another patient's plan
 * not at all — through the read interaction itself, so 404, 410, 304 (If-None-Match on a GET) and
 * the access rules are exactly those of `GET CarePlan/{id}`.
 */
async function readPlan(s: Services, call: Call, id: string, conditional: boolean): Promise<FhirResponse & { plan?: CarePlan }> {
  const { ifNoneMatch: _n, ifModifiedSince: _m, ...req } = call.req;
  const res = await read(s, { ...call, req: { ...(conditional ? call.req : req), method: 'GET', query: [], path: `CarePlan/${id}` } }, 'CarePlan', id);
  return res.status === 200 && res.body ? { ...res, plan: JSON.parse(textOf(res.body)) as CarePlan } : res;
}

function respond(res: FhirResponse, plan: CarePlan): FhirResponse {
  return { ...res, body: JSON.stringify(nhnPlan(plan)), headers: { ...res.headers, 'content-type': 'application/json; charset=utf-8' } };
}

/**
 * Validation issues of the CarePlan written, pointed at the NHN field they come from (the FHIR
 * path stays as a second expression): an NHN client never saw the CarePlan.
 */
function inNhnTerms(issues: OperationOutcomeIssue[], candidate: CarePlan): OperationOutcomeIssue[] {
  const zoneIndex = new Map<number, number>();
  (candidate.extension ?? []).forEach((e, k) => e.url === EXTENSION.zone && zoneIndex.set(k, zoneIndex.size));
  const translate = (expression: string): string | undefined => {
    const zone = /^CarePlan\.extension\[(\d+)\](?:\.extension\[(\d+)\])?/.exec(expression);
    if (zone) {
      const i = zoneIndex.get(Number(zone[1]));
      if (i === undefined) return undefined;
      const sub = zone[2] === undefined ? undefined : candidate.extension?.[Number(zone[1])]?.extension?.[Number(zone[2])]?.url;
      const field = sub === 'level' ? '.level' : sub && CONDITION_PARTS.includes(sub) ? '.condition' : sub && ACTION_PARTS.includes(sub) ? '.action' : '';
      return `clinical_content.zones[${i}]${field}`;
    }
    const field = /^CarePlan\.(title|description|status)\b/.exec(expression)?.[1];
    return field === 'status' ? 'status' : field ? `clinical_content.${field}` : undefined;
  };
  return issues.map((i) => {
    const nhn = (i.expression ?? []).map(translate).filter((e): e is string => e !== undefined);
    return nhn.length ? { ...i, expression: [...new Set(nhn), ...(i.expression ?? [])] } : i;
  });
}

/** Red zones whose new action text was not recognised as directing to emergency help, for the explanation. */
function unrecognisedRedZones(content: NhnClinicalContent, candidate: CarePlan): OperationOutcomeIssue[] {
  const zones = zonesOf(candidate);
  return content.zones.flatMap((z, i) =>
    z.level === 'red' && part(zones[i] as Extension, 'emergency')?.valueBoolean !== true
      ? [
          issue({
            severity: 'information',
            code: 'informational',
            message: `The red zone's action was not recognised as directing to emergency help: Samplan looks for 113, 116 117, legevakt, AMK, nødetatene, nødtelefon or nødnummer in it`,
            expression: `clinical_content.zones[${i}].action`,
          }),
        ]
      : [],
  );
}

async function getNhnPlan(s: Services, call: Call, target: OperationTarget): Promise<FhirResponse> {
  call.ctx.access.checkInteraction('read', 'CarePlan');
  const res = await readPlan(s, call, target.id as string, true);
  return res.plan ? respond(res, res.plan) : res;
}

async function postNhnPlan(s: Services, call: Call, target: OperationTarget): Promise<FhirResponse> {
  // The operation is allowed with the read scope; applying content is an update of the plan.
  call.ctx.access.checkInteraction('update', 'CarePlan');
  const id = target.id as string;
  const update = parseUpdate(call.req.body);
  if (update.version !== undefined && call.req.ifMatch !== undefined && parseETag(call.req.ifMatch) !== update.version) {
    throw errors.badRequest('version in the body and If-Match name different versions; give one', 'version');
  }
  const ifMatch = update.version !== undefined ? `W/"${update.version}"` : call.req.ifMatch;
  // NHN requires the version on update, to prevent lost updates: the zones are replaced whole.
  if (ifMatch === undefined) throw errors.badRequest('Give the version you read (version in the body, or If-Match), so a change made meanwhile is not overwritten', 'version');
  if (update.comment !== undefined && call.ctx.comment !== undefined && update.comment !== call.ctx.comment) {
    throw errors.badRequest('comment and the X-Provenance reason differ; give the reason once', 'comment');
  }
  // 404 for a plan the caller may not see, before the write pipeline's own 403 could tell it exists.
  await readPlan(s, call, id, false);
  const ctx = update.comment !== undefined ? { ...call.ctx, comment: update.comment } : call.ctx;
  let candidate: CarePlan | undefined;
  try {
    const result = await s.writer.update(
      call.q,
      ctx,
      'CarePlan',
      id,
      (current) => {
        if (!current) throw errors.notFound('CarePlan', id);
        // Matched against the latest version under the row lock, not the one the caller read.
        const applied = fromNhn(update.clinical_content, current as CarePlan);
        candidate = update.status !== undefined ? ({ ...applied, status: update.status } as CarePlan) : applied;
        return candidate;
      },
      { ifMatch },
    );
    const plan = JSON.parse(result.version.content as string) as CarePlan;
    return respond({ status: 200, versionId: String(result.version.version), lastModified: result.version.lastUpdated, touched: [{ type: 'CarePlan', id, version: result.version.version }] }, plan);
  } catch (err) {
    if (!(err instanceof FhirError) || err.status !== 400 || !candidate) throw err;
    throw new FhirError(err.status, [...inNhnTerms(err.outcome.issue, candidate), ...unrecognisedRedZones(update.clinical_content, candidate)], err.headers);
  }
}

export const nhnPlanOperation: Operation = {
  name: 'nhn-plan',
  definition: 'https://samplan.no/fhir/OperationDefinition/CarePlan-nhn-plan',
  type: 'CarePlan',
  system: false,
  typeLevel: false,
  instance: true,
  get: true,
  spec: {
    title: 'Planen i NHNs sonebaserte format',
    description:
      "The plan in NHN's zone-based plan JSON (the Planer API's Response: id, version, status, updated_at, updated_by, clinical_content with title, description and zones of condition, action and level). GET reads it; POST applies NHN's UpdateRequest to the plan through the one write pipeline, keeping the zones' structure where the text is unchanged.",
    affectsState: true,
    comment:
      "Neither body is FHIR: POST takes NHN's UpdateRequest JSON ({version, status, comment, clinical_content}) and both answer NHN's plan JSON (application/json), described in docs/nhn-mapping.md. POST needs the version read (in the body or If-Match); GET changes nothing.",
    parameter: [{ name: 'return', use: 'out', min: 1, max: '1', type: 'Binary', documentation: "NHN's plan JSON (application/json), not a FHIR resource" }],
  },
  handler: (s, call, target) => (call.req.method === 'POST' ? postNhnPlan(s, call, target) : getNhnPlan(s, call, target)),
};
