/**
 * The benchmark reports what a request costs the server and, beside it, the database server
 * (bench/lib/machine.ts): a write costs PostgreSQL more than it costs Samplan, so a figure for the
 * server alone would say where the time goes only half.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuOf, measureDatabase } from '../../bench/lib/machine.js';
import { onServer, openTestDatabase, type TestDatabase } from '../support/db.js';

describe('CPU time', () => {
  it('of a process: grows with the work it does, and is 0 for one that does not exist', () => {
    const before = cpuOf(process.pid);
    // Busy until 100 ms of CPU show (however long a busy machine takes to give them), at most 10 s.
    const deadline = Date.now() + 10_000;
    while (cpuOf(process.pid) - before < 100 && Date.now() < deadline) {
      const until = Date.now() + 20;
      while (Date.now() < until);
    }
    expect(cpuOf(process.pid) - before).toBeGreaterThanOrEqual(100);
    expect(cpuOf(2 ** 30)).toBe(0);
  });
});

describe.runIf(onServer)('CPU time of the database server', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await openTestDatabase();
  });
  afterAll(async () => t?.drop());
  // About half a second of one backend's CPU, nothing of this process's.
  const busy = 'SELECT count(*) FROM generate_series(1, 5000000) AS s WHERE s % 7 = 3';

  it('counts the work of the backend that runs a statement', async () => {
    const used = measureDatabase();
    await t.db.query(busy);
    expect(used()).toBeGreaterThanOrEqual(100);
  });

  it('counts a backend started since whole', async () => {
    const used = measureDatabase();
    const client = postgres(t.url as string, { max: 1, onnotice: () => undefined });
    await client.unsafe(busy);
    expect(used()).toBeGreaterThanOrEqual(100);
    await client.end();
  });

  it('never runs backwards when a backend that was busy before exits', async () => {
    const client = postgres(t.url as string, { max: 1, onnotice: () => undefined });
    await client.unsafe(busy);
    const used = measureDatabase();
    await client.end();
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Its half second went with it: what is left is the others' (next to nothing), not less.
    expect(used()).toBeGreaterThanOrEqual(0);
  });
});
