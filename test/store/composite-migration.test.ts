/**
 * Migration 014 converts composite index rows stored the old way (a value pair once for every way
 * to name it, as one key) into one row per pair with codes and systems in columns: after it, a
 * database indexed before answers composite searches as one indexed now does, before the search
 * index rebuild has reached its resources.
 */
import type { Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { type CompositeRow, extractIndex, type IndexRows } from '../../src/search/extract.js';
import { migrate } from '../../src/store/migrate.js';
import { ResourceStore } from '../../src/store/resources.js';
import { useTestDatabase } from '../support/db.js';

const database = useTestDatabase();
const store = new ResourceStore();
const BASE = 'http://localhost/fhir';
const SEP = '\u001f';

/** The keys the old extraction made for a token component: every way a search could name it. */
function oldTokenForms(code: string, system: string | null): string[] {
  return system ? [code, `${system}|${code}`, `${system}|`] : [code, `|${code}`];
}

/** The rows the old extraction stored for the value pairs `rows` (as extraction makes them now). */
function oldRows(rows: CompositeRow[]): unknown[][] {
  return rows.flatMap(([sp, c1, s1, c2, s2, lo, hi, dlo, dhi, str]) => {
    // A range's unit namings (c2) are rows of their own already, and were then too.
    const range = lo !== null || dlo !== null || str !== null;
    return oldTokenForms(c1, s1).flatMap((p1) => (range ? [c2] : oldTokenForms(c2, s2)).map((p2) => [sp, `${p1}${SEP}${p2}`, lo, hi, dlo, dhi, str]));
  });
}

function observation(value: Record<string, unknown>, code = { system: 'http://loinc.org', code: '59408-5' }): Resource {
  return { resourceType: 'Observation', status: 'final', code: { coding: [code] }, ...value } as Resource;
}

const RESOURCES: Resource[] = [
  observation(
    {
      valueCodeableConcept: { coding: [{ system: 'urn:example:zone', code: 'green' }, { code: 'grønn' }] },
      component: [{ code: { coding: [{ system: 'http://loinc.org', code: '59408-5' }] }, valueQuantity: { value: 95.5, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } }],
    },
    { system: 'urn:example:self-report', code: 'zone' },
  ),
  observation({ valueQuantity: { value: 320, unit: 'L/min' } }, { code: 'pef' } as never),
  observation({ valueDateTime: '2026-10-01' }),
  observation({ valueString: 'Tidligere røyker' }),
];

const SELECT = `SELECT json_build_array(sp, c1, s1, c2, s2, lo::text, hi::text, dlo::text, dhi::text, str) AS row FROM idx_composite WHERE rid = $1`;

async function storedRows(rid: number): Promise<string[]> {
  return (await database().query<{ row: unknown[] }>(SELECT, [rid])).map((r) => JSON.stringify(r.row)).sort();
}

function indexRows(composite: CompositeRow[]): IndexRows {
  return { token: [], string: [], date: [], number: [], quantity: [], reference: [], uri: [], composite };
}

describe('migration 014', () => {
  it('turns each value pair\'s rows into the one row extraction makes now', async () => {
    const db = database();
    const now = new Date().toISOString();
    const version = (id: string) => ({ type: 'Observation', id, version: 1, lastUpdated: now, method: 'POST' as const, content: '{}', compartments: [] });
    const composites = RESOURCES.map((r) => extractIndex(r, BASE).rows.composite);
    expect(composites.every((rows) => rows.length > 0)).toBe(true);
    const oldRids: number[] = [];
    for (let i = 0; i < RESOURCES.length; i++) oldRids.push((await store.insert(db, version(`old-${i}`), indexRows([]))) as number);

    // The database as it was before migration 014 (the table as migration 001 made it).
    await db.query('DROP TABLE idx_composite');
    await db.query(`CREATE TABLE idx_composite (rid bigint NOT NULL, sp integer NOT NULL, key text COLLATE "C" NOT NULL, lo numeric, hi numeric, dlo timestamptz, dhi timestamptz, str text COLLATE "C")`);
    await db.query(`DELETE FROM schema_migrations WHERE id = '014-composite-columns'`);
    for (const [i, rows] of composites.entries()) {
      for (const row of oldRows(rows)) await db.query('INSERT INTO idx_composite (rid, sp, key, lo, hi, dlo, dhi, str) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', [oldRids[i], ...row]);
    }

    expect(await migrate(db)).toEqual(['014-composite-columns']);

    for (const [i, rows] of composites.entries()) {
      const rid = (await store.insert(db, version(`new-${i}`), indexRows(rows))) as number;
      const made = await storedRows(rid);
      expect(made).toHaveLength(rows.length);
      expect(await storedRows(oldRids[i] as number)).toEqual(made);
    }
  });
});
