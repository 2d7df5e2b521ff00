/**
 * Search statements are built once per shape (src/search/shapes.ts): a later search of the same
 * shape gets the statement's text and its own values bound. For every parameter of every type,
 * every modifier and prefix, paging cursors, sorts, chains, _has, includes and system searches,
 * a search run after another of the same shape gets exactly the statement — text and parameters —
 * that building it from its own query gives; searches that differ where the builder branches
 * (no system vs any system, missing true vs false) do not share a statement.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sql } from 'kysely';
import { definitions } from '../../src/fhir/definitions.js';
import { column } from '../../src/store/sql.js';
import type { ReadRule } from '../../src/store/resources.js';
import { includedWithPage } from '../../src/search/include.js';
import { encodeCursor, parseSearch } from '../../src/search/parse.js';
import type { Cursor } from '../../src/search/query.js';
import { type ParamDef, searchRegistry } from '../../src/search/registry.js';
import { buildPageQuery, pageQuery } from '../../src/search/sql.js';

type Search = [type: string | undefined, params: Array<[string, string]>];

beforeAll(() => {
  definitions();
  // 'ap' is relative to now: the same instant for both builds.
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date('2026-11-27T12:00:00Z'));
});
afterAll(() => vi.useRealTimers());

/** A caller's rule with values of its own, like an access rule. */
function rule(patient: string): ReadRule {
  return { filter: (alias) => sql`(${column(alias, 'compartments')} && ${[`Patient/${patient}`]}::text[] OR ${column(alias, 'type')} = ${'Organization'})` };
}

function sample(p: ParamDef, which: 0 | 1): string {
  switch (p.type) {
    case 'string':
      return ['nord', 'Sørli'][which] as string;
    case 'token':
      return ['http://loinc.org|1234-5', 'urn:oid:2.16.578.1.12.4.1.1.9060|LE'][which] as string;
    case 'reference':
      return p.targets[0] ? `${p.targets[0]}/${['abc', 'def-2'][which] as string}` : ['http://example.org/x', 'urn:uuid:1f0e'][which] as string;
    case 'date':
      return ['ge2024-01-01', 'ge2025-06-30T10:00:00Z'][which] as string;
    case 'number':
      return ['gt1', 'gt27.25'][which] as string;
    case 'quantity':
      return ['gt1|http://unitsofmeasure.org|mg', 'gt3.5|http://unitsofmeasure.org|L/min'][which] as string;
    case 'uri':
      return ['http://example.org/fhir/x', 'https://samplan.no/fhir/y'][which] as string;
    case 'composite':
      return (p.components ?? []).map((c) => sample(c.param, which).replace(/\$/g, '')).join('$');
  }
}

const cursor = (c: Cursor) => encodeCursor(c);

/**
 * Searches written as a type and its parameters, each with the first search's value and the
 * second's (the same when only one is given).
 */
const SAME_SHAPE: Array<[string | undefined, ...Array<[name: string, first: string, second?: string]>]> = [
  ['Patient', ['name:exact', 'Nordmann', 'Hansen']],
  ['Patient', ['name:contains', 'or%d_a', 'an\\sen']],
  ['Patient', ['gender:not', 'male', 'female']],
  ['Patient', ['gender:missing', 'true']],
  ['Patient', ['identifier', '|12345', '|99']],
  ['Patient', ['identifier', 'urn:oid:2.16.578.1.12.4.1.4.1|', 'urn:oid:2.16.578.1.12.4.1.4.2|']],
  ['Patient', ['birthdate', 'ap1950-01-01', 'ap2020-05']],
  ['Patient', ['birthdate', 'ne1950', 'ne1961'], ['birthdate', 'lt2000-01-01,gt2010', 'lt1999-12-31,gt2011']],
  ['Observation', ['value-quantity', 'ap5.4|http://unitsofmeasure.org|mg', 'ap100|http://unitsofmeasure.org|kg']],
  ['Observation', ['value-quantity', 'sa5||mg', 'sa7||kg']],
  ['Observation', ['code:text', 'oksygen', 'puls']],
  ['Observation', ['subject:identifier', 'urn:oid:2.16.578.1.12.4.1.4.1|12345678901', 'urn:oid:2.16.578.1.12.4.1.4.1|10987654321']],
  ['Observation', ['subject:Patient.name', 'nord', 'syd']],
  ['Observation', ['subject.identifier', 'urn:x|1', 'urn:y|2']],
  ['Patient', ['_has:Observation:subject:code', '1234-5', '9-9']],
  ['ValueSet', ['url:below', 'http://samplan.no/fhir', 'https://example.org']],
  ['ValueSet', ['url:above', 'http://samplan.no/fhir/ValueSet/x', 'https://a.example/b/c/d']],
  ['Patient', ['_id', 'abc', 'def,ghi,jkl']],
  ['Patient', ['_id:not', 'abc', 'x']],
  ['Patient', ['_lastUpdated', 'ge2024-01-01', 'ge2023-02-02'], ['_lastUpdated', 'ap2025', 'ap2026-03']],
  ['CarePlan', ['subject', 'Patient/abc', 'Patient/xyz'], ['_sort', '-date'], ['_count', '10', '7']],
  ['CarePlan', ['subject:Patient.identifier', 'urn:oid:2.16.578.1.12.4.1.4.1|1', 'urn:oid:2.16.578.1.12.4.1.4.1|2'], ['status', 'active'], ['_include', '*']],
  ['CarePlan', ['_include', 'CarePlan:goal'], ['_include', 'CarePlan:subject:Patient']],
  [undefined, ['_type', 'Goal,Condition'], ['patient', 'Patient/a', 'Patient/b']],
  [
    'Observation',
    ['_sort', 'date,-_lastUpdated'],
    [
      '_cursor',
      cursor({ keys: ['2024-01-01T00:00:00+00:00', '2024-01-02 10:00:00+00'], rid: 10, direction: 'next' }),
      cursor({ keys: ['2025-03-01T00:00:00+00:00', '2025-03-02 11:00:00+00'], rid: 99, direction: 'next' }),
    ],
  ],
  ['Observation', ['_sort', 'date'], ['_cursor', cursor({ keys: [null], rid: 10, direction: 'prev' }), cursor({ keys: [null], rid: 12, direction: 'prev' })]],
  ['Observation', ['_sort', 'value-quantity'], ['_cursor', cursor({ keys: ['1.5'], rid: 10, direction: 'next' }), cursor({ keys: ['27'], rid: 3, direction: 'next' })]],
];

/** Pairs of searches of one shape, with different values. */
function pairs(): Array<[Search, Search]> {
  const result: Array<[Search, Search]> = [];
  for (const type of definitions().resourceTypes) {
    for (const p of searchRegistry().forType(type)) result.push([[type, [[p.code, sample(p, 0)]]], [type, [[p.code, sample(p, 1)]]]]);
  }
  for (const [type, ...params] of SAME_SHAPE) {
    result.push([
      [type, params.map(([name, a]) => [name, a] as [string, string])],
      [type, params.map(([name, a, b]) => [name, b ?? a] as [string, string])],
    ]);
  }
  return result;
}

const parse = ([type, params]: Search, compartment?: string) =>
  parseSearch(type, params, { strict: true, baseUrl: 'https://samplan.example/fhir', ...(compartment ? { compartment } : {}) });

describe('search statements by shape', () => {
  it('gives a search of a shape seen before exactly the statement its own query builds', () => {
    const all = pairs();
    expect(all.length).toBeGreaterThan(1000);
    for (const [[a, b], visible] of all.flatMap((pair) => [[pair, rule('p1')], [pair, undefined]] as const)) {
      for (const compartment of [undefined, 'Patient/p9']) {
        const first = parse(a, compartment);
        const second = parse(b, compartment);
        const included = (q: typeof first) => includedWithPage(q, visible);
        const cachedFirst = pageQuery(first, visible, included(first));
        const cached = pageQuery(second, visible, included(second));
        const label = `${String(b[0])}?${new URLSearchParams(b[1]).toString()}`;
        expect(cached.sql, label).toBe(cachedFirst.sql);
        expect(cached, label).toEqual(buildPageQuery(second, visible, included(second)));
        expect(cachedFirst, label).toEqual(buildPageQuery(first, visible, included(first)));
      }
    }
  });

  it('keeps apart what the statement is built differently for, and each caller’s rule', () => {
    const differ: Array<[Search, Search]> = [
      [['Patient', [['identifier', '|12345']]], ['Patient', [['identifier', '12345']]]],
      [['Patient', [['gender:missing', 'true']]], ['Patient', [['gender:missing', 'false']]]],
      [['Observation', [['value-quantity', '5||mg']]], ['Observation', [['value-quantity', '5|http://unitsofmeasure.org|mg']]]],
      [['Observation', [['code', 'x'], ['code', 'y']]], ['Observation', [['code', 'x,y']]]],
      [['Observation', [['_sort', 'date'], ['_cursor', cursor({ keys: [null], rid: 1, direction: 'next' })]]], ['Observation', [['_sort', 'date'], ['_cursor', cursor({ keys: ['2024-01-01T00:00:00+00:00'], rid: 1, direction: 'next' })]]]],
    ];
    for (const [a, b] of differ) {
      const first = pageQuery(parse(a), undefined);
      const second = pageQuery(parse(b), undefined);
      expect(second.sql).not.toBe(first.sql);
      expect(second).toEqual(buildPageQuery(parse(b), undefined, undefined));
    }
    // An empty value is tested for like an absent one ('' is falsy): it is not a slot.
    const withSystem = (system: string) => {
      const q = parse(['Observation', [['value-quantity', '5|http://unitsofmeasure.org|mg']]]);
      const value = (q.filters[0] as { values: Array<{ system?: string }> }).values[0] as { system?: string };
      value.system = system;
      return q;
    };
    pageQuery(withSystem('http://unitsofmeasure.org'), undefined);
    expect(pageQuery(withSystem(''), undefined)).toEqual(buildPageQuery(withSystem(''), undefined, undefined));
    // Two callers with rules of their own: each gets their own rule's values.
    const q = parse(['Goal', [['patient', 'Patient/a']]]);
    const [anne, bjorn] = [rule('anne'), rule('bjorn')];
    expect(pageQuery(q, anne)).toEqual(buildPageQuery(q, anne, undefined));
    expect(pageQuery(q, bjorn)).toEqual(buildPageQuery(q, bjorn, undefined));
    expect(pageQuery(q, bjorn).parameters).toContainEqual(['Patient/bjorn']);
  });

  it('still refuses a paging cursor whose keys do not cast, before any statement', () => {
    for (const key of ['2026-11-25 07:49:20+0p', 'not a date']) {
      const q = parse(['Observation', [['_sort', 'date'], ['_cursor', cursor({ keys: [key], rid: 1, direction: 'next' })]]]);
      expect(() => pageQuery(q, undefined)).toThrow(/paging cursor is not valid/);
    }
  });
});
