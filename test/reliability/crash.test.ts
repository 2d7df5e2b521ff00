/**
 * Crash safety. Concurrent writes (creates, updates, transaction Bundles) run while the server
 * process is killed with SIGKILL — on a durable PostgreSQL cluster and on the embedded PGlite data
 * directory — or while PostgreSQL itself goes down with `pg_ctl -m immediate stop`. Afterwards
 * every acknowledged write (2xx received) is there with its content, and each transaction is
 * there whole or not at all.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  brief,
  Clinician,
  goal,
  inParallel,
  isOutcome,
  observation,
  registerPatient,
  RELIABILITY_SYSTEM,
  type Reply,
  type Running,
  scale,
  searchAll,
  serverEnv,
  sleep,
  startServer,
  type TestPatient,
  versionOf,
  waitFor,
  workspace,
} from './support.js';

const WRITES = scale(2000, 400);
const CONCURRENCY = 50;
const GOALS_PER_PATIENT = 10;

interface Acked {
  creates: Array<{ type: string; id: string; marker: string; patient: TestPatient }>;
  updates: Array<{ id: string; version: string; description: string; patient: TestPatient }>;
  transactions: Array<{ marker: string; ids: string[]; patient: TestPatient }>;
}

interface Workload {
  patients: TestPatient[];
  goals: Array<{ id: string; patient: TestPatient }>;
}

async function prepare(c: Clinician, first: number): Promise<Workload> {
  const patients: TestPatient[] = [];
  for (let n = first; n < first + 4; n++) patients.push(await registerPatient(c, n));
  const goals: Workload['goals'] = [];
  await inParallel(
    patients.flatMap((p) => Array.from({ length: GOALS_PER_PATIENT }, (_, i) => ({ p, i }))),
    8,
    async ({ p, i }) => {
      const made = await c.fhir('POST', 'Goal', p.nin, goal(p.id, `Mål ${i}`));
      expect(made.status).toBe(201);
      goals.push({ id: made.body.id, patient: p });
    },
  );
  return { patients, goals };
}

/** The i-th write: a create, an update or a transaction of three resources, in turn. */
function write(c: Clinician, w: Workload, i: number, acked: Acked): Promise<Reply> {
  const patient = w.patients[i % w.patients.length] as TestPatient;
  const marker = `w-${i}`;
  switch (i % 3) {
    case 0:
      return c.fhir('POST', 'Observation', patient.nin, observation(patient.id, `Måling ${i}`, marker)).then((r) => {
        if (r.status === 201) acked.creates.push({ type: 'Observation', id: r.body.id, marker, patient });
        return r;
      });
    case 1: {
      const g = w.goals[i % w.goals.length] as Workload['goals'][number];
      const description = `Oppdatering ${i}`;
      return c.fhir('PUT', `Goal/${g.id}`, g.patient.nin, { ...goal(g.patient.id, description), id: g.id }).then((r) => {
        if (r.status === 200) acked.updates.push({ id: g.id, version: versionOf(r.etag) as string, description, patient: g.patient });
        return r;
      });
    }
    default: {
      const entry = [goal(patient.id, `Transaksjonsmål ${i}`, marker), observation(patient.id, `Transaksjonsmåling ${i}a`, `${marker}-a`), observation(patient.id, `Transaksjonsmåling ${i}b`, `${marker}-b`)].map((resource) => ({
        fullUrl: `urn:uuid:${crypto.randomUUID()}`,
        resource,
        request: { method: 'POST', url: resource.resourceType },
      }));
      return c.fhir('POST', '', patient.nin, { resourceType: 'Bundle', type: 'transaction', entry }).then((r) => {
        if (r.status === 200) acked.transactions.push({ marker, ids: (r.body.entry ?? []).map((e: { response: { location: string } }) => /[A-Za-z]+\/[^/]+(?=\/_history)/.exec(e.response.location)?.[0]), patient });
        return r;
      });
    }
  }
}

/**
 * Runs `total` writes, `CONCURRENCY` at a time, and calls `fault` once `faultAfter` are
 * acknowledged (the writes in flight carry on into it). Returns what was acknowledged and every reply.
 */
async function writeWhile(c: Clinician, w: Workload, total: number, faultAfter: number, fault: () => Promise<void>): Promise<{ acked: Acked; replies: Reply[]; faultAt: number }> {
  const acked: Acked = { creates: [], updates: [], transactions: [] };
  const replies: Reply[] = [];
  let next = 0;
  let ok = 0;
  let faulted: Promise<void> | undefined;
  let faultAt = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < total; i = next++) {
        const r = await write(c, w, i, acked);
        replies.push(r);
        if (r.status >= 200 && r.status < 300 && ++ok === faultAfter) {
          faultAt = replies.length;
          faulted = fault();
        }
      }
    }),
  );
  await faulted;
  return { acked, replies, faultAt };
}

/** Every acknowledged write is there with its content; every transaction is whole or absent. */
async function verify(c: Clinician, w: Workload, acked: Acked): Promise<{ inDoubtTransactions: number }> {
  await inParallel(acked.creates, 16, async (a) => {
    const r = await c.fhir('GET', `${a.type}/${a.id}`, a.patient.nin);
    expect(r.status, `${a.type}/${a.id} acknowledged but missing`).toBe(200);
    expect(r.body.identifier?.[0]?.value).toBe(a.marker);
  });
  const latest = new Map<string, number>();
  await inParallel(acked.updates, 16, async (a) => {
    const r = await c.fhir('GET', `Goal/${a.id}/_history/${a.version}`, a.patient.nin);
    expect(r.status, `Goal/${a.id}/_history/${a.version} acknowledged but missing`).toBe(200);
    expect(r.body.description.text).toBe(a.description);
    latest.set(a.id, Math.max(latest.get(a.id) ?? 0, Number(a.version)));
  });
  await inParallel([...latest], 16, async ([id, version]) => {
    const g = w.goals.find((x) => x.id === id) as Workload['goals'][number];
    const r = await c.fhir('GET', `Goal/${id}`, g.patient.nin);
    expect(Number(r.body.meta.versionId)).toBeGreaterThanOrEqual(version);
  });
  // All or nothing: group what each patient has by the write's marker.
  const found = new Map<string, string[]>();
  for (const p of w.patients) {
    for (const type of ['Goal', 'Observation']) {
      for (const r of await searchAll(c, p.nin, `${type}?subject=Patient/${p.id}&identifier=${encodeURIComponent(`${RELIABILITY_SYSTEM}|`)}&_count=500`)) {
        // w-<i> or w-<i>-a|b; transactions are the writes i ≡ 2 (mod 3), creates single Observations.
        const [, i] = (r.identifier?.find((x: { system: string }) => x.system === RELIABILITY_SYSTEM)?.value as string).split('-') as [string, string];
        if (Number(i) % 3 !== 2) continue;
        const marker = `w-${i}`;
        found.set(marker, [...(found.get(marker) ?? []), `${type}/${r.id}`]);
      }
    }
  }
  for (const [marker, ids] of found) expect(ids, `transaction ${marker} is half there`).toHaveLength(3);
  for (const a of acked.transactions) expect((found.get(a.marker) ?? []).sort(), `transaction ${a.marker} acknowledged`).toEqual([...a.ids].sort());
  return { inDoubtTransactions: found.size - acked.transactions.length };
}

const summary = (acked: Acked) => `${acked.creates.length} creates, ${acked.updates.length} updates, ${acked.transactions.length} transactions`;
const count = (acked: Acked) => acked.creates.length + acked.updates.length + acked.transactions.length;

describe('crash safety', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f();
  });

  for (const kind of ['postgres', 'pglite'] as const) {
    it(`kill -9 of the server during ${WRITES} concurrent writes loses no acknowledged write (${kind})`, async () => {
      const ws = await workspace(kind, 'crash', true);
      cleanup.push(() => ws.remove());
      const env = serverEnv(ws.dir, ws.databaseUrl);
      let server: Running = await startServer(env);
      cleanup.push(() => server.stop());
      const c = await Clinician.login(server, ws.dir);
      const w = await prepare(c, 100);

      const { acked, replies } = await writeWhile(c, w, WRITES, Math.floor(WRITES * 0.4), () => server.kill('SIGKILL'));
      const unanswered = replies.filter((r) => r.status === 0).length;
      // Before the kill everything succeeds; after it nothing answers.
      expect(replies.filter((r) => r.status !== 0 && (r.status < 200 || r.status >= 300)).map(brief)).toEqual([]);
      expect(unanswered).toBeGreaterThan(0);

      const restartedAt = performance.now();
      server = await startServer({ ...env, PORT: String(server.port) });
      const restartMs = Math.round(performance.now() - restartedAt);
      const { inDoubtTransactions } = await verify(c, w, acked);
      console.log(`[${kind}] kill -9 after ${count(acked)} acknowledged writes (${summary(acked)}), ${unanswered} unanswered; restart ${restartMs} ms; all acknowledged writes there; ${inDoubtTransactions} unacknowledged transactions committed whole`);
      // Writes work after the restart.
      const after = await c.fhir('POST', 'Observation', w.patients[0]?.nin, observation(w.patients[0]?.id as string, 'Etter omstart'));
      expect(after.status).toBe(201);
    });
  }

  it(`an immediate shutdown of PostgreSQL during ${WRITES} concurrent writes: the server recovers by itself, no acknowledged write is lost`, async () => {
    const ws = await workspace('postgres', 'crash_pg', true);
    cleanup.push(() => ws.remove());
    const { pg } = ws;
    const server = await startServer(serverEnv(ws.dir, ws.databaseUrl));
    cleanup.push(() => server.stop());
    const c = await Clinician.login(server, ws.dir);
    const w = await prepare(c, 200);

    const { acked, replies } = await writeWhile(c, w, WRITES, Math.floor(WRITES * 0.3), async () => {
      pg.stop('immediate');
      // The remaining writes meet the outage; then PostgreSQL comes back and recovers from its WAL.
      await sleep(2000);
      pg.start();
    });
    const failed = replies.filter((r) => r.status < 200 || r.status >= 300);
    expect(failed.length).toBeGreaterThan(0);
    // The server answers throughout: a 503 with an OperationOutcome, never a dropped connection or a 500.
    expect(failed.filter((r) => r.status !== 503 || !isOutcome(r.body)).map(brief)).toEqual([]);

    // Not restarted: it reconnects on its own.
    await waitFor('the server to be ready again', async () => (await fetch(`${server.url}/readyz`)).status === 200, 30_000, 200);
    const after = await c.fhir('POST', 'Observation', w.patients[0]?.nin, observation(w.patients[0]?.id as string, 'Etter databasekrasj'));
    expect(after.status, JSON.stringify(after.body)).toBe(201);
    const { inDoubtTransactions } = await verify(c, w, acked);
    console.log(`[postgres immediate stop] after ${Math.floor(WRITES * 0.3)} acknowledged: ${count(acked)} acknowledged in all (${summary(acked)}), ${failed.length} × 503 (slowest ${Math.round(Math.max(...failed.map((r) => r.ms)))} ms); all acknowledged writes there; ${inDoubtTransactions} unacknowledged transactions committed whole`);
  });
});
