/**
 * A synthetic population at scale, with plans like the demo data's: the demo patients' plans
 * (seeded on the server by `npm start`'s seed) are the models, copied for each new patient with
 * valid synthetic fødselsnummer. Each patient is loaded through the API as an EHR would: the
 * Patient, the plan consent, then the whole plan — conditions, goals, measures, care team, the
 * active plan with its zones, and check-ins — in one transaction Bundle, then published.
 */
import type { Bundle, BundleEntry, CarePlan, Resource } from '@medplum/fhirtypes';
import { citizenByKey } from '../../src/demo/population.js';
import { syntheticNin } from '../../src/no/identifiers.js';
import { privacyConsent } from '../../src/security/privacy.js';
import { call, clinicianHeaders, FNR } from './api.js';

/** The content of one demo plan, with its parts, ready to be copied for other patients. */
/** The national ids of the demo patients whose plans the synthetic population copies. */
export const MODEL_NINS: readonly string[] = ['anne', 'bjorn', 'dagny', 'eldar'].map((k) => citizenByKey(k).pid);

export interface PlanModel {
  /** The plan's own resources (not the Patient, the directory or the check-ins' follow-ups). */
  resources: Resource[];
}

/** Resources shared by every patient (referred to as they are) rather than copied. */
const SHARED = new Set(['Organization', 'Practitioner', 'PractitionerRole', 'Patient', 'PlanDefinition', 'ActivityDefinition', 'Task', 'Flag', 'Provenance']);

/** Reads the demo patients' plans, with their parts and check-ins, as models. */
export async function loadModels(baseUrl: string, token: string, nins: readonly string[]): Promise<PlanModel[]> {
  const models: PlanModel[] = [];
  for (const nin of nins) {
    const headers = clinicianHeaders(token, nin);
    const plan = await call<Bundle>(baseUrl, 'POST', 'CarePlan/_search', headers, new URLSearchParams({ 'subject:Patient.identifier': `${FNR}|${nin}`, status: 'active', _include: '*', _revinclude: 'Observation:based-on', _count: '200' }).toString());
    const patient = (plan.body.entry ?? []).find((e) => e.resource?.resourceType === 'Patient')?.resource?.id;
    // Relatives are the patient's own (their compartment), named by the plan and its care team.
    const relatives = await call<Bundle>(baseUrl, 'GET', `RelatedPerson?patient=Patient/${patient}`, headers);
    const resources = [...(plan.body.entry ?? []), ...(relatives.body.entry ?? [])].map((e) => e.resource as Resource).filter((r) => !SHARED.has(r.resourceType));
    if (!resources.some((r) => r.resourceType === 'CarePlan')) throw new Error('a demo patient has no active plan: start the server with SEED_DEMO_DATA=true on an empty database');
    models.push({ resources });
  }
  return models;
}

function strip(resource: Resource): Resource {
  const { meta: _meta, id: _id, text: _text, ...rest } = resource as Resource & { text?: unknown };
  return rest as Resource;
}

/** The model's references between its own resources, rewritten to urn:uuid; the patient to `patientRef`. */
function retarget(value: unknown, ids: ReadonlyMap<string, string>, patientRef: string): unknown {
  if (Array.isArray(value)) return value.map((v) => retarget(v, ids, patientRef));
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'reference' && typeof v === 'string') {
      const local = v.replace(/\/_history\/.*$/, '');
      out[k] = local.startsWith('Patient/') ? patientRef : (ids.get(local) ?? v);
    } else out[k] = retarget(v, ids, patientRef);
  }
  return out;
}

/** The transaction that writes a copy of the model's plan for the patient (`status` for the plan). */
export function planTransaction(model: PlanModel, patientId: string, status: CarePlan['status'] = 'active'): Bundle {
  const ids = new Map(model.resources.map((r) => [`${r.resourceType}/${r.id}`, `urn:uuid:${crypto.randomUUID()}`]));
  const entry: BundleEntry[] = model.resources.map((r) => {
    const resource = retarget(strip(r), ids, `Patient/${patientId}`) as Resource;
    if (resource.resourceType === 'CarePlan') (resource as CarePlan).status = status;
    return { fullUrl: ids.get(`${r.resourceType}/${r.id}`), resource, request: { method: 'POST', url: r.resourceType } };
  });
  return { resourceType: 'Bundle', type: 'transaction', entry };
}

const FIRST = ['Kari', 'Ola', 'Ingrid', 'Per', 'Astrid', 'Nils', 'Solveig', 'Arne', 'Berit', 'Knut', 'Ragnhild', 'Odd'];
const LAST = ['Hansen', 'Johansen', 'Olsen', 'Larsen', 'Andersen', 'Pedersen', 'Nilsen', 'Kristiansen', 'Jensen', 'Karlsen'];

const DATES = 60 * 365;

/**
 * The n-th synthetic person: a name, a birth date (1930–1989) and a valid synthetic fødselsnummer,
 * unique per n (the k-th valid individual number from 200 up on that date: the demo people use
 * lower ones).
 */
export function person(n: number): { nin: string; given: string; family: string; birthDate: string } {
  const birthDate = new Date(Date.UTC(1930, 0, 1) + (n % DATES) * 86_400_000).toISOString().slice(0, 10);
  let k = Math.floor(n / DATES);
  let nin = '';
  for (let serial = 200; k >= 0; serial++) {
    const next = syntheticNin(birthDate, serial);
    if (next === nin) continue;
    nin = next;
    serial = Number(nin.slice(6, 9));
    k--;
  }
  return { nin, given: FIRST[n % FIRST.length] as string, family: LAST[Math.floor(n / FIRST.length) % LAST.length] as string, birthDate };
}

export interface LoadedPatient {
  nin: string;
  patientId: string;
  planId: string;
  resources: number;
}

/** Registers patient `n` with consent and writes a plan copied from `model`; returns what was made. */
export async function loadPatient(baseUrl: string, token: string, n: number, model: PlanModel): Promise<LoadedPatient> {
  const p = person(n);
  const headers = clinicianHeaders(token, p.nin);
  const patient = await call<{ id: string }>(
    baseUrl,
    'POST',
    'Patient',
    { ...headers, 'if-none-exist': `identifier=${FNR}|${p.nin}`, prefer: 'return=representation' },
    { resourceType: 'Patient', identifier: [{ system: FNR, value: p.nin }], name: [{ family: p.family, given: [p.given] }], birthDate: p.birthDate },
  );
  const patientId = patient.body.id;
  await call(baseUrl, 'POST', 'Consent', headers, privacyConsent(patientId, 'plan', { provision: { type: 'permit' } }));
  const tx = await call<Bundle>(baseUrl, 'POST', '', headers, planTransaction(model, patientId));
  const planId = tx.body.entry?.map((e) => /(?:^|\/)CarePlan\/([^/]+)/.exec(e.response?.location ?? '')?.[1]).find(Boolean);
  if (!planId) throw new Error('the plan transaction answered without a CarePlan location');
  await call(baseUrl, 'POST', `CarePlan/${planId}/$publish`, headers, { resourceType: 'Parameters' });
  return { nin: p.nin, patientId, planId, resources: 2 + (tx.body.entry?.length ?? 0) };
}


export interface IngestResult {
  patients: number;
  resources: number;
  seconds: number;
  resourcesPerSecond: number;
}

/** Loads patients `from`..`to`-1 with `concurrency` EHR clients in parallel, round-robin over the models. */
export async function ingest(
  url: string,
  clinician: string,
  models: readonly PlanModel[],
  from: number,
  to: number,
  concurrency: number,
  onEach?: (p: LoadedPatient) => void,
): Promise<{ loaded: LoadedPatient[]; result: IngestResult }> {
  const loaded: LoadedPatient[] = [];
  let next = from;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let n = next++; n < to; n = next++) {
        const p = await loadPatient(url, clinician, n, models[n % models.length] as PlanModel);
        loaded.push(p);
        onEach?.(p);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const resources = loaded.reduce((sum, p) => sum + p.resources, 0);
  return { loaded, result: { patients: loaded.length, resources, seconds: Math.round(seconds * 10) / 10, resourcesPerSecond: Math.round(resources / seconds) } };
}
