/**
 * The plan's workflow beyond its status: publishing to the patient, and approval by a physician
 * (requested / given / rejected, per version) — separate from the status, so "active" never means
 * "approved". Approvals are Tasks (code plan-approval) whose focus is the exact plan version.
 */
import type { CarePlan, Parameters, Task } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS, visibility } from '../fhir/access.js';
import { ErrorCode, errors, FhirError, issue } from '../fhir/outcomes.js';
import type { Operation } from '../fhir/operations.js';
import { versionResponse } from '../fhir/respond.js';
import type { Call, Services } from '../fhir/services.js';
import type { FhirResponse } from '../fhir/types.js';
import { CODE_SYSTEM as NO } from '../no/codes.js';
import { OID } from '../no/identifiers.js';
import { searchRegistry } from '../search/registry.js';
import { inTransaction } from '../store/db.js';
import { TASK_CODE } from './conventions.js';
import { planParts, publish } from './publication.js';

function parameter(body: unknown, name: string): NonNullable<Parameters['parameter']>[number] | undefined {
  const p = body as Parameters | undefined;
  if (p !== undefined && p?.resourceType !== 'Parameters') throw errors.badRequest('The body must be a Parameters resource');
  return p?.parameter?.find((x) => x.name === name);
}

async function readPlan(s: Services, call: Call, id: string): Promise<{ plan: CarePlan; version: number }> {
  const row = await s.store.read(call.q, 'CarePlan', id, visibility(call.ctx.access));
  if (!row || row.deleted || !row.content) throw errors.notFound('CarePlan', id);
  return { plan: JSON.parse(row.content) as CarePlan, version: row.version };
}

function personnelOnly(call: Call, what: string) {
  const p = call.ctx.principal;
  if (p && p.kind !== 'personnel') throw errors.forbidden(ErrorCode.NoAccess, `Only health personnel can ${what}`);
  return p?.kind === 'personnel' ? p : undefined;
}

/** `CarePlan/{id}/$publish`: the patient sees this version of the plan and its parts from now on. */
async function publishPlan(s: Services, call: Call, target: { id?: string }): Promise<FhirResponse> {
  personnelOnly(call, 'publish a plan to the patient');
  return inTransaction(call.q, async (tx) => {
    const { plan, version } = await readPlan(s, { ...call, q: tx }, target.id as string);
    if (plan.status === 'draft') {
      throw new FhirError(409, issue({ code: 'business-rule', errorCode: ErrorCode.InvalidTransition, message: 'A draft is not shown to the patient: make the plan active before publishing it' }));
    }
    const parts = planParts(plan);
    const published = await publish(tx, parts);
    const out: Parameters = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'plan', valueReference: { reference: `CarePlan/${plan.id}/_history/${version}` } },
        { name: 'published', valueInteger: published },
      ],
    };
    return { status: 200, body: JSON.stringify(out), touched: parts.map((p) => ({ type: p.type, id: p.id })) };
  });
}

const APPROVAL = TASK_CODE.planApproval;
const STATUS: Record<string, { status: Task['status']; text: string }> = {
  request: { status: 'requested', text: 'Til godkjenning' },
  give: { status: 'completed', text: 'Godkjent' },
  reject: { status: 'rejected', text: 'Avvist' },
};

/** `CarePlan/{id}/$approval`: request, give or reject approval of one version, as a Task. */
async function approval(s: Services, call: Call, target: { id?: string }): Promise<FhirResponse> {
  const person = personnelOnly(call, 'request or decide approval');
  const action = parameter(call.req.body, 'action')?.valueCode;
  if (!action || !STATUS[action]) throw errors.badRequest('The parameter action must be request, give or reject');
  if (action !== 'request' && person && person.role.code !== 'LE') {
    throw errors.forbidden(ErrorCode.RoleNotAllowed, 'Only a physician (role LE) can give or reject approval of a plan');
  }
  const comment = parameter(call.req.body, 'comment')?.valueString;
  return inTransaction(call.q, async (tx) => {
    const { plan, version: current } = await readPlan(s, { ...call, q: tx }, target.id as string);
    const version = parameter(call.req.body, 'version')?.valueInteger ?? current;
    if (!Number.isInteger(version) || version < 1 || version > current) throw errors.badRequest(`CarePlan/${plan.id} has no version ${version}`);
    const focus = `CarePlan/${plan.id}/_history/${version}`;
    // The approval Task of this version, if any: found through its focus, the code checked on
    // what that finds (OFFSET 0 keeps the planner from starting at the code, which every
    // patient's approval Tasks share: src/search/sql.ts, whereClause).
    const existing = await tx.query<{ id: string; content: string }>(
      `SELECT r.id, r.content FROM idx_reference x JOIN resources r ON r.rid = x.rid
        WHERE x.sp = $1 AND x.target_type = 'CarePlan' AND x.target_id = $2 AND x.version = $3 AND NOT r.deleted
          AND EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid AND t.sp = $4 AND t.system = $5 AND t.code = $6 OFFSET 0) LIMIT 1`,
      [searchRegistry().get('Task', 'focus')?.sp, plan.id, String(version), searchRegistry().get('Task', 'code')?.sp, APPROVAL.system, APPROVAL.code],
    );
    const now = new Date().toISOString();
    const who = person ? { identifier: { system: OID.hpr, value: person.hpr }, ...(person.name ? { display: person.name } : {}) } : undefined;
    const previous = existing[0] ? (JSON.parse(existing[0].content) as Task) : undefined;
    const task: Task = {
      ...(previous ?? {}),
      resourceType: 'Task',
      status: STATUS[action]!.status,
      businessStatus: { text: STATUS[action]!.text },
      intent: 'proposal',
      code: { coding: [APPROVAL] },
      focus: { reference: focus },
      for: plan.subject,
      authoredOn: previous?.authoredOn ?? now,
      lastModified: now,
      ...(action === 'request' && who ? { requester: { ...who } } : {}),
      ...(action !== 'request' && who ? { owner: { ...who } } : {}),
      ...(person && action !== 'request' ? { performerType: [{ coding: [{ system: NO.personnelCategory, code: person.role.code }] }] } : {}),
      ...(comment ? { note: [...(previous?.note ?? []), { text: comment, time: now, ...(person?.name ? { authorString: person.name } : {}) }] } : {}),
    };
    const ctx = { ...call.ctx, access: SYSTEM_ACCESS };
    const result = previous
      ? await s.writer.update(tx, ctx, 'Task', existing[0]!.id, { ...task, id: existing[0]!.id })
      : await s.writer.create(tx, ctx, task);
    return versionResponse(previous ? 200 : 201, result.version, call.req, call.ctx, { location: true });
  });
}

export const publishOperation: Operation = {
  name: 'publish',
  definition: 'https://samplan.no/fhir/OperationDefinition/CarePlan-publish',
  type: 'CarePlan',
  system: false,
  typeLevel: false,
  instance: true,
  get: false,
  spec: {
    title: 'Publiser planen til pasienten',
    description:
      'Publishes the current version of the plan, and the conditions, goals, measures and care team it refers to, to the patient: from now on the patient (and whoever acts for them) sees these versions. Health personnel only; a draft cannot be published.',
    affectsState: true,
    comment: 'The body is an empty Parameters resource (or none). 409 INVALID_TRANSITION for a draft.',
    parameter: [
      { name: 'plan', use: 'out', min: 1, max: '1', type: 'Reference', documentation: 'The plan version published: CarePlan/{id}/_history/{version}' },
      { name: 'published', use: 'out', min: 1, max: '1', type: 'integer', documentation: 'How many resources (the plan and its parts) were published' },
    ],
  },
  handler: publishPlan,
};

export const approvalOperation: Operation = {
  name: 'approval',
  definition: 'https://samplan.no/fhir/OperationDefinition/CarePlan-approval',
  type: 'CarePlan',
  system: false,
  typeLevel: false,
  instance: true,
  get: false,
  spec: {
    title: 'Be om, gi eller avvis godkjenning av planen',
    description:
      'Requests, gives or rejects approval of one version of the plan, kept as a Task (code plan-approval) whose focus is that version: one Task per version, updated as the approval moves on. Health personnel request; only a physician (role LE) gives or rejects. Approval is separate from the plan\'s status.',
    affectsState: true,
    comment: 'Answers 201 with the new Task, or 200 with the updated one (as Prefer: return asks), with its Location.',
    parameter: [
      { name: 'action', use: 'in', min: 1, max: '1', type: 'code', documentation: 'request | give | reject' },
      { name: 'version', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'The plan version the approval is about; default the current version' },
      { name: 'comment', use: 'in', min: 0, max: '1', type: 'string', documentation: 'A note, added to the Task' },
      { name: 'return', use: 'out', min: 0, max: '1', type: 'Task', documentation: 'The approval Task (unless Prefer: return=minimal)' },
    ],
  },
  handler: approval,
};
