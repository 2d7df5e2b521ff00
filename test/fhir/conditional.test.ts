/** Conditional create, update, delete and patch, including concurrent conditional creates. */
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/app.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => t?.close());

// A business identifier system of a test EHR (national ids are checked: see test/plan).
const SYS = 'urn:samplan-test:patient-id';
const withId = (value: string, extra: Partial<Patient> = {}): Patient => ({ resourceType: 'Patient', identifier: [{ system: SYS, value }], ...extra });
const count = async (value: string) => (await t.request<Bundle>('GET', `Patient?identifier=${SYS}|${value}&_summary=count`)).body.total;

describe('conditional create (If-None-Exist)', () => {
  it('creates when nothing matches, returns the match (200) when one does, 412 when several do', async () => {
    const headers = { 'if-none-exist': `identifier=${SYS}|11111111111` };
    const first = await t.request<Patient>('POST', 'Patient', { body: withId('11111111111'), headers });
    expect(first.status).toBe(201);
    const second = await t.request<Patient>('POST', 'Patient', { body: withId('11111111111', { gender: 'male' }), headers });
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(second.body.gender).toBeUndefined();
    await t.create(withId('22222222222'));
    await t.create(withId('22222222222'));
    const many = await t.request('POST', 'Patient', { body: withId('22222222222'), headers: { 'if-none-exist': `identifier=${SYS}|22222222222` } });
    expect(many.status).toBe(412);
  });

  it('creates exactly one resource when many identical conditional creates race', async () => {
    const headers = { 'if-none-exist': `identifier=${SYS}|33333333333` };
    const results = await Promise.all(Array.from({ length: 10 }, () => t.request('POST', 'Patient', { body: withId('33333333333'), headers })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(9);
    expect(await count('33333333333')).toBe(1);
  });

  it('refuses criteria that do not filter, and unknown parameters', async () => {
    expect((await t.request('POST', 'Patient', { body: withId('1'), headers: { 'if-none-exist': '_count=1' } })).status).toBe(400);
    expect((await t.request('POST', 'Patient', { body: withId('1'), headers: { 'if-none-exist': 'nonsense=1' } })).status).toBe(400);
  });
});

describe('conditional update', () => {
  it('creates when nothing matches, updates the single match, 412 on several', async () => {
    const url = `Patient?identifier=${SYS}|44444444444`;
    const created = await t.request<Patient>('PUT', url, { body: withId('44444444444') });
    expect(created.status).toBe(201);
    const updated = await t.request<Patient>('PUT', url, { body: withId('44444444444', { gender: 'female' }) });
    expect(updated.status).toBe(200);
    expect(updated.body.id).toBe(created.body.id);
    expect(updated.body.meta?.versionId).toBe('2');
    await t.create(withId('55555555555'));
    await t.create(withId('55555555555'));
    expect((await t.request('PUT', `Patient?identifier=${SYS}|55555555555`, { body: withId('55555555555') })).status).toBe(412);
  });

  it('refuses a body id that differs from the match', async () => {
    const p = await t.create(withId('66666666666'));
    const res = await t.request('PUT', `Patient?identifier=${SYS}|66666666666`, { body: { ...withId('66666666666'), id: 'someone-else' } });
    expect(res.status).toBe(400);
    expect((await t.request<Patient>('GET', `Patient/${p.id}`)).body.meta?.versionId).toBe('1');
  });
});

describe('conditional delete and patch', () => {
  it('deletes the single match, does nothing for none, refuses several', async () => {
    await t.create(withId('77777777777'));
    expect((await t.request('DELETE', `Patient?identifier=${SYS}|77777777777`)).status).toBe(204);
    expect(await count('77777777777')).toBe(0);
    expect((await t.request('DELETE', `Patient?identifier=${SYS}|77777777777`)).status).toBe(204);
    await t.create(withId('88888888888'));
    await t.create(withId('88888888888'));
    expect((await t.request('DELETE', `Patient?identifier=${SYS}|88888888888`)).status).toBe(412);
    expect(await count('88888888888')).toBe(2);
  });

  it('patches the single match, 404 when nothing matches', async () => {
    const p = await t.create(withId('99999999999'));
    const ops = [{ op: 'add', path: '/gender', value: 'other' }];
    const res = await t.request<Patient>('PATCH', `Patient?identifier=${SYS}|99999999999`, {
      body: ops,
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(p.id);
    expect(res.body.gender).toBe('other');
    const none = await t.request('PATCH', `Patient?identifier=${SYS}|00000000000`, { body: ops, headers: { 'content-type': 'application/json-patch+json' } });
    expect(none.status).toBe(404);
  });
});
