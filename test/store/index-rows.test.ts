/**
 * An update writes only the difference of a resource's index rows: rows that stay are not
 * rewritten (each would be a new heap tuple and up to four B-tree entries), rows no longer made
 * go, new ones come — and the stored rows are exactly the new version's, whatever held NULLs.
 */
import { describe, expect, it } from 'vitest';
import type { IndexRows } from '../../src/search/extract.js';
import type { Transaction } from '../../src/store/db.js';
import { ResourceStore, type NewVersion } from '../../src/store/resources.js';
import { useTestDatabase } from '../support/db.js';

const database = useTestDatabase();
const store = new ResourceStore();

function rows(partial: Partial<IndexRows>): IndexRows {
  return { token: [], string: [], date: [], number: [], quantity: [], reference: [], uri: [], composite: [], ...partial };
}

let goals = 0;
/** A new Goal id for each test (they share one database). */
const nextId = () => `g${++goals}`;

function version(id: string, n: number, content: string | null = `{"resourceType":"Goal","id":"${id}","v":${n}}`): NewVersion {
  return { type: 'Goal', id, version: n, lastUpdated: new Date(Date.UTC(2026, 10, 27, 0, 0, n)).toISOString(), method: n === 1 ? 'POST' : 'PUT', content, compartments: ['Patient/p1'] };
}

/** The stored token, date and reference rows of `rid`, each with its tuple id (ctid). */
async function stored(rid: number) {
  const q = database();
  const [token, date, reference] = await Promise.all([
    q.query<{ ctid: string; row: unknown[] }>('SELECT ctid::text, json_build_array(sp, system, code, display) AS row FROM idx_token WHERE rid = $1 ORDER BY sp, code', [rid]),
    q.query<{ ctid: string; row: unknown[] }>('SELECT ctid::text, json_build_array(sp, lo, hi) AS row FROM idx_date WHERE rid = $1 ORDER BY sp', [rid]),
    q.query<{ ctid: string; row: unknown[] }>('SELECT ctid::text, json_build_array(sp, target_type, target_id, url, version) AS row FROM idx_reference WHERE rid = $1 ORDER BY sp', [rid]),
  ]);
  return { token, date, reference };
}

describe('an update\'s index rows', () => {
  it('keeps the rows that stay, replaces the ones that changed, and holds exactly the new version\'s rows', async () => {
    const first = rows({
      token: [
        [1, 'http://hl7.org/fhir/goal-status', 'active', null],
        [2, null, 'kept-without-system', 'Shown'],
        [3, 'urn:s', 'removed', null],
      ],
      date: [[4, '2026-01-01T00:00:00.000Z', '2026-01-01T23:59:59.999Z']],
      reference: [[5, 'Patient', 'p1', null, null]],
    });
    const id = nextId();
    const rid = (await store.insert(database(), version(id, 1), first)) as number;
    const before = await stored(rid);

    const second = rows({
      token: [
        [1, 'http://hl7.org/fhir/goal-status', 'completed', null],
        [2, null, 'kept-without-system', 'Shown'],
        [6, 'urn:s', 'added', null],
      ],
      date: [[4, '2026-01-01T00:00:00.000Z', '2026-01-01T23:59:59.999Z']],
      reference: [[5, 'Patient', 'p1', null, null]],
    });
    expect(await store.update(database(), { rid }, version(id, 2), second)).toBe(true);
    const after = await stored(rid);

    expect(after.token.map((r) => r.row)).toEqual([
      [1, 'http://hl7.org/fhir/goal-status', 'completed', null],
      [2, null, 'kept-without-system', 'Shown'],
      [6, 'urn:s', 'added', null],
    ]);
    // Rows equal in every column, NULLs included, are the same tuples as before.
    expect(after.token[1]?.ctid).toBe(before.token[1]?.ctid);
    expect(after.date.map((r) => r.ctid)).toEqual(before.date.map((r) => r.ctid));
    expect(after.reference.map((r) => r.ctid)).toEqual(before.reference.map((r) => r.ctid));
    expect(after.token[0]?.ctid).not.toBe(before.token[0]?.ctid);
  });

  it('writes no index row when no searchable value changed', async () => {
    const same = rows({ token: [[1, 'urn:s', 'a', null], [1, 'urn:s', 'b', null]], reference: [[5, 'Patient', 'p1', null, null]] });
    const id = nextId();
    const rid = (await store.insert(database(), version(id, 1), same)) as number;
    const before = await stored(rid);
    expect(await store.update(database(), { rid }, version(id, 2), same)).toBe(true);
    expect(await stored(rid)).toEqual(before);
  });

  it('removes every row when the resource is deleted, and brings them back when it is written again', async () => {
    const some = rows({ token: [[1, 'urn:s', 'a', null]], date: [[4, '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z']] });
    const id = nextId();
    const rid = (await store.insert(database(), version(id, 1), some)) as number;
    expect(await store.update(database(), { rid }, version(id, 2, null), undefined)).toBe(true);
    expect(await stored(rid)).toEqual({ token: [], date: [], reference: [] });
    expect(await store.update(database(), { rid }, version(id, 3), some)).toBe(true);
    const again = await stored(rid);
    expect(again.token.map((r) => r.row)).toEqual([[1, 'urn:s', 'a', null]]);
    expect(again.date).toHaveLength(1);
  });

  it('writes nothing when the version it follows is not the stored one', async () => {
    const first = rows({ token: [[1, 'urn:s', 'a', null]] });
    const id = nextId();
    const rid = (await store.insert(database(), version(id, 1), first)) as number;
    const before = await stored(rid);
    // Outside a transaction: the statement itself, not a rollback, must leave the rows alone.
    expect(await store.update(database(), { rid }, version(id, 3), rows({ token: [[1, 'urn:s', 'b', null]] }))).toBe(false);
    expect(await stored(rid)).toEqual(before);
  });

  it('fails the statement, and a transaction that did not wait for it, when the version it follows is not the stored one', async () => {
    const id = nextId();
    const other = nextId();
    const rid = (await store.insert(database(), version(id, 1), rows({ token: [[1, 'urn:s', 'a', null]] }))) as number;
    const attempt = database().transaction(async (tx) => {
      await store.insert(tx, version(other, 1), rows({}));
      tx.expect(
        store.update(tx, { rid }, version(id, 3), rows({ token: [[1, 'urn:s', 'b', null]] })).then((done) => {
          if (!done) throw new Error('the version moved');
        }),
      );
      tx.defer({ text: 'UPDATE resources SET content = $2 WHERE rid = $1', params: [rid, '{"resourceType":"Goal","deferred":true}'] });
    });
    await expect(attempt).rejects.toThrow('the version moved');
    expect(await store.read(database(), 'Goal', other)).toBeUndefined();
    expect((await store.read(database(), 'Goal', id))?.content).toBe(version(id, 1).content);
    expect((await stored(rid)).token.map((r) => r.row[2])).toEqual(['a']);
  });

  it('holds exactly the last version\'s rows after writers updated one resource at the same time', async () => {
    const id = nextId();
    const rid = (await store.insert(database(), version(id, 1), rows({}))) as number;
    const written = (i: number) => rows({ token: [[1, 'urn:s', `writer-${i}`, null], [2, 'urn:s', 'kept', null]], date: [[3, `2026-01-${String(i + 1).padStart(2, '0')}T00:00:00.000Z`, '2026-12-31T00:00:00.000Z']] });
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        database().transaction(async (tx) => {
          const current = await store.lock(tx, 'Goal', id);
          const n = (current?.version ?? 0) + 1;
          expect(await store.update(tx, { rid }, version(id, n, `{"resourceType":"Goal","id":"${id}","writer":${i}}`), written(i))).toBe(true);
        }),
      ),
    );
    const last = JSON.parse((await store.read(database(), 'Goal', id))?.content as string) as { writer: number };
    const now = await stored(rid);
    expect(now.token.map((r) => r.row)).toEqual([
      [1, 'urn:s', `writer-${last.writer}`, null],
      [2, 'urn:s', 'kept', null],
    ]);
    expect(now.date.map((r) => r.row)).toHaveLength(1);
    expect((await store.read(database(), 'Goal', id))?.version).toBe(13);
  });
});

describe('an update whose searchable values did not change', () => {
  /** Locks the Goal and writes version `n` with `index` against the digest the lock read. */
  const lockedUpdate = (id: string, n: number, index: IndexRows | undefined) =>
    database().transaction(async (tx) => {
      const current = await store.lock(tx, 'Goal', id);
      expect(current?.indexDigest).toEqual(expect.any(String));
      return store.update(tx, current as { rid: number; indexDigest: string }, version(id, n, index ? undefined : null), index);
    });
  /** Takes one stored token row away behind the store's back: whether it comes back tells whether an update rewrote the rows. */
  const takeAway = (rid: number, code: string) => database().query('DELETE FROM idx_token WHERE rid = $1 AND code = $2', [rid, code]);
  const a = rows({ token: [[1, 'urn:s', 'a', null], [1, 'urn:s', 'marker', null]], reference: [[5, 'Patient', 'p1', null, null]] });
  const b = rows({ token: [[1, 'urn:s', 'b', null], [1, 'urn:s', 'marker', null]], date: [[4, '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z']] });
  const tokens = async (rid: number) => (await stored(rid)).token.map((r) => r.row[2]);

  it('leaves the index tables alone when the rows are the ones the lock found, and rewrites them when they are not', async () => {
    const id = nextId();
    const rid = (await store.insert(database(), version(id, 1), a)) as number;
    await takeAway(rid, 'marker');
    expect(await lockedUpdate(id, 2, a)).toBe(true);
    expect(await tokens(rid)).toEqual(['a']);

    // Different rows: exactly the new version's, the marker included.
    expect(await lockedUpdate(id, 3, b)).toBe(true);
    expect(await tokens(rid)).toEqual(['b', 'marker']);
    expect((await stored(rid)).date).toHaveLength(1);
    expect((await stored(rid)).reference).toEqual([]);

    // Back to the first rows, then unchanged again.
    expect(await lockedUpdate(id, 4, a)).toBe(true);
    expect(await tokens(rid)).toEqual(['a', 'marker']);
    await takeAway(rid, 'marker');
    expect(await lockedUpdate(id, 5, a)).toBe(true);
    expect(await tokens(rid)).toEqual(['a']);

    // Without a digest (a row loaded in bulk, or from before digests): rewritten, and known from then on.
    expect(await store.update(database(), { rid, indexDigest: null }, version(id, 6), a)).toBe(true);
    expect(await tokens(rid)).toEqual(['a', 'marker']);
    await takeAway(rid, 'marker');
    expect(await lockedUpdate(id, 7, a)).toBe(true);
    expect(await tokens(rid)).toEqual(['a']);
  });

  it('knows the rows after a deletion, a new version, and a rebuild of the index', async () => {
    const id = nextId();
    const rid = (await store.insert(database(), version(id, 1), a)) as number;
    expect(await lockedUpdate(id, 2, undefined)).toBe(true);
    expect(await stored(rid)).toEqual({ token: [], date: [], reference: [] });
    expect(await lockedUpdate(id, 3, a)).toBe(true);
    expect(await tokens(rid)).toEqual(['a', 'marker']);

    // The rebuild writes other rows (as a new extraction would): an update making them changes nothing, one making the old ones puts those back.
    await database().transaction((tx) => store.reindex(tx, [{ rid, compartments: ['Patient/p1'], index: b }]));
    expect(await tokens(rid)).toEqual(['b', 'marker']);
    await takeAway(rid, 'marker');
    expect(await lockedUpdate(id, 4, b)).toBe(true);
    expect(await tokens(rid)).toEqual(['b']);
    expect(await lockedUpdate(id, 5, a)).toBe(true);
    expect(await tokens(rid)).toEqual(['a', 'marker']);
  });
});

describe('the index tables a write names', () => {
  /** The index tables the transaction holds a lock on: every table a statement names is opened and locked with all its indexes. */
  const lockedTables = async (tx: Transaction) =>
    (
      await tx.query<{ relname: string }>(
        "SELECT DISTINCT c.relname FROM pg_locks AS l JOIN pg_class AS c ON c.oid = l.relation WHERE l.pid = pg_backend_pid() AND c.relkind = 'r' AND c.relname LIKE 'idx\\_%' ORDER BY 1",
      )
    ).map((r) => r.relname);

  it('are those its rows go to, and for an update those its rows were in', async () => {
    const id = nextId();
    const tokensAndReference = rows({ token: [[1, 'urn:s', 'a', null]], reference: [[5, 'Patient', 'p1', null, null]] });
    const rid = await database().transaction(async (tx) => {
      const made = await store.insert(tx, version(id, 1), tokensAndReference);
      expect(await lockedTables(tx)).toEqual(['idx_reference', 'idx_token']);
      return made as number;
    });
    await database().transaction(async (tx) => {
      const current = await store.lock(tx, 'Goal', id);
      // The reference rows go: their table is named, from the digest the lock read, though the new version has none there.
      expect(await store.update(tx, current as { rid: number; indexDigest: string }, version(id, 2), rows({ date: [[4, '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z']] }))).toBe(true);
      expect(await lockedTables(tx)).toEqual(['idx_date', 'idx_reference', 'idx_token']);
    });
    expect(await stored(rid)).toMatchObject({ token: [], reference: [], date: [expect.anything()] });
    await database().transaction(async (tx) => {
      await store.insert(tx, version(nextId(), 1), rows({}));
      expect(await lockedTables(tx)).toEqual([]);
    });
  });

  it('are all eight for a row whose digest is from before the digest named its tables', async () => {
    const id = nextId();
    const rid = (await store.insert(database(), version(id, 1), rows({ reference: [[5, 'Patient', 'p1', null, null]] }))) as number;
    // As a release before this one stored it: the hash alone.
    await database().query("UPDATE resources SET index_digest = 'e3b0c44298fc1c149afbf4c8996fb924' WHERE rid = $1", [rid]);
    await database().transaction(async (tx) => {
      const current = await store.lock(tx, 'Goal', id);
      expect(await store.update(tx, current as { rid: number; indexDigest: string }, version(id, 2), rows({ token: [[1, 'urn:s', 'a', null]] }))).toBe(true);
      expect(await lockedTables(tx)).toHaveLength(8);
    });
    expect(await stored(rid)).toMatchObject({ token: [{ row: [1, 'urn:s', 'a', null] }], reference: [], date: [] });
  });
});
