/**
 * The benchmark reports what a request costs the server and, beside it, the database server
 * (bench/lib/machine.ts): a write costs PostgreSQL more than it costs Samplan, so a figure for the
 * server alone would say where the time goes only half.
 */
import { describe, expect, it } from 'vitest';
import { cpuOf, databaseCpuMs } from '../../bench/lib/machine.js';
import { onServer, useTestDatabase } from '../support/db.js';

function spin(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until);
}

describe('CPU time', () => {
  it('of a process: grows with the work it does, and is 0 for one that does not exist', () => {
    const before = cpuOf(process.pid);
    spin(300);
    expect(cpuOf(process.pid) - before).toBeGreaterThanOrEqual(200);
    expect(cpuOf(2 ** 30)).toBe(0);
  });
});

describe.runIf(onServer)('CPU time of the database server', () => {
  const db = useTestDatabase();

  it('counts the work of the backend that runs a statement', async () => {
    const before = databaseCpuMs();
    // About half a second of one backend's CPU, nothing of this process's.
    await db().query('SELECT count(*) FROM generate_series(1, 5000000) AS s WHERE s % 7 = 3');
    expect(databaseCpuMs() - before).toBeGreaterThanOrEqual(100);
  });
});
