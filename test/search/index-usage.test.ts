/**
 * Every search the API can generate is answered from an index. For each search parameter of every
 * resource type we compile a typical query and ask the planner, with sequential scans disabled,
 * for the generic plan the server runs it with: if a Seq Scan remains, no index can serve that
 * search, and at millions of rows it would read the whole table.
 *
 * And a GP's search for one patient (`nhn-patient-nin`), by any parameter of any type in the
 * patient compartment, reads that patient's rows and not the population's: on the demo data and
 * 500 copies of its patients with their statistics, the plan the planner chooses is run with the
 * parameter's commonest value where it has one (`status=active`), and fails on a whole-table or
 * whole-range read or more rows than a patient has (support/explain.ts). On PostgreSQL 15 it fails
 * if the search's other parameters are not checked row by row (search/sql.ts, whereClause); PGlite's
 * planner started from the patient at this size either way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { citizenByKey } from '../../src/demo/population.js';
import { demoPersonnel } from '../../src/demo/seed.js';
import { visibility } from '../../src/fhir/access.js';
import { definitions } from '../../src/fhir/definitions.js';
import { parseSearch } from '../../src/search/parse.js';
import { type ParamDef, searchRegistry } from '../../src/search/registry.js';
import { countQuery, pageQuery } from '../../src/search/sql.js';
import { apiScopes } from '../../src/security/claims.js';
import { patientCompartmentTypes, PrincipalAccess } from '../../src/security/policy.js';
import { lookupPatient } from '../../src/security/privacy.js';
import type { ReadRule } from '../../src/store/resources.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { genericPlan, type LargeRelations, largeRelations, populationReads } from '../support/explain.js';
import { populate } from '../support/population.js';

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

/** A query of every parameter of every type, and of every modifier and special parameter. */
function everySearch(): Array<[string, Array<[string, string]>]> {
  const registry = searchRegistry();
  const queries: Array<[string, Array<[string, string]>]> = [];
  for (const type of definitions().resourceTypes) {
    for (const p of registry.forType(type)) {
      queries.push([type, [[p.code, sampleValue(p)]]]);
    }
  }
  return [
    ...queries,
    ...([
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
    ] as Array<[string, Array<[string, string]>]>),
  ];
}

const label = (type: string, params: Array<[string, string]>) => `${type}?${params.map((p) => p.join('=')).join('&')}`;

describe('index usage', () => {
  it('answers every parameter of every type, and every modifier, from indexes', async () => {
    const failures: string[] = [];
    const queries = everySearch();
    for (const [type, params] of queries) {
      const query = parseSearch(type, params, { strict: true, baseUrl: 'http://x/fhir' });
      for (const compiled of [pageQuery(query), countQuery(query)]) {
        const text = await genericPlan(database.db, compiled.sql, compiled.parameters);
        if (BIG_TABLES.test(text)) failures.push(`${label(type, params)}\n${text}`);
      }
    }
    expect(queries.length).toBeGreaterThan(1300);
    expect(failures.slice(0, 3).join('\n\n')).toBe('');
  });
});

describe('a GP\'s search for one patient of 500', () => {
  let t: TestServer;
  let rule: ReadRule;
  let large: LargeRelations;
  beforeAll(async () => {
    t = await startTestServer();
    await populate(t, 500);
    // The GP's rule for Anne as the server makes it: her privacy settings looked up, the server's scopes and roles.
    const anne = citizenByKey('anne').pid;
    const { security } = loadConfig({ BASE_URL: BASE });
    const scopes = apiScopes(security.audience);
    const access = new PrincipalAccess(demoPersonnel('fastlege', anne, scopes), await lookupPatient(t.database.db, anne), { scopes, allowedRoles: new Set(security.allowedRoles) });
    expect(access.confines).toBeDefined();
    rule = visibility(access);
    large = await largeRelations(t.database.db);
  }, 300_000);
  afterAll(async () => t?.close());

  /**
   * A token or reference parameter's commonest value in the population — every patient's plan is
   * `active`, every check-in has the check-in code — where it has one: the value a plan that
   * started from the parameter would read the population's rows for.
   */
  async function commonest(type: string, code: string): Promise<string | undefined> {
    const p = searchRegistry().get(type, code);
    if (!p || p.unionOf) return undefined;
    const db = t.database.db;
    if (p.type === 'token') {
      const [row] = await db.query<{ system: string | null; code: string }>(
        'SELECT system, code FROM idx_token WHERE sp = $1 AND code IS NOT NULL GROUP BY system, code ORDER BY count(*) DESC LIMIT 1',
        [p.sp],
      );
      return row ? `${row.system ?? ''}|${row.code}` : undefined;
    }
    if (p.type === 'reference') {
      const [row] = await db.query<{ target: string }>(
        `SELECT target_type || '/' || target_id AS target FROM idx_reference WHERE sp = $1 AND target_id IS NOT NULL GROUP BY target_type, target_id ORDER BY count(*) DESC LIMIT 1`,
        [p.sp],
      );
      return row?.target;
    }
    return undefined;
  }

  it('by any parameter, reads that patient\'s rows and not the population\'s', async () => {
    const compartment = patientCompartmentTypes();
    const queries = everySearch().filter(([type]) => compartment.has(type));
    expect(queries.length).toBeGreaterThan(500);
    // The commonest value where there is one, else the sample.
    let common = 0;
    for (const query of queries) {
      const [type, params] = query;
      const code = params[0]?.[0] as string;
      const value = params.length === 1 && !code.includes(':') ? await commonest(type, code) : undefined;
      if (value === undefined) continue;
      query[1] = [[code, value]];
      common++;
    }
    expect(common).toBeGreaterThan(50);
    const failures: string[] = [];
    for (const [type, params] of queries) {
      const query = parseSearch(type, params, { strict: true, baseUrl: 'http://x/fhir' });
      for (const compiled of [pageQuery(query, rule), countQuery(query, rule)]) {
        const plan = await genericPlan(t.database.db, compiled.sql, compiled.parameters, { free: true, analyze: true });
        const reads = populationReads(plan, large);
        if (reads.length) failures.push(`${label(type, params)}\n  reads: ${reads.join('; ')}\n${plan}`);
      }
    }
    expect(failures.slice(0, 3).join('\n\n')).toBe('');
  });
});
