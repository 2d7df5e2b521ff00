/**
 * $export (FHIR Bulk Data Access IG, async request pattern) as engine operations, so every
 * request is access-checked and audited by the engine like any other:
 *
 *   GET|POST /$export                    everything (operators: health personnel with `<aud>/export`)
 *   GET|POST /Patient/$export            the compartments of the patients the caller may see
 *   GET|POST /Patient/{id}/$export       one patient's compartment
 *   GET      /$export-status?job=…       202 + X-Progress while running; 200 + manifest when done
 *   DELETE   /$export-status?job=…       cancel the job or delete its files
 *   GET      /$export-file?job=…&file=n  one NDJSON file
 *
 * The kick-off needs `Prefer: respond-async` (`preferAsync`), answers
 * 202 with `Content-Location` of the status URL, and queues a job the ExportWorker runs. Only the
 * principal who started a job (the same person, through the same client) can see its status,
 * download its files or cancel it; to anyone else it does not exist (404). Polling the status is
 * not audited (it shows no patient data); kick-off, downloads and cancelling are.
 */
import { randomUUID } from 'node:crypto';
import { visibility } from '../../fhir/access.js';
import { ErrorCode, errors, informational } from '../../fhir/outcomes.js';
import type { Operation, OperationTarget } from '../../fhir/operations.js';
import { outcomeResponse } from '../../fhir/respond.js';
import type { Call, Services } from '../../fhir/services.js';
import type { FhirRequest, FhirResponse, RequestContext, ResourceRef } from '../../fhir/types.js';
import { patientCompartmentTypes } from '../../security/policy.js';
import { type JobRow, JobStore } from './jobs.js';
import { NDJSON, parseKickOff } from './params.js';
import { actorOf, ownerOf, serialisePrincipal } from './principal.js';
import { NEVER_EXPORTED } from './worker.js';

export interface ExportOperationsOptions {
  /** The scope a system-level export needs, e.g. `nhn:samplan/export`. */
  exportScope: string;
  /** Jobs one principal may have queued or running at once. */
  maxActivePerOwner: number;
  /** Seconds a client is asked to wait between polls. */
  retryAfterSeconds: number;
  /** Called after a job is queued, to start it at once. */
  queued(): void;
}

const JOB_ID_RE = /^[A-Za-z0-9-]{1,64}$/;
const BULK = 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition';

/** Types a patient-level export can hold. */
function patientLevelTypes(): string[] {
  return [...patientCompartmentTypes()].filter((t) => !NEVER_EXPORTED.has(t)).sort();
}

function requestUrl(ctx: RequestContext, req: FhirRequest): string {
  const query = new URLSearchParams(req.query.map(([k, v]): [string, string] => [k, v])).toString();
  return `${ctx.baseUrl}/${req.path}${query ? `?${query}` : ''}`;
}

const patientRefs = (ids: readonly string[] | null): ResourceRef[] => (ids ?? []).map((id) => ({ type: 'Patient', id }));

export function exportOperations(options: ExportOperationsOptions): Operation[] {
  const jobs = new JobStore();

  async function kickOff(s: Services, call: Call, target: OperationTarget): Promise<FhirResponse> {
    const req = call.req;
    const { ctx } = call;
    const p = ctx.principal;
    if (req.method !== 'GET' && req.method !== 'POST') throw errors.methodNotAllowed(req.method, '$export');
    if (!req.preferAsync) {
      throw errors.badRequest('A bulk export runs in the background: send the header "Prefer: respond-async" and poll the status URL the answer gives (Content-Location)');
    }
    const params = parseKickOff(req);
    const level = target.type ? 'patient' : 'system';
    let patients: string[] | null = null;

    if (level === 'system') {
      if (p?.kind === 'citizen') {
        throw errors.forbidden(ErrorCode.NoAccess, 'An export of everything is for operators; export your own plan with GET /Patient/{id}/$export');
      }
      if (p?.kind === 'personnel' && !p.scopes.has(options.exportScope)) {
        throw errors.forbidden(ErrorCode.InsufficientScope, `An export of everything needs the ${options.exportScope} scope (operators doing migration or analytics); a patient's own data is exported with GET /Patient/{id}/$export`);
      }
      if (p?.kind === 'machine') throw errors.forbidden(ErrorCode.MachineTokenNotAllowed, 'A token without a person cannot export');
      if (ctx.patientIds) throw errors.badRequest('An export of everything is not about one patient: leave out nhn-patient-nin');
      for (const type of params.types ?? []) {
        if (NEVER_EXPORTED.has(type)) throw errors.badRequest(`${type} is not exported: the audit trail is not plan data`, '_type');
      }
    } else {
      const allowed = patientLevelTypes();
      for (const type of params.types ?? []) {
        if (!allowed.includes(type)) {
          throw errors.badRequest(
            NEVER_EXPORTED.has(type)
              ? `${type} is not exported: the audit trail is not plan data (the patient reads it with GET /AuditEvent)`
              : `${type} resources are not in a patient's compartment, so a patient-level export does not hold them`,
            '_type',
          );
        }
      }
      if (p) {
        const reachable = ctx.patientIds ?? [];
        patients = target.id ? (reachable.includes(target.id) ? [target.id] : []) : [...reachable];
      } else if (target.id) patients = [target.id];
      // The patients must exist and be visible to the caller, as a read of them would be.
      const visible: string[] = [];
      for (const id of patients ?? []) {
        const row = await s.store.read(call.q, 'Patient', id, visibility(ctx.access));
        if (row && !row.deleted) visible.push(id);
      }
      if (patients !== null) {
        if (!visible.length) throw target.id ? errors.notFound('Patient', target.id) : errors.noMatch('No patient is registered for this request');
        patients = visible;
      }
      // What a search of each type would refuse (no consent, blocked, restricted, …), the export refuses.
      if (p) for (const type of params.types ?? allowed) ctx.access.checkInteraction('search', type);
    }

    const owner = ownerOf(p);
    if (p && (await jobs.activeCount(call.q, owner)) >= options.maxActivePerOwner) {
      throw errors.rateLimited(`You already have ${options.maxActivePerOwner} exports queued or running; wait for one to finish or cancel one`);
    }
    const id = randomUUID();
    await jobs.insert(call.q, {
      id,
      owner,
      actor: actorOf(p),
      principal: p ? serialisePrincipal(p) : null,
      level,
      patients,
      types: params.types ?? null,
      since: params.since ?? null,
      request: requestUrl(ctx, req),
    });
    // Queued after the answer's transaction commits; the worker's own polling is the fallback.
    setTimeout(options.queued, 20).unref();
    return {
      ...outcomeResponse(202, informational(`The export has been queued; poll ${ctx.baseUrl}/$export-status?job=${id} for its progress`)),
      headers: { 'content-location': `${ctx.baseUrl}/$export-status?job=${id}` },
      touched: patientRefs(patients),
    };
  }

  /** The job named by `job=`, if the caller owns it; anyone else gets the same 404 as for no job. */
  async function ownJob(call: Call): Promise<JobRow> {
    const ids = call.req.query.filter(([k]) => k === 'job').map(([, v]) => v);
    if (ids.length !== 1 || !ids[0]) throw errors.badRequest('Name the export job: job=<id>, as in the status URL', 'job');
    const id = ids[0];
    const job = JOB_ID_RE.test(id) ? await jobs.get(call.q, id) : undefined;
    if (!job || job.owner !== ownerOf(call.ctx.principal)) {
      throw errors.noMatch('There is no such export job (it may have expired, been cancelled, or been started by someone else)');
    }
    // The request must not name another patient than the export is about (the audit record would be wrong).
    const named = call.ctx.patientIds;
    if (named) {
      if (job.level === 'system') throw errors.badRequest('An export of everything is not about one patient: leave out nhn-patient-nin');
      if (!named.some((pid) => job.patients?.includes(pid))) {
        throw errors.forbidden(ErrorCode.PatientMismatch, 'The export is about another patient than the one this request names');
      }
    }
    return job;
  }

  async function status(_s: Services, call: Call): Promise<FhirResponse> {
    if (call.req.method === 'DELETE') return cancel(call);
    if (call.req.method !== 'GET') throw errors.methodNotAllowed(call.req.method, '$export-status (GET polls, DELETE cancels)');
    const job = await ownJob(call);
    const retryAfter = String(options.retryAfterSeconds);
    if (job.status === 'accepted') return { status: 202, headers: { 'x-progress': 'queued', 'retry-after': retryAfter } };
    if (job.status === 'in-progress') {
      const where = job.types ? `; ${job.types[job.typeIndex] ?? 'finishing'} (type ${Math.min(job.typeIndex + 1, job.types.length)} of ${job.types.length})` : '';
      return { status: 202, headers: { 'x-progress': `in progress: ${job.exported} resources written${where}`, 'retry-after': retryAfter } };
    }
    const expires: Record<string, string> = job.expires ? { expires: job.expires.toUTCString() } : {};
    if (job.status === 'failed') {
      const failure = JSON.parse(job.error ?? '{}') as { status?: number; outcome?: unknown };
      return { status: failure.status ?? 500, body: JSON.stringify(failure.outcome ?? errors.internal().outcome), headers: expires };
    }
    const files = await jobs.files(call.q, job.id);
    const manifest = {
      transactionTime: (job.transactionTime ?? job.created).toISOString(),
      request: job.request,
      requiresAccessToken: true,
      output: files.map((f) => ({ type: f.type, url: `${call.ctx.baseUrl}/$export-file?job=${job.id}&file=${f.n}`, count: f.count })),
      error: [],
    };
    return { status: 200, body: JSON.stringify(manifest), headers: expires };
  }

  async function cancel(call: Call): Promise<FhirResponse> {
    const job = await ownJob(call);
    await jobs.delete(call.q, job.id);
    return {
      ...outcomeResponse(202, informational(job.status === 'completed' ? 'The export files have been deleted' : 'The export has been cancelled and its files deleted')),
      touched: patientRefs(job.patients),
    };
  }

  async function file(_s: Services, call: Call): Promise<FhirResponse> {
    if (call.req.method !== 'GET') throw errors.methodNotAllowed(call.req.method, '$export-file');
    const job = await ownJob(call);
    const n = Number(call.req.query.find(([k]) => k === 'file')?.[1]);
    if (!Number.isInteger(n) || n < 1) throw errors.badRequest('Name the file: file=<n>, as in the manifest', 'file');
    if (job.status !== 'completed') throw errors.noMatch('The export has not completed; its files are listed in the manifest when it has');
    const found = await jobs.file(call.q, job.id, n);
    if (!found) throw errors.noMatch(`The export has no file ${n}`);
    const parts = await jobs.fileParts(call.q, job.id, n);
    return {
      status: 200,
      body: parts.join(''),
      headers: { 'content-type': NDJSON, ...(job.expires ? { expires: job.expires.toUTCString() } : {}) },
      touched: patientRefs(job.patients),
    };
  }

  const common = { system: false, typeLevel: false, instance: false, get: true };
  return [
    { ...common, name: 'export', definition: `${BULK}/export`, system: true, handler: kickOff },
    { ...common, name: 'export', definition: `${BULK}/patient-export`, type: 'Patient', typeLevel: true, instance: true, handler: kickOff },
    {
      ...common,
      name: 'export-status',
      definition: 'https://samplan.no/fhir/OperationDefinition/export-status',
      system: true,
      delete: true,
      audited: (req) => req.method === 'DELETE',
      spec: {
        title: 'Status for en eksport',
        description:
          "The status URL of a bulk export (FHIR Bulk Data Access IG, async request pattern), as the kick-off's Content-Location names it. GET polls: 202 with X-Progress and Retry-After while the export runs, 200 with the manifest when it is done, the error when it failed. DELETE cancels the export, or deletes its files. Only whoever started the export sees it.",
        affectsState: true,
        comment: 'GET polls and changes nothing; DELETE cancels (202). The manifest is the Bulk Data IG\'s JSON (transactionTime, request, requiresAccessToken, output, error), not a FHIR resource.',
        parameter: [
          { name: 'job', use: 'in', min: 1, max: '1', type: 'string', documentation: 'The export job, as in the status URL' },
          { name: 'return', use: 'out', min: 0, max: '1', type: 'Binary', documentation: 'When done: the Bulk Data manifest (application/json)' },
        ],
      },
      handler: status,
    },
    {
      ...common,
      name: 'export-file',
      definition: 'https://samplan.no/fhir/OperationDefinition/export-file',
      system: true,
      spec: {
        title: 'En fil fra en eksport',
        description: "One NDJSON file of a completed bulk export, as the manifest's output lists it. Only whoever started the export can download it.",
        affectsState: false,
        comment: 'GET only; the answer is NDJSON (application/fhir+ndjson), one resource per line.',
        parameter: [
          { name: 'job', use: 'in', min: 1, max: '1', type: 'string', documentation: 'The export job' },
          { name: 'file', use: 'in', min: 1, max: '1', type: 'integer', documentation: 'The file number, as in the manifest' },
          { name: 'return', use: 'out', min: 1, max: '1', type: 'Binary', documentation: 'The NDJSON file (application/fhir+ndjson)' },
        ],
      },
      handler: file,
    },
  ];
}
