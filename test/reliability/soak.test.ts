/**
 * Soak: mixed load (reads, searches, creates, updates) for 10 minutes (RELIABILITY=short: 60 s)
 * → no error responses, and the server's memory is flat: the median RSS of the last minute is
 * within 10 % of the median of the minute after warm-up (medians over a GC cycle, so one GC more
 * or less does not decide). The short run, too short for a cycle, compares the lowest RSS at the
 * end with the highest after warm-up.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  brief,
  carePlan,
  Clinician,
  goal,
  median,
  observation,
  registerPatient,
  type Reply,
  type Running,
  scale,
  serverEnv,
  SHORT,
  sleep,
  startServer,
  type TestPatient,
  workspace,
} from './support.js';

// SOAK_SECONDS overrides the duration (warm-up: a tenth of it, at least 8 s).
// The server's RSS is a sawtooth of about 15 % (the V8 heap grows to its next major GC, every
// 50 s or so under this load), and the first major GC comes 40-60 s after start. So the warm-up
// must cover it, and the full run compares medians over a minute (more than one cycle).
const DURATION_MS = process.env.SOAK_SECONDS ? Number(process.env.SOAK_SECONDS) * 1000 : scale(10 * 60_000, 60_000);
const WARMUP_MS = process.env.SOAK_SECONDS ? Math.max(15_000, DURATION_MS / 10) : scale(60_000, 15_000);
/** Samples (one a second) in each median. */
const WINDOW = scale(60, 10);
const WORKERS = 16;
const PATIENTS = 20;
// Short mode soaks the default database only; the full run both. SOAK_DB=pglite|postgres picks one.
const KINDS: ReadonlyArray<'pglite' | 'postgres'> = process.env.SOAK_DB ? [process.env.SOAK_DB as 'pglite'] : SHORT ? ['pglite'] : ['pglite', 'postgres'];

describe.each(KINDS)('soak on %s', (kind) => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f();
  });

  it(`serves mixed load for ${DURATION_MS / 1000} s without an error and with flat memory`, async () => {
    const ws = await workspace(kind, 'soak');
    cleanup.push(() => ws.remove());
    const server: Running = await startServer(serverEnv(ws.dir, ws.databaseUrl));
    cleanup.push(() => server.stop());
    const c = await Clinician.login(server, ws.dir);
    const patients: Array<TestPatient & { plan: string; goal: string }> = [];
    for (let n = 500; n < 500 + PATIENTS; n++) {
      const p = await registerPatient(c, n);
      const plan = await c.fhir('POST', 'CarePlan', p.nin, carePlan(p.id, 'Plan'));
      const g = await c.fhir('POST', 'Goal', p.nin, goal(p.id, 'Mål'));
      patients.push({ ...p, plan: plan.body.id, goal: g.body.id });
    }

    const one = (i: number): Promise<Reply> => {
      const p = patients[i % PATIENTS] as (typeof patients)[number];
      switch (i % 6) {
        case 0:
        case 1:
          return c.fhir('GET', `CarePlan/${p.plan}`, p.nin);
        case 2:
          return c.fhir('GET', `Goal?subject=Patient/${p.id}`, p.nin);
        case 3:
          return c.fhir('GET', `Observation?subject=Patient/${p.id}&_count=10&_sort=-_lastUpdated`, p.nin);
        case 4:
          return c.fhir('POST', 'Observation', p.nin, observation(p.id, `Måling ${i}`));
        default:
          // Updates of one Goal by several workers queue on its row lock; none may fail.
          return c.fhir('PUT', `Goal/${p.goal}`, p.nin, { ...goal(p.id, `Mål ${i}`), id: p.goal });
      }
    };
    let running = true;
    let requests = 0;
    const failures: Reply[] = [];
    const latencies: number[] = [];
    const load = Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        for (let i = w; running; i += WORKERS) {
          const r = await one(i);
          requests++;
          latencies.push(r.ms);
          if (r.status < 200 || r.status >= 300) failures.push(r);
        }
      }),
    );
    const samples: Array<{ at: number; mb: number }> = [];
    const t0 = performance.now();
    const sampler = setInterval(() => samples.push({ at: performance.now() - t0, mb: server.rssMb() }), 1000);
    await sleep(DURATION_MS);
    running = false;
    await load;
    clearInterval(sampler);

    const afterWarmup = samples.filter((s) => s.at >= WARMUP_MS).slice(0, WINDOW).map((s) => s.mb);
    const atEnd = samples.slice(-WINDOW).map((s) => s.mb);
    // Full run: medians over a minute each. Short run (one GC cycle at most): the end's floor
    // against the top of the sawtooth after warm-up — a leak lifts the floor.
    const start = SHORT ? Math.max(...afterWarmup) : median(afterWarmup);
    const end = SHORT ? Math.min(...atEnd) : median(atEnd);
    const sorted = latencies.sort((a, b) => a - b);
    const p99 = sorted[Math.floor(sorted.length * 0.99)] ?? 0;
    console.log(
      `[soak ${kind}] ${requests} requests in ${DURATION_MS / 1000} s (${Math.round(requests / (DURATION_MS / 1000))}/s, p99 ${Math.round(p99)} ms), ${failures.length} failed; ` +
        `RSS after warm-up ${start} MB, at the end ${end} MB (${SHORT ? 'top vs floor' : 'medians'}) (${(((end - start) / start) * 100).toFixed(1)} %), peak ${Math.max(...samples.map((s) => s.mb))} MB; every 5 s: ${samples.filter((_, i) => i % 5 === 4).map((s) => s.mb).join(' ')}`,
    );
    expect(failures.slice(0, 20).map(brief)).toEqual([]);
    expect(afterWarmup.length).toBe(WINDOW);
    expect(end).toBeLessThanOrEqual(start * 1.1);
  });
});
