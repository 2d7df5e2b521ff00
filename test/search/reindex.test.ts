import type { Resource } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractIndex } from '../../src/search/extract.js';
import { INDEX_VERSION, type Reindexer, startReindex } from '../../src/search/reindex.js';
import { searchRegistry } from '../../src/search/registry.js';
import { INDEX_TABLE_NAMES, ResourceStore } from '../../src/store/resources.js';
import type { Database, Transaction } from '../../src/store/db.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';

// An upgrade that changes index extraction: the server rebuilds the stored index by itself.

const birthTime = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1948-03-02T07:15:00+01:00' }] };

let t: TestServer;
let patientId: string;
const goalIds: string[] = [];

async function state() {
  const [row] = await t.app.db.query<{ version: number; next_rid: string | number }>('SELECT version, next_rid FROM search_index_state');
  return { version: Number(row?.version), nextRid: Number(row?.next_rid) };
}

/** What the old extraction left: no rows for a primitive with extensions, and a few resources with none at all. */
async function makeIndexOld(): Promise<void> {
  const birthdate = searchRegistry().get('Patient', 'birthdate');
  await t.app.db.query('DELETE FROM idx_date WHERE sp = $1', [birthdate?.sp]);
  const rids = (await t.app.db.query<{ rid: number }>("SELECT rid FROM resources WHERE type = 'Goal' ORDER BY rid LIMIT 5")).map((r) => Number(r.rid));
  for (const table of INDEX_TABLE_NAMES) await t.app.db.query(`DELETE FROM ${table} WHERE rid = ANY($1::int8[])`, [rids]);
  await t.app.db.query('UPDATE search_index_state SET version = 1, next_rid = 0');
}

/** Index rows of every stored resource, against what extraction makes of its content now. */
async function staleResources(): Promise<string[]> {
  const resources = await t.app.db.query<{ rid: number; type: string; id: string; content: string; compartments: string[] }>(
    'SELECT rid, type, id, content, compartments FROM resources WHERE NOT deleted',
  );
  const stale: string[] = [];
  for (const r of resources) {
    const expected = extractIndex(JSON.parse(r.content) as Resource, BASE);
    const counts = await Promise.all(INDEX_TABLE_NAMES.map(async (table) => Number((await t.app.db.query<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE rid = $1`, [r.rid]))[0]?.n)));
    const want = Object.values(expected.rows).map((rows) => rows.length);
    if (JSON.stringify(counts) !== JSON.stringify(want) || JSON.stringify([...r.compartments].sort()) !== JSON.stringify([...expected.compartments].sort())) stale.push(`${r.type}/${r.id}`);
  }
  return stale;
}

/**
 * The test database as a rebuild sees it, with hooks on each statement its transactions send:
 * `before` it goes out (a throw fails it), `after` it has answered (awaited before the answer).
 */
function intercepted(hooks: { before?: (text: string, params?: readonly unknown[]) => void; after?: (text: string) => Promise<void> }): Database {
  return {
    ...t.app.db,
    transaction: (fn) =>
      t.app.db.transaction((tx) =>
        fn({
          ...tx,
          query: async (text: string, params?: readonly unknown[]) => {
            hooks.before?.(text, params);
            const rows = await tx.query(text, params);
            await hooks.after?.(text);
            return rows;
          },
        } as Transaction),
      ),
  };
}

const findsPatient = async () => (await t.request('GET', 'Patient?birthdate=1948-03-02')).body.entry?.map((e: { resource: Resource }) => e.resource.id) ?? [];

beforeAll(async () => {
  t = await startTestServer();
  const patient = await t.create({ resourceType: 'Patient', birthDate: '1948-03-02', _birthDate: birthTime, name: [{ family: 'Nordmann', given: ['Kari'] }] } as Resource);
  patientId = patient.id as string;
  for (let i = 0; i < 12; i++) {
    const goal = await t.create({ resourceType: 'Goal', lifecycleStatus: 'active', description: { text: `Mål ${i}` }, subject: { reference: `Patient/${patientId}` } });
    goalIds.push(goal.id);
  }
});

afterAll(async () => {
  await t.close();
});

describe('search index rebuild', () => {
  it('marks a database without resources current at once', async () => {
    const fresh = await startTestServer();
    try {
      expect(await fresh.app.db.query('SELECT version, next_rid FROM search_index_state')).toEqual([{ version: INDEX_VERSION, next_rid: expect.anything() }]);
    } finally {
      await fresh.close();
    }
  });

  it('rebuilds an index made by an older extraction, and searches find what the new one finds', async () => {
    expect(await staleResources()).toEqual([]);
    await makeIndexOld();
    expect(await findsPatient()).toEqual([]);
    expect((await staleResources()).length).toBe(6);

    const reindex = await startReindex(t.app.db, new ResourceStore(), { baseUrl: BASE, batchSize: 4 });
    await reindex.done;
    expect(await staleResources()).toEqual([]);
    expect(await findsPatient()).toEqual([patientId]);
    expect(await state()).toEqual({ version: INDEX_VERSION, nextRid: 0 });
    const goals = await t.request('GET', `Goal?subject=Patient/${patientId}&lifecycle-status=active&_count=50`);
    expect(goals.body.total ?? goals.body.entry?.length).toBe(12);
  });

  it('goes on where it stopped, and does nothing once the index is current', async () => {
    await makeIndexOld();
    const birthdate = searchRegistry().get('Patient', 'birthdate')?.sp;
    const [{ rid: patientRid } = { rid: 0 }] = await t.app.db.query<{ rid: number }>("SELECT rid FROM resources WHERE type = 'Patient' AND id = $1", [patientId]);
    // The first run is stopped by its own progress, as soon as a batch has gone past the patient.
    let first: Reindexer | undefined;
    let stopped: Promise<void> | undefined;
    const db = intercepted({
      before: (text, params) => {
        if (text.startsWith('UPDATE search_index_state SET next_rid') && Number(params?.[0]) > Number(patientRid)) stopped ??= first?.stop();
      },
    });
    first = await startReindex(db, new ResourceStore(), { baseUrl: BASE, batchSize: 1 });
    await first.done;
    await stopped;
    expect(await state()).toEqual({ version: 1, nextRid: Number(patientRid) + 1 });
    expect(await findsPatient()).toEqual([patientId]);

    // Behind the cursor, the patient's row is taken away again: a run that started over would put it back.
    await t.app.db.query('DELETE FROM idx_date WHERE sp = $1', [birthdate]);
    const second = await startReindex(t.app.db, new ResourceStore(), { baseUrl: BASE, batchSize: 3 });
    await second.done;
    expect(await state()).toEqual({ version: INDEX_VERSION, nextRid: 0 });
    expect(await staleResources()).toEqual([`Patient/${patientId}`]);

    // Current: a start does nothing (the patient stays as it is).
    const third = await startReindex(t.app.db, new ResourceStore(), { baseUrl: BASE });
    await third.done;
    expect(await staleResources()).toEqual([`Patient/${patientId}`]);
    await makeIndexOld();
    await (await startReindex(t.app.db, new ResourceStore(), { baseUrl: BASE })).done;
    expect(await staleResources()).toEqual([]);
  });

  it('tries a batch again after the database failed it (an outage, a deadlock)', async () => {
    await makeIndexOld();
    let failures = 0;
    const db = intercepted({
      before: (text) => {
        if (text.startsWith('SELECT rid, content') && failures++ === 0) throw Object.assign(new Error('connection lost'), { code: '08006' });
      },
    });
    const warnings: string[] = [];
    const logger = { info: () => undefined, error: () => undefined, warn: (_: Record<string, unknown>, message: string) => warnings.push(message) };
    const reindex = await startReindex(db, new ResourceStore(), { baseUrl: BASE, logger });
    await reindex.done;
    expect(warnings).toEqual(['search index rebuild: a batch failed; trying it again']);
    expect(await staleResources()).toEqual([]);
    expect(await state()).toEqual({ version: INDEX_VERSION, nextRid: 0 });
  });

  it('keeps an update that comes while a batch is being indexed (the batch locks its resources)', async () => {
    await makeIndexOld();
    const id = goalIds[0] as string;
    let read!: () => void;
    const batchHasRead = new Promise<void>((resolve) => (read = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // The rebuild's database: a batch waits after reading its resources until the test lets it go on.
    const db = intercepted({
      after: async (text) => {
        if (text.startsWith('SELECT rid, content')) {
          read();
          await released;
        }
      },
    });
    const reindex = await startReindex(db, new ResourceStore(), { baseUrl: BASE, batchSize: 1000 });
    await batchHasRead;
    // The Goal is updated now; on a server it waits for the batch's lock (on PGlite for its transaction).
    const update = t.request('PUT', `Goal/${id}`, { body: { resourceType: 'Goal', id, lifecycleStatus: 'cancelled', description: { text: 'Avlyst' }, subject: { reference: `Patient/${patientId}` } } });
    await Promise.race([update, new Promise((resolve) => setTimeout(resolve, 500))]);
    release();
    await reindex.done;
    expect((await update).status).toBe(200);
    expect(await staleResources()).toEqual([]);
    const cancelled = await t.request('GET', `Goal?subject=Patient/${patientId}&lifecycle-status=cancelled`);
    expect(cancelled.body.entry?.map((e: { resource: Resource }) => e.resource.id)).toEqual([id]);
  });

  it('goes past a stored resource its extraction fails on, and says which', async () => {
    const odd = await t.create({ resourceType: 'Observation', status: 'final', code: { text: 'Puls' }, subject: { reference: `Patient/${patientId}` } });
    // Content no write would store today (a null in an array), as an older release might have left it.
    await t.app.db.query("UPDATE resources SET content = $1 WHERE type = 'Observation' AND id = $2", [JSON.stringify({ ...odd, code: { coding: [null] } }), odd.id]);
    await makeIndexOld();
    const warnings: Array<Record<string, unknown>> = [];
    const logger = { info: () => undefined, error: () => undefined, warn: (details: Record<string, unknown>) => warnings.push(details) };
    const reindex = await startReindex(t.app.db, new ResourceStore(), { baseUrl: BASE, logger, batchSize: 4 });
    await reindex.done;
    expect(await state()).toEqual({ version: INDEX_VERSION, nextRid: 0 });
    const [row] = await t.app.db.query<{ rid: number }>("SELECT rid FROM resources WHERE type = 'Observation' AND id = $1", [odd.id]);
    expect(warnings.map((w) => w.rid)).toEqual([Number(row?.rid)]);
    expect(await findsPatient()).toEqual([patientId]);
    await t.app.db.query("DELETE FROM resources WHERE type = 'Observation' AND id = $1", [odd.id]);
  });

  it('keeps what writes store during the rebuild, with two instances sharing it', async () => {
    await makeIndexOld();
    const a = await startReindex(t.app.db, new ResourceStore(), { baseUrl: BASE, batchSize: 1 });
    const b = await startReindex(t.app.db, new ResourceStore(), { baseUrl: BASE, batchSize: 2 });
    // Meanwhile every Goal is completed (its new index rows written by the update itself).
    const updates = goalIds.map((id, i) =>
      t.request('PUT', `Goal/${id}`, { body: { resourceType: 'Goal', id, lifecycleStatus: 'completed', description: { text: `Mål ${i}` }, subject: { reference: `Patient/${patientId}` } } }),
    );
    expect((await Promise.all(updates)).map((r) => r.status)).toEqual(goalIds.map(() => 200));
    await Promise.all([a.done, b.done]);
    expect(await staleResources()).toEqual([]);
    const completed = await t.request('GET', `Goal?subject=Patient/${patientId}&lifecycle-status=completed&_count=50`);
    expect(completed.body.entry?.length).toBe(12);
    const active = await t.request('GET', `Goal?subject=Patient/${patientId}&lifecycle-status=active&_count=50`);
    expect(active.body.entry ?? []).toEqual([]);
  });
});
