/**
 * Migration 013: stored resource text and audit records are compressed with lz4 where the server
 * has it (PostgreSQL as Debian builds it), and with PostgreSQL's default where it does not
 * (PGlite) — either way large text comes back exactly as stored.
 */
import { describe, expect, it } from 'vitest';
import { onServer, useTestDatabase } from '../support/db.js';

const database = useTestDatabase();

/** The compressed columns, by table name (the order the catalogue query gives). */
const COLUMNS = [
  { table: 'audit_events', column: 'content' },
  { table: 'resource_versions', column: 'content' },
  { table: 'resources', column: 'content' },
];

/** Text of `size` characters that compresses about as well as a FHIR resource (repeated keys, varying values). */
function resourceLikeText(size: number): string {
  let text = '';
  for (let i = 0; text.length < size; i++) text += `{"system":"urn:oid:2.16.578.1.12.4.1.1.${i}","code":"${(i * 7919) % 10007}","display":"Kode ${i} æøå"},`;
  return text.slice(0, size);
}

describe('compression of stored text', () => {
  it('is lz4 for resource text and audit records where the server offers it, the default elsewhere', async () => {
    const [{ lz4 } = { lz4: false }] = await database().query<{ lz4: boolean }>(
      `SELECT 'lz4' = ANY (enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'`,
    );
    // PostgreSQL as Debian builds it has lz4; PGlite is built without.
    expect(lz4).toBe(onServer);
    const columns = await database().query<{ table: string; column: string; compression: string }>(
      `SELECT c.relname AS table, a.attname AS column, a.attcompression::text AS compression
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE (c.relname, a.attname) IN (('resources', 'content'), ('resource_versions', 'content'), ('audit_events', 'content'))
        ORDER BY c.relname`,
    );
    expect(columns).toEqual(COLUMNS.map((c) => ({ ...c, compression: lz4 ? 'l' : '' })));
    // The records themselves are in the trail's monthly partitions (migration 018).
    const partitions = await database().query<{ compression: string }>(
      `SELECT a.attcompression::text AS compression FROM pg_inherits i JOIN pg_attribute a ON a.attrelid = i.inhrelid AND a.attname = 'content'
        WHERE i.inhparent = 'audit_events'::regclass`,
    );
    expect(partitions.length).toBeGreaterThanOrEqual(3);
    expect(partitions.map((p) => p.compression)).toEqual(partitions.map(() => (lz4 ? 'l' : '')));
  });

  it('gives back large text exactly as stored, compressed the way the column says', async () => {
    const text = resourceLikeText(6000);
    await database().query(`INSERT INTO resources (type, id, version, last_updated, content, compartments) VALUES ('Basic', 'large', 1, now(), $1, '{}')`, [text]);
    await database().query(
      `INSERT INTO resource_versions (rid, version, type, id, last_updated, method, content)
       SELECT rid, 1, type, id, last_updated, 'POST', content FROM resources WHERE type = 'Basic' AND id = 'large'`,
    );
    await database().query(`INSERT INTO audit_events (id, recorded, patient_id, content) VALUES ('large', now(), NULL, $1)`, [text]);
    const stored = await database().query<{ content: string; compression: string | null }>(
      `SELECT content, pg_column_compression(content) AS compression FROM resources WHERE id = 'large'
       UNION ALL SELECT content, pg_column_compression(content) FROM resource_versions WHERE id = 'large'
       UNION ALL SELECT content, pg_column_compression(content) FROM audit_events WHERE id = 'large'`,
    );
    expect(stored.map((r) => r.content === text)).toEqual([true, true, true]);
    expect(stored.map((r) => r.compression)).toEqual(Array(3).fill(onServer ? 'lz4' : 'pglz'));
  });
});
