/**
 * Races through the real HTTP API, on PostgreSQL and on the embedded database: concurrent
 * If-Match updates of one CarePlan (exactly one winner per version, 412 for the rest, nothing
 * lost), and concurrent creations of an active plan for one patient (exactly one succeeds).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  carePlan,
  Clinician,
  errorCode,
  isOutcome,
  registerPatient,
  type Running,
  scale,
  searchAll,
  serverEnv,
  startServer,
  versionOf,
  workspace,
  type Workspace,
} from './support.js';

const UPDATERS = 100;
const CREATORS = 50;

describe.each(['postgres', 'pglite'] as const)('races on %s', (kind) => {
  let ws: Workspace | undefined;
  let server: Running;
  let c: Clinician;

  beforeAll(async () => {
    ws = await workspace(kind, 'races');
    server = await startServer(serverEnv(ws.dir, ws.databaseUrl));
    c = await Clinician.login(server, ws.dir);
  });
  afterAll(async () => {
    await server?.stop();
    ws?.remove();
  });

  it(`${UPDATERS} concurrent If-Match updates of one version: exactly one wins, the rest get 412 with an OperationOutcome`, async () => {
    const p = await registerPatient(c, 1);
    const made = await c.fhir('POST', 'CarePlan', p.nin, carePlan(p.id, 'Plan'), { prefer: 'return=representation' });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const plan = made.body;
    const version = versionOf(made.etag);
    expect(version).toBeDefined();

    const replies = await Promise.all(
      Array.from({ length: UPDATERS }, (_, i) =>
        c.fhir('PUT', `CarePlan/${plan.id}`, p.nin, { ...plan, meta: undefined, description: `Oppdatering ${i}` }, { 'if-match': `W/"${version}"` }),
      ),
    );
    const won = replies.filter((r) => r.status === 200);
    const lost = replies.filter((r) => r.status === 412);
    expect(replies.filter((r) => r.status !== 200 && r.status !== 412).map((r) => `${r.status} ${JSON.stringify(r.body).slice(0, 200)}`)).toEqual([]);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(UPDATERS - 1);
    for (const r of lost) expect(isOutcome(r.body), JSON.stringify(r.body)).toBe(true);

    const now = await c.fhir('GET', `CarePlan/${plan.id}`, p.nin);
    expect(now.body.meta.versionId).toBe(versionOf(won[0]?.etag ?? null));
    expect(now.body.description).toBe(won[0]?.body.description);
  });

  it(`${scale(UPDATERS, 30)} clients each updating with If-Match until they win: one winner per version, every winner in the history`, async () => {
    const p = await registerPatient(c, 2);
    const made = await c.fhir('POST', 'CarePlan', p.nin, carePlan(p.id, 'Plan'), { prefer: 'return=representation' });
    expect(made.status).toBe(201);
    const id = made.body.id as string;
    const winners = new Map<string, string>(); // version → description
    let conflicts = 0;
    const rounds = scale(UPDATERS, 30);
    await Promise.all(
      Array.from({ length: rounds }, async (_, i) => {
        const description = `Klient ${i}`;
        for (let attempt = 0; attempt < 10 * UPDATERS; attempt++) {
          const current = await c.fhir('GET', `CarePlan/${id}`, p.nin);
          expect(current.status).toBe(200);
          const put = await c.fhir('PUT', `CarePlan/${id}`, p.nin, { ...current.body, meta: undefined, description }, { 'if-match': current.etag as string });
          if (put.status === 412) {
            expect(isOutcome(put.body)).toBe(true);
            conflicts++;
            continue;
          }
          expect(put.status, JSON.stringify(put.body)).toBe(200);
          const v = versionOf(put.etag) as string;
          // Exactly one winner per version.
          expect(winners.has(v), `version ${v} won twice`).toBe(false);
          winners.set(v, description);
          return;
        }
        throw new Error(`client ${i} never won`);
      }),
    );
    expect(winners.size).toBe(rounds);
    expect(conflicts).toBeGreaterThan(0);
    const history = await searchAll(c, p.nin, `CarePlan/${id}/_history?_count=50`);
    expect(history).toHaveLength(rounds + 1);
    const byVersion = new Map(history.map((r) => [r.meta.versionId as string, r.description as string | undefined]));
    for (const [v, description] of winners) expect(byVersion.get(v), `version ${v}`).toBe(description);
    console.log(`[${kind}] ${rounds} If-Match writers: ${rounds} winners, ${conflicts} × 412 on the way, ${history.length} versions`);
  });

  it(`${CREATORS} concurrent creations of an active plan for one patient: one 201, the rest ACTIVE_PLAN_EXISTS`, async () => {
    const p = await registerPatient(c, 3);
    const replies = await Promise.all(Array.from({ length: CREATORS }, (_, i) => c.fhir('POST', 'CarePlan', p.nin, carePlan(p.id, `Plan ${i}`))));
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    const refused = replies.filter((r) => r.status !== 201);
    expect(refused).toHaveLength(CREATORS - 1);
    for (const r of refused) {
      expect(r.status, JSON.stringify(r.body)).toBe(409);
      expect(isOutcome(r.body)).toBe(true);
      expect(errorCode(r.body)).toBe('ACTIVE_PLAN_EXISTS');
    }
    const active = await searchAll(c, p.nin, `CarePlan?subject=Patient/${p.id}&status=active`);
    expect(active).toHaveLength(1);
  });
});
