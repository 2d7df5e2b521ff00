/** Concurrent writers: optimistic locking lets exactly one If-Match update win; nothing is lost without it either. */
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/app.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => t?.close());

describe('concurrent updates', () => {
  it('exactly one of many parallel If-Match updates of the same version wins; the rest get 412', async () => {
    const p = await t.create<Patient>({ resourceType: 'Patient', name: [{ family: 'Samtidig' }] });
    const attempts = Array.from({ length: 20 }, (_, i) =>
      t.request('PUT', `Patient/${p.id}`, { body: { ...p, name: [{ family: `Vinner${i}` }] }, headers: { 'if-match': 'W/"1"' } }),
    );
    const results = await Promise.all(attempts);
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 412)).toHaveLength(19);
    const current = await t.request<Patient>('GET', `Patient/${p.id}`);
    expect(current.body.meta?.versionId).toBe('2');
    const winner = results.find((r) => r.status === 200)?.body as Patient;
    expect(current.body.name?.[0]?.family).toBe(winner.name?.[0]?.family);
  });

  it('parallel updates without If-Match each make their own version: none is lost', async () => {
    const p = await t.create<Patient>({ resourceType: 'Patient' });
    const results = await Promise.all(
      Array.from({ length: 15 }, (_, i) => t.request('PUT', `Patient/${p.id}`, { body: { ...p, name: [{ family: `Skriver${i}` }] } })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const history = await t.request<Bundle>('GET', `Patient/${p.id}/_history?_count=100`);
    expect(history.body.total).toBe(16);
    const versions = history.body.entry?.map((e) => Number(e.resource?.meta?.versionId)).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    const families = new Set(history.body.entry?.map((e) => (e.resource as Patient).name?.[0]?.family).filter(Boolean));
    expect(families.size).toBe(15);
  });

  it('parallel creates under one client id make one resource and then versions', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => t.request('PUT', 'Patient/same-client-id', { body: { resourceType: 'Patient', id: 'same-client-id', name: [{ family: `K${i}` }] } })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(7);
    const history = await t.request<Bundle>('GET', 'Patient/same-client-id/_history?_count=100');
    expect(history.body.total).toBe(8);
  });
});
