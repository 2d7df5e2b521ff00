/**
 * The plan's rules, enforced in the write pipeline for every write however it arrives (single
 * request, Bundle entry, operation, seeding):
 * - plan resources carry Samplan's profiles and are validated against them;
 * - Norwegian identifiers (fødselsnummer, D-nummer, HPR, organisation number) are valid;
 * - one active plan per patient (serialised per patient, so concurrent creations cannot race);
 * - plan status moves forward only: draft → active → completed | revoked (entered-in-error any time);
 * - a plan's patient does not change;
 * - business identifiers are unique per type;
 * - references between plan resources point at resources that exist and belong to the same
 *   patient (checked before commit, so entries of one transaction may refer to each other in any
 *   order).
 */
import type { CarePlan, Resource } from '@medplum/fhirtypes';
import { ErrorCode, errors, FhirError, issue } from '../fhir/outcomes.js';
import { parseLocalReference } from '../fhir/references.js';
import type { LockingWrite, PendingWrite, StoredWrite, WriteHook } from '../fhir/writer.js';
import { isValidHpr, isValidNin, isValidOrgNr, OID } from '../no/identifiers.js';
import { searchRegistry } from '../search/registry.js';
import type { Queryable, Transaction } from '../store/db.js';
import { CHECK_IN_CODE, PROFILE } from './conventions.js';
import { activePlanOf } from './status.js';

/** The Samplan profile a plan resource is held to (and given, if it does not claim it). */
export function profileFor(resource: Resource): string | undefined {
  switch (resource.resourceType) {
    case 'CarePlan':
      return PROFILE.carePlan;
    case 'Condition':
      return PROFILE.condition;
    case 'Goal':
      return PROFILE.goal;
    case 'ServiceRequest':
      return PROFILE.measure;
    case 'CareTeam':
      return PROFILE.careTeam;
    case 'Observation':
      return resource.code?.coding?.some((c) => c.system === CHECK_IN_CODE.system && c.code === CHECK_IN_CODE.code) ? PROFILE.checkIn : undefined;
    default:
      return undefined;
  }
}

/** Types whose references must resolve: the plan and what it is made of. */
const PLAN_TYPES = new Set(['CarePlan', 'Condition', 'Goal', 'ServiceRequest', 'CareTeam', 'Observation', 'Communication', 'Task', 'Flag']);

/** Samplan's plan statuses (the profile allows no others: a plan is paused by editing it, not by on-hold). */
const PLAN_STATUS_NEXT: Record<string, readonly string[]> = {
  draft: ['draft', 'active', 'revoked', 'entered-in-error'],
  active: ['active', 'completed', 'revoked', 'entered-in-error'],
  completed: ['completed', 'entered-in-error'],
  revoked: ['revoked', 'entered-in-error'],
  'entered-in-error': ['entered-in-error'],
};

function withProfile(resource: Resource): Resource {
  const profile = profileFor(resource);
  if (!profile || resource.meta?.profile?.includes(profile)) return resource;
  return { ...resource, meta: { ...(resource.meta ?? {}), profile: [...(resource.meta?.profile ?? []), profile] } } as Resource;
}

/** Every identifier in the resource (own and in references), with its path. */
function identifiers(value: unknown, path: string, out: Array<{ path: string; system?: string; value?: string }>): void {
  if (Array.isArray(value)) value.forEach((v, i) => identifiers(v, `${path}[${i}]`, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'identifier') {
        for (const [i, id] of (Array.isArray(v) ? v : [v]).entries()) {
          const p = Array.isArray(v) ? `${path}.identifier[${i}]` : `${path}.identifier`;
          if (id && typeof id === 'object') out.push({ path: p, system: (id as { system?: string }).system, value: (id as { value?: string }).value });
        }
      } else if (k !== 'contained') identifiers(v, `${path}.${k}`, out);
    }
  }
}

const CHECKS: Record<string, { valid: (v: string) => boolean; what: string }> = {
  [OID.fnr]: { valid: isValidNin, what: 'fødselsnummer (11 digits, both mod-11 check digits, a real date)' },
  [OID.dnr]: { valid: isValidNin, what: 'D-nummer (11 digits, both mod-11 check digits, a real date)' },
  [OID.hpr]: { valid: isValidHpr, what: 'HPR number (4 to 9 digits)' },
  [OID.orgnr]: { valid: isValidOrgNr, what: 'organisation number (9 digits, mod-11 check digit)' },
};

function checkIdentifiers(resource: Resource): void {
  const found: Array<{ path: string; system?: string; value?: string }> = [];
  identifiers(resource, resource.resourceType, found);
  const problems = found.flatMap(({ path, system, value }) => {
    const check = system ? CHECKS[system] : undefined;
    if (!check || (value && check.valid(value))) return [];
    return [issue({ code: 'value', errorCode: ErrorCode.InvalidIdentifier, message: `Not a valid ${check.what}`, expression: `${path}.value` })];
  });
  if (problems.length) throw new FhirError(400, problems);
}

function patientOf(resource: Resource): string | undefined {
  const ref = (resource as { subject?: { reference?: string } }).subject?.reference;
  const local = ref ? parseLocalReference(ref) : undefined;
  return local?.type === 'Patient' ? local.id : undefined;
}

/** Another active plan of the patient ($2) than $1; $3 is CarePlan.status's index key. */
const OTHER_ACTIVE_PLAN = `SELECT r.id FROM resources r WHERE r.id <> $1 AND ${activePlanOf('r', 'ARRAY[$2]::text[]', '$3')} LIMIT 1`;

async function checkOneActivePlan(w: PendingWrite, plan: CarePlan): Promise<void> {
  if (plan.status !== 'active') return;
  const patient = patientOf(plan);
  if (!patient) return;
  // Concurrent activations for one patient queue here; the loser then sees the winner's plan.
  await w.q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`active-plan:${patient}`]);
  const status = searchRegistry().get('CarePlan', 'status')?.sp;
  const rows = await w.q.query<{ id: string }>(OTHER_ACTIVE_PLAN, [w.id, `Patient/${patient}`, status]);
  const existing = rows[0];
  if (existing) {
    throw new FhirError(
      409,
      issue({
        code: 'business-rule',
        errorCode: ErrorCode.ActivePlanExists,
        message: `The patient already has an active plan: CarePlan/${existing.id}. A patient has one active plan; add to it, or complete or revoke it first`,
        expression: 'CarePlan.status',
      }),
    );
  }
}

function checkTransition(w: PendingWrite, plan: CarePlan): void {
  const before = w.current as CarePlan | undefined;
  if (!before) return;
  if (!(PLAN_STATUS_NEXT[before.status] ?? []).includes(plan.status)) {
    throw new FhirError(
      409,
      issue({
        code: 'business-rule',
        errorCode: ErrorCode.InvalidTransition,
        message: `A plan cannot go from ${before.status} to ${plan.status}; allowed next: ${(PLAN_STATUS_NEXT[before.status] ?? []).join(', ')}`,
        expression: 'CarePlan.status',
      }),
    );
  }
  if (patientOf(before) !== patientOf(plan)) throw errors.badRequest("A plan's patient cannot be changed", 'CarePlan.subject');
}

async function checkUniqueIdentifiers(w: PendingWrite): Promise<void> {
  const ids = ((w.next as { identifier?: Array<{ system?: string; value?: string }> }).identifier ?? []).filter((i) => i.system && i.value);
  const sp = searchRegistry().get(w.type, 'identifier')?.sp;
  if (!ids.length || sp === undefined) return;
  for (const id of ids) {
    const rows = await w.q.query<{ id: string }>(
      `SELECT r.id FROM idx_token t JOIN resources r ON r.rid = t.rid
        WHERE t.sp = $1 AND t.system = $2 AND t.code = $3 AND NOT r.deleted AND r.type = $4 AND r.id <> $5 LIMIT 1`,
      [sp, id.system, id.value, w.type, w.id],
    );
    if (rows[0]) {
      throw new FhirError(
        409,
        issue({ code: 'duplicate', errorCode: ErrorCode.DuplicateIdentifier, message: `Another ${w.type} already has the identifier ${id.system}|${id.value}`, expression: `${w.type}.identifier` }),
      );
    }
  }
}

interface Reference {
  path: string;
  type: string;
  id: string;
}

/** Local references of the resource (not contained, not external). */
function references(value: unknown, path: string, out: Reference[]): void {
  if (Array.isArray(value)) value.forEach((v, i) => references(v, `${path}[${i}]`, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string') {
        const local = parseLocalReference(v);
        if (local) out.push({ path: `${path}.reference`, type: local.type, id: local.id });
      } else if (k !== 'contained') references(v, `${path}.${k}`, out);
    }
  }
}

const referencesOf = (resource: Resource): Reference[] => {
  const refs: Reference[] = [];
  references(resource, resource.resourceType, refs);
  return refs;
};

interface Target {
  type: string;
  id: string;
  compartments: string[];
}

const key = (r: { type: string; id: string }) => `${r.type}/${r.id}`;

function lookUpTargets(q: Queryable, refs: readonly Reference[]): Promise<Target[]> {
  return q.query<Target>(
    'SELECT type, id, compartments FROM resources WHERE NOT deleted AND (type, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
    [refs.map((r) => r.type), refs.map((r) => r.id)],
  );
}

/**
 * References resolve, and stay with the patient: a plan resource of one patient may not point at
 * another patient's data (it would publish it to the wrong patient, and show it in their history).
 * One query looks up the references of every resource given (a transaction's, at commit) that
 * `known` (targets already looked up) does not hold.
 */
async function checkReferences(q: Queryable, resources: readonly Resource[], known: readonly Target[] = []): Promise<void> {
  const perResource = resources.map(referencesOf);
  const all = perResource.flat();
  if (!all.length) return;
  const found = new Map(known.map((r) => [key(r), r.compartments]));
  const rest = all.filter((r) => !found.has(key(r)));
  if (rest.length) for (const r of await lookUpTargets(q, rest)) found.set(key(r), r.compartments);
  for (const refs of perResource) {
    const missing = refs.filter((r) => !found.has(key(r)));
    if (missing.length) {
      throw new FhirError(
        422,
        missing.map((m) =>
          issue({ code: 'not-found', errorCode: ErrorCode.ReferenceNotFound, message: `The referenced ${m.type}/${m.id} does not exist`, expression: m.path }),
        ),
      );
    }
    const patients = new Set(refs.filter((r) => r.type === 'Patient').map((r) => `Patient/${r.id}`));
    if (!patients.size) continue;
    const foreign = refs.filter((r) => {
      const theirs = (found.get(key(r)) ?? []).filter((c) => c.startsWith('Patient/'));
      return r.type !== 'Patient' && theirs.length > 0 && !theirs.some((c) => patients.has(c));
    });
    if (foreign.length) {
      throw new FhirError(
        422,
        foreign.map((f) =>
          issue({ code: 'business-rule', errorCode: ErrorCode.PatientMismatch, message: `${f.type}/${f.id} belongs to another patient`, expression: f.path }),
        ),
      );
    }
  }
}

/** A transaction's plan resources, whose references are checked when it commits. */
interface PendingReferences {
  resources: Resource[];
  /**
   * The first resource's targets, looked up as it is stored: the lookup goes out with the
   * resource's own statement, one round trip less for a single write. What the transaction
   * writes afterwards could change a target, so the result counts only while nothing has.
   */
  early?: Promise<Target[]>;
  writesSinceEarly: number;
}

const toCheck = new WeakMap<Transaction, PendingReferences>();

/** The targets an update's content names, looked up with its lock (`locking`): for `lookUpEarly` when that resource is stored next. */
const withLock = new WeakMap<Transaction, { type: string; id: string; refs: string; lookup: Promise<Target[]> }>();
const refsKey = (refs: readonly Reference[]) => refs.map(key).join(' ');

/** Starts the lookup of the targets of a plan resource's update with its lock. */
function lookUpWithLock(w: LockingWrite): Promise<Target[]> | undefined {
  if (!PLAN_TYPES.has(w.type)) return undefined;
  const refs = referencesOf(w.next);
  if (!refs.length) return undefined;
  const lookup = lookUpTargets(w.q, refs);
  withLock.set(w.q, { type: w.type, id: w.id, refs: refsKey(refs), lookup });
  return lookup;
}

/** Entries of a transaction may refer to each other in any order: their references are checked when all are written. */
async function checkReferencesAtCommit(q: Queryable, resource: Resource): Promise<void> {
  const tx = q as Partial<Transaction>;
  if (!tx.beforeCommit) return checkReferences(q, [resource]);
  let pending = toCheck.get(tx as Transaction);
  if (!pending) {
    const p: PendingReferences = (pending = { resources: [], writesSinceEarly: 0 });
    toCheck.set(tx as Transaction, p);
    tx.beforeCommit(async () => {
      const early = p.early && p.writesSinceEarly === 0 && p.resources.length === 1 ? await p.early : undefined;
      await checkReferences(q, p.resources, early);
    });
  }
  pending.resources.push(resource);
}

/** Starts the early lookup of PendingReferences when the transaction's first plan resource is stored; counts the writes after it. */
function lookUpEarly(w: StoredWrite): void {
  const pending = toCheck.get(w.q as Transaction);
  if (!pending) return;
  if (pending.early) {
    pending.writesSinceEarly++;
    return;
  }
  const [first, ...others] = pending.resources;
  if (!first || others.length || first.resourceType !== w.type || first.id !== w.id) return;
  const refs = referencesOf(first);
  if (!refs.length) return;
  // Looked up with the lock for this very write (nothing written since), if the targets are the same.
  const locked = withLock.get(w.q as Transaction);
  withLock.delete(w.q as Transaction);
  const same = locked && locked.type === w.type && locked.id === w.id && locked.refs === refsKey(refs);
  pending.early = same ? locked.lookup : lookUpTargets(w.q, refs);
  // Awaited at commit; a failure fails the transaction there (and the statements after it).
  pending.early.catch(() => undefined);
}

/**
 * A plan resource names its patient by a literal reference: one given only by identifier would
 * fall outside the patient's compartment — unseen by the access rules, the one-active-plan rule
 * and the patient's own view.
 */
function checkSubject(resource: Resource): void {
  if (!profileFor(resource) || patientOf(resource)) return;
  throw errors.badRequest(`The ${resource.resourceType}'s subject must be a reference to the patient: Patient/<id>`, `${resource.resourceType}.subject`);
}

export const planRules: WriteHook = {
  async prepare(w) {
    const next = withProfile(w.next);
    checkSubject(next);
    checkIdentifiers(next);
    if (next.resourceType === 'CarePlan') {
      checkTransition(w, next as CarePlan);
      await checkOneActivePlan(w, next as CarePlan);
    }
    if (PLAN_TYPES.has(next.resourceType)) {
      await checkUniqueIdentifiers({ ...w, next });
      await checkReferencesAtCommit(w.q, next);
    }
    return next;
  },
  locking: lookUpWithLock,
  storing: lookUpEarly,
};
