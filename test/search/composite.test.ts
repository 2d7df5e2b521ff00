/**
 * Composite search parameters: both components must match on the same element, each named in any
 * way its type allows (code, system|code, |code, system|; a unit by code or system|code), with the last component's prefixes. One index row per value pair (extract.ts).
 */
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractIndex } from '../../src/search/extract.js';
import { searchRegistry } from '../../src/search/registry.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';

const LOINC = 'http://loinc.org';
const ZONE = 'https://samplan.no/fhir/CodeSystem/zone';
const SELF = 'urn:example:self-report';

let t: TestServer;
const ids: Record<string, string> = {};

/** The names of the resources a search finds, in the order it gives them. */
async function found(query: string): Promise<string[]> {
  const res = await t.request<Bundle>('GET', query);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return (res.body.entry ?? []).map((e) => Object.entries(ids).find(([, id]) => id === e.resource?.id)?.[0] ?? String(e.resource?.id));
}

async function names(query: string): Promise<string[]> {
  return (await found(query)).sort();
}

async function make(key: string, resource: Resource): Promise<void> {
  ids[key] = (await t.create(resource)).id;
}

/** Shaped like a daily check-in (a zone, an SpO2 reading as a component), under another code: a check-in proper needs its plan. */
function checkIn(zone: string, spo2: number, date: string): Resource {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: SELF, code: 'zone' }] },
    subject: { reference: `Patient/${ids.kari}` },
    effectiveDateTime: date,
    valueCodeableConcept: { coding: [{ system: ZONE, code: zone }] },
    component: [
      {
        code: { coding: [{ system: LOINC, code: '59408-5' }] },
        valueQuantity: { value: spo2, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
      },
    ],
  };
}

beforeAll(async () => {
  t = await startTestServer();
  await make('kari', { resourceType: 'Patient', name: [{ family: 'Nordmann', given: ['Kari'] }] });
  await make('green', checkIn('green', 96, '2026-11-20T08:00:00Z'));
  await make('red', checkIn('red', 87, '2026-11-21T08:00:00Z'));
  await make('nosystem', { resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${ids.kari}` }, code: { coding: [{ code: 'zone' }] }, valueCodeableConcept: { coding: [{ code: 'green' }] } });
  await make('dated', { resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${ids.kari}` }, code: { coding: [{ system: LOINC, code: '8665-2' }] }, valueDateTime: '2026-10-01' });
  await make('measured', { resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${ids.kari}` }, code: { coding: [{ system: LOINC, code: '59408-5' }] }, valueQuantity: { value: 91, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } });
  await make('texted', { resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${ids.kari}` }, code: { coding: [{ system: LOINC, code: '72166-2' }] }, valueString: 'Tidligere røyker' });
});

afterAll(async () => {
  await t.close();
});

describe('a composite of two tokens', () => {
  it('matches each token by code, system|code, |code or system|', async () => {
    expect(await names('Observation?code-value-concept=zone$green')).toEqual(['green', 'nosystem']);
    expect(await names(`Observation?code-value-concept=${SELF}|zone$${ZONE}|green`)).toEqual(['green']);
    expect(await names('Observation?code-value-concept=|zone$|green')).toEqual(['nosystem']);
    expect(await names(`Observation?code-value-concept=${SELF}|$${ZONE}|red`)).toEqual(['red']);
    expect(await names(`Observation?code-value-concept=zone$${ZONE}|`)).toEqual(['green', 'red']);
  });
  it('needs both on the same element, and either pair of an OR', async () => {
    expect(await names(`Observation?code-value-concept=${LOINC}|59408-5$${ZONE}|green`)).toEqual([]);
    expect(await names('Observation?code-value-concept=zone$red,zone$green')).toEqual(['green', 'nosystem', 'red']);
  });
});

describe('a composite ending in a range', () => {
  it('compares a component\'s quantity, its unit named by code or system|code, or not at all', async () => {
    expect(await names('Observation?component-code-value-quantity=59408-5$lt90')).toEqual(['red']);
    expect(await names(`Observation?component-code-value-quantity=${LOINC}|59408-5$ge90|http://unitsofmeasure.org|%`)).toEqual(['green']);
    expect(await names('Observation?component-code-value-quantity=59408-5$ge80||%')).toEqual(['green', 'red']);
    expect(await names('Observation?component-code-value-quantity=59408-5$ge80||mmHg')).toEqual([]);
    // The combo parameter looks at the Observation's own code and value too.
    expect(await names(`Observation?combo-code-value-quantity=${LOINC}|59408-5$gt95`)).toEqual(['green']);
  });
  it('compares a date and a string', async () => {
    expect(await names('Observation?code-value-date=8665-2$ge2026-09')).toEqual(['dated']);
    expect(await names('Observation?code-value-date=8665-2$lt2026-09')).toEqual([]);
    expect(await names(`Observation?code-value-string=${LOINC}|72166-2$tidligere`)).toEqual(['texted']);
    expect(await names('Observation?code-value-string=72166-2$nå')).toEqual([]);
  });
});

describe('composite values that cannot be searched', () => {
  it('get 400 and an OperationOutcome naming the parameter', async () => {
    for (const query of ['Observation?code-value-concept=|$green', 'Observation?code-value-concept=green', 'Observation?code-value-quantity=59408-5$abc']) {
      const res = await t.request('GET', query);
      expect(res.status, query).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(JSON.stringify(res.body)).toContain('code-value-');
    }
  });
});

describe('a combo parameter: the Observation\'s own values and its components\'', () => {
  it('matches either, negated and missing as one parameter', async () => {
    expect(await names('Observation?combo-code=59408-5')).toEqual(['green', 'measured', 'red']);
    expect(await names(`Observation?combo-code=${LOINC}|59408-5,zone`)).toEqual(['green', 'measured', 'nosystem', 'red']);
    expect(await names('Observation?combo-code:not=59408-5')).toEqual(['dated', 'nosystem', 'texted']);
    expect(await names('Observation?combo-value-concept:missing=true')).toEqual(['dated', 'measured', 'texted']);
    expect(await names('Observation?combo-value-quantity=gt90')).toEqual(['green', 'measured']);
    expect(await names(`Observation?combo-value-concept=${ZONE}|red`)).toEqual(['red']);
  });
  it('sorts by the lowest or highest of either', async () => {
    expect(await found('Observation?combo-code=59408-5&_sort=combo-value-quantity')).toEqual(['red', 'measured', 'green']);
    expect(await found('Observation?combo-code=59408-5&_sort=-combo-value-quantity')).toEqual(['green', 'measured', 'red']);
  });
});

describe('the index', () => {
  it('holds one row per value pair, and none for a combo parameter (searched by the rows of the two it joins)', () => {
    const { rows } = extractIndex(checkIn('green', 96, '2026-11-20T08:00:00Z'), BASE);
    // code-value-concept: one pair; component-code-value-quantity: one pair, once per way to name
    // the unit ('', '%', UCUM|%). combo-code-value-concept and combo-code-value-quantity: none.
    expect(rows.composite).toHaveLength(1 + 3);
    const combos = searchRegistry()
      .forType('Observation')
      .filter((p) => p.code.startsWith('combo-'));
    expect(combos.map((p) => [p.code, p.unionOf?.map((q) => q.code)])).toEqual([
      ['combo-code', ['code', 'component-code']],
      ['combo-data-absent-reason', ['data-absent-reason', 'component-data-absent-reason']],
      ['combo-value-concept', ['value-concept', 'component-value-concept']],
      ['combo-value-quantity', ['value-quantity', 'component-value-quantity']],
      ['combo-code-value-concept', ['code-value-concept', 'component-code-value-concept']],
      ['combo-code-value-quantity', ['code-value-quantity', 'component-code-value-quantity']],
    ]);
    const keys = new Set(combos.map((p) => p.sp));
    expect(Object.values(rows).flat().filter((row) => keys.has(row[0] as number))).toEqual([]);
  });
});
