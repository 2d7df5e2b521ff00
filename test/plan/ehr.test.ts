/**
 * What an EHR does first: fetch the patient's whole plan in one Bundle, naming the patient by
 * national id in a POST body (never in a URL), and page through results with links that carry no
 * national id either.
 */
import type { Bundle, CarePlan } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { CHECK_IN_CODE, CODE_SYSTEM } from '../../src/plan/conventions.js';
import { OID } from '../../src/no/identifiers.js';
import { startTestServer, type TestServer } from '../support/app.js';
import { clinicianToken, nhnHeaders, seedPatient } from '../support/security.js';

let t: TestServer;
const ANNE = 'anne';
const nin = () => citizenByKey(ANNE).pid;
let patient: string;
let headers: Record<string, string>;
const parts: Record<string, string> = {};

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  patient = await seedPatient(t, ANNE);
  headers = { authorization: `Bearer ${await clinicianToken(t, 'fastlege')}`, ...nhnHeaders({ nin: nin() }) };
  const make = async (resource: Record<string, unknown>) => {
    const res = await t.system<{ id: string }>('POST', resource.resourceType as string, resource);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id;
  };
  const subject = { reference: `Patient/${patient}` };
  parts.condition = await make({ resourceType: 'Condition', subject, code: { coding: [{ system: 'urn:oid:2.16.578.1.12.4.1.1.7110', code: 'J44', display: 'KOLS' }] } });
  parts.goal = await make({ resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Gå til butikken' }, subject, addresses: [{ reference: `Condition/${parts.condition}` }] });
  parts.measure = await make({ resourceType: 'ServiceRequest', status: 'active', intent: 'plan', subject, code: { text: 'Pusteøvelser' }, performer: [subject] });
  parts.practitioner = await make({ resourceType: 'Practitioner', identifier: [{ system: OID.hpr, value: '9144901' }], name: [{ family: 'Lindqvist', given: ['Kari'] }] });
  parts.team = await make({ resourceType: 'CareTeam', subject, participant: [{ role: [{ text: 'Fastlege' }], member: { reference: `Practitioner/${parts.practitioner}` } }] });
  const plans = await t.system<Bundle<CarePlan>>('GET', `CarePlan?subject=Patient/${patient}`);
  const plan = plans.body.entry?.[0]?.resource as CarePlan;
  await t.system('PUT', `CarePlan/${plan.id}`, {
    ...plan,
    addresses: [{ reference: `Condition/${parts.condition}` }],
    goal: [{ reference: `Goal/${parts.goal}` }],
    careTeam: [{ reference: `CareTeam/${parts.team}` }],
    activity: [{ reference: { reference: `ServiceRequest/${parts.measure}` } }],
  });
  parts.plan = plan.id as string;
  for (let day = 1; day <= 5; day++) {
    await make({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ ...CHECK_IN_CODE }] },
      subject,
      basedOn: [{ reference: `CarePlan/${plan.id}` }],
      effectiveDateTime: `2026-11-0${day}T08:00:00Z`,
      valueCodeableConcept: { coding: [{ system: CODE_SYSTEM.zone, code: 'green' }] },
    });
  }
});
afterAll(async () => t?.close());

const form = (params: Record<string, string>) => new URLSearchParams(params).toString();

describe('the plan as one Bundle', () => {
  it('POST CarePlan/_search by national id with _include=* returns the plan with everything it refers to', async () => {
    const res = await t.request<Bundle>('POST', 'CarePlan/_search', {
      raw: form({ 'subject:Patient.identifier': `${OID.fnr}|${nin()}`, status: 'active', _include: '*' }),
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status, res.text).toBe(200);
    const matches = res.body.entry?.filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id);
    expect(matches).toEqual([parts.plan]);
    const included = res.body.entry?.filter((e) => e.search?.mode === 'include').map((e) => `${e.resource?.resourceType}/${e.resource?.id}`);
    expect(included).toEqual(
      expect.arrayContaining([`Patient/${patient}`, `Condition/${parts.condition}`, `Goal/${parts.goal}`, `CareTeam/${parts.team}`, `ServiceRequest/${parts.measure}`]),
    );
    // The self link says how to repeat the search without the national id in it.
    for (const link of res.body.link ?? []) expect(link.url).not.toContain(nin());
  });

  it('refuses the same search with the national id in the URL, and says to use POST', async () => {
    const res = await t.request('GET', `CarePlan?subject:Patient.identifier=${OID.fnr}|${nin()}&_include=*`, { headers });
    expect(res.status).toBe(400);
    expect(res.body.issue[0].details.coding[0].code).toBe('NIN_IN_URL');
    expect(res.body.issue[0].details.text).toMatch(/POST/);
    expect(res.text).not.toContain(nin());
  });
});

describe('paging a POSTed search', () => {
  it('links to the next page with a sealed token, not the parameters', async () => {
    const first = await t.request<Bundle>('POST', 'Observation/_search', {
      raw: form({ 'subject:Patient.identifier': `${OID.fnr}|${nin()}`, _count: '2', _sort: 'date' }),
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(first.status, first.text).toBe(200);
    expect(first.body.entry).toHaveLength(2);
    const next = first.body.link?.find((l) => l.relation === 'next')?.url as string;
    expect(next).toMatch(/_page=/);
    expect(next).not.toContain(nin());
    expect(next).not.toContain('identifier');
    const seen = new Set(first.body.entry?.map((e) => e.resource?.id));
    let url: string | undefined = next;
    while (url) {
      const page: Awaited<ReturnType<typeof t.request<Bundle>>> = await t.request<Bundle>('GET', url.replace(/^.*\/fhir\//, ''), { headers });
      expect(page.status, page.text).toBe(200);
      for (const e of page.body.entry ?? []) seen.add(e.resource?.id);
      url = page.body.link?.find((l) => l.relation === 'next')?.url;
    }
    expect(seen.size).toBe(5);
  });

  it('refuses a tampered or made-up page token with a clear message', async () => {
    const res = await t.request('GET', 'Observation?_page=AAAAaaaaBBBBbbbbCCCCccccDDDDddddEEEE', { headers });
    expect(res.status).toBe(400);
    expect(res.body.issue[0].details.text).toMatch(/paging link is not valid/);
  });
});
