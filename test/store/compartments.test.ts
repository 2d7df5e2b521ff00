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
import { onServer, useTestDatabase } from '../support/db.js';

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
