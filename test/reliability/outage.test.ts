/**
 * A PostgreSQL outage under load: while the database is stopped, requests fail fast (503 with an
 * OperationOutcome, none hangs longer than 5 s) and /readyz says not ready; once it is back the
 * same server process serves again by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  brief,
  carePlan,
  Clinician,
  type Cluster,
  goal,
  isOutcome,
  observation,
  registerPatient,
  type Reply,
  request,
  type Running,
  scale,
  serverEnv,
  sleep,
  startServer,
  type TestPatient,
  workspace,
  type Workspace,
} from './support.js';

const OUTAGE_MS = scale(10_000, 6_000);
const BEFORE_MS = scale(5_000, 2_000);
const AFTER_MS = scale(5_000, 2_000);
const WORKERS = 16;
const MAX_LATENCY_MS = 5_000;

interface Timed extends Reply {
  start: number;
  end: number;
}

describe('PostgreSQL outage under load', () => {
  let ws: Workspace | undefined;
  let pg: Cluster;
  let server: Running;
  let c: Clinician;
  const patients: Array<TestPatient & { plan: string; goal: string }> = [];

  beforeAll(async () => {
    const made = await workspace('postgres', 'outage');
    ws = made;
    pg = made.pg;
    server = await startServer(serverEnv(made.dir, made.databaseUrl));
    c = await Clinician.login(server, made.dir);
    for (let n = 300; n < 304; n++) {
      const p = await registerPatient(c, n);
      const plan = await c.fhir('POST', 'CarePlan', p.nin, carePlan(p.id, 'Plan'));
      const g = await c.fhir('POST', 'Goal', p.nin, goal(p.id, 'Mål'));
      patients.push({ ...p, plan: plan.body.id, goal: g.body.id });
    }
  });
  afterAll(async () => {
    await server?.stop();
    ws?.remove();
  });

  it(`fails fast with 503 while PostgreSQL is stopped for ${OUTAGE_MS / 1000} s, and recovers without a restart`, async () => {
    const replies: Timed[] = [];
    let running = true;
    const t0 = performance.now();
    const now = () => performance.now() - t0;
    const one = (i: number): Promise<Reply> => {
      const p = patients[i % patients.length] as (typeof patients)[number];
      switch (i % 4) {
        case 0:
          return c.fhir('GET', `CarePlan/${p.plan}`, p.nin);
        case 1:
          return c.fhir('GET', `Goal?subject=Patient/${p.id}`, p.nin);
        case 2:
          return c.fhir('POST', 'Observation', p.nin, observation(p.id, `Måling ${i}`));
        default:
          return c.fhir('PUT', `Goal/${p.goal}`, p.nin, { ...goal(p.id, `Mål ${i}`), id: p.goal });
      }
    };
    const load = Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        for (let i = w; running; i += WORKERS) {
          const start = now();
          const r = await one(i);
          replies.push({ ...r, start, end: now() });
          // A failed request is retried by clients after a pause, not in a hot loop.
          if (r.status >= 300) await sleep(50);
        }
      }),
    );
    const ready: Timed[] = [];
    const probe = async (until: () => boolean) => {
      while (!until()) {
        const start = now();
        const r = await request(server.url, 'GET', '/readyz', {});
        ready.push({ ...r, start, end: now() });
        await sleep(250);
      }
    };

    await sleep(BEFORE_MS);
    const down = now();
    pg.stop('fast');
    const stopped = now();
    let back = false;
    const probing = probe(() => back);
    await sleep(OUTAGE_MS);
    const up = now();
    pg.start();
    const started = now();
    // Recovery: the first request after PostgreSQL is back that succeeds.
    let recovered = Infinity;
    const deadline = started + 30_000;
    while (now() < deadline) {
      const r = await one(0);
      if (r.status === 200) {
        recovered = now();
        break;
      }
      await sleep(100);
    }
    back = true;
    await probing;
    await sleep(AFTER_MS);
    running = false;
    await load;

    const before = replies.filter((r) => r.end < down);
    const during = replies.filter((r) => r.start > stopped + 500 && r.end < up);
    const after = replies.filter((r) => r.start > recovered + 1000);
    const maxLatency = Math.max(...replies.map((r) => r.ms));
    const duringMax = Math.max(...during.map((r) => r.ms));
    console.log(
      `[outage] ${replies.length} requests: ${before.length} before (all 2xx), ${during.length} during the ${Math.round((up - down) / 1000)} s outage ` +
        `(${during.filter((r) => r.status === 503).length} × 503, slowest ${Math.round(duringMax)} ms), slowest overall ${Math.round(maxLatency)} ms; ` +
        `/readyz 503 ${ready.filter((r) => r.status === 503).length}×; serving again ${Math.round(recovered - started)} ms after PostgreSQL was up; ${after.length} requests after, all 2xx`,
    );

    expect(before.length).toBeGreaterThan(0);
    expect(before.filter((r) => r.status >= 300).map(brief)).toEqual([]);
    // During the outage: 503 with an OperationOutcome, fast.
    expect(during.length).toBeGreaterThan(WORKERS);
    expect(during.filter((r) => r.status !== 503 || !isOutcome(r.body)).map(brief)).toEqual([]);
    expect(duringMax).toBeLessThan(MAX_LATENCY_MS);
    // Around the edges too: every answer is a success or a 503, and nothing hangs.
    expect(replies.filter((r) => !(r.status >= 200 && r.status < 300) && r.status !== 503).map(brief)).toEqual([]);
    expect(maxLatency).toBeLessThan(MAX_LATENCY_MS);
    // Not ready while the database is away.
    const readyDuring = ready.filter((r) => r.start > stopped + 500 && r.end < up);
    expect(readyDuring.length).toBeGreaterThan(0);
    expect(readyDuring.filter((r) => r.status !== 503 || r.ms >= MAX_LATENCY_MS).map(brief)).toEqual([]);
    expect(readyDuring[0]?.body).toEqual({ status: 'not ready' });
    // Back by itself, soon, and fully.
    expect(recovered - started).toBeLessThan(15_000);
    expect(after.length).toBeGreaterThan(WORKERS);
    expect(after.filter((r) => r.status >= 300).map(brief)).toEqual([]);
    expect((await request(server.url, 'GET', '/readyz', {})).status).toBe(200);
  });
});
