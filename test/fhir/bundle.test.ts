/** batch and transaction Bundles: atomicity, urn:uuid resolution, conditional entries, ordering. */
import type { Bundle, BundleEntry, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticNin } from '../../src/no/identifiers.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => t?.close());

const post = (bundle: Bundle, headers: Record<string, string> = {}) => t.request<Bundle>('POST', '/fhir', { body: bundle, headers });
const count = async (query: string) => {
  const [type, params = ''] = query.split('?') as [string, string?];
  // POST, so that queries naming a national id keep it out of the URL.
  const res = await t.request<Bundle>('POST', `${type}/_search`, { raw: `${params}${params ? '&' : ''}_summary=count`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  return res.body.total;
};

const fnr = (value: string) => ({ system: 'urn:oid:2.16.578.1.12.4.1.4.1', value });
const NIN2 = syntheticNin('1980-02-02');

describe('transaction', () => {
  it('writes every entry, resolves urn:uuid references, and answers in request order', async () => {
    const res = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a',
          resource: {
            resourceType: 'CarePlan',
            status: 'draft',
            intent: 'plan',
            title: 'Behandlingsplan',
            subject: { reference: 'urn:uuid:3f8c0e0c-9a59-4b55-9bfc-0c6a4f3e2a10' },
            goal: [{ reference: 'urn:uuid:0d7a1c3b-1c7e-4a2e-9b1e-2f8b8a1c2d3e' }],
          },
          request: { method: 'POST', url: 'CarePlan' },
        },
        {
          fullUrl: 'urn:uuid:3f8c0e0c-9a59-4b55-9bfc-0c6a4f3e2a10',
          resource: { resourceType: 'Patient', identifier: [fnr(syntheticNin('1970-01-01'))] },
          request: { method: 'POST', url: 'Patient' },
        },
        {
          fullUrl: 'urn:uuid:0d7a1c3b-1c7e-4a2e-9b1e-2f8b8a1c2d3e',
          resource: {
            resourceType: 'Goal',
            lifecycleStatus: 'proposed',
            description: { text: 'Gå til postkassen' },
            subject: { reference: 'urn:uuid:3f8c0e0c-9a59-4b55-9bfc-0c6a4f3e2a10' },
          },
          request: { method: 'POST', url: 'Goal' },
        },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('transaction-response');
    const [plan, patient, goal] = res.body.entry as BundleEntry[];
    expect(plan?.response?.status).toBe('201 Created');
    expect(plan?.response?.location).toMatch(new RegExp(`^${BASE}/CarePlan/[^/]+/_history/1$`));
    const patientId = (patient?.resource as Patient).id;
    expect((plan?.resource as { subject: { reference: string } }).subject.reference).toBe(`Patient/${patientId}`);
    expect((plan?.resource as { goal: Array<{ reference: string }> }).goal[0]?.reference).toBe(`Goal/${goal?.resource?.id}`);
    const search = await t.request<Bundle>('GET', `CarePlan?subject=Patient/${patientId}&_include=CarePlan:goal`);
    expect(search.body.entry?.map((e) => e.resource?.resourceType).sort()).toEqual(['CarePlan', 'Goal']);
  });

  it('is all or nothing: a failing entry rolls back the entries before it', async () => {
    const before = await count('Patient');
    const res = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { resourceType: 'Patient', name: [{ family: 'Rulletilbake' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Patient', gender: 'not-a-gender' } as never, request: { method: 'POST', url: 'Patient' } },
      ],
    });
    expect(res.status).toBe(400);
    const outcome = res.body as unknown as { resourceType: string; issue: Array<{ details?: { text?: string } }> };
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue.some((i) => i.details?.text?.includes('entry 1'))).toBe(true);
    expect(await count('Patient')).toBe(before);
    expect(await count('Patient?family=Rulletilbake')).toBe(0);
  });

  it('rolls back on a version conflict in a later entry, with its 412', async () => {
    const p = await t.create<Patient>({ resourceType: 'Patient', name: [{ family: 'Versjon' }] });
    const res = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { resourceType: 'Patient', name: [{ family: 'Skalikkefinnes' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { ...p, gender: 'male' }, request: { method: 'PUT', url: `Patient/${p.id}`, ifMatch: 'W/"9"' } },
      ],
    });
    expect(res.status).toBe(412);
    expect(await count('Patient?family=Skalikkefinnes')).toBe(0);
  });

  it('handles conditional create, conditional update and conditional references', async () => {
    await t.create({ resourceType: 'Patient', identifier: [fnr(NIN2)], name: [{ family: 'Finnes' }] });
    const res = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000001',
          resource: { resourceType: 'Patient', identifier: [fnr(NIN2)] },
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=urn:oid:2.16.578.1.12.4.1.4.1|${NIN2}` },
        },
        {
          resource: { resourceType: 'Organization', name: 'Hjemmetjenesten', identifier: [{ system: 'urn:oid:2.16.578.1.12.4.1.4.101', value: '123456785' }] },
          request: { method: 'PUT', url: 'Organization?identifier=urn:oid:2.16.578.1.12.4.1.4.101|123456785' },
        },
        {
          resource: {
            resourceType: 'Goal',
            lifecycleStatus: 'active',
            description: { text: 'Klare seg hjemme' },
            subject: { reference: `Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1|${NIN2}` },
          },
          request: { method: 'POST', url: 'Goal' },
        },
        {
          resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000001' } },
          request: { method: 'POST', url: 'Observation' },
        },
      ],
    });
    expect(res.status).toBe(200);
    const [patient, org, goal, obs] = res.body.entry as BundleEntry[];
    expect(patient?.response?.status).toBe('200 OK');
    expect(org?.response?.status).toBe('201 Created');
    expect(await count(`Patient?identifier=${NIN2}`)).toBe(1);
    expect((goal?.resource as { subject: { reference: string } }).subject.reference).toBe(`Patient/${patient?.resource?.id}`);
    expect((obs?.resource as { subject: { reference: string } }).subject.reference).toBe(`Patient/${patient?.resource?.id}`);
    // Running it again updates the organisation instead of creating another.
    const again = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: { resourceType: 'Organization', name: 'Hjemmetjenesten Nord', identifier: [{ system: 'urn:oid:2.16.578.1.12.4.1.4.101', value: '123456785' }] },
          request: { method: 'PUT', url: 'Organization?identifier=urn:oid:2.16.578.1.12.4.1.4.101|123456785' },
        },
      ],
    });
    expect(again.body.entry?.[0]?.response?.status).toBe('200 OK');
    expect(await count('Organization?identifier=123456785')).toBe(1);
  });

  it('fails when a conditional reference matches nothing', async () => {
    const res = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'x' }, subject: { reference: 'Patient?identifier=nobody' } },
          request: { method: 'POST', url: 'Goal' },
        },
      ],
    });
    expect(res.status).toBe(422);
  });

  it('runs deletes before creates and reads after writes, and supports PATCH via Binary', async () => {
    const old = await t.create({ resourceType: 'Patient', name: [{ family: 'Gammel' }] });
    const p = await t.create({ resourceType: 'Patient', gender: 'female' });
    const patchDoc = Buffer.from(JSON.stringify([{ op: 'replace', path: '/gender', value: 'male' }])).toString('base64');
    const res = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { request: { method: 'GET', url: `Patient/${p.id}` } },
        { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: patchDoc }, request: { method: 'PATCH', url: `Patient/${p.id}` } },
        { request: { method: 'DELETE', url: `Patient/${old.id}` } },
      ],
    });
    expect(res.status).toBe(200);
    const [read, patched, deleted] = res.body.entry as BundleEntry[];
    expect((read?.resource as Patient).gender).toBe('male');
    expect((patched?.resource as Patient).meta?.versionId).toBe('2');
    expect(deleted?.response?.status).toMatch(/^204/);
    expect((await t.request('GET', `Patient/${old.id}`)).status).toBe(410);
  });

  it('refuses a transaction that changes one resource twice', async () => {
    const p = await t.create({ resourceType: 'Patient' });
    const res = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { ...p, gender: 'male' }, request: { method: 'PUT', url: `Patient/${p.id}` } },
        { request: { method: 'DELETE', url: `Patient/${p.id}` } },
      ],
    });
    expect(res.status).toBe(400);
  });
});

describe('batch', () => {
  it('runs each entry on its own and reports each outcome', async () => {
    const p = await t.create({ resourceType: 'Patient' });
    const res = await post({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { resource: { resourceType: 'Patient', name: [{ family: 'Batchvis' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Patient', gender: 'nope' } as never, request: { method: 'POST', url: 'Patient' } },
        { request: { method: 'GET', url: `Patient/${p.id}` } },
        { request: { method: 'GET', url: 'Patient/does-not-exist' } },
        { request: { method: 'GET', url: 'Patient?family=Batchvis' } },
        { request: { method: 'FROB' as never, url: 'Patient' } },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('batch-response');
    const statuses = res.body.entry?.map((e) => e.response?.status);
    expect(statuses).toEqual(['201 Created', '400 Bad Request', '200 OK', '404 Not Found', '200 OK', '400 Bad Request']);
    expect((res.body.entry?.[1]?.response?.outcome as { resourceType: string }).resourceType).toBe('OperationOutcome');
    expect((res.body.entry?.[4]?.resource as Bundle).total).toBe(1);
    expect(await count('Patient?family=Batchvis')).toBe(1);
  });
});

describe('bad bundles', () => {
  it.each([
    ['not a Bundle', { resourceType: 'Patient' }],
    ['wrong type', { resourceType: 'Bundle', type: 'collection' }],
    ['entry not an array', { resourceType: 'Bundle', type: 'batch', entry: {} }],
    ['entry without request', { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' } }] }],
    ['nested bundle', { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Bundle', type: 'batch' }, request: { method: 'POST', url: '' } }] }],
    ['absolute foreign url', { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: 'http://evil.example/Patient/1' } }] }],
  ])('%s → 400 with an OperationOutcome', async (_name, body) => {
    const res = await t.request<{ resourceType: string }>('POST', '/fhir', { body });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});
