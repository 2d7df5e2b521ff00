/** Search: every parameter type, modifiers, prefixes, OR/AND, chains, _has, includes, sorting, paging, result parameters. */
import type { Bundle, PractitionerRole, Resource } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticNin } from '../../src/no/identifiers.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';

const NIN_KARI = syntheticNin('1948-03-12');
const NIN_OLA = syntheticNin('1952-01-01', 3);

let t: TestServer;
const ids: Record<string, string> = {};

async function search(path: string, headers: Record<string, string> = {}): Promise<Bundle & { status: number }> {
  const res = await t.request<Bundle>('GET', path, { headers });
  return { ...res.body, status: res.status };
}

/** Ids of the match entries of a searchset, for order-insensitive comparison. */
/** A search with its parameters in a POST body (as anything carrying a national id must be). */
async function searchPost(type: string, params: string): Promise<Bundle & { status: number }> {
  const res = await t.request<Bundle>('POST', `${type}/_search`, { raw: params, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  return { ...res.body, status: res.status };
}

function matchIds(b: Bundle): string[] {
  return (b.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id as string);
}

function names(b: Bundle): string[] {
  return matchIds(b).map((id) => Object.entries(ids).find(([, v]) => v === id)?.[0] ?? id);
}

async function make<T extends Resource>(key: string, resource: T): Promise<T> {
  const created = await t.create(resource);
  ids[key] = created.id as string;
  return created;
}

beforeAll(async () => {
  t = await startTestServer();
  await make('org', { resourceType: 'Organization', name: 'Lillevik legekontor', identifier: [{ system: 'urn:oid:2.16.578.1.12.4.1.4.101', value: '974760673' }] });
  await make('kari', {
    resourceType: 'Patient',
    name: [{ family: 'Nordmann', given: ['Kari'] }],
    gender: 'female',
    birthDate: '1948-03-12',
    identifier: [{ system: 'urn:oid:2.16.578.1.12.4.1.4.1', value: NIN_KARI }],
    telecom: [{ system: 'phone', value: '+4799999999' }],
    address: [{ city: 'Tromsø', postalCode: '9008' }],
    managingOrganization: { reference: `Organization/${ids.org}` },
    meta: { tag: [{ system: 'urn:samplan:test', code: 'demo' }], security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }], profile: ['http://example.org/StructureDefinition/pasient'] },
  });
  await make('ola', {
    resourceType: 'Patient',
    name: [{ family: 'Nordmann', given: ['Ola'] }],
    gender: 'male',
    birthDate: '1952',
    identifier: [{ system: 'urn:oid:2.16.578.1.12.4.1.4.1', value: NIN_OLA }],
  });
  await make('aase', { resourceType: 'Patient', name: [{ family: 'Ås', given: ['Åse'] }], gender: 'female', birthDate: '1990-06-01', active: true });
  const obs = (key: string, patient: string, code: string, value: number, unit: string, date: string, extra: Record<string, unknown> = {}) =>
    make(key, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code, display: code === '59408-5' ? 'Oxygen saturation' : 'Peak flow' }], text: 'måling' },
      subject: { reference: `Patient/${ids[patient]}` },
      effectiveDateTime: date,
      valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
      ...extra,
    } as Resource);
  await obs('spo2a', 'kari', '59408-5', 95, '%', '2024-03-01T08:00:00Z');
  await obs('spo2b', 'kari', '59408-5', 89, '%', '2024-03-02T08:00:00Z');
  await obs('pef', 'kari', '19935-6', 320, 'L/min', '2024-03-02T09:00:00+01:00');
  await obs('spo2c', 'ola', '59408-5', 97.5, '%', '2023-12-24T20:00:00Z');
  await make('copd', {
    resourceType: 'Condition',
    subject: { reference: `Patient/${ids.kari}` },
    code: { coding: [{ system: 'urn:oid:2.16.578.1.12.4.1.1.7110', code: 'J44', display: 'Kronisk obstruktiv lungesykdom' }] },
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    onsetDateTime: '2019',
  });
  await make('goal', {
    resourceType: 'Goal',
    lifecycleStatus: 'active',
    description: { text: 'Gå tur til butikken selv' },
    subject: { reference: `Patient/${ids.kari}` },
    addresses: [{ reference: `Condition/${ids.copd}` }],
    target: [{ dueDate: '2025-06-01' }],
  });
  await make('plan', {
    resourceType: 'CarePlan',
    status: 'active',
    intent: 'plan',
    title: 'Behandlingsplan KOLS',
    subject: { reference: `Patient/${ids.kari}` },
    addresses: [{ reference: `Condition/${ids.copd}` }],
    goal: [{ reference: `Goal/${ids.goal}` }],
    period: { start: '2024-01-01' },
  });
  await make('oldplan', {
    resourceType: 'CarePlan',
    status: 'completed',
    intent: 'plan',
    title: 'Tidligere plan',
    subject: { reference: `Patient/${ids.ola}` },
    period: { start: '2020-01-01', end: '2021-12-31' },
  });
  await make('riskA', { resourceType: 'RiskAssessment', status: 'final', subject: { reference: `Patient/${ids.kari}` }, prediction: [{ probabilityDecimal: 0.25 }] });
  await make('riskB', { resourceType: 'RiskAssessment', status: 'final', subject: { reference: `Patient/${ids.ola}` }, prediction: [{ probabilityDecimal: 0.8 }] });
  await make('vs', { resourceType: 'ValueSet', status: 'active', url: 'http://samplan.no/fhir/ValueSet/zones/green' });
});
afterAll(async () => t?.close());

describe('string parameters', () => {
  it('match case- and accent-insensitively on the start of any part of the name', async () => {
    expect(names(await search('Patient?name=nord'))).toEqual(['kari', 'ola']);
    expect(names(await search('Patient?name=ase'))).toEqual(['aase']);
    expect(names(await search('Patient?family=ÅS'))).toEqual(['aase']);
    expect(names(await search('Patient?address-city=tromso'))).toEqual(['kari']);
  });
  it(':exact matches the whole string, case-sensitively', async () => {
    expect(names(await search('Patient?family:exact=Nordmann'))).toEqual(['kari', 'ola']);
    expect(names(await search('Patient?family:exact=nordmann'))).toEqual([]);
    expect(names(await search('Patient?family:exact=Nord'))).toEqual([]);
  });
  it(':contains matches anywhere', async () => {
    expect(names(await search('Patient?name:contains=rdma'))).toEqual(['kari', 'ola']);
    expect(names(await search('Organization?name:contains=legekontor'))).toEqual(['org']);
  });
});

describe('token parameters', () => {
  it('match code, system|code, |code and system|', async () => {
    expect(names(await search('Observation?code=59408-5'))).toEqual(['spo2a', 'spo2b', 'spo2c']);
    expect(names(await search('Observation?code=http://loinc.org|19935-6'))).toEqual(['pef']);
    expect(names(await search('Observation?code=http://snomed.info/sct|19935-6'))).toEqual([]);
    expect(names(await search('Observation?code=|19935-6'))).toEqual([]);
    expect(names(await search('Condition?code=urn:oid:2.16.578.1.12.4.1.1.7110|'))).toEqual(['copd']);
    expect(names(await searchPost('Patient', `identifier=urn:oid:2.16.578.1.12.4.1.4.1|${NIN_OLA}`))).toEqual(['ola']);
  });
  it('matches codes of required bindings with their implicit system', async () => {
    expect(names(await search('Patient?gender=female'))).toEqual(['kari', 'aase']);
    expect(names(await search('Patient?gender=http://hl7.org/fhir/administrative-gender|male'))).toEqual(['ola']);
  });
  it('matches booleans and contact points', async () => {
    expect(names(await search('Patient?active=true'))).toEqual(['aase']);
    expect(names(await search('Patient?phone=%2B4799999999'))).toEqual(['kari']);
    expect(names(await search('Patient?telecom=phone|%2B4799999999'))).toEqual(['kari']);
  });
  it(':not excludes matches (and keeps resources without the element)', async () => {
    expect(names(await search('Patient?gender:not=female'))).toEqual(['ola']);
    expect(names(await search('Observation?code:not=59408-5'))).toEqual(['pef']);
  });
  it(':text matches the display text or CodeableConcept.text', async () => {
    expect(names(await search('Observation?code:text=oxygen'))).toEqual(['spo2a', 'spo2b', 'spo2c']);
    expect(names(await search('Condition?code:text=kronisk'))).toEqual(['copd']);
    expect(names(await search('Observation?code:text=MÅLING'))).toHaveLength(4);
  });
  it(':missing finds resources with and without a value', async () => {
    expect(names(await search('Patient?active:missing=true'))).toEqual(['kari', 'ola']);
    expect(names(await search('Patient?active:missing=false'))).toEqual(['aase']);
  });
});

describe('date parameters', () => {
  it('honour precision and every prefix', async () => {
    expect(names(await search('Patient?birthdate=1948'))).toEqual(['kari']);
    expect(names(await search('Patient?birthdate=1948-03'))).toEqual(['kari']);
    expect(names(await search('Patient?birthdate=1948-03-12'))).toEqual(['kari']);
    expect(names(await search('Patient?birthdate=1952-06-01'))).toEqual([]);
    expect(names(await search('Patient?birthdate=ne1948-03-12'))).toEqual(['ola', 'aase']);
    expect(names(await search('Patient?birthdate=gt1950'))).toEqual(['ola', 'aase']);
    expect(names(await search('Patient?birthdate=ge1952'))).toEqual(['ola', 'aase']);
    expect(names(await search('Patient?birthdate=lt1952'))).toEqual(['kari']);
    expect(names(await search('Patient?birthdate=le1952'))).toEqual(['kari', 'ola']);
    expect(names(await search('Patient?birthdate=sa1952'))).toEqual(['aase']);
    expect(names(await search('Patient?birthdate=eb1952'))).toEqual(['kari']);
    expect(names(await search('Patient?birthdate=ap1990-06-03'))).toEqual(['aase']);
  });
  it('compare instants across time zones', async () => {
    expect(names(await search('Observation?date=2024-03-02T08:00:00Z'))).toEqual(['spo2b', 'pef']);
    expect(names(await search(`Observation?date=${encodeURIComponent('2024-03-02T09:00:00+01:00')}`))).toEqual(['spo2b', 'pef']);
    expect(names(await search('Observation?date=ge2024-03-02&date=lt2024-03-03'))).toEqual(['spo2b', 'pef']);
  });
  it('treat periods as ranges, open ends unbounded', async () => {
    expect(names(await search('CarePlan?date=2021'))).toEqual([]);
    expect(names(await search('CarePlan?date=lt2020-06'))).toEqual(['oldplan']);
    expect(names(await search('CarePlan?date=ge2021'))).toEqual(['plan', 'oldplan']);
    expect(names(await search('CarePlan?date=ge2030'))).toEqual(['plan']);
    expect(names(await search('CarePlan?date=eb2022'))).toEqual(['oldplan']);
  });
  it('take dates at the very end of year 9999, in a search and in a stored resource', async () => {
    // Their range ends in year 10000, which the database refused (found by the fuzzer: a 500).
    for (const value of ['9999-12-31T23:59:59Z', '9999', '9999-12-31T23:59:59-14:00', 'ge9999-12-31']) {
      expect((await search(`Observation?date=${encodeURIComponent(value)}`)).status, value).toBe(200);
    }
    const late = await t.create({ resourceType: 'Observation', status: 'final', code: { text: 'Sent' }, effectiveDateTime: '9999-12-31T23:59:59-14:00' });
    expect(matchIds(await search('Observation?date=9999-12-31'))).toContain(late.id);
    await t.request('DELETE', `Observation/${late.id}`);
  });
});

describe('number and quantity parameters', () => {
  it('numbers honour the precision of the search value', async () => {
    expect(names(await search('RiskAssessment?probability=0.25'))).toEqual(['riskA']);
    expect(names(await search('RiskAssessment?probability=0.3'))).toEqual(['riskA']);
    expect(names(await search('RiskAssessment?probability=0.30'))).toEqual([]);
    expect(names(await search('RiskAssessment?probability=gt0.5'))).toEqual(['riskB']);
    expect(names(await search('RiskAssessment?probability=le0.25'))).toEqual(['riskA']);
  });
  it('quantities match value, system and code or unit', async () => {
    expect(names(await search('Observation?value-quantity=lt90'))).toEqual(['spo2b']);
    expect(names(await search('Observation?value-quantity=ge95||%'))).toEqual(['spo2a', 'spo2c']);
    expect(names(await search('Observation?value-quantity=97.5|http://unitsofmeasure.org|%'))).toEqual(['spo2c']);
    expect(names(await search('Observation?value-quantity=gt300|http://unitsofmeasure.org|L/min'))).toEqual(['pef']);
    expect(names(await search('Observation?value-quantity=gt300|http://unitsofmeasure.org|%'))).toEqual([]);
    expect(names(await search('Observation?value-quantity=ap100'))).toEqual(['spo2a', 'spo2c']);
  });
});

describe('reference and uri parameters', () => {
  it('match by id, Type/id, absolute URL and type modifier', async () => {
    expect(names(await search(`Observation?subject=Patient/${ids.ola}`))).toEqual(['spo2c']);
    expect(names(await search(`Observation?subject=${ids.ola}`))).toEqual(['spo2c']);
    expect(names(await search(`Observation?subject=${BASE}/Patient/${ids.ola}`))).toEqual(['spo2c']);
    expect(names(await search(`Observation?subject:Patient=${ids.ola}`))).toEqual(['spo2c']);
    expect(names(await search(`Observation?patient=${ids.ola}`))).toEqual(['spo2c']);
    expect(names(await search(`Observation?subject:Group=${ids.ola}`))).toEqual([]);
  });
  it(':identifier matches Reference.identifier', async () => {
    const enc = await t.create({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { identifier: { system: 'urn:oid:2.16.578.1.12.4.1.4.1', value: NIN_OLA } },
    });
    expect(matchIds(await searchPost('Encounter', `subject:identifier=urn:oid:2.16.578.1.12.4.1.4.1|${NIN_OLA}`))).toEqual([enc.id]);
  });
  it('uri matches exactly, :below by prefix, :above by ancestor', async () => {
    expect(names(await search('ValueSet?url=http://samplan.no/fhir/ValueSet/zones/green'))).toEqual(['vs']);
    expect(names(await search('ValueSet?url=http://samplan.no/fhir/ValueSet/zones'))).toEqual([]);
    expect(names(await search('ValueSet?url:below=http://samplan.no/fhir/ValueSet'))).toEqual(['vs']);
    expect(names(await search('ValueSet?url:above=http://samplan.no/fhir/ValueSet/zones/green/extra'))).toEqual(['vs']);
  });
});

describe('composite parameters', () => {
  it('match both components on the same element', async () => {
    expect(names(await search('Observation?code-value-quantity=59408-5$lt90'))).toEqual(['spo2b']);
    expect(names(await search('Observation?code-value-quantity=http://loinc.org|59408-5$ge95||%'))).toEqual(['spo2a', 'spo2c']);
    expect(names(await search('Observation?code-value-quantity=19935-6$lt90'))).toEqual([]);
  });
});

describe('OR, AND, _id, _lastUpdated, _tag, _profile, _security', () => {
  it('commas are OR, repeats are AND', async () => {
    expect(names(await search('Patient?given=kari,ola'))).toEqual(['kari', 'ola']);
    expect(names(await search('Patient?family=nordmann&gender=male'))).toEqual(['ola']);
    expect(names(await search('Patient?given=kari&given=ola'))).toEqual([]);
  });
  it('searches by _id and _lastUpdated', async () => {
    expect(names(await search(`Patient?_id=${ids.kari},${ids.ola}`))).toEqual(['kari', 'ola']);
    expect(names(await search(`Patient?_lastUpdated=gt${new Date(Date.now() + 60_000).toISOString()}`))).toEqual([]);
    expect(names(await search(`Patient?_lastUpdated=ge2020-01-01&_id=${ids.aase}`))).toEqual(['aase']);
  });
  it('searches by tag, profile and security label', async () => {
    expect(names(await search('Patient?_tag=urn:samplan:test|demo'))).toEqual(['kari']);
    expect(names(await search('Patient?_profile=http://example.org/StructureDefinition/pasient'))).toEqual(['kari']);
    expect(names(await search('Patient?_security=R'))).toEqual(['kari']);
  });
});

describe('chained and reverse-chained parameters', () => {
  it('follow a reference to a condition on the target', async () => {
    expect(names(await search('Observation?subject:Patient.name=ola'))).toEqual(['spo2c']);
    expect(names(await searchPost('Observation', `subject.identifier=urn:oid:2.16.578.1.12.4.1.4.1|${NIN_KARI}`))).toEqual(['spo2a', 'spo2b', 'pef']);
    expect(names(await search('CarePlan?subject:Patient.organization.name=lillevik'))).toEqual(['plan']);
  });
  it('_has finds resources referenced by matching resources, nested too', async () => {
    expect(names(await search('Patient?_has:Observation:subject:value-quantity=lt90'))).toEqual(['kari']);
    expect(names(await search('Patient?_has:CarePlan:subject:status=completed'))).toEqual(['ola']);
    expect(names(await search('Organization?_has:Patient:organization:_has:CarePlan:subject:status=active'))).toEqual(['org']);
  });
});

describe('_include and _revinclude', () => {
  it('includes referenced resources with search.mode include', async () => {
    const b = await search(`CarePlan?_id=${ids.plan}&_include=CarePlan:subject&_include=CarePlan:goal`);
    expect(matchIds(b)).toEqual([ids.plan]);
    const included = (b.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id).sort();
    expect(included).toEqual([ids.kari, ids.goal].sort());
    expect(b.total).toBe(1);
  });
  it('includes everything referenced with *, and iterates', async () => {
    const star = await search(`CarePlan?_id=${ids.plan}&_include=*`);
    expect((star.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id).sort()).toEqual([ids.kari, ids.copd, ids.goal].sort());
    const iterate = await search(`CarePlan?_id=${ids.plan}&_include=CarePlan:subject&_include:iterate=Patient:organization`);
    expect((iterate.entry ?? []).map((e) => e.resource?.id)).toContain(ids.org);
  });
  // A page is read with one row more than it shows (to learn whether another page follows):
  // includes follow the page's matches only.
  it('includes what the page\'s matches refer to, page by page, forward and back', async () => {
    const locations: string[] = [];
    const roles: string[] = [];
    for (let i = 0; i < 3; i++) {
      locations.push((await t.create({ resourceType: 'Location', name: `Sidevis ${i}` })).id);
      const role: PractitionerRole = { resourceType: 'PractitionerRole', location: [{ reference: `Location/${locations[i]}` }], code: [{ coding: [{ system: 'http://example.org/paging', code: 'inc' }] }] };
      roles.push((await t.create(role)).id);
    }
    const included = (b: Bundle) => (b.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id);
    const first = await search('PractitionerRole?role=http://example.org/paging|inc&_sort=-_lastUpdated&_count=2&_include=PractitionerRole:location');
    expect(matchIds(first)).toEqual([roles[2], roles[1]]);
    expect(included(first).sort()).toEqual([locations[2], locations[1]].sort());
    const next = await search((first.link?.find((l) => l.relation === 'next')?.url as string).slice(BASE.length + 1));
    expect(matchIds(next)).toEqual([roles[0]]);
    expect(included(next)).toEqual([locations[0]]);
    const back = await search((next.link?.find((l) => l.relation === 'previous')?.url as string).slice(BASE.length + 1));
    expect(matchIds(back)).toEqual([roles[2], roles[1]]);
    expect(included(back).sort()).toEqual([locations[2], locations[1]].sort());
    const star = await search('PractitionerRole?role=http://example.org/paging|inc&_sort=_lastUpdated&_count=1&_include=*');
    expect(matchIds(star)).toEqual([roles[0]]);
    expect(included(star)).toEqual([locations[0]]);
  });

  // The first round of _include is read in the page's own statement (one round trip).
  it('lists a match that another match refers to once, as a match; several _include follow their own parameters and types', async () => {
    const tag = { system: 'http://example.org/mutual', code: 'pair' };
    const endpoint = await t.create({ resourceType: 'Endpoint', status: 'active', connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' }, payloadType: [{ text: 'FHIR' }], address: 'https://example.org/fhir' });
    const first = await t.create({ resourceType: 'Organization', meta: { tag: [tag] }, name: 'Først', endpoint: [{ reference: `Endpoint/${endpoint.id}` }] });
    const second = await t.create({ resourceType: 'Organization', meta: { tag: [tag] }, name: 'Andre', partOf: { reference: `Organization/${first.id}` } });
    const search2 = (extra: string) => search(`Organization?_tag=${tag.system}|${tag.code}&_sort=name${extra}`);
    const includes = (b: Bundle) => (b.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id);
    const both = await search2('&_include=Organization:partof&_include=Organization:endpoint');
    expect(matchIds(both)).toEqual([second.id, first.id]);
    expect(includes(both)).toEqual([endpoint.id]);
    // The second alone on its page: the first comes back as an include; a target type is kept to.
    const paged = await search2('&_count=1&_include=Organization:partof:Organization&_include=Organization:endpoint');
    expect(matchIds(paged)).toEqual([second.id]);
    expect(includes(paged)).toEqual([first.id]);
    expect(includes(await search2('&_count=1&_include=Organization:partof:Location'))).toEqual([]);
  });

  it('follows an _include only from resources of its source type, and iterates onto what was included', async () => {
    const included = (b: Bundle) => (b.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id).sort();
    // An iterating Goal:* has nothing to start from on a page of CarePlans until a Goal is included.
    expect(included(await search(`CarePlan?_id=${ids.plan}&_include:iterate=Goal:*`))).toEqual([]);
    // Goal's reference parameters are subject and patient (R4 has none for Goal.addresses).
    expect(included(await search(`CarePlan?_id=${ids.plan}&_include=CarePlan:goal&_include:iterate=Goal:*`))).toEqual([ids.kari, ids.goal].sort());
  });

  it('reverse-includes resources that point at the matches', async () => {
    const b = await search(`Patient?_id=${ids.kari}&_revinclude=CarePlan:subject&_revinclude=Condition:subject`);
    expect((b.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id).sort()).toEqual([ids.plan, ids.copd].sort());
    const iter = await search(`Patient?_id=${ids.kari}&_revinclude=Goal:subject&_revinclude:iterate=CarePlan:goal`);
    expect((iter.entry ?? []).map((e) => e.resource?.id)).toEqual(expect.arrayContaining([ids.goal, ids.plan]));
    const notIterated = await search(`Patient?_id=${ids.kari}&_revinclude=Goal:subject&_revinclude=CarePlan:goal`);
    expect((notIterated.entry ?? []).map((e) => e.resource?.id)).not.toContain(ids.plan);
  });
});

describe('sorting and paging', () => {
  it('sorts by several keys, descending with -', async () => {
    expect(names(await search('Patient?_sort=birthdate'))).toEqual(['kari', 'ola', 'aase']);
    expect(names(await search('Patient?_sort=-birthdate'))).toEqual(['aase', 'ola', 'kari']);
    expect(names(await search('Patient?_sort=family,-given'))).toEqual(['aase', 'ola', 'kari']);
    expect(names(await search('Patient?_sort=-family,given'))).toEqual(['kari', 'ola', 'aase']);
    expect(names(await search('Observation?code=59408-5&_sort=-value-quantity'))).toEqual(['spo2c', 'spo2a', 'spo2b']);
    expect(names(await search('Patient?_sort=-_lastUpdated')).slice(0, 1)).toEqual(['aase']);
  });

  it('pages with _count and next/previous links that stay stable while data is added', async () => {
    for (let i = 0; i < 7; i++) await t.create({ resourceType: 'Practitioner', name: [{ family: `Lege${i}` }] });
    const first = await search('Practitioner?_count=3&_sort=family');
    expect(first.total).toBe(7);
    expect(first.entry?.map((e) => (e.resource as { name: Array<{ family: string }> }).name[0]?.family)).toEqual(['Lege0', 'Lege1', 'Lege2']);
    expect(first.link?.find((l) => l.relation === 'previous')).toBeUndefined();
    const self = first.link?.find((l) => l.relation === 'self')?.url as string;
    expect(self).toBe(`${BASE}/Practitioner?_count=3&_sort=family`);
    // Something sorted before the current page appears: the next page does not shift.
    await t.create({ resourceType: 'Practitioner', name: [{ family: 'Lege00' }] });
    const nextUrl = first.link?.find((l) => l.relation === 'next')?.url as string;
    const second = await search(nextUrl.replace(BASE, '/fhir'));
    expect(second.entry?.map((e) => (e.resource as { name: Array<{ family: string }> }).name[0]?.family)).toEqual(['Lege3', 'Lege4', 'Lege5']);
    const prevUrl = second.link?.find((l) => l.relation === 'previous')?.url as string;
    const back = await search(prevUrl.replace(BASE, '/fhir'));
    // Going back shows the three before Lege3 as they are now, and there is still a page before.
    expect(back.entry?.map((e) => (e.resource as { name: Array<{ family: string }> }).name[0]?.family)).toEqual(['Lege00', 'Lege1', 'Lege2']);
    expect(back.link?.find((l) => l.relation === 'previous')).toBeDefined();
    const third = await search((second.link?.find((l) => l.relation === 'next')?.url as string).replace(BASE, '/fhir'));
    expect(third.entry?.map((e) => (e.resource as { name: Array<{ family: string }> }).name[0]?.family)).toEqual(['Lege6']);
    expect(third.link?.find((l) => l.relation === 'next')).toBeUndefined();
  });

  it('refuses a paging cursor the client altered, with 400', async () => {
    // Its sort keys go to SQL casts: one they refused failed the search with a 500 (found by the fuzzer).
    const first = await search('Observation?_count=1&_sort=-date');
    const next = first.link?.find((l) => l.relation === 'next')?.url as string;
    const cursor = JSON.parse(Buffer.from(new URL(next).searchParams.get('_cursor') as string, 'base64url').toString()) as { keys: unknown[] };
    for (const keys of [['2026-11-25 07:49:20.257+0p'], ['2026-02-30 10:00:00+00'], ['1e999999'], [{}], [[1]]]) {
      const altered = Buffer.from(JSON.stringify({ ...cursor, keys })).toString('base64url');
      const res = await search(`Observation?_count=1&_sort=-date&_cursor=${altered}`);
      expect(res.status, JSON.stringify(keys)).toBe(400);
    }
    const rid = Buffer.from(JSON.stringify({ ...cursor, rid: 1e308 })).toString('base64url');
    expect((await search(`Observation?_count=1&_sort=-date&_cursor=${rid}`)).status).toBe(400);
    expect((await search(next.replace(/^.*\/fhir\//, ''))).status).toBe(200);
  });

  it('_total=none leaves the total out; _summary=count gives only the total', async () => {
    expect((await search('Patient?_total=none')).total).toBeUndefined();
    const count = await search('Patient?_summary=count');
    expect(count.total).toBe(3);
    expect(count.entry).toBeUndefined();
    expect((await search('Patient?_count=0')).entry).toBeUndefined();
  });

  it('_summary and _elements subset the matches', async () => {
    const b = await search(`Patient?_id=${ids.kari}&_elements=birthDate`);
    const p = b.entry?.[0]?.resource as Resource & { birthDate?: string; name?: unknown };
    expect(p.birthDate).toBe('1948-03-12');
    expect(p.name).toBeUndefined();
    expect(p.meta?.tag?.some((tag) => tag.code === 'SUBSETTED')).toBe(true);
    const summary = await search(`Patient?_id=${ids.kari}&_summary=true`);
    const s = summary.entry?.[0]?.resource as Resource & { name?: unknown; telecom?: unknown };
    expect(s.name).toBeDefined();
  });
});

describe('search forms and handling', () => {
  it('refuses a national identity number in a GET URL, and says to use POST', async () => {
    const res = await search(`Patient?identifier=${NIN_OLA}`);
    expect(res.status).toBe(400);
    const outcome = res as unknown as { issue: Array<{ details: { text: string; coding: Array<{ code: string }> } }> };
    expect(outcome.issue[0]?.details.coding[0]?.code).toBe('NIN_IN_URL');
    expect(outcome.issue[0]?.details.text).toMatch(/POST/);
    expect(JSON.stringify(res)).not.toContain(NIN_OLA);
    expect((await search(`Patient?_id=${NIN_OLA}`)).status).toBe(400);
  });

  it('refuses a NUL character in a parameter, with 400', async () => {
    // PostgreSQL refuses it in a query parameter: a 500 before (found by the fuzzer).
    for (const query of ['Patient?name=a%00b', 'Observation?subject:Patient.name=%00', 'Patient?na%00me=x']) {
      const res = await search(query);
      expect(res.status, query).toBe(400);
    }
    const conditional = await t.request('PUT', 'Patient?name=%00', { body: { resourceType: 'Patient' } });
    expect(conditional.status).toBe(400);
  });

  it('POST _search with form parameters equals GET', async () => {
    const res = await t.request<Bundle>('POST', 'Patient/_search', {
      raw: 'family=nordmann&gender=male',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(200);
    expect(names(res.body)).toEqual(['ola']);
  });

  it('ignores unknown parameters under lenient handling, says so, and leaves them out of the self link', async () => {
    const b = await search('Patient?family=nordmann&shoe-size=44');
    expect(names(b)).toEqual(['kari', 'ola']);
    expect(b.link?.[0]?.url).toBe(`${BASE}/Patient?family=nordmann`);
    const outcome = b.entry?.find((e) => e.search?.mode === 'outcome')?.resource as { issue: Array<{ details: { text: string } }> };
    expect(outcome.issue[0]?.details.text).toContain('shoe-size');
  });

  it('refuses unknown parameters under Prefer: handling=strict', async () => {
    const b = await search('Patient?family=nordmann&shoe-size=44', { prefer: 'handling=strict' });
    expect(b.status).toBe(400);
  });

  it('searches a patient compartment and the whole system', async () => {
    expect(names(await search(`Patient/${ids.kari}/Observation`))).toEqual(['spo2a', 'spo2b', 'pef']);
    expect(names(await search(`Patient/${ids.kari}/Observation?code=19935-6`))).toEqual(['pef']);
    const system = await search('?_type=Patient,Organization&_tag=urn:samplan:test|demo');
    expect(names(system)).toEqual(['kari']);
    const both = await search(`?_type=CarePlan,Goal&patient=${ids.kari}`);
    expect(names(both).sort()).toEqual(['goal', 'plan']);
  });

  it('returns full URLs and search modes', async () => {
    const b = await search(`Patient?_id=${ids.ola}`);
    expect(b.type).toBe('searchset');
    expect(b.entry?.[0]?.fullUrl).toBe(`${BASE}/Patient/${ids.ola}`);
    expect(b.entry?.[0]?.search?.mode).toBe('match');
  });
});
