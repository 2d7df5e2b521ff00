/**
 * The benchmark scenarios, as an EHR and the portals use the API: each a list of requests that
 * every connection cycles through, spread over many patients (every request names its patient in
 * `nhn-patient-nin`, and is access-checked and audited like any other).
 */
import type { Goal } from '@medplum/fhirtypes';
import { call, clinicianHeaders, FNR } from './lib/api.js';
import type { LoadRequest, Scenario } from './lib/load.js';
import { type LoadedPatient, type PlanModel, planTransaction } from './lib/population.js';

export interface Fixture {
  /** The server's origin, e.g. http://127.0.0.1:8080. */
  url: string;
  clinician: string;
  machine: string;
  patients: readonly LoadedPatient[];
  /** One Goal per connection for updates with If-Match: id, patient and current version. */
  goals: ReadonlyArray<{ id: string; nin: string; patientId: string; version: number }>;
  model: PlanModel;
}

const json = { 'content-type': 'application/fhir+json' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const sample = <T>(list: readonly T[], n: number) => list.slice(0, Math.min(n, list.length));

function planBundle(f: Fixture, p: LoadedPatient): LoadRequest {
  return {
    method: 'POST',
    path: '/fhir/CarePlan/_search',
    headers: { ...clinicianHeaders(f.clinician, p.nin), ...form },
    body: new URLSearchParams({ 'subject:Patient.identifier': `${FNR}|${p.nin}`, status: 'active', _include: '*' }).toString(),
  };
}

/**
 * Searches that name no patient: the patient is the one in `nhn-patient-nin` (or the citizen
 * logged in), and the access rule alone scopes them — as an EHR lists a patient's goals or
 * conditions, or asks for the active plan by its status, which every patient's plan shares.
 */
function scopedSearches(f: Fixture, p: LoadedPatient): LoadRequest[] {
  const headers = clinicianHeaders(f.clinician, p.nin);
  return ['Goal', 'CarePlan?status=active', 'Observation?_sort=-date&_count=10', 'Condition'].map((search) => ({ method: 'GET', path: `/fhir/${search}`, headers }));
}

function goal(patientId: string, text: string, id?: string): Goal {
  return { resourceType: 'Goal', ...(id ? { id } : {}), lifecycleStatus: 'active', description: { text }, subject: { reference: `Patient/${patientId}` } };
}

/** The version of each Goal last seen, shared by all runs (warm-up and measured) of the update scenarios. */
const versions = new Map<string, number>();

function sawVersion(id: string, status: number, headers: Record<string, unknown> | undefined): void {
  const etag = headers?.etag;
  if (status === 200 && typeof etag === 'string') versions.set(id, Number(/"(\d+)"/.exec(etag)?.[1]));
}

export function scenarios(f: Fixture): Scenario[] {
  const many = sample(f.patients, 200);
  const read = many.map((p) => ({ method: 'GET' as const, path: `/fhir/CarePlan/${p.planId}`, headers: clinicianHeaders(f.clinician, p.nin) }));
  const history = many.map((p) => ({ method: 'GET' as const, path: `/fhir/CarePlan/${p.planId}/_history`, headers: clinicianHeaders(f.clinician, p.nin) }));
  const create = many.map((p) => ({ method: 'POST' as const, path: '/fhir/Goal', headers: { ...clinicianHeaders(f.clinician, p.nin), ...json, prefer: 'return=minimal' }, body: JSON.stringify(goal(p.patientId, 'Gå en tur hver dag')) }));
  const status = many.map((p) => ({ method: 'POST' as const, path: '/status', headers: { authorization: `Bearer ${f.machine}`, 'content-type': 'application/json' }, body: JSON.stringify({ nin: p.nin }) }));
  // A draft plan with all its parts (the one-active-plan rule lets a patient have many drafts).
  const transaction = sample(f.patients, 50).map((p) => ({
    method: 'POST' as const,
    path: '/fhir',
    headers: { ...clinicianHeaders(f.clinician, p.nin), ...json, prefer: 'return=minimal' },
    setupRequest: (req: LoadRequest) => ({ ...req, body: JSON.stringify(planTransaction(f.model, p.patientId, 'draft')) }),
  }));
  // Each connection updates its own Goal, sending the version it last saw.
  const updateOwnGoal = (n: number): LoadRequest[] => {
    const g = f.goals[n % f.goals.length] as Fixture['goals'][number];
    return [
      {
        method: 'PUT',
        path: `/fhir/Goal/${g.id}`,
        setupRequest: (req) => ({
          ...req,
          headers: { ...clinicianHeaders(f.clinician, g.nin), ...json, 'if-match': `W/"${versions.get(g.id) ?? g.version}"`, prefer: 'return=minimal' },
          body: JSON.stringify(goal(g.patientId, `Mål oppdatert ${Date.now()}-${Math.random()}`, g.id)),
        }),
        onResponse: (status, _body, _context, headers) => sawVersion(g.id, status, headers as Record<string, unknown>),
      },
    ];
  };
  // What a day looks like: mostly reading plans, some searching, check-ins and edits.
  const mixed = many.flatMap((p, i): LoadRequest[] => {
    const h = clinicianHeaders(f.clinician, p.nin);
    const checkIn = f.model.resources.find((r) => r.resourceType === 'Observation');
    return [
      read[i] as LoadRequest,
      planBundle(f, p),
      { method: 'GET', path: `/fhir/Observation?subject=Patient/${p.patientId}&_sort=-date&_count=10`, headers: h },
      { method: 'GET', path: `/fhir/Condition?subject=Patient/${p.patientId}`, headers: h },
      {
        method: 'POST',
        path: '/fhir/Observation',
        headers: { ...h, ...json, prefer: 'return=minimal' },
        body: JSON.stringify({ ...checkIn, id: undefined, meta: undefined, subject: { reference: `Patient/${p.patientId}` }, basedOn: [{ reference: `CarePlan/${p.planId}` }], performer: undefined, effectiveDateTime: new Date().toISOString() }),
      },
      ((g) => ({
        method: 'PUT' as const,
        path: `/fhir/Goal/${g.id}`,
        headers: { ...clinicianHeaders(f.clinician, g.nin), ...json, prefer: 'return=minimal' },
        setupRequest: (req: LoadRequest) => ({ ...req, body: JSON.stringify(goal(g.patientId, `Mål ${Date.now()}-${Math.random()}`, g.id)) }),
        onResponse: (status: number, _body: string, _context: object, headers?: Record<string, unknown>) => sawVersion(g.id, status, headers),
      }))(f.goals[i % f.goals.length] as Fixture['goals'][number]),
      history[i] as LoadRequest,
    ];
  });
  return [
    { name: 'read by id', requests: read },
    { name: 'plan Bundle (_include=*)', requests: many.map((p) => planBundle(f, p)) },
    { name: 'searches by the access rule', requests: many.flatMap((p) => scopedSearches(f, p)) },
    { name: 'create', requests: create },
    {
      name: 'update with If-Match',
      requests: updateOwnGoal(0),
      perConnection: updateOwnGoal,
      // A run that stops leaves updates in flight whose answers nobody reads: once they are done
      // (a second: a slow, profiled server finished them after the versions were read, and those
      // connections got 412 for the rest of the run), learn the versions again.
      prepare: async () => {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        for (const g of f.goals) {
          const current = await call(f.url, 'GET', `Goal/${g.id}`, clinicianHeaders(f.clinician, g.nin));
          versions.set(g.id, Number(/"(\d+)"/.exec(current.etag ?? '')?.[1]));
        }
      },
    },
    { name: 'transaction (whole plan)', requests: transaction },
    { name: 'mixed workload', requests: mixed },
    { name: 'history of a plan', requests: history },
    { name: 'status check', requests: status },
  ];
}

/** The ceiling's request: the same stored CarePlans, by the bare route. */
export function ceilingScenario(f: Fixture): Scenario {
  return { name: 'ceiling (bare SELECT)', requests: sample(f.patients, 200).map((p) => ({ method: 'GET', path: `/r/CarePlan/${p.planId}` })) };
}

/** The ceiling plus the AuditEvent every read must store first: the floor the audit rule sets. */
export function auditedCeilingScenario(f: Fixture): Scenario {
  return { name: 'ceiling + audit record', requests: sample(f.patients, 200).map((p) => ({ method: 'GET', path: `/ra/CarePlan/${p.planId}` })) };
}
