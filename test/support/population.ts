/**
 * A population for the planner: the demo data, and copies of its patients made by the benchmark's
 * bulk path (bench/lib/bulk.ts), then ANALYZE. Plans chosen on an empty database say only that an
 * index could serve a statement; with tables of this size and their statistics, a statement that
 * would read a whole table or a whole index shows it in the plan the server would run.
 */
import { loadConfig } from '../../src/config.js';
import { seedDemoData } from '../../src/demo/seed.js';
import { bulkCopy, type BulkResult } from '../../bench/lib/bulk.js';
import { MODEL_NINS } from '../../bench/lib/population.js';
import { BASE, type TestServer } from './app.js';

export async function populate(t: TestServer, patients: number): Promise<BulkResult> {
  const seeded = await seedDemoData(t.app.engine, loadConfig({ BASE_URL: BASE }));
  if (!seeded.seeded) throw new Error(`the demo data was not seeded: ${seeded.reason}`);
  return bulkCopy(t.database.db, { modelNins: MODEL_NINS, from: 0, to: patients, batch: 50, concurrency: 2, baseUrl: BASE });
}
