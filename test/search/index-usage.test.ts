/**
 * Every search the API can generate is answered from an index. For each search parameter of every
 * resource type we compile a typical query and ask the planner, with sequential scans disabled,
 * for the generic plan the server runs it with: if a Seq Scan remains, no index can serve that
 * search, and at millions of rows it would read the whole table.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definitions } from '../../src/fhir/definitions.js';
import { parseSearch } from '../../src/search/parse.js';
import { type ParamDef, searchRegistry } from '../../src/search/registry.js';
import { countQuery, pageQuery } from '../../src/search/sql.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { genericPlan } from '../support/explain.js';

let database: TestDatabase;
beforeAll(async () => {
  definitions();
  database = await openTestDatabase();
});
afterAll(async () => database?.drop());

function sampleValue(p: ParamDef): string {
  switch (p.type) {
    case 'string':
      return 'nord';
    case 'token':
      return 'http://loinc.org|1234-5';
    case 'reference':
      return p.targets[0] ? `${p.targets[0]}/abc` : 'http://example.org/x';
    case 'date':
      return 'ge2024-01-01';
    case 'number':
      return 'gt1';
    case 'quantity':
      return 'gt1|http://unitsofmeasure.org|mg';
    case 'uri':
      return 'http://example.org/fhir/x';
    case 'composite':
      return (p.components ?? []).map((c) => sampleValue(c.param).replace(/\$/g, '')).join('$');
  }
}

const BIG_TABLES = /Seq Scan on (resources|resource_versions|idx_\w+)/;

describe('index usage', () => {
  it('answers every parameter of every type, and every modifier, from indexes', async () => {
    const failures: string[] = [];
    const registry = searchRegistry();
    const queries: Array<[string, Array<[string, string]>]> = [];
    for (const type of definitions().resourceTypes) {
      for (const p of registry.forType(type)) {
        queries.push([type, [[p.code, sampleValue(p)]]]);
      }
    }
    for (const [type, params] of [
      ['Patient', [['name:exact', 'Nordmann']]],
      ['Patient', [['name:contains', 'ordma']]],
      ['Patient', [['gender:not', 'male']]],
      ['Patient', [['gender:missing', 'true']]],
      ['Observation', [['code:text', 'oksygen']]],
      ['Observation', [['subject:identifier', 'urn:oid:2.16.578.1.12.4.1.4.1|12345678901']]],
      ['Observation', [['subject:Patient.name', 'nord']]],
      ['Observation', [['subject.identifier', 'urn:oid:2.16.578.1.12.4.1.4.1|12345678901']]],
      ['Patient', [['_has:Observation:subject:code', '1234-5']]],
      ['ValueSet', [['url:below', 'http://samplan.no/fhir']]],
      ['ValueSet', [['url:above', 'http://samplan.no/fhir/ValueSet/x']]],
      ['Patient', [['_id', 'abc']]],
      ['Patient', [['_lastUpdated', 'ge2024-01-01']]],
      ['Patient', [['_tag', 'urn:t|x']]],
      ['Patient', [['_profile', 'http://example.org/p']]],
      ['Patient', [['_security', 'R']]],
      ['CarePlan', [['subject', 'Patient/abc'], ['_sort', '-date'], ['_count', '10']]],
    ] as Array<[string, Array<[string, string]>]>) {
      queries.push([type, params]);
    }
    for (const [type, params] of queries) {
      const query = parseSearch(type, params, { strict: true, baseUrl: 'http://x/fhir' });
      for (const compiled of [pageQuery(query), countQuery(query)]) {
        const text = await genericPlan(database.db, compiled.sql, compiled.parameters);
        if (BIG_TABLES.test(text)) failures.push(`${type}?${params.map((p) => p.join('=')).join('&')}\n${text}`);
      }
    }
    expect(queries.length).toBeGreaterThan(1300);
    expect(failures.slice(0, 3).join('\n\n')).toBe('');
  });
});
