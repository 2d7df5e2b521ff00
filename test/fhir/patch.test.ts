/** PATCH over HTTP: JSON Patch and FHIRPath Patch, If-Match, validation of the result. */
import type { Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/app.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => t?.close());

const jsonPatch = (ops: unknown, headers: Record<string, string> = {}) => ({
  body: ops,
  headers: { 'content-type': 'application/json-patch+json', ...headers },
});

describe('JSON Patch', () => {
  it('applies operations and makes a new version', async () => {
    const p = await t.create<Patient>({ resourceType: 'Patient', name: [{ family: 'Lapp' }] });
    const res = await t.request<Patient>('PATCH', `Patient/${p.id}`, jsonPatch([
      { op: 'add', path: '/birthDate', value: '1950-01-01' },
      { op: 'replace', path: '/name/0/family', value: 'Lappe' },
    ]));
    expect(res.status).toBe(200);
    expect(res.body.birthDate).toBe('1950-01-01');
    expect(res.body.name?.[0]?.family).toBe('Lappe');
    expect(res.body.meta?.versionId).toBe('2');
    expect(res.headers.etag).toBe('W/"2"');
  });

  it('honours If-Match', async () => {
    const p = await t.create<Patient>({ resourceType: 'Patient' });
    const ops = [{ op: 'add', path: '/gender', value: 'male' }];
    expect((await t.request('PATCH', `Patient/${p.id}`, jsonPatch(ops, { 'if-match': 'W/"3"' }))).status).toBe(412);
    expect((await t.request('PATCH', `Patient/${p.id}`, jsonPatch(ops, { 'if-match': 'W/"1"' }))).status).toBe(200);
  });

  it.each([
    ['not an array', { op: 'add' }],
    ['unknown op', [{ op: 'frobnicate', path: '/gender' }]],
    ['path that does not exist', [{ op: 'replace', path: '/name/5/family', value: 'x' }]],
    ['a failing test op', [{ op: 'test', path: '/gender', value: 'female' }]],
    ['a change of id', [{ op: 'replace', path: '/id', value: 'other' }]],
    ['a result that is not valid FHIR', [{ op: 'add', path: '/gender', value: 'mann' }]],
    // fast-json-patch throws a TypeError for these (found by the fuzzer: a 500).
    ['a path through __proto__', [{ op: 'test', path: '/__proto__/polluted', value: 'x' }]],
    ['a from through __proto__', [{ op: 'copy', from: '/__proto__', path: '/gender' }]],
  ])('refuses %s with 400', async (_name, ops) => {
    const p = await t.create<Patient>({ resourceType: 'Patient', gender: 'male' });
    const res = await t.request<{ resourceType: string }>('PATCH', `Patient/${p.id}`, jsonPatch(ops));
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect((await t.request<Patient>('GET', `Patient/${p.id}`)).body.meta?.versionId).toBe('1');
  });

  it('answers 404 for a resource that does not exist', async () => {
    expect((await t.request('PATCH', 'Patient/nobody', jsonPatch([{ op: 'add', path: '/gender', value: 'male' }]))).status).toBe(404);
  });
});

describe('FHIRPath Patch', () => {
  it('applies a Parameters patch', async () => {
    const p = await t.create<Patient>({ resourceType: 'Patient', gender: 'female', name: [{ family: 'Sti' }] });
    const res = await t.request<Patient>('PATCH', `Patient/${p.id}`, {
      body: {
        resourceType: 'Parameters',
        parameter: [
          {
            name: 'operation',
            part: [
              { name: 'type', valueCode: 'replace' },
              { name: 'path', valueString: 'Patient.gender' },
              { name: 'value', valueCode: 'male' },
            ],
          },
          {
            name: 'operation',
            part: [
              { name: 'type', valueCode: 'add' },
              { name: 'path', valueString: 'Patient' },
              { name: 'name', valueString: 'birthDate' },
              { name: 'value', valueDate: '1944-04-04' },
            ],
          },
        ],
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.gender).toBe('male');
    expect(res.body.birthDate).toBe('1944-04-04');
  });

  it('refuses a body that is neither JSON Patch nor a FHIRPath Patch', async () => {
    const p = await t.create<Patient>({ resourceType: 'Patient' });
    expect((await t.request('PATCH', `Patient/${p.id}`, { body: { resourceType: 'Patient' } })).status).toBe(415);
  });
});
