/**
 * The compartment indexes answer every patient-scoped read (src/store/compartments.ts). A GIN
 * index's pending list would make each lookup read every entry added since the last VACUUM — and
 * the embedded database has no autovacuum — so the GIN ones insert directly (migrations 010 and
 * 019): a one-patient lookup reads a few index pages however many writes came before.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inCompartments } from '../../src/store/compartments.js';
import type { Database } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { openPglite } from '../../src/store/pglite.js';
import { onServer, openTestDatabase, useTestDatabase } from '../support/db.js';

const database = useTestDatabase();

describe('the compartment indexes', () => {
  it('have no pending list', async () => {
    const rows = await database().query<{ name: string; options: string[] | null }>(
      `SELECT c.relname AS name, c.reloptions AS options FROM pg_class c
        WHERE c.relname IN ('resources_shared_compartments', 'resources_consent_compartments') ORDER BY c.relname`,
    );
    expect(rows).toEqual([
      { name: 'resources_consent_compartments', options: ['fastupdate=off'] },
      { name: 'resources_shared_compartments', options: ['fastupdate=off'] },
    ]);
  });

  it('find one patient\'s rows from a few index pages after thousands of writes', async () => {
    // 3,000 writes, one statement each as the API makes them, over 300 patients; every third
    // resource is in a second patient's compartment too (a Provenance of a shared transaction).
    for (let i = 0; i < 3000; i++) {
      const compartments = [`Patient/p${i % 300}`, ...(i % 3 ? [] : [`Patient/p${(i + 1) % 300}`])];
      await database().query(`INSERT INTO resources (type, id, version, last_updated, content, compartments) VALUES ($1, $2, 1, now(), '{}', $3::text[])`, [
        i % 10 ? 'Goal' : 'Consent',
        `pending-${i}`,
        compartments,
      ]);
    }
    await database().query('ANALYZE resources');
    for (const [indexes, condition] of [
      [['resources_compartment', 'resources_shared_compartments'], `${inCompartments(String.raw, 'compartments', '$1::text[]')} AND NOT deleted`],
      [['resources_consent_compartments'], `compartments @> $1::text[] AND type = 'Consent' AND NOT deleted`],
    ] as const) {
      const plan = (
        await database().transaction(async (tx) => {
          await tx.query('SET LOCAL enable_seqscan = off');
          return tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id FROM resources WHERE ${condition}`, [['Patient/p7']]);
        })
      )
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      for (const index of indexes) {
        const scan = new RegExp(`Bitmap Index Scan on ${index}\\b[^\\n]*\\n(?:[^\\n]*\\n)*?\\s*Buffers: shared (?:hit=(\\d+))? ?(?:read=(\\d+))?`).exec(plan);
        expect(scan, plan).not.toBeNull();
        const pages = Number(scan?.[1] ?? 0) + Number(scan?.[2] ?? 0);
        expect(pages, plan).toBeLessThanOrEqual(6);
      }
    }
    // Patient p7's own ten resources, and the ten that are also in p7's compartment as their second.
    const found = await database().query(`SELECT id FROM resources WHERE ${inCompartments(String.raw, 'compartments', '$1::text[]')} AND NOT deleted`, [['Patient/p7']]);
    expect(found.length).toBe(20);
  });
});

describe('a database upgraded to the first-compartment index (migration 019)', () => {
  it('finds each patient\'s rows as it did before, with the new indexes in place of the old', async () => {
    // The database as the release before left it: a GIN index over every row's compartments.
    const old = await openTestDatabase({ migrateThrough: '018-audit-partitions' });
    try {
      const rows: Array<[string, string[], boolean]> = [
        ['one', ['Patient/a'], false],
        ['two', ['Patient/b'], false],
        ['shared', ['Patient/b', 'Patient/a'], false],
        ['deleted', ['Patient/a'], true],
        ['public', [], false],
      ];
      for (const [id, compartments, deleted] of rows) {
        await old.db.query(`INSERT INTO resources (type, id, version, last_updated, deleted, content, compartments) VALUES ('Goal', $1, 1, now(), $2, '{}', $3::text[])`, [id, deleted, compartments]);
      }
      const find = (condition: string) => async (refs: string[]) =>
        (await old.db.query<{ id: string }>(`SELECT id FROM resources WHERE ${condition} AND NOT deleted ORDER BY id`, [refs])).map((r) => r.id);
      const before = find('compartments && $1::text[]');
      const expected = [await before(['Patient/a']), await before(['Patient/b']), await before(['Patient/c'])];
      expect(expected).toEqual([['one', 'shared'], ['shared', 'two'], []]);

      expect(await migrate(old.db)).toEqual(['019-first-compartment']);
      const after = find(inCompartments(String.raw, 'compartments', '$1::text[]'));
      expect([await after(['Patient/a']), await after(['Patient/b']), await after(['Patient/c'])]).toEqual(expected);
      const indexes = (await old.db.query<{ name: string }>(`SELECT indexname AS name FROM pg_indexes WHERE tablename = 'resources' AND indexname LIKE '%compartment%' ORDER BY 1`)).map((r) => r.name);
      expect(indexes).toEqual(['resources_compartment', 'resources_consent_compartments', 'resources_shared_compartments']);
      // The statistics that let the planner count the rows in several compartments (the plans: the test above).
      expect(await old.db.query(`SELECT stxname AS name FROM pg_statistic_ext WHERE stxname = 'resources_compartment_count'`)).toEqual([{ name: 'resources_compartment_count' }]);
    } finally {
      await old.drop();
    }
  });
});

describe('the embedded database\'s upkeep', () => {
  // On a server, autovacuum merges the trigram index's pending list; PGlite has none, so the
  // driver does it at open and every 1,000 transactions.
  it.skipIf(onServer)('merges the text index\'s pending list at open, so a :contains search uses that index', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'samplan-upkeep-'));
    /** The index a :contains search's plan scans, and how many of its pages it reads. */
    const containsScan = async (d: Database) => {
      const plan = (
        await d.transaction(async (tx) => {
          await tx.query('SET LOCAL enable_seqscan = off');
          return tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT rid FROM idx_string WHERE norm LIKE '%lindqvist 17%'`);
        })
      )
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      const scan = /Bitmap Index Scan on (\w+)[^\n]*\n(?:[^\n]*\n)*?\s*Buffers: shared (?:hit=(\d+))? ?(?:read=(\d+))?/.exec(plan);
      expect(scan, plan).not.toBeNull();
      return { index: scan?.[1], pages: Number(scan?.[2] ?? 0) + Number(scan?.[3] ?? 0), plan };
    };
    try {
      let embedded = await openPglite({ dataDir });
      await migrate(embedded);
      for (let i = 0; i < 2000; i++) {
        await embedded.query('INSERT INTO idx_string (rid, sp, norm, exact) VALUES ($1, 1, $2, $2)', [i, `kari lindqvist ${i} hjemmesykepleien i bergen`]);
      }
      // With 2,000 rows in the pending list the planner avoided the trigram index here: it read the
      // whole B-tree on norm (35 pages) and filtered 1,889 of 2,000 rows.
      const before = await containsScan(embedded);
      await embedded.close();
      embedded = await openPglite({ dataDir });
      const after = await containsScan(embedded);
      await embedded.close();
      expect(after.index, after.plan).toBe('idx_string_trgm');
      expect(after.pages, after.plan).toBeLessThan(before.pages);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
