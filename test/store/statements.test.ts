/**
 * Statements as both drivers run them: prepared once per SQL text and executed many times (the
 * embedded database through src/store/pglite-statements.ts, the server through postgres.js).
 * Values of every type the server sends and reads come through unchanged, a failed statement
 * leaves the connection usable, and a statement whose table changed is prepared again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/store/db.js';
import { sqlState, textOf } from '../../src/store/db.js';
import { compile, constantList } from '../../src/store/sql.js';
import { sql } from 'kysely';
import { onServer, openTestDatabase, type TestDatabase } from '../support/db.js';

let t: TestDatabase;
let db: Database;

beforeAll(async () => {
  t = await openTestDatabase();
  db = t.db;
  await db.query(`CREATE TABLE st_test (id int8 PRIMARY KEY, label text, tags text[], at timestamptz, flag boolean)`);
});

afterAll(async () => {
  await t?.drop();
});

interface Row {
  id: number;
  label: string | null;
  tags: string[] | null;
  at: Date | null;
  flag: boolean | null;
}

const INSERT = 'INSERT INTO st_test (id, label, tags, at, flag) VALUES ($1, $2, $3, $4, $5) RETURNING id';
const SELECT = 'SELECT id, label, tags, at, flag FROM st_test WHERE id = $1';

describe('a statement run many times', () => {
  it('gives each execution its own values and rows, typed as the database has them', async () => {
    const at = new Date('2026-11-26T12:34:56.789Z');
    const rows: Row[] = [
      { id: 1, label: 'Ågot Ødegård', tags: ['Patient/a', 'Patient/b'], at, flag: true },
      { id: 2, label: null, tags: [], at: null, flag: false },
      // Long text travels as UTF-8 bytes on the embedded database: letters outside ASCII and emoji survive.
      { id: 3, label: 'Æøå – «hjemmesykepleie» 🫁\n'.repeat(200), tags: ['x'.repeat(300)], at, flag: true },
      { id: 9_007_199_254_740_991, label: 'quote \' and "double" and \\ backslash', tags: ['with,comma', 'with "quote"', 'NULL'], at, flag: null },
    ];
    // More executions than PostgreSQL's five custom plans: the later ones may use the generic plan.
    for (let round = 0; round < 3; round++) {
      for (const r of rows) {
        if (round === 0) expect(await db.query<{ id: number }>(INSERT, [r.id, r.label, r.tags, r.at, r.flag])).toEqual([{ id: r.id }]);
        expect(await db.query<Row>(SELECT, [r.id])).toEqual([r]);
      }
    }
    expect(await db.query(SELECT, [404])).toEqual([]);
  });

  it('answers with the database error and stays usable, outside and inside a transaction', async () => {
    await db.query(INSERT, [100, 'first', null, null, null]);
    const duplicate = await db.query(INSERT, [100, 'again', null, null, null]).catch((err: unknown) => err);
    expect(sqlState(duplicate)).toBe('23505');
    expect(await db.query<{ label: string }>('SELECT label FROM st_test WHERE id = $1', [100])).toEqual([{ label: 'first' }]);

    const inside = await db
      .transaction(async (tx) => {
        await tx.query(INSERT, [101, 'rolled back', null, null, null]);
        await tx.query(INSERT, [100, 'again', null, null, null]);
      })
      .catch((err: unknown) => err);
    expect(sqlState(inside)).toBe('23505');
    expect(await db.query(SELECT, [101])).toEqual([]);
    await db.transaction(async (tx) => {
      await tx.query(INSERT, [101, 'committed', null, null, null]);
    });
    expect(await db.query<{ label: string }>('SELECT label FROM st_test WHERE id = $1', [101])).toEqual([{ label: 'committed' }]);
  });

  it('reports a statement that cannot be prepared, and runs the next one', async () => {
    const err = await db.query('SELEC id FROM st_test').catch((e: unknown) => e);
    expect(sqlState(err)).toBe('42601');
    const wrongType = await db.query(SELECT, ['not a number']).catch((e: unknown) => e);
    expect(sqlState(wrongType)).toBe('22P02');
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM st_test'))[0]?.n).toBeGreaterThan(0);
  });

  it('runs more distinct statements than are kept prepared, and keeps only a bounded number', async () => {
    for (let k = 0; k < 300; k++) {
      expect(await db.query<{ k: number }>(`SELECT $1::int + ${k} AS k`, [1])).toEqual([{ k: k + 1 }]);
    }
    // The earliest, closed since, is prepared again.
    expect(await db.query<{ k: number }>('SELECT $1::int + 0 AS k', [5])).toEqual([{ k: 5 }]);
    if (db.kind === 'pglite') {
      const [held] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_statements');
      expect(held?.n).toBeLessThanOrEqual(256);
    }
  });

  it('keeps many users\' statements and transactions apart when they come at once', async () => {
    // New statement texts, first used by several callers at the same moment, between transactions.
    const work = Array.from({ length: 40 }, async (_, k) => {
      const id = 1000 + k;
      if (k % 4 === 0) {
        await db.transaction(async (tx) => {
          await tx.query(INSERT, [id, `tx ${k}`, [`t${k}`], null, true]);
          const [mine] = await tx.query<{ label: string }>('SELECT label FROM st_test WHERE id = $1 AND flag', [id]);
          expect(mine?.label).toBe(`tx ${k}`);
        });
      } else {
        await db.query(INSERT, [id, `single ${k}`, null, null, false]);
      }
      const [row] = await db.query<{ id: number; doubled: number }>('SELECT id, id * $2::int AS doubled FROM st_test WHERE id = $1', [id, 2]);
      expect(row).toEqual({ id, doubled: id * 2 });
    });
    await Promise.all(work);
    const [count] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM st_test WHERE id BETWEEN 1000 AND 1039');
    expect(count?.n).toBe(40);
  });

  it('prepares a statement again when its table changed under it', async () => {
    const all = 'SELECT * FROM st_test WHERE id = $1';
    expect(await db.query(all, [1])).toHaveLength(1);
    await db.query('ALTER TABLE st_test ADD COLUMN extra text');
    const [row] = await db.query<Record<string, unknown>>(all, [1]);
    expect(row).toHaveProperty('extra', null);
    expect(row).toHaveProperty('label', 'Ågot Ødegård');
  });

  // QueryOptions.bytes (scripts/patch-postgres.mjs, fix 5): the server's driver hands the named
  // column over as the UTF-8 it received; other columns, and the other driver, give strings.
  it('gives the column named in `bytes` as the bytes the server sent, where the driver can', async () => {
    const label = 'Ågot – 🚶 "x" \u2028';
    await db.query(INSERT, [40, label, null, null, null]);
    for (let i = 0; i < 3; i++) {
      const [row] = await db.query<{ label: string | Buffer; id: number; tags: null }>(SELECT, [40], { bytes: 'label' });
      expect(row?.id).toBe(40);
      if (onServer) expect(Buffer.isBuffer(row?.label) && row.label.equals(Buffer.from(label))).toBe(true);
      else expect(row?.label).toBe(label);
      const [text] = await db.query<{ label: string }>(SELECT, [40]);
      expect(text?.label).toBe(label);
    }
    await db.transaction(async (tx) => {
      const [row] = await tx.query<{ label: string | Buffer }>(SELECT, [40], { bytes: 'label' });
      expect(textOf(row?.label as string | Buffer)).toBe(label);
      expect(typeof row?.label).toBe(onServer ? 'object' : 'string');
    });
  });
});

describe('a list fixed in the code', () => {
  it('is part of the statement\'s text, matches like the same list bound as a parameter, and takes plain names only', async () => {
    const list = constantList(['Organization', 'Practitioner']);
    const inline = compile(sql`SELECT ${'Practitioner'} = ANY(${list}) AS hit, ${'Patient'} = ANY(${list}) AS miss`);
    expect(inline.sql).toContain("'{Organization,Practitioner}'::text[]");
    expect(inline.parameters).toEqual(['Practitioner', 'Patient']);
    expect(await db.query(inline.sql, inline.parameters)).toEqual([{ hit: true, miss: false }]);
    expect(() => constantList(['Patient', "x'); DROP TABLE resources; --"])).toThrow(/plain names only/);
    expect(() => constantList(['a,b'])).toThrow(/plain names only/);
  });
});
