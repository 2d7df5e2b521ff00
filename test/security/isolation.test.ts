/**
 * No path leads to another patient's data. A clinician scoped to patient A (and A as a citizen)
 * tries every way in — read, vread, history, search, _include, _revinclude, _has, chains,
 * compartment and system search, transactions, batches, conditional and plain writes, $validate,
 * the plan operations, bulk export, the access log — and never sees or changes anything of patient B.
 */
import type { Bundle, CarePlan } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { SYSTEM_ACCESS } from '../../src/fhir/access.js';
import { ResourceWriter } from '../../src/fhir/writer.js';
import { ResourceStore } from '../../src/store/resources.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';
import { citizenToken, clinicianToken, nhnHeaders, seedPatient } from '../support/security.js';

let t: TestServer;
const A = 'anne';
const B = 'dagny';
const id: Record<string, string> = {};
/** B's resources, which must never be returned. */
let bIds: string[] = [];
/** Content only B's resources hold, which must never show up anywhere in an answer. */
const bContent = ['Hemmelig diagnose B', 'unik-kode-b', 'Mål B', 'Dagny'];

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  id.patientA = await seedPatient(t, A);
  id.patientB = await seedPatient(t, B);
  const make = async (key: string, resource: Record<string, unknown>) => {
    const res = await t.system<{ id: string }>('POST', resource.resourceType as string, resource);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    id[key] = res.body.id;
  };
  await make('orgShared', { resourceType: 'Organization', name: 'Felles legekontor' });
  await make('conditionB', { resourceType: 'Condition', subject: { reference: `Patient/${id.patientB}` }, code: { text: 'Hemmelig diagnose B' } });
  await make('goalB', { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Mål B' }, subject: { reference: `Patient/${id.patientB}` } });
  await make('obsB', { resourceType: 'Observation', status: 'final', code: { text: 'unik-kode-b' }, subject: { reference: `Patient/${id.patientB}` }, performer: [{ reference: `Organization/${id.orgShared}` }] });
  await make('planB', { resourceType: 'CarePlan', status: 'draft', intent: 'plan', title: 'Utkast B', subject: { reference: `Patient/${id.patientB}` }, goal: [{ reference: `Goal/${id.goalB}` }], addresses: [{ reference: `Condition/${id.conditionB}` }] });
  // A's plan points at B's condition (data from before the plan rules refused this, or a bug):
  // following it must not leak. Written past the rules, with a writer that has no hooks.
  const planA = { resourceType: 'CarePlan', status: 'draft', intent: 'plan', title: 'Utkast A', subject: { reference: `Patient/${id.patientA}` }, addresses: [{ reference: `Condition/${id.conditionB}` }] } satisfies CarePlan;
  const bare = new ResourceWriter(new ResourceStore());
  id.planA = (await t.app.db.transaction((tx) => bare.create(tx, { requestId: 'seed', baseUrl: BASE, access: SYSTEM_ACCESS }, planA))).version.id;
  await make('goalA', { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Mål A' }, subject: { reference: `Patient/${id.patientA}` }, expressedBy: { reference: `Patient/${id.patientA}` } });
  const everythingOfB = await t.system<Bundle>('GET', `Patient/${id.patientB}/CarePlan`);
  bIds = [id.patientB, id.conditionB, id.goalB, id.obsB, id.planB, ...(everythingOfB.body.entry ?? []).map((e) => e.resource?.id as string)].filter(Boolean) as string[];
  expect(new Set(bIds).size).toBeGreaterThanOrEqual(6);
});
afterAll(async () => t?.close());

type Caller = 'clinician' | 'citizen';

async function headersFor(who: Caller): Promise<Record<string, string>> {
  const token = who === 'clinician' ? await clinicianToken(t, 'fastlege') : await citizenToken(t, A);
  return { authorization: `Bearer ${token}`, ...(who === 'clinician' ? nhnHeaders({ nin: citizenByKey(A).pid }) : {}) };
}

async function call(who: Caller, method: string, path: string, body?: unknown) {
  return t.request(method, path, { ...(body !== undefined ? { body } : {}), headers: await headersFor(who) });
}

/** Neither B's resources nor anything only they contain is in the answer (requests may echo the ids the caller sent). */
function noSecrets(res: { text: string; body: unknown }, probe: string) {
  for (const s of bContent) expect(res.text.includes(s), `${probe} revealed "${s}"`).toBe(false);
  const entries = (res.body as Bundle).entry ?? [];
  for (const e of [...entries, ...entries.flatMap((x) => ((x.resource as Bundle | undefined)?.entry ?? []))]) {
    expect(bIds.includes(e.resource?.id as string), `${probe} returned ${e.resource?.resourceType}/${e.resource?.id}`).toBe(false);
  }
}

const reads = (): Array<[string, string]> => [
  ['read by id', `CarePlan/${id.planB}`],
  ['read the patient', `Patient/${id.patientB}`],
  ['vread', `Condition/${id.conditionB}/_history/1`],
  ['instance history', `Goal/${id.goalB}/_history`],
  ['type history', 'Condition/_history'],
  ['system history', '_history'],
  ['search by subject', `CarePlan?subject=Patient/${id.patientB}`],
  ['search by id', `Condition?_id=${id.conditionB}`],
  ['search by text', 'Observation?code:text=unik'],
  ['search by identifier', `POST Patient/_search identifier=${citizenByKey(B).pid}`],
  ['count', 'Condition?_summary=count'],
  ['_include of a reference to B', `CarePlan?_id=${id.planA}&_include=CarePlan:condition`],
  ['_include=*', `CarePlan?_id=${id.planA}&_include=*`],
  ['_revinclude from a shared organisation', `Organization?_id=${id.orgShared}&_revinclude=Observation:performer`],
  ['_revinclude:iterate', `Organization?_id=${id.orgShared}&_revinclude=Observation:performer&_include:iterate=Observation:subject`],
  ['_has probing through a shared organisation', `Organization?_has:Observation:performer:code:text=unik`],
  ['chain into B', `POST Observation/_search subject:Patient.identifier=${citizenByKey(B).pid}`],
  ['chain probing a shared resource', `Observation?performer:Organization.name=felles`],
  ['compartment search', `Patient/${id.patientB}/CarePlan`],
  ['system search', '?_type=CarePlan,Condition,Goal,Observation'],
  ['$validate of B’s resource', `CarePlan/${id.planB}/$validate`],
];

describe.each(['clinician', 'citizen'] as Caller[])('as %s of patient A', (who) => {
  it.each(reads())('%s shows nothing of B', async (probe, path) => {
    const form = /^POST (\S+) (.*)$/.exec(path);
    const res = form
      ? await t.request('POST', form[1] as string, { raw: form[2], headers: { ...(await headersFor(who)), 'content-type': 'application/x-www-form-urlencoded' } })
      : await call(who, path.includes('$validate') ? 'POST' : 'GET', path);
    if (who === 'citizen' && /_history$|_history\?/.test(path)) {
      expect(res.status).toBe(403);
      return;
    }
    expect([200, 404]).toContain(res.status);
    noSecrets(res, probe);
  });

  it('a _has probe cannot tell B exists', async () => {
    const res = await call(who, 'GET', `Organization?_has:Observation:performer:code:text=unik`);
    expect((res.body as Bundle).total).toBe(0);
  });

  it('cannot change B’s resources by update, patch, delete or conditional writes', async () => {
    const before = await t.system<{ meta: { versionId: string } }>('GET', `Goal/${id.goalB}`);
    const attempts = [
      await call(who, 'PUT', `Goal/${id.goalB}`, { resourceType: 'Goal', id: id.goalB, lifecycleStatus: 'cancelled', description: { text: 'x' }, subject: { reference: `Patient/${id.patientB}` } }),
      await t.request('PATCH', `Goal/${id.goalB}`, {
        body: [{ op: 'replace', path: '/lifecycleStatus', value: 'cancelled' }],
        headers: { ...(await headersFor(who)), 'content-type': 'application/json-patch+json' },
      }),
      await call(who, 'DELETE', `Goal/${id.goalB}`),
      await call(who, 'DELETE', `Goal?_id=${id.goalB}`),
    ];
    for (const res of attempts) {
      expect([403, 404, 204]).toContain(res.status);
      noSecrets(res, 'write attempt');
    }
    const after = await t.system<{ meta: { versionId: string } }>('GET', `Goal/${id.goalB}`);
    expect(after.status).toBe(200);
    expect(after.body.meta.versionId).toBe(before.body.meta.versionId);
  });

  it('cannot create resources for B, or move its own resources to B', async () => {
    const goal = { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Inn hos B' }, subject: { reference: `Patient/${id.patientB}` }, expressedBy: { reference: `Patient/${id.patientA}` } };
    expect((await call(who, 'POST', 'Goal', goal)).status).toBe(403);
    const move = await call(who, 'PUT', `Goal/${id.goalA}`, { resourceType: 'Goal', id: id.goalA, lifecycleStatus: 'active', description: { text: 'Mål A' }, subject: { reference: `Patient/${id.patientB}` }, expressedBy: { reference: `Patient/${id.patientA}` } });
    expect(move.status).toBe(403);
    const count = await t.system<Bundle>('GET', `Goal?subject=Patient/${id.patientB}&_summary=count`);
    expect(count.body.total).toBe(1);
  });

  it('cannot reach B through a transaction or a batch', async () => {
    const tx = await call(who, 'POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { request: { method: 'GET', url: `CarePlan/${id.planB}` } },
        { resource: { resourceType: 'Goal', id: id.goalB, lifecycleStatus: 'cancelled', description: { text: 'x' }, subject: { reference: `Patient/${id.patientB}` } }, request: { method: 'PUT', url: `Goal/${id.goalB}` } },
      ],
    });
    expect([403, 404]).toContain(tx.status);
    noSecrets(tx, 'transaction');
    const batch = await call(who, 'POST', '', {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: `CarePlan/${id.planB}` } },
        { request: { method: 'GET', url: `Condition?_id=${id.conditionB}` } },
        { request: { method: 'GET', url: `Patient/${id.patientB}/Goal` } },
      ],
    });
    expect(batch.status).toBe(200);
    noSecrets(batch, 'batch');
  });

  it('cannot reach B through the plan operations', async () => {
    for (const [method, path] of [
      ['GET', `CarePlan/${id.planB}/$versions`],
      ['GET', `CarePlan/${id.planB}/$diff?from=1&to=1`],
      ['POST', `CarePlan/${id.planB}/$publish`],
      ['POST', `CarePlan/${id.planB}/$approval`],
    ] as const) {
      const res = await call(who, method, path, method === 'POST' ? { resourceType: 'Parameters' } : undefined);
      expect([400, 403, 404], `${method} ${path}`).toContain(res.status);
      noSecrets(res, path);
    }
  });

  it('cannot reach B through a bulk export', async () => {
    const headers = { ...(await headersFor(who)), prefer: 'respond-async' };
    const direct = await t.request('GET', `Patient/${id.patientB}/$export`, { headers });
    expect([403, 404]).toContain(direct.status);
    // An export of "my patients" holds A's data only.
    const kickOff = await t.request('GET', 'Patient/$export', { headers });
    expect(kickOff.status, kickOff.text).toBe(202);
    const statusPath = String(kickOff.headers['content-location']).replace(/^.*\/fhir\//, '');
    type Manifest = { output: Array<{ url: string }> };
    let manifest: Manifest | undefined;
    for (let i = 0; i < 200 && !manifest; i++) {
      const polled = await t.request<Manifest>('GET', statusPath, { headers });
      if (polled.status === 200) manifest = polled.body;
      else await new Promise((r) => setTimeout(r, 25));
    }
    expect(manifest?.output.length).toBeGreaterThan(0);
    for (const file of manifest?.output ?? []) {
      const res = await t.request('GET', file.url.replace(/^.*\/fhir\//, ''), { headers });
      expect(res.status).toBe(200);
      for (const line of res.text.trim().split('\n')) {
        const resource = JSON.parse(line) as { id: string };
        expect(bIds).not.toContain(resource.id);
      }
      for (const secret of bContent) expect(res.text).not.toContain(secret);
    }
  });
});

describe('the access log', () => {
  it('shows a citizen only records about themselves', async () => {
    // B reads their own plan, which makes a record about B.
    const bToken = await citizenToken(t, B);
    await t.request('GET', 'CarePlan', { headers: { authorization: `Bearer ${bToken}` } });
    const bLog = await t.request<Bundle>('GET', 'AuditEvent', { headers: { authorization: `Bearer ${bToken}` } });
    const bEventId = bLog.body.entry?.[0]?.resource?.id as string;
    expect(bEventId).toBeTruthy();
    const aToken = await citizenToken(t, A);
    const probe = await t.request('GET', `AuditEvent?patient=${id.patientB}`, { headers: { authorization: `Bearer ${aToken}` } });
    expect((probe.body as Bundle).entry ?? []).toHaveLength(0);
    expect((await t.request('GET', `AuditEvent/${bEventId}`, { headers: { authorization: `Bearer ${aToken}` } })).status).toBe(404);
  });
});
