/**
 * Bulk export ($export, FHIR Bulk Data Access IG) through the real HTTP adapter with real tokens:
 * what a patient-level export holds for a clinician and for the patient, what an operator's export
 * of everything holds, the filters, the async protocol (202 / Content-Location / X-Progress /
 * manifest / NDJSON files / DELETE), who may start, poll, download and cancel, the audit records,
 * and the 400s for bad requests.
 */
import type { Resource } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { ERROR_CODE_SYSTEM } from '../../src/fhir/outcomes.js';
import { ExportWorker } from '../../src/plan/export/index.js';
import { OID } from '../../src/no/identifiers.js';
import { apiScopes } from '../../src/security/claims.js';
import { CONSENT_CATEGORY_SYSTEM } from '../../src/security/privacy.js';
import { BASE, startTestServer, type TestResponse, type TestServer } from '../support/app.js';
import { citizenToken, machineToken, nhnHeaders } from '../support/security.js';
import { auditTrail } from '../support/audit.js';

let t: TestServer;
const A = 'anne';
const B = 'dagny';
const ids: Record<string, string> = {};
/** Type/id of every live resource in A's and B's compartments and of the public ones, as seeded. */
const of: Record<'A' | 'B' | 'public', Set<string>> = { A: new Set(), B: new Set(), public: new Set() };
let deletedRef = '';
let updatedRef = '';
let sinceMark = '';

type Headers = Record<string, string>;

async function seed(owner: 'A' | 'B' | 'public', resource: Record<string, unknown>): Promise<string> {
  const res = await t.system<{ id: string }>('POST', resource.resourceType as string, resource);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  of[owner].add(`${resource.resourceType as string}/${res.body.id}`);
  return res.body.id;
}

async function seedPatient(owner: 'A' | 'B', key: string): Promise<string> {
  const person = citizenByKey(key);
  const id = await seed(owner, {
    resourceType: 'Patient',
    identifier: [{ system: OID.fnr, value: person.pid }],
    name: [{ family: person.name.family, given: [person.name.given] }],
    birthDate: person.birthDate,
  });
  await seed(owner, {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: CONSENT_CATEGORY_SYSTEM, code: 'plan' }] }],
    patient: { reference: `Patient/${id}` },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: { type: 'permit' },
  });
  return id;
}

const allergy = (patient: string, text: string) => ({
  resourceType: 'AllergyIntolerance',
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
  patient: { reference: `Patient/${patient}` },
  code: { text },
});
const immunization = (patient: string, text: string) => ({
  resourceType: 'Immunization',
  status: 'completed',
  vaccineCode: { text },
  patient: { reference: `Patient/${patient}` },
  occurrenceDateTime: '2025-10-01',
});
const encounter = (patient: string) => ({
  resourceType: 'Encounter',
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
  subject: { reference: `Patient/${patient}` },
});

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  ids.A = await seedPatient('A', A);
  ids.B = await seedPatient('B', B);
  ids.org = await seed('public', { resourceType: 'Organization', name: 'Lillevik legekontor' });
  ids.practitioner = await seed('public', { resourceType: 'Practitioner', name: [{ family: 'Lindqvist', given: ['Kari'] }] });
  await seed('A', allergy(ids.A, 'Pollen (A)'));
  ids.immA = await seed('A', immunization(ids.A, 'Influensa (A)'));
  await seed('A', immunization(ids.A, 'Covid-19 (A)'));
  await seed('A', encounter(ids.A));
  await seed('B', allergy(ids.B, 'Hemmelig allergi B'));
  await seed('B', immunization(ids.B, 'Hemmelig vaksine B'));
  // A deleted resource is not exported.
  const gone = await seed('A', allergy(ids.A, 'Slettet (A)'));
  expect((await t.system('DELETE', `AllergyIntolerance/${gone}`)).status).toBeLessThan(300);
  of.A.delete(`AllergyIntolerance/${gone}`);
  deletedRef = `AllergyIntolerance/${gone}`;
  await new Promise((r) => setTimeout(r, 20));
  sinceMark = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  // Changed after the mark: exported as its current version (2), and the only A resource `_since` finds.
  const upd = await t.system('PUT', `Immunization/${ids.immA}`, { ...immunization(ids.A, 'Influensa (A), oppdatert'), id: ids.immA });
  expect(upd.status).toBe(200);
  updatedRef = `Immunization/${ids.immA}`;
});
afterAll(async () => t?.close());

// ---------------------------------------------------------------------------------------------
// Callers

async function clinician(key = 'fastlege', options: { nin?: string; scope?: string; clientId?: string } = {}): Promise<Headers> {
  const idp = t.app.idp!;
  const claims = idp.clinicianClaims(key, { ...(options.scope ? { scope: options.scope } : {}), ...(options.clientId ? { clientId: options.clientId } : {}) });
  const token = await idp.issueAccessToken(claims);
  return { authorization: `Bearer ${token}`, ...nhnHeaders(options.nin ? { nin: options.nin } : {}) };
}
const clinicianOfA = () => clinician('fastlege', { nin: citizenByKey(A).pid });
const operator = () => clinician('koordinator', { scope: 'nhn:samplan/read nhn:samplan/export' });
const citizen = async (key: string): Promise<Headers> => ({ authorization: `Bearer ${await citizenToken(t, key)}` });

const ASYNC = { prefer: 'respond-async', accept: 'application/fhir+json' };

// ---------------------------------------------------------------------------------------------
// The protocol

interface Manifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: boolean;
  output: Array<{ type: string; url: string; count: number }>;
  error: unknown[];
}

const local = (url: string) => {
  expect(url.startsWith(`${BASE}/`), url).toBe(true);
  return url.slice(BASE.length + 1);
};

async function kickOff(headers: Headers, path: string, extra: Headers = ASYNC): Promise<string> {
  const res = await t.request('GET', path, { headers: { ...headers, ...extra } });
  expect(res.status, res.text).toBe(202);
  const location = res.headers['content-location'] as string;
  expect(location).toMatch(new RegExp(`^${BASE.replace(/\./g, '\\.')}/\\$export-status\\?job=[A-Za-z0-9-]+$`));
  return local(location);
}

async function waitFor(headers: Headers, statusPath: string): Promise<TestResponse> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await t.request('GET', statusPath, { headers });
    if (res.status !== 202) return res;
    expect(String(res.headers['x-progress'] ?? '')).not.toBe('');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    if (Date.now() > deadline) throw new Error(`export not done: ${String(res.headers['x-progress'])}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Exported {
  manifest: Manifest;
  statusPath: string;
  resources: Resource[];
  refs: Set<string>;
  files: TestResponse[];
}

async function exportAll(headers: Headers, path: string, extra: Headers = ASYNC): Promise<Exported> {
  const statusPath = await kickOff(headers, path, extra);
  const done = await waitFor(headers, statusPath);
  expect(done.status, done.text).toBe(200);
  const manifest = done.body as Manifest;
  expect(manifest.requiresAccessToken).toBe(true);
  expect(manifest.error).toEqual([]);
  expect(Number.isNaN(Date.parse(manifest.transactionTime))).toBe(false);
  const asked = new URL(`${BASE}/${path}`);
  const echoed = new URL(manifest.request);
  expect(echoed.pathname).toBe(asked.pathname);
  expect([...echoed.searchParams]).toEqual([...asked.searchParams]);
  const resources: Resource[] = [];
  const files: TestResponse[] = [];
  for (const out of manifest.output) {
    const file = await t.request('GET', local(out.url), { headers: { ...headers, accept: 'application/fhir+ndjson' } });
    expect(file.status, file.text).toBe(200);
    expect(String(file.headers['content-type'])).toMatch(/^application\/fhir\+ndjson/);
    files.push(file);
    expect(file.text.endsWith('\n')).toBe(true);
    const lines = file.text.split('\n').slice(0, -1);
    expect(lines.length).toBe(out.count);
    for (const line of lines) {
      const r = JSON.parse(line) as Resource;
      expect(r.resourceType).toBe(out.type);
      expect(r.id).toBeTruthy();
      expect(r.meta?.versionId).toBeTruthy();
      expect(r.meta?.lastUpdated).toBeTruthy();
      resources.push(r);
    }
  }
  const refs = new Set(resources.map((r) => `${r.resourceType}/${r.id}`));
  expect(refs.size, 'no resource is exported twice').toBe(resources.length);
  return { manifest, statusPath, resources, refs, files };
}

const codeOf = (res: TestResponse) => (res.body.issue?.[0]?.details?.coding ?? []).find((c: { system: string }) => c.system === ERROR_CODE_SYSTEM)?.code;

// ---------------------------------------------------------------------------------------------

describe('patient-level export', () => {
  it("gives a clinician exactly the patient's compartment, current versions, nothing of another patient", async () => {
    const out = await exportAll(await clinicianOfA(), `Patient/${ids.A}/$export`);
    expect(out.refs).toEqual(of.A);
    expect(out.refs.has(deletedRef)).toBe(false);
    for (const ref of [...of.B, ...of.public]) expect(out.refs.has(ref), ref).toBe(false);
    for (const file of out.files) expect(file.text).not.toContain('Hemmelig');
    const updated = out.resources.find((r) => `${r.resourceType}/${r.id}` === updatedRef);
    expect(updated?.meta?.versionId).toBe('2');
    // Byte for byte as the server serves a read of it.
    const read = await t.request('GET', updatedRef, { headers: await clinicianOfA() });
    expect(updated).toEqual(read.body);
    // One file per type.
    expect(out.manifest.output.map((o) => o.type).sort()).toEqual([...new Set([...of.A].map((r) => r.split('/')[0]))].sort());
  });

  it('Patient/$export is the compartment of the patients the caller may see: for a clinician, their one patient', async () => {
    const out = await exportAll(await clinicianOfA(), 'Patient/$export');
    expect(out.refs).toEqual(of.A);
  });

  it("another patient's id is not found, as a read of it would not be", async () => {
    const res = await t.request('GET', `Patient/${ids.B}/$export`, { headers: { ...(await clinicianOfA()), ...ASYNC } });
    expect(res.status).toBe(404);
  });

  it('gives the patient exactly what they can search in their compartment (as they are served it)', async () => {
    const headers = await citizen(A);
    // The patient is served the published version of a resource, which may be older than the latest.
    await t.app.db.query(`UPDATE resources SET published_version = 1 WHERE type = 'Immunization' AND id = $1`, [ids.immA]);
    await t.app.db.query(`UPDATE resources SET published_version = version WHERE type = 'Encounter' AND compartments @> ARRAY[$1]`, [`Patient/${ids.A}`]);
    const out = await exportAll(headers, `Patient/${ids.A}/$export`);
    const visible = new Map<string, unknown>();
    for (const type of new Set([...of.A].map((r) => r.split('/')[0] as string))) {
      const bundle = await t.request('GET', `Patient/${ids.A}/${type}?_count=1000`, { headers });
      expect(bundle.status, bundle.text).toBe(200);
      for (const e of bundle.body.entry ?? []) visible.set(`${e.resource.resourceType}/${e.resource.id}`, e.resource);
    }
    expect(out.refs).toEqual(new Set(visible.keys()));
    for (const r of out.resources) expect(r).toEqual(visible.get(`${r.resourceType}/${r.id}`));
    // The patient's own record and settings are always theirs to see; the published version, not the latest.
    expect(out.refs.has(`Patient/${ids.A}`)).toBe(true);
    expect(out.resources.find((r) => `${r.resourceType}/${r.id}` === updatedRef)?.meta?.versionId).toBe('1');
    expect(out.resources.some((r) => r.resourceType === 'Encounter')).toBe(true);
    for (const ref of of.B) expect(out.refs.has(ref)).toBe(false);
  });

  it('a citizen cannot export another patient', async () => {
    const res = await t.request('GET', `Patient/${ids.B}/$export`, { headers: { ...(await citizen(A)), ...ASYNC } });
    expect(res.status).toBe(404);
  });

  it('refuses a clinician the patient has not consented for, with the same code a search would get', async () => {
    const gunnar = await seedPatientWithoutConsent('gunnar');
    const headers = await clinician('fastlege', { nin: citizenByKey('gunnar').pid });
    const res = await t.request('GET', `Patient/${gunnar}/$export`, { headers: { ...headers, ...ASYNC } });
    expect(res.status).toBe(403);
    expect(codeOf(res)).toBe('CONSENT_MISSING');
    // The patient's record and consents stay readable without plan consent, and exportable by name.
    const out = await exportAll(headers, `Patient/${gunnar}/$export?_type=Patient,Consent`);
    expect(out.refs).toEqual(new Set([`Patient/${gunnar}`]));
  });
});

async function seedPatientWithoutConsent(key: string): Promise<string> {
  const person = citizenByKey(key);
  const res = await t.system<{ id: string }>('POST', 'Patient', {
    resourceType: 'Patient',
    identifier: [{ system: OID.fnr, value: person.pid }],
    name: [{ family: person.name.family, given: [person.name.given] }],
  });
  return res.body.id;
}

describe('system-level export', () => {
  it('gives an operator (export scope) every current resource of every type, and no audit records', async () => {
    const out = await exportAll(await operator(), '$export');
    const live = await t.app.db.query<{ ref: string }>(`SELECT type || '/' || id AS ref FROM resources WHERE NOT deleted`);
    expect(out.refs).toEqual(new Set(live.map((r) => r.ref)));
    for (const ref of [...of.A, ...of.B, ...of.public]) expect(out.refs.has(ref), ref).toBe(true);
    expect(out.refs.has(deletedRef)).toBe(false);
    expect(out.resources.some((r) => r.resourceType === 'AuditEvent')).toBe(false);
    // The audit trail of the very requests that made this export has records, which stay out of it.
    const audits = await t.app.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events`);
    expect(audits[0]!.n).toBeGreaterThan(0);
  });

  it('_type restricts the types, _since the time of the last change', async () => {
    const typed = await exportAll(await operator(), '$export?_type=Organization,Immunization');
    expect(new Set(typed.manifest.output.map((o) => o.type))).toEqual(new Set(['Organization', 'Immunization']));
    expect(typed.refs).toEqual(new Set([...of.A, ...of.B, ...of.public].filter((r) => /^(Organization|Immunization)\//.test(r))));

    const since = await exportAll(await operator(), `$export?_since=${encodeURIComponent(sinceMark)}`);
    const changed = await t.app.db.query<{ ref: string }>(`SELECT type || '/' || id AS ref FROM resources WHERE NOT deleted AND last_updated > $1`, [sinceMark]);
    expect(since.refs).toEqual(new Set(changed.map((r) => r.ref)));
    expect(since.refs.has(updatedRef)).toBe(true);
    for (const ref of [...of.A, ...of.B, ...of.public]) if (ref !== updatedRef) expect(since.refs.has(ref), ref).toBe(false);

    const both = await exportAll(await clinicianOfA(), `Patient/${ids.A}/$export?_type=Immunization&_since=${encodeURIComponent(sinceMark)}&_outputFormat=ndjson`);
    expect(both.refs).toEqual(new Set([updatedRef]));
  });

  it('is refused without the export scope, to citizens, and to machine tokens', async () => {
    const plain = await t.request('GET', '$export', { headers: { ...(await clinician('koordinator')), ...ASYNC } });
    expect(plain.status).toBe(403);
    expect(codeOf(plain)).toBe('INSUFFICIENT_SCOPE');
    expect(plain.body.issue[0].details.text).toContain('nhn:samplan/export');

    const byCitizen = await t.request('GET', '$export', { headers: { ...(await citizen(A)), ...ASYNC } });
    expect(byCitizen.status).toBe(403);
    expect(codeOf(byCitizen)).toBe('NO_ACCESS');

    const machine = { authorization: `Bearer ${await machineToken(t)}` };
    for (const path of ['$export', `Patient/${ids.A}/$export`, '$export-status?job=x']) {
      const res = await t.request('GET', path, { headers: { ...machine, ...ASYNC } });
      expect(res.status, path).toBe(403);
      expect(codeOf(res)).toBe('MACHINE_TOKEN_NOT_ALLOWED');
    }
  });
});

describe('the async protocol', () => {
  it('only the principal who started an export can poll it, download its files or cancel it', async () => {
    const owner = await clinicianOfA();
    const out = await exportAll(owner, `Patient/${ids.A}/$export`);
    const filePath = local(out.manifest.output[0]!.url);
    const strangers: Array<[string, Headers]> = [
      ['another clinician of the same patient', await clinician('hjemmesykepleier', { nin: citizenByKey(A).pid })],
      ['the same person through another client', await clinician('fastlege', { nin: citizenByKey(A).pid, clientId: 'ehr-test-client' })],
      ['the patient', await citizen(A)],
      ['an operator', await operator()],
    ];
    for (const [who, headers] of strangers) {
      for (const [method, path] of [['GET', out.statusPath], ['GET', filePath], ['DELETE', out.statusPath]] as const) {
        const res = await t.request(method, path, { headers });
        expect(res.status, `${who}: ${method} ${path}`).toBe(404);
        expect(res.text).not.toContain('Allergy');
      }
    }
    // Still there for the owner.
    expect((await t.request('GET', filePath, { headers: owner })).status).toBe(200);
    // The owner naming another patient in the request is refused (the audit record would be wrong).
    const otherPatient = await t.request('GET', filePath, { headers: await clinician('fastlege', { nin: citizenByKey(B).pid }) });
    expect(otherPatient.status).toBe(403);
    expect(codeOf(otherPatient)).toBe('PATIENT_MISMATCH');
  });

  it('DELETE on the status URL cancels: 202, then the job and its files are gone', async () => {
    const owner = await operator();
    // Held in the queue, so the cancel hits a job before or while it runs.
    await t.app.bulkExport.stop();
    try {
      const statusPath = await kickOff(owner, '$export');
      const queued = await t.request('GET', statusPath, { headers: owner });
      expect(queued.status).toBe(202);
      expect(queued.headers['x-progress']).toBe('queued');
      const cancelled = await t.request('DELETE', statusPath, { headers: owner });
      expect(cancelled.status).toBe(202);
      expect((await t.request('GET', statusPath, { headers: owner })).status).toBe(404);
      expect((await t.request('DELETE', statusPath, { headers: owner })).status).toBe(404);
    } finally {
      await t.app.bulkExport.start();
    }
    // A finished export's files are deleted the same way.
    const done = await exportAll(owner, '$export?_type=Organization');
    const job = new URL(`${BASE}/${done.statusPath}`).searchParams.get('job');
    expect((await t.request('DELETE', done.statusPath, { headers: owner })).status).toBe(202);
    expect((await t.request('GET', local(done.manifest.output[0]!.url), { headers: owner })).status).toBe(404);
    const left = await t.app.db.query(`SELECT 1 FROM export_file_parts WHERE job = $1 UNION ALL SELECT 1 FROM export_jobs WHERE id = $1`, [job]);
    expect(left).toEqual([]);
  });

  it('unknown and malformed job ids are 404 / 400', async () => {
    const owner = await operator();
    expect((await t.request('GET', '$export-status?job=00000000-0000-0000-0000-000000000000', { headers: owner })).status).toBe(404);
    expect((await t.request('GET', '$export-status?job=../../etc', { headers: owner })).status).toBe(404);
    expect((await t.request('GET', '$export-status', { headers: owner })).status).toBe(400);
    expect((await t.request('GET', '$export-file?job=00000000-0000-0000-0000-000000000000&file=1', { headers: owner })).status).toBe(404);
  });

  it('splits a large type into several files', async () => {
    const owner = await operator();
    await t.app.bulkExport.stop();
    const small = new ExportWorker(t.app.db, { scopes: apiScopes('nhn:samplan'), allowedRoles: new Set(['LE', 'SP']) }, silent, {
      maxPerFile: 2,
      pageSize: 1,
      pollMs: 20,
    });
    await small.start();
    try {
      const out = await exportAll(owner, '$export?_type=Immunization,Organization');
      const immunizations = [...of.A, ...of.B].filter((r) => r.startsWith('Immunization/'));
      expect(immunizations.length).toBe(3);
      expect(out.manifest.output.map((o) => [o.type, o.count])).toEqual([
        ['Immunization', 2],
        ['Immunization', 1],
        ['Organization', 1],
      ]);
      expect(new Set(out.resources.filter((r) => r.resourceType === 'Immunization').map((r) => `Immunization/${r.id}`))).toEqual(new Set(immunizations));
    } finally {
      await small.stop();
      await t.app.bulkExport.start();
    }
  });

  it('each kick-off and each file download is audited, in the patient\'s access log; status polls are not', async () => {
    const before = await t.app.db.query<{ seq: number }>(`SELECT coalesce(max(seq), 0)::int AS seq FROM audit_events`);
    const owner = await clinicianOfA();
    const out = await exportAll(owner, `Patient/${ids.A}/$export?_type=Patient`);
    // Downloads without nhn-patient-nin are recorded for the export's patient too.
    const bare = { ...owner };
    delete bare['nhn-patient-nin'];
    expect((await t.request('GET', local(out.manifest.output[0]!.url), { headers: bare })).status).toBe(200);
    const rows = await auditTrail(t.app.db, 'WHERE e.seq > $1', [before[0]!.seq]);
    const events = rows.map((r) => ({ patient: r.patientId, event: JSON.parse(r.text) as { subtype: Array<{ code: string }>; outcome: string; agent: Array<{ who?: { identifier?: { value?: string } } }> } }));
    const ops = events.filter((e) => e.event.subtype.some((s) => s.code === 'operation'));
    // The kick-off and two downloads; status polls show no patient data and are not recorded.
    expect(ops.length).toBe(3);
    for (const e of ops) {
      expect(e.patient).toBe(ids.A);
      expect(e.event.outcome).toBe('0');
      expect(e.event.agent[0]?.who?.identifier?.value).toBe('9144901');
    }
    // The patient sees them in the access log.
    const log = await t.request('GET', 'AuditEvent?_count=100', { headers: await citizen(A) });
    expect(log.status).toBe(200);
    expect((log.body.entry ?? []).length).toBeGreaterThanOrEqual(ops.length);
  });
});

const silent = { error: () => undefined, warn: () => undefined, info: () => undefined };

describe('bad requests', () => {
  const cases: Array<[string, string, Headers, string | undefined]> = [
    ['no Prefer: respond-async', '$export', { accept: 'application/fhir+json' }, undefined],
    ['an unknown _type', '$export?_type=Organization,Nonsense', ASYNC, '_type'],
    ['an empty _type entry', '$export?_type=Organization,', ASYNC, '_type'],
    ['a _since that is no instant', '$export?_since=yesterday', ASYNC, '_since'],
    ['a _since without time zone', '$export?_since=2026-01-01T10:00:00', ASYNC, '_since'],
    ['a _since that is only a date', '$export?_since=2026-01-01', ASYNC, '_since'],
    ['an unsupported _outputFormat', '$export?_outputFormat=text/csv', ASYNC, '_outputFormat'],
    ['an unsupported parameter', '$export?_typeFilter=Immunization%3Fstatus%3Dcompleted', ASYNC, '_typeFilter'],
    ['the audit trail in _type', '$export?_type=AuditEvent', ASYNC, '_type'],
  ];
  for (const [what, path, extra, expression] of cases) {
    it(`${what} → 400 with an OperationOutcome`, async () => {
      const res = await t.request('GET', path, { headers: { ...(await operator()), ...extra } });
      expect(res.status, res.text).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(codeOf(res)).toBe('INVALID_REQUEST');
      expect(res.body.issue[0].details.text.length).toBeGreaterThan(20);
      if (expression) expect(res.body.issue[0].expression).toEqual([expression]);
      else expect(res.body.issue[0].details.text).toContain('respond-async');
    });
  }

  it('a national id in the URL is refused, as everywhere in the API', async () => {
    const res = await t.request('GET', `$export?_type=${citizenByKey(A).pid}`, { headers: { ...(await operator()), ...ASYNC } });
    expect(res.status).toBe(400);
    expect(codeOf(res)).toBe('NIN_IN_URL');
  });

  it('patient-level: types outside the compartment → 400', async () => {
    for (const type of ['Organization', 'AuditEvent']) {
      const res = await t.request('GET', `Patient/${ids.A}/$export?_type=${type}`, { headers: { ...(await clinicianOfA()), ...ASYNC } });
      expect(res.status, type).toBe(400);
      expect(res.body.issue[0].expression).toEqual(['_type']);
    }
  });

  it('unsupported parameters are ignored with Prefer: handling=lenient', async () => {
    const out = await exportAll(await operator(), '$export?_type=Organization&_typeFilter=x', { ...ASYNC, prefer: 'respond-async, handling=lenient' });
    expect(out.refs).toEqual(new Set([...of.public].filter((r) => r.startsWith('Organization/'))));
  });

  it('a POST kick-off takes a Parameters body', async () => {
    const res = await t.request('POST', '$export', {
      headers: { ...(await operator()), ...ASYNC },
      body: { resourceType: 'Parameters', parameter: [{ name: '_type', valueString: 'Practitioner' }, { name: '_outputFormat', valueString: 'application/fhir+ndjson' }] },
    });
    expect(res.status, res.text).toBe(202);
    const statusPath = local(res.headers['content-location'] as string);
    const done = await waitFor(await operator(), statusPath);
    expect(done.status).toBe(200);
    expect(done.body.output.map((o: { type: string }) => o.type)).toEqual(['Practitioner']);
  });
});

// Last: these add resources the earlier tests' expectations do not know.
describe('the rule a job runs with', () => {
  it('is rebuilt when the job runs: patients captured at kick-off only, and a consent withdrawn meanwhile refuses it', async () => {
    const key = 'bjorn';
    const nin = citizenByKey(key).pid;
    const patient = await seedPatientWithoutConsent(key);
    const consent = await t.system<{ id: string }>('POST', 'Consent', {
      resourceType: 'Consent',
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: CONSENT_CATEGORY_SYSTEM, code: 'plan' }] }],
      patient: { reference: `Patient/${patient}` },
      policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
      provision: { type: 'permit' },
    });
    const headers = await clinician('fastlege', { nin });
    await t.app.bulkExport.stop();
    let later = '';
    let withdrawn = '';
    try {
      const first = await kickOff(headers, 'Patient/$export');
      // A second record with the same national id, registered after the kick-off, is not exported.
      later = await seedPatientWithoutConsent(key);
      await t.system('POST', 'Immunization', immunization(later, 'Senere registrert'));
      withdrawn = await kickOff(headers, 'Patient/$export?_type=Patient,Consent,Immunization');
      await t.app.bulkExport.start();
      const done = await waitFor(headers, first);
      expect(done.status, done.text).toBe(200);
      const files = await Promise.all(done.body.output.map((o: { url: string }) => t.request('GET', local(o.url), { headers })));
      const text = files.map((f) => f.text).join('');
      expect(text).toContain(patient);
      expect(text).not.toContain(later);
      // The other job (asked while the consent was there) runs before the withdrawal and completes.
      expect((await waitFor(headers, withdrawn)).status).toBe(200);
      await t.app.bulkExport.stop();
      const second = await kickOff(headers, `Patient/${patient}/$export?_type=Immunization`);
      const res = await t.system('PUT', `Consent/${consent.body.id}`, { ...(await t.system('GET', `Consent/${consent.body.id}`)).body, status: 'inactive' });
      expect(res.status).toBe(200);
      await t.app.bulkExport.start();
      const refused = await waitFor(headers, second);
      expect(refused.status).toBe(403);
      expect(codeOf(refused)).toBe('CONSENT_MISSING');
    } finally {
      if (!t.app.bulkExport.worker.started) await t.app.bulkExport.start();
    }
  });

  it('one principal may have at most 5 exports queued or running', async () => {
    const owner = await operator();
    await t.app.bulkExport.stop();
    const queued: string[] = [];
    try {
      for (let i = 0; i < 5; i++) queued.push(await kickOff(owner, '$export?_type=Organization'));
      const sixth = await t.request('GET', '$export?_type=Organization', { headers: { ...owner, ...ASYNC } });
      expect(sixth.status).toBe(429);
      expect(codeOf(sixth)).toBe('RATE_LIMITED');
      // Someone else is not held up by it.
      expect((await t.request('GET', `Patient/${ids.A}/$export?_type=Patient`, { headers: { ...(await clinicianOfA()), ...ASYNC } })).status).toBe(202);
    } finally {
      for (const path of queued) await t.request('DELETE', path, { headers: owner });
      await t.app.bulkExport.start();
    }
  });
});
