/**
 * docs/errors.md is the catalogue of Samplan's error codes (ErrorCode in src/fhir/outcomes.ts):
 * - every code has a section (and a row in the summary table) and every section is a code, so
 *   adding a code without documenting it — or documenting one that does not exist — fails here;
 * - each section gives the status, the FHIR issue type, meaning, when, what to do, and an example
 *   OperationOutcome carrying the code;
 * - for the situations the integration issue names (consent missing, no access, blocked,
 *   validation error, version conflict, no changes, duplicate identifier, referenced resource not
 *   found, not found — and a national id in the URL), the real server (HTTP adapter, real tokens,
 *   security layer, write pipeline) is driven into the situation, and its answer must carry the
 *   code in issue.details.coding with the documented status and issue type, a clear text, and no
 *   national identity number.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { ERROR_CODE_SYSTEM, ErrorCode, withoutNin } from '../../src/fhir/outcomes.js';
import { isValidNin, OID } from '../../src/no/identifiers.js';
import { startTestServer, type TestResponse, type TestServer } from '../support/app.js';
import { asCitizen, asClinician, clinicianToken, nhnHeaders, seedPatient } from '../support/security.js';

const DOC = path.resolve(import.meta.dirname, '../../docs/errors.md');
const markdown = readFileSync(DOC, 'utf8');

interface Documented {
  code: string;
  /** The primary HTTP status; undefined for a reserved code. */
  status: number | undefined;
  issueTypes: string[];
  body: string;
  example?: OperationOutcome;
}

/** The `### \`CODE\`` sections of the catalogue. */
function sections(md: string): Documented[] {
  const parts = md.split(/^### `([A-Z_]+)`\s*$/m);
  const result: Documented[] = [];
  for (let i = 1; i < parts.length; i += 2) {
    const code = parts[i] as string;
    const body = (parts[i + 1] as string).split(/^#{1,3} /m)[0] as string;
    const first = body.split('\n').find((l) => l.trim() !== '') ?? '';
    const status = /^\*\*(\d{3}) [^*]+\*\*/.exec(first)?.[1];
    const typesText = first.split('issue type')[1]?.split(' · ')[0] ?? '';
    const issueTypes = [...typesText.matchAll(/`([a-z-]+)`/g)].map((m) => m[1] as string);
    const json = /```json\n([\s\S]*?)\n```/.exec(body)?.[1];
    result.push({ code, status: status ? Number(status) : undefined, issueTypes, body, ...(json ? { example: JSON.parse(json) as OperationOutcome } : {}) });
  }
  return result;
}

/** The summary table: code → status ('—' for reserved), with its link anchor. */
function summary(md: string): Map<string, { status: string; anchor: string }> {
  const rows = new Map<string, { status: string; anchor: string }>();
  for (const m of md.matchAll(/^\| (\d{3}|—) \| \[`([A-Z_]+)`\]\(#([a-z_]+)\) \|/gm)) rows.set(m[2] as string, { status: m[1] as string, anchor: m[3] as string });
  return rows;
}

const documented = sections(markdown);
const byCode = new Map(documented.map((d) => [d.code, d]));
const codes = Object.values(ErrorCode) as string[];

describe('docs/errors.md documents every error code, and only those', () => {
  it('has a section for every ErrorCode in src/fhir/outcomes.ts', () => {
    expect(codes.filter((c) => !byCode.has(c))).toEqual([]);
  });

  it('documents no code that outcomes.ts does not define, and none twice', () => {
    expect(documented.map((d) => d.code).filter((c) => !codes.includes(c))).toEqual([]);
    expect(documented.length).toBe(byCode.size);
  });

  it('lists every code in the summary table, with the status of its section and a working link', () => {
    const table = summary(markdown);
    expect([...table.keys()].sort()).toEqual([...codes].sort());
    for (const [code, row] of table) {
      expect(row.anchor, code).toBe(code.toLowerCase());
      expect(row.status, code).toBe(byCode.get(code)?.status?.toString() ?? '—');
    }
  });

  describe.each(codes.map((c) => [c] as const))('%s', (code) => {
    it('has a status, an issue type, meaning, when, what to do, and an example carrying the code', () => {
      const d = byCode.get(code);
      if (!d) return; // reported above
      if (code !== ErrorCode.TransactionFailed) expect(d.status, 'status line: **NNN Reason** · issue type `…`').toBeGreaterThanOrEqual(200);
      expect(d.issueTypes.length, 'issue type').toBeGreaterThan(0);
      for (const part of ['**Meaning:**', '**When:**', '**What to do:**']) expect(d.body, part).toContain(part);
      expect(d.example?.resourceType).toBe('OperationOutcome');
      const issue = d.example?.issue?.[0] as OperationOutcomeIssue;
      expect(issue.details?.coding).toEqual([{ system: ERROR_CODE_SYSTEM, code }]);
      expect(d.issueTypes).toContain(issue.code);
      expect(issue.severity).toBe(code === ErrorCode.NoChanges ? 'information' : 'error');
      expect((issue.details?.text ?? '').length).toBeGreaterThan(15);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// The server, driven into each situation

const DAGNY = citizenByKey('dagny').pid;
const GUNNAR = citizenByKey('gunnar').pid;
const ANNE = citizenByKey('anne').pid;

const issuesWith = (res: TestResponse, code: string) =>
  ((res.body as OperationOutcome).issue ?? []).filter((i) => i.details?.coding?.some((c) => c.system === ERROR_CODE_SYSTEM && c.code === code));

/** The answer carries `code` as documented, with a clear text and no national identity number. */
function expectCode(res: TestResponse, code: string, nins: string[] = [DAGNY, GUNNAR, ANNE]): void {
  const doc = byCode.get(code);
  expect(doc, `${code} is documented`).toBeDefined();
  expect(res.status, res.text).toBe(doc?.status);
  expect((res.body as OperationOutcome).resourceType, res.text).toBe('OperationOutcome');
  const found = issuesWith(res, code);
  expect(found.length, `${code} in issue.details.coding: ${res.text}`).toBeGreaterThan(0);
  for (const issue of found) {
    expect(doc?.issueTypes, res.text).toContain(issue.code);
    expect(issue.severity).toBe(code === ErrorCode.NoChanges ? 'information' : 'error');
    const text = issue.details?.text ?? '';
    expect(text.length, 'a clear text').toBeGreaterThan(20);
    expect(text).toMatch(/^[A-Z"$]/);
  }
  for (const nin of nins) expect(res.text, 'no national id in the answer').not.toContain(nin);
  expect((res.text.match(/\d{11}/g) ?? []).filter(isValidNin), 'no national id in the answer').toEqual([]);
}

describe('the server gives the documented codes', () => {
  let t: TestServer;
  const ids: Record<string, string> = {};
  let dagnyPlan: string;

  const goal = (extra: Record<string, unknown> = {}) => ({
    resourceType: 'Goal',
    lifecycleStatus: 'active',
    description: { text: 'Gå tur hver dag' },
    subject: { reference: `Patient/${ids.dagny}` },
    ...extra,
  });

  beforeAll(async () => {
    t = await startTestServer({}, { auth: 'tokens' });
    ids.dagny = await seedPatient(t, 'dagny');
    ids.gunnar = await seedPatient(t, 'gunnar', { consent: false });
    ids.anne = await seedPatient(t, 'anne', { blocked: ['vikarlege'] });
    const plans = await t.system<{ entry: Array<{ resource: { id: string } }> }>('GET', `CarePlan?subject=Patient/${ids.dagny}`);
    dagnyPlan = plans.body.entry[0]?.resource.id as string;
  });
  afterAll(async () => t?.close());

  it('CONSENT_MISSING: plan content of a patient without plan consent, read or written', async () => {
    expectCode(await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'gunnar' }), ErrorCode.ConsentMissing);
    const write = await asClinician(t, 'fastlege', 'POST', 'Goal', { patient: 'gunnar', body: { ...goal(), subject: { reference: `Patient/${ids.gunnar}` } } });
    expectCode(write, ErrorCode.ConsentMissing);
    // The Patient itself stays readable, so the consent can be registered.
    expect((await asClinician(t, 'fastlege', 'GET', `Patient/${ids.gunnar}`, { patient: 'gunnar' })).status).toBe(200);
  });

  it('NO_ACCESS: a citizen changing what the clinician wrote, or reading version history', async () => {
    const plan = await asCitizen(t, 'dagny', 'GET', `CarePlan/${dagnyPlan}`);
    expect(plan.status, plan.text).toBe(200);
    expectCode(await asCitizen(t, 'dagny', 'PUT', `CarePlan/${dagnyPlan}`, { body: { ...plan.body, title: 'Min egen tittel' } }), ErrorCode.NoAccess);
    expectCode(await asCitizen(t, 'dagny', 'GET', `CarePlan/${dagnyPlan}/$versions`), ErrorCode.NoAccess);
  });

  it('BLOCKED: a clinician the patient has blocked, even in an emergency', async () => {
    expectCode(await asClinician(t, 'vikarlege', 'GET', 'CarePlan', { patient: 'anne' }), ErrorCode.Blocked);
    expectCode(await asClinician(t, 'vikarlege', 'GET', 'CarePlan', { patient: 'anne', basis: 'AKUTT', reason: 'Bevisstløs pasient' }), ErrorCode.Blocked);
    // Another clinician is not affected.
    expect((await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'anne' })).status).toBe(200);
  });

  it('VALIDATION_ERROR: an invalid resource, with the element in expression', async () => {
    const res = await asClinician(t, 'fastlege', 'POST', 'Goal', { patient: 'dagny', body: goal({ lifecycleStatus: 'på vei' }) });
    expectCode(res, ErrorCode.ValidationError);
    expect(issuesWith(res, ErrorCode.ValidationError)[0]?.expression).toEqual(['Goal.lifecycleStatus']);
  });

  describe('versions', () => {
    let goalId: string;
    let stored: Record<string, unknown>;

    beforeAll(async () => {
      const created = await asClinician(t, 'fastlege', 'POST', 'Goal', { patient: 'dagny', body: goal() });
      expect(created.status, created.text).toBe(201);
      goalId = created.body.id as string;
      const updated = await put({ ...created.body, description: { text: 'Gå tur 20 minutter hver dag' } }, { 'if-match': 'W/"1"' });
      expect(updated.status, updated.text).toBe(200);
      stored = updated.body;
    });

    const put = async (body: unknown, headers: Record<string, string>) => {
      const token = await clinicianToken(t, 'fastlege');
      return t.request('PUT', `Goal/${goalId}`, { body, headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: DAGNY }), ...headers } });
    };

    it('VERSION_CONFLICT: an update with a stale If-Match changes nothing', async () => {
      const res = await put({ ...stored, description: { text: 'Overskriver' } }, { 'if-match': 'W/"1"' });
      expectCode(res, ErrorCode.VersionConflict);
      expect(issuesWith(res, ErrorCode.VersionConflict)[0]?.details?.text).toMatch(/version 2, not 1/);
    });

    it('NO_CHANGES: an update that changes nothing says so (Prefer: return=OperationOutcome) and keeps the version', async () => {
      const res = await put(stored, { 'if-match': 'W/"2"', prefer: 'return=OperationOutcome' });
      expectCode(res, ErrorCode.NoChanges);
      expect(res.headers.etag).toBe('W/"2"');
      // With the default representation: the unchanged resource, same version.
      const again = await put(stored, {});
      expect([again.status, again.headers.etag, again.body.meta?.versionId]).toEqual([200, 'W/"2"', '2']);
    });
  });

  it('DUPLICATE_IDENTIFIER: a second plan resource with the same business identifier', async () => {
    const identifier = [{ system: 'urn:ietf:rfc:3986', value: 'urn:uuid:0b6f5a3e-2c1d-4e8f-9a7b-6c5d4e3f2a1b' }];
    const first = await asClinician(t, 'fastlege', 'POST', 'Goal', { patient: 'dagny', body: goal({ identifier }) });
    expect(first.status, first.text).toBe(201);
    expectCode(await asClinician(t, 'fastlege', 'POST', 'Goal', { patient: 'dagny', body: goal({ identifier }) }), ErrorCode.DuplicateIdentifier);
  });

  it('DUPLICATE_IDENTIFIER with a national id as the identifier value: the number is masked', async () => {
    // Not how identifiers should be used — but if one is, the message must not repeat it.
    const identifier = [{ system: 'https://ehr.example/goal-id', value: DAGNY }];
    const first = await asClinician(t, 'fastlege', 'POST', 'Goal', { patient: 'dagny', body: goal({ identifier }) });
    expect(first.status, first.text).toBe(201);
    const res = await asClinician(t, 'fastlege', 'POST', 'Goal', { patient: 'dagny', body: goal({ identifier }) });
    expectCode(res, ErrorCode.DuplicateIdentifier);
    expect(issuesWith(res, ErrorCode.DuplicateIdentifier)[0]?.details?.text).toContain('***********');
  });

  it('REFERENCE_NOT_FOUND: a reference to a resource that does not exist, named in expression', async () => {
    const res = await asClinician(t, 'fastlege', 'POST', 'Goal', { patient: 'dagny', body: goal({ addresses: [{ reference: 'Condition/finnes-ikke' }] }) });
    expectCode(res, ErrorCode.ReferenceNotFound);
    expect(issuesWith(res, ErrorCode.ReferenceNotFound)[0]?.expression).toEqual(['Goal.addresses[0].reference']);
  });

  it("NOT_FOUND: an id that does not exist, and another patient's plan read by id", async () => {
    expectCode(await asClinician(t, 'fastlege', 'GET', 'CarePlan/finnes-ikke', { patient: 'dagny' }), ErrorCode.NotFound);
    const other = await asClinician(t, 'fastlege', 'GET', `CarePlan/${dagnyPlan}`, { patient: 'anne' });
    expectCode(other, ErrorCode.NotFound);
  });

  it('NIN_IN_URL: a national id in a GET URL is refused and not repeated', async () => {
    const res = await asClinician(t, 'fastlege', 'GET', `CarePlan?subject:Patient.identifier=${OID.fnr}|${DAGNY}`, { patient: 'dagny' });
    expectCode(res, ErrorCode.NinInUrl);
    // The same search in a POST body works.
    const token = await clinicianToken(t, 'fastlege');
    const post = await t.request('POST', 'CarePlan/_search', {
      raw: new URLSearchParams({ 'subject:Patient.identifier': `${OID.fnr}|${DAGNY}`, _include: '*' }).toString(),
      headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: DAGNY }), 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.status, post.text).toBe(200);
    expect(post.body.total).toBe(1);
  });

  it('a national id the client put where it does not belong is masked in any error text', async () => {
    const token = await clinicianToken(t, 'fastlege');
    const res = await t.request('POST', 'CarePlan/_search', {
      raw: new URLSearchParams({ date: DAGNY }).toString(),
      headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin: DAGNY }), 'content-type': 'application/x-www-form-urlencoded' },
    });
    expectCode(res, ErrorCode.InvalidSearch);
    expect(withoutNin(`a ${DAGNY} b 12345678901 c`)).toBe('a *********** b 12345678901 c');
  });

  it('PATIENT_MISMATCH: a clinician registers a new patient only under the national id of the request', async () => {
    const bjorn = citizenByKey('bjorn');
    const eldar = citizenByKey('eldar');
    const patient = (...nins: string[]) => ({
      resourceType: 'Patient',
      identifier: nins.map((value) => ({ system: OID.fnr, value })),
      name: [{ family: bjorn.name.family, given: [bjorn.name.given] }],
    });
    const nins = [bjorn.pid, eldar.pid, DAGNY];
    expectCode(await asClinician(t, 'fastlege', 'POST', 'Patient', { patient: 'bjorn', body: patient(eldar.pid) }), ErrorCode.PatientMismatch, nins);
    expectCode(await asClinician(t, 'fastlege', 'POST', 'Patient', { patient: 'bjorn', body: patient(bjorn.pid, eldar.pid) }), ErrorCode.PatientMismatch, nins);
    expectCode(await asClinician(t, 'fastlege', 'POST', 'Patient', { patient: 'bjorn', body: patient(bjorn.pid, DAGNY) }), ErrorCode.PatientMismatch, nins);
    const registered = await asClinician(t, 'fastlege', 'POST', 'Patient', { patient: 'bjorn', body: patient(bjorn.pid) });
    expect(registered.status, registered.text).toBe(201);
    // …and the consent, in the next request (which now finds the patient); then plan content is open.
    expectCode(await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'bjorn' }), ErrorCode.ConsentMissing, nins);
    const consent = await asClinician(t, 'fastlege', 'POST', 'Consent', {
      patient: 'bjorn',
      body: {
        resourceType: 'Consent',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ system: 'https://samplan.no/fhir/CodeSystem/consent-category', code: 'plan' }] }],
        patient: { reference: `Patient/${registered.body.id as string}` },
        policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
        provision: { type: 'permit' },
      },
    });
    expect(consent.status, consent.text).toBe(201);
    expect((await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'bjorn' })).status).toBe(200);
  });

  it('answers with JSON content type and no stack trace', async () => {
    const res = await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'gunnar' });
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(res.text).not.toMatch(/\bat \w+ \(|node_modules|\.ts:\d+/);
  });
});
