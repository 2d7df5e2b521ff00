/**
 * Bad input of every kind gets a clear OperationOutcome with the right status — never a crash,
 * a stack trace or a 500 — and leaves the data as it was.
 */
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/app.js';

let t: TestServer;
let patientId = '';
beforeAll(async () => {
  t = await startTestServer({ BODY_LIMIT: String(256 * 1024), MAX_JSON_DEPTH: '40' });
  patientId = (await t.create({ resourceType: 'Patient', name: [{ family: 'Uendret' }] })).id as string;
});
afterAll(async () => t?.close());

const fhir = { 'content-type': 'application/fhir+json' };
const deep = (depth: number) => '{"resourceType":"Patient","extension":' + '['.repeat(depth) + ']'.repeat(depth) + '}';

interface Case {
  name: string;
  method: string;
  path: string;
  raw?: string;
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
  /** Words the message must contain, so the client learns what is wrong. */
  says: RegExp;
}

const cases: Case[] = [
  { name: 'malformed JSON', method: 'POST', path: 'Patient', raw: '{"resourceType": "Patient",', headers: fhir, status: 400, says: /not valid JSON/ },
  { name: 'JSON with a comment', method: 'POST', path: 'Patient', raw: '{"resourceType":"Patient" /* hi */}', headers: fhir, status: 400, says: /line 1, column/ },
  { name: 'trailing comma', method: 'POST', path: 'Patient', raw: '{"resourceType":"Patient",}', headers: fhir, status: 400, says: /not valid JSON/ },
  { name: 'empty body', method: 'POST', path: 'Patient', raw: '', headers: fhir, status: 400, says: /empty/ },
  { name: 'a JSON array instead of a resource', method: 'POST', path: 'Patient', body: [1, 2], status: 400, says: /JSON object/ },
  { name: 'a JSON string instead of a resource', method: 'POST', path: 'Patient', raw: '"Patient"', headers: fhir, status: 400, says: /JSON object/ },
  { name: 'null body', method: 'POST', path: 'Patient', raw: 'null', headers: fhir, status: 400, says: /JSON object/ },
  { name: 'missing resourceType', method: 'POST', path: 'Patient', body: { name: [] }, status: 400, says: /resourceType/ },
  { name: 'wrong resourceType for the URL', method: 'POST', path: 'Patient', body: { resourceType: 'Observation' }, status: 400, says: /Observation.*Patient/ },
  { name: 'unknown resource type in the URL', method: 'GET', path: 'Pasient/1', status: 404, says: /not a FHIR R4 resource type/ },
  { name: 'unknown resource type in the body', method: 'POST', path: 'Patient', body: { resourceType: 'Pasient' }, status: 400, says: /Pasient/ },
  { name: 'id mismatch between URL and body', method: 'PUT', path: 'Patient/abc', body: { resourceType: 'Patient', id: 'xyz' }, status: 400, says: /does not match/ },
  { name: 'update without id in body', method: 'PUT', path: 'Patient/abc', body: { resourceType: 'Patient' }, status: 400, says: /must have an id/ },
  { name: 'invalid id in the URL', method: 'GET', path: 'Patient/bad_id!', status: 400, says: /not a valid resource id/ },
  { name: 'id longer than 64 characters', method: 'PUT', path: `Patient/${'a'.repeat(65)}`, body: { resourceType: 'Patient', id: 'a'.repeat(65) }, status: 400, says: /not a valid resource id/ },
  { name: 'unknown element', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', shoeSize: 44 }, status: 400, says: /shoeSize/ },
  { name: 'wrong JSON type for an element', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', active: 'yes' }, status: 400, says: /active/ },
  { name: 'invalid date', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', birthDate: '12.03.1948' }, status: 400, says: /birthDate/ },
  { name: 'code outside a required value set', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', gender: 'mann' }, status: 400, says: /gender/ },
  { name: 'missing required element', method: 'POST', path: 'Observation', body: { resourceType: 'Observation', status: 'final' }, status: 400, says: /code/ },
  { name: 'a single value where an array belongs', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', name: { family: 'X' } }, status: 400, says: /name/ },
  { name: 'an empty array', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', name: [] }, status: 400, says: /name/ },
  { name: 'null in an array', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', name: [null] }, status: 400, says: /name/ },
  { name: 'script in narrative', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>' } }, status: 400, says: /script|txt-1/ },
  { name: 'HTML injection in a string', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', name: [{ text: '<img src=x onerror=alert(1)>' }] }, status: 400, says: /HTML/ },
  { name: 'unknown extension', method: 'POST', path: 'Patient', body: { resourceType: 'Patient', extension: [{ url: 'http://example.org/unknown', valueString: 'x' }] }, status: 400, says: /extension/i },
  { name: 'a deeply nested body', method: 'POST', path: 'Patient', raw: deep(500), headers: fhir, status: 400, says: /nested too deeply/ },
  { name: 'a body over the size limit', method: 'POST', path: 'Patient', raw: JSON.stringify({ resourceType: 'Patient', name: [{ text: 'x'.repeat(300 * 1024) }] }), headers: fhir, status: 413, says: /larger than/ },
  { name: 'XML content', method: 'POST', path: 'Patient', raw: '<Patient xmlns="http://hl7.org/fhir"/>', headers: { 'content-type': 'application/fhir+xml' }, status: 415, says: /not supported/ },
  { name: 'no content type', method: 'POST', path: 'Patient', raw: '{"resourceType":"Patient"}', headers: { 'content-type': '' }, status: 415, says: /Content-Type/ },
  { name: 'text/plain content type', method: 'POST', path: 'Patient', raw: '{"resourceType":"Patient"}', headers: { 'content-type': 'text/plain' }, status: 415, says: /Content-Type/ },
  { name: 'another FHIR version', method: 'POST', path: 'Patient', raw: '{"resourceType":"Patient"}', headers: { 'content-type': 'application/fhir+json; fhirVersion=3.0' }, status: 415, says: /R4/ },
  { name: 'asking for XML', method: 'GET', path: 'Patient', headers: { accept: 'application/fhir+xml' }, status: 406, says: /JSON only/ },
  { name: '_format=xml', method: 'GET', path: 'Patient?_format=xml', status: 406, says: /_format/ },
  { name: 'DELETE on the type without criteria', method: 'DELETE', path: 'Patient', status: 400, says: /criteria/ },
  { name: 'POST on an instance', method: 'POST', path: 'Patient/abc', body: { resourceType: 'Patient' }, status: 405, says: /not allowed/ },
  { name: 'PUT on metadata', method: 'PUT', path: 'metadata', body: {}, status: 405, says: /not allowed/ },
  { name: 'unknown operation', method: 'POST', path: 'Patient/$frobnicate', body: { resourceType: 'Parameters' }, status: 404, says: /not supported/ },
  { name: 'a path that does not exist', method: 'GET', path: 'Patient/1/_history/1/extra', status: 404, says: /no FHIR endpoint/ },
  { name: 'non-FHIR path', method: 'GET', path: '/nowhere', status: 404, says: /FHIR API is at \/fhir/ },
  { name: 'malformed If-Match', method: 'PUT', path: 'PATIENT_ID', body: 'PATIENT_BODY', headers: { 'if-match': 'version 1' }, status: 400, says: /If-Match/ },
  { name: 'stale If-Match', method: 'PUT', path: 'PATIENT_ID', body: 'PATIENT_BODY', headers: { 'if-match': 'W/"7"' }, status: 412, says: /version/ },
  { name: 'bad date in a search', method: 'GET', path: 'Patient?birthdate=yesterday', status: 400, says: /birthdate/ },
  { name: 'bad number in a search', method: 'GET', path: 'RiskAssessment?probability=high', status: 400, says: /probability/ },
  { name: 'prefix on a token', method: 'GET', path: 'Patient?gender:above=female', status: 400, says: /Modifier/ },
  { name: 'unknown modifier', method: 'GET', path: 'Patient?name:sounds-like=kari', status: 400, says: /Modifier/ },
  { name: ':missing with a non-boolean', method: 'GET', path: 'Patient?gender:missing=maybe', status: 400, says: /true or false/ },
  { name: 'chain on a non-reference', method: 'GET', path: 'Patient?gender.name=x', status: 400, says: /cannot be chained/ },
  { name: 'bad _count', method: 'GET', path: 'Patient?_count=-1', status: 400, says: /_count/ },
  { name: 'bad _sort', method: 'GET', path: 'Patient?_sort=shoe-size', status: 400, says: /sort/ },
  { name: 'bad _include', method: 'GET', path: 'Patient?_include=Patient', status: 400, says: /_include/ },
  { name: 'bad _summary', method: 'GET', path: 'Patient?_summary=some', status: 400, says: /_summary/ },
  { name: 'tampered paging cursor', method: 'GET', path: 'Patient?_cursor=not-a-cursor', status: 400, says: /cursor/ },
  { name: 'SQL injection in a search value', method: 'GET', path: "Patient?name=x'%20OR%201=1--", status: 200, says: /.*/ },
  { name: 'SQL injection in a parameter name', method: 'GET', path: "Patient?name;DROP%20TABLE%20resources=1", status: 200, says: /.*/ },
  { name: 'broken percent-encoding in the path', method: 'GET', path: '/fhir/Patient/%E0%A4%A', status: 400, says: /percent-encoded/ },
  { name: 'unknown Bundle type at the base', method: 'POST', path: '/fhir', body: { resourceType: 'Bundle', type: 'document' }, status: 400, says: /batch or transaction/ },
];

describe('bad input', () => {
  it(`has at least 30 kinds of bad input (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases)('$name → $status', async (c) => {
    const body = c.body === 'PATIENT_BODY' ? { resourceType: 'Patient', id: patientId, gender: 'male' } : c.body;
    const path = c.path === 'PATIENT_ID' ? `Patient/${patientId}` : c.path;
    const res = await t.request<OperationOutcome>(c.method, path, {
      ...(body !== undefined ? { body } : {}),
      ...(c.raw !== undefined ? { raw: c.raw } : {}),
      ...(c.headers ? { headers: c.headers } : {}),
    });
    expect(res.status).toBe(c.status);
    if (c.status >= 400) {
      expect(res.headers['content-type']).toMatch(/application\/fhir\+json/);
      expect(res.body.resourceType).toBe('OperationOutcome');
      const text = (res.body.issue ?? []).map((i) => `${i.details?.text ?? ''} ${i.diagnostics ?? ''}`).join(' ');
      expect(text).toMatch(c.says);
      expect(text).not.toMatch(/at .*\.(ts|js):\d+/);
      expect(res.body.issue?.[0]?.details?.coding?.[0]?.system).toBe('https://samplan.no/fhir/CodeSystem/error-code');
    }
  });

  it('leaves data unchanged after all of that', async () => {
    const p = await t.request<{ meta: { versionId: string }; name: Array<{ family: string }> }>('GET', `Patient/${patientId}`);
    expect(p.body.meta.versionId).toBe('1');
    expect(p.body.name[0]?.family).toBe('Uendret');
    const all = await t.request<Bundle>('GET', 'Patient?_summary=count');
    expect(all.body.total).toBe(1);
    expect((await t.request('GET', '/readyz')).status).toBe(200);
  });

  it('points validation errors at the element', async () => {
    const res = await t.request<OperationOutcome>('POST', 'Patient', { body: { resourceType: 'Patient', gender: 'mann', birthDate: 'igår' } });
    const expressions = (res.body.issue ?? []).flatMap((i) => i.expression ?? []);
    expect(expressions).toEqual(expect.arrayContaining(['Patient.gender', 'Patient.birthDate']));
  });
});
