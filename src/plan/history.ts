/**
 * Version history a clinician can use: `CarePlan/{id}/$versions` lists the plan's versions with who
 * changed it (name, HPR number, role, organisation), when, why (the Provenance reason), its
 * status, approval and whether the patient sees it; `CarePlan/{id}/$diff?from=&to=` says in plain
 * words what changed between two versions of the plan — its zones, goals, measures, conditions,
 * care team and text — taking each part as it was when that plan version was written.
 */
import type { CarePlan, Coding, Extension, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { isDeepStrictEqual } from 'node:util';
import { visibility } from '../fhir/access.js';
import { ErrorCode, errors } from '../fhir/outcomes.js';
import type { Operation, OperationParameter } from '../fhir/operations.js';
import { parseLocalReference } from '../fhir/references.js';
import type { Call, Services } from '../fhir/services.js';
import type { FhirResponse } from '../fhir/types.js';
import { searchRegistry } from '../search/registry.js';
import { EXTENSION, TASK_CODE, ZONE_DISPLAY, type ZoneLevel } from './conventions.js';
import { LAST_UPDATED_BY } from './provenance.js';

interface Version {
  version: number;
  lastUpdated: Date;
  content: string | null;
}

async function planVersions(s: Services, call: Call, id: string): Promise<{ rid: number; published: number | null; versions: Version[] }> {
  const row = await s.store.read(call.q, 'CarePlan', id, visibility(call.ctx.access));
  if (!row) throw errors.notFound('CarePlan', id);
  const versions = await call.q.query<Version>(
    'SELECT version, last_updated AS "lastUpdated", content FROM resource_versions WHERE rid = $1 ORDER BY version DESC',
    [row.rid],
  );
  const published = (await call.q.query<{ p: number | null }>('SELECT published_version AS p FROM resources WHERE rid = $1', [row.rid]))[0]?.p ?? null;
  return { rid: row.rid, published, versions };
}

const tag = (r: Resource | undefined, system: string): Coding | undefined => r?.meta?.tag?.find((t) => t.system === system);

async function reasons(call: Call, id: string): Promise<Map<number, string>> {
  const sp = searchRegistry().get('Provenance', 'target')?.sp;
  const rows = await call.q.query<{ version: string; content: string }>(
    `SELECT x.version, r.content FROM idx_reference x JOIN resources r ON r.rid = x.rid
      WHERE x.sp = $1 AND x.target_type = 'CarePlan' AND x.target_id = $2 AND NOT r.deleted`,
    [sp, id],
  );
  const result = new Map<number, string>();
  for (const row of rows) {
    const text = (JSON.parse(row.content) as { reason?: Array<{ text?: string }> }).reason?.map((r) => r.text).filter(Boolean).join('; ');
    if (text) result.set(Number(row.version), text);
  }
  return result;
}

async function approvals(call: Call, id: string): Promise<Map<number, string>> {
  const sp = searchRegistry().get('Task', 'focus')?.sp;
  const rows = await call.q.query<{ version: string; content: string }>(
    `SELECT x.version, r.content FROM idx_reference x JOIN resources r ON r.rid = x.rid
      WHERE x.sp = $1 AND x.target_type = 'CarePlan' AND x.target_id = $2 AND NOT r.deleted AND r.type = 'Task'`,
    [sp, id],
  );
  const result = new Map<number, string>();
  for (const row of rows) {
    const task = JSON.parse(row.content) as { status?: string; code?: { coding?: Coding[] } };
    if (task.code?.coding?.some((c) => c.system === TASK_CODE.planApproval.system && c.code === TASK_CODE.planApproval.code) && task.status) result.set(Number(row.version), task.status);
  }
  return result;
}

const APPROVAL_TEXT: Record<string, string> = { requested: 'requested', completed: 'given', rejected: 'rejected' };

async function listVersions(s: Services, call: Call, target: { id?: string }): Promise<FhirResponse> {
  if (call.ctx.principal?.kind === 'citizen') throw errors.forbidden(ErrorCode.NoAccess, 'Version history is for health personnel');
  const id = target.id as string;
  const { published, versions } = await planVersions(s, call, id);
  const [why, approved] = await Promise.all([reasons(call, id), approvals(call, id)]);
  const parameter: ParametersParameter[] = versions.map((v) => {
    const plan = v.content ? (JSON.parse(v.content) as CarePlan) : undefined;
    const hpr = tag(plan, LAST_UPDATED_BY.hpr);
    const part: ParametersParameter[] = [
      { name: 'version', valueInteger: v.version },
      { name: 'lastUpdated', valueInstant: new Date(v.lastUpdated).toISOString() },
      { name: 'status', valueCode: plan?.status ?? 'deleted' },
    ];
    if (hpr) part.push({ name: 'author', valueString: `${hpr.display ?? 'Ukjent'} (HPR ${hpr.code})` });
    const role = tag(plan, LAST_UPDATED_BY.role)?.code;
    if (role) part.push({ name: 'role', valueCode: role });
    const org = tag(plan, LAST_UPDATED_BY.organization)?.code;
    if (org) part.push({ name: 'organization', valueString: org });
    const reason = why.get(v.version);
    if (reason) part.push({ name: 'reason', valueString: reason });
    const approval = approved.get(v.version);
    if (approval) part.push({ name: 'approval', valueCode: APPROVAL_TEXT[approval] ?? approval });
    part.push({ name: 'published', valueBoolean: published === v.version });
    return { name: 'version', part };
  });
  const out: Parameters = { resourceType: 'Parameters', ...(parameter.length ? { parameter } : {}) };
  return { status: 200, body: JSON.stringify(out), touched: [{ type: 'CarePlan', id }] };
}

/** One change in words, for clinicians reading the difference between two plan versions. */
interface Change {
  kind: 'plan' | 'zone' | 'goal' | 'measure' | 'condition' | 'careTeam';
  action: 'added' | 'removed' | 'changed';
  what: string;
  detail?: string;
}

const KIND_TEXT: Record<Change['kind'], string> = { plan: 'Planen', zone: 'Sone', goal: 'Mål', measure: 'Tiltak', condition: 'Problem/diagnose', careTeam: 'Behandlingsteam' };
const ACTION_TEXT: Record<Change['action'], string> = { added: 'lagt til', removed: 'fjernet', changed: 'endret' };

function zones(plan: CarePlan): Map<string, Extension> {
  return new Map(
    (plan.extension ?? [])
      .filter((e) => e.url === EXTENSION.zone)
      .map((z) => [z.extension?.find((x) => x.url === 'level')?.valueCode ?? '?', z] as const),
  );
}

function zoneDetail(before: Extension, after: Extension): string {
  const parts = new Set([...(before.extension ?? []), ...(after.extension ?? [])].map((e) => e.url));
  const changed = [...parts].filter((url) => !isDeepStrictEqual(before.extension?.filter((e) => e.url === url), after.extension?.filter((e) => e.url === url)));
  const names: Record<string, string> = { criteria: 'når den gjelder', symptom: 'symptomer', threshold: 'grenseverdier', action: 'hva du gjør', medication: 'medisiner', contact: 'hvem du kontakter', emergency: 'nødhjelp', title: 'overskrift' };
  return changed.map((u) => names[u as string] ?? u).join(', ');
}

/** The resource a reference pointed at when the plan version was written. */
async function asOf(call: Call, ref: string, at: Date): Promise<Resource | undefined> {
  const local = parseLocalReference(ref);
  if (!local) return undefined;
  const rows = await call.q.query<{ content: string | null }>(
    `SELECT v.content FROM resources r JOIN resource_versions v ON v.rid = r.rid
      WHERE r.type = $1 AND r.id = $2 AND v.last_updated <= $3 ORDER BY v.version DESC LIMIT 1`,
    [local.type, local.id, at.toISOString()],
  );
  return rows[0]?.content ? (JSON.parse(rows[0].content) as Resource) : undefined;
}

function label(r: Resource): string {
  const x = r as { description?: { text?: string }; code?: { text?: string; coding?: Coding[] }; title?: string; name?: string };
  return x.description?.text ?? x.code?.text ?? x.code?.coding?.[0]?.display ?? x.title ?? x.name ?? `${r.resourceType}/${r.id}`;
}

async function parts(call: Call, plan: CarePlan, at: Date): Promise<Map<string, { kind: Change['kind']; resource: Resource }>> {
  const refs: Array<[Change['kind'], string | undefined]> = [
    ...(plan.goal ?? []).map((g) => ['goal', g.reference] as [Change['kind'], string | undefined]),
    ...(plan.addresses ?? []).map((c) => ['condition', c.reference] as [Change['kind'], string | undefined]),
    ...(plan.activity ?? []).map((a) => ['measure', a.reference?.reference] as [Change['kind'], string | undefined]),
    ...(plan.careTeam ?? []).map((t) => ['careTeam', t.reference] as [Change['kind'], string | undefined]),
  ];
  const result = new Map<string, { kind: Change['kind']; resource: Resource }>();
  for (const [kind, ref] of refs) {
    if (!ref) continue;
    const resource = await asOf(call, ref, at);
    if (resource) result.set(ref, { kind, resource });
  }
  return result;
}

function stripMeta(r: Resource): Resource {
  const { meta: _meta, ...rest } = r as Resource & { meta?: unknown };
  return rest as Resource;
}

export async function diffPlans(call: Call, before: { plan: CarePlan; at: Date }, after: { plan: CarePlan; at: Date }): Promise<Change[]> {
  const changes: Change[] = [];
  for (const field of ['title', 'description', 'status'] as const) {
    if (before.plan[field] !== after.plan[field]) changes.push({ kind: 'plan', action: 'changed', what: field, detail: `${before.plan[field] ?? '–'} → ${after.plan[field] ?? '–'}` });
  }
  const zb = zones(before.plan);
  const za = zones(after.plan);
  for (const level of ['green', 'yellow', 'red'] as ZoneLevel[]) {
    const b = zb.get(level);
    const a = za.get(level);
    if (!b && a) changes.push({ kind: 'zone', action: 'added', what: ZONE_DISPLAY[level] });
    else if (b && !a) changes.push({ kind: 'zone', action: 'removed', what: ZONE_DISPLAY[level] });
    else if (a && b && !isDeepStrictEqual(a, b)) changes.push({ kind: 'zone', action: 'changed', what: ZONE_DISPLAY[level], detail: zoneDetail(b, a) });
  }
  const pb = await parts(call, before.plan, before.at);
  const pa = await parts(call, after.plan, after.at);
  for (const [ref, { kind, resource }] of pa) {
    const old = pb.get(ref);
    if (!old) changes.push({ kind, action: 'added', what: label(resource) });
    else if (!isDeepStrictEqual(stripMeta(old.resource), stripMeta(resource))) {
      changes.push({ kind, action: 'changed', what: label(resource), ...(label(old.resource) !== label(resource) ? { detail: `${label(old.resource)} → ${label(resource)}` } : {}) });
    }
  }
  for (const [ref, { kind, resource }] of pb) if (!pa.has(ref)) changes.push({ kind, action: 'removed', what: label(resource) });
  return changes;
}

async function diffVersions(s: Services, call: Call, target: { id?: string }): Promise<FhirResponse> {
  if (call.ctx.principal?.kind === 'citizen') throw errors.forbidden(ErrorCode.NoAccess, 'Version history is for health personnel');
  const id = target.id as string;
  const { versions } = await planVersions(s, call, id);
  const number = (name: string): number => {
    const raw = call.req.query.find(([k]) => k === name)?.[1] ?? (call.req.body as Parameters | undefined)?.parameter?.find((p) => p.name === name)?.valueInteger?.toString();
    if (!raw || !/^\d{1,9}$/.test(raw)) throw errors.badRequest(`$diff needs ${name} as a version number`);
    return Number(raw);
  };
  const pick = (n: number) => {
    const v = versions.find((x) => x.version === n);
    if (!v?.content) throw errors.notFound('CarePlan', id, String(n));
    return { plan: JSON.parse(v.content) as CarePlan, at: new Date(v.lastUpdated) };
  };
  const from = number('from');
  const to = number('to');
  const changes = await diffPlans(call, pick(from), pick(to));
  const summary = changes.map((c) => `${KIND_TEXT[c.kind]} ${ACTION_TEXT[c.action]}: ${c.what}${c.detail ? ` (${c.detail})` : ''}`);
  const out: Parameters = {
    resourceType: 'Parameters',
    parameter: [
      { name: 'from', valueInteger: from },
      { name: 'to', valueInteger: to },
      { name: 'summary', valueString: summary.length ? summary.join('\n') : 'Ingen endringer' },
      ...changes.map((c) => ({
        name: 'change',
        part: [
          { name: 'kind', valueCode: c.kind },
          { name: 'action', valueCode: c.action },
          { name: 'what', valueString: c.what },
          ...(c.detail ? [{ name: 'detail', valueString: c.detail }] : []),
        ],
      })),
    ],
  };
  return { status: 200, body: JSON.stringify(out), touched: [{ type: 'CarePlan', id, version: from }, { type: 'CarePlan', id, version: to }] };
}

const base = { type: 'CarePlan', system: false, typeLevel: false, instance: true, get: true } as const;

const outParam = (name: string, type: string, documentation: string, min = 1, max = '1'): OperationParameter => ({ name, use: 'out', min, max, type, documentation });

export const versionsOperation: Operation = {
  ...base,
  name: 'versions',
  definition: 'https://samplan.no/fhir/OperationDefinition/CarePlan-versions',
  spec: {
    title: 'Planens versjoner',
    description:
      'The versions of the plan, newest first, each with when, who changed it (name and HPR number, role, organisation), why (the reason given with the change), its status, its approval, and whether it is the version the patient sees. For health personnel.',
    affectsState: false,
    parameter: [
      {
        name: 'version',
        use: 'out',
        min: 0,
        max: '*',
        documentation: 'One version of the plan',
        part: [
          outParam('version', 'integer', 'The version number'),
          outParam('lastUpdated', 'instant', 'When it was written'),
          outParam('status', 'code', 'The plan\'s status in this version (deleted for a deletion)'),
          outParam('author', 'string', 'Who wrote it: name (HPR number)', 0),
          outParam('role', 'code', 'Their role (Volven 9060)', 0),
          outParam('organization', 'string', 'Their organisation number', 0),
          outParam('reason', 'string', 'Why, as given with the change (X-Provenance)', 0),
          outParam('approval', 'code', 'requested | given | rejected', 0),
          outParam('published', 'boolean', 'Whether this is the version the patient sees'),
        ],
      },
    ],
  },
  handler: listVersions,
};

export const diffOperation: Operation = {
  ...base,
  name: 'diff',
  definition: 'https://samplan.no/fhir/OperationDefinition/CarePlan-diff',
  spec: {
    title: 'Hva er endret mellom to versjoner av planen',
    description:
      'What changed between two versions of the plan, in plain words: its title, description and status, its zones, and the goals, measures, conditions and care team it refers to, each taken as it was when that plan version was written. For health personnel.',
    affectsState: false,
    comment: 'from and to may be given in the query string (GET) or in a Parameters body (POST).',
    parameter: [
      { name: 'from', use: 'in', min: 1, max: '1', type: 'integer', documentation: 'The earlier version' },
      { name: 'to', use: 'in', min: 1, max: '1', type: 'integer', documentation: 'The later version' },
      outParam('from', 'integer', 'The earlier version'),
      outParam('to', 'integer', 'The later version'),
      outParam('summary', 'string', 'The changes, one line each, in Norwegian ("Ingen endringer" when there are none)'),
      {
        name: 'change',
        use: 'out',
        min: 0,
        max: '*',
        documentation: 'One change',
        part: [
          outParam('kind', 'code', 'plan | zone | goal | measure | condition | careTeam'),
          outParam('action', 'code', 'added | removed | changed'),
          outParam('what', 'string', 'What changed (a title, a zone, a field)'),
          outParam('detail', 'string', 'Before → after, or which parts of a zone changed', 0),
        ],
      },
    ],
  },
  handler: diffVersions,
};
