/**
 * The background side of bulk export: jobs survive a restart (queued jobs are run by the next
 * server on the same database; a job a crashed instance held is resumed from its checkpoint once
 * the claim's lease runs out, without losing or repeating a resource), several workers share the
 * queue, cancel stops a running job, and finished jobs expire. Requests run as the server's own
 * system context; the access rules are tested in export.test.ts.
 */
import type { Resource } from '@medplum/fhirtypes';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { SYSTEM_ACCESS } from '../../src/fhir/access.js';
import { ExportWorker, type ExportSettings } from '../../src/plan/export/index.js';
import { apiScopes } from '../../src/security/claims.js';
import { BASE } from '../support/app.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';

let database: TestDatabase;
let app: App;
const patients: string[] = [];
const silent = { error: () => undefined, warn: () => undefined, info: () => undefined };
const config = () => loadConfig({ BASE_URL: BASE, LOG_LEVEL: 'silent', DATA_DIR: database.dataDir });
const policy = () => ({ scopes: apiScopes('nhn:samplan'), allowedRoles: new Set(config().security.allowedRoles) });

async function boot(): Promise<App> {
  return createApp(config(), pino({ level: 'silent' }), { db: database.db, authenticate: async () => ({ access: SYSTEM_ACCESS }) });
}

function worker(settings: Partial<ExportSettings>): ExportWorker {
  return new ExportWorker(database.db, policy(), silent, { pollMs: 10, ...settings });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(on: App, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, any>; text: string; body: any }> {
  const res = await on.server.inject({ method: method as 'GET', url: `/fhir/${path}`, headers });
  let body: unknown = {};
  try {
    body = JSON.parse(res.body);
  } catch {
    /* NDJSON */
  }
  return { status: res.statusCode, headers: res.headers, text: res.body, body };
}

const local = (url: string) => url.slice(BASE.length + 1);

async function kickOff(on: App, path: string): Promise<string> {
  const res = await call(on, 'GET', path, { prefer: 'respond-async' });
  expect(res.status, res.text).toBe(202);
  return local(res.headers['content-location'] as string);
}

const jobOf = (statusPath: string) => new URL(`${BASE}/${statusPath}`).searchParams.get('job') as string;

async function job(statusPath: string) {
  const rows = await database.db.query<{ status: string; exported: number; claimed_by: string | null }>(
    `SELECT status, exported, claimed_by FROM export_jobs WHERE id = $1`,
    [jobOf(statusPath)],
  );
  return rows[0];
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits for the export, downloads it, and checks every file: one type, as many lines as counted. */
async function collect(on: App, statusPath: string): Promise<{ refs: string[]; output: Array<{ type: string; count: number }> }> {
  let done = await call(on, 'GET', statusPath);
  const deadline = Date.now() + 30_000;
  while (done.status === 202 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    done = await call(on, 'GET', statusPath);
  }
  expect(done.status, done.text).toBe(200);
  const refs: string[] = [];
  for (const out of done.body.output as Array<{ type: string; url: string; count: number }>) {
    const file = await call(on, 'GET', local(out.url));
    expect(file.status).toBe(200);
    const lines = file.text.split('\n').slice(0, -1);
    expect(lines.length).toBe(out.count);
    for (const line of lines) {
      const r = JSON.parse(line) as Resource;
      expect(r.resourceType).toBe(out.type);
      refs.push(`${r.resourceType}/${r.id}`);
    }
  }
  return { refs, output: done.body.output };
}

async function live(where = 'TRUE'): Promise<string[]> {
  return (await database.db.query<{ ref: string }>(`SELECT type || '/' || id AS ref FROM resources WHERE NOT deleted AND ${where} ORDER BY 1`)).map((r) => r.ref);
}

const sorted = (refs: string[]) => [...refs].sort();

beforeAll(async () => {
  database = await openTestDatabase();
  app = await boot();
  const create = async (resource: Record<string, unknown>) => {
    const r = await app.server.inject({ method: 'POST', url: `/fhir/${resource.resourceType as string}`, headers: { 'content-type': 'application/fhir+json' }, payload: JSON.stringify(resource) });
    expect(r.statusCode, r.body).toBe(201);
    return (JSON.parse(r.body) as { id: string }).id;
  };
  for (let p = 0; p < 3; p++) {
    const id = await create({ resourceType: 'Patient', name: [{ family: `Eksport${p}` }] });
    patients.push(id);
    for (let i = 0; i < 4; i++) {
      await create({ resourceType: 'Immunization', status: 'completed', vaccineCode: { text: `V${i}` }, patient: { reference: `Patient/${id}` }, occurrenceDateTime: '2025-01-01' });
    }
    await create({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: `Patient/${id}` } });
  }
  for (let i = 0; i < 3; i++) await create({ resourceType: 'Organization', name: `Org ${i}` });
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

describe('export jobs in the background', () => {
  it('a job queued when the server stops is run by the next server on the same database', async () => {
    await app.bulkExport.stop();
    const statusPath = await kickOff(app, '$export');
    const queued = await call(app, 'GET', statusPath);
    expect(queued.status).toBe(202);
    expect(queued.headers['x-progress']).toBe('queued');
    await app.close();
    app = await boot();
    const out = await collect(app, statusPath);
    expect(sorted(out.refs)).toEqual(await live());
  });

  it('a job a crashed instance held is resumed from its checkpoint: nothing lost, nothing twice', async () => {
    await app.bulkExport.stop();
    const statusPath = await kickOff(app, '$export?_type=Immunization,Organization,Patient');
    const first = worker({ pageSize: 1, maxPerFile: 5, instance: 'first' });
    await first.start();
    await until('a few pages', async () => ((await job(statusPath))?.exported ?? 0) >= 4);
    await first.stop();
    // As if the instance had died holding the job: its claim is still there, with time left.
    await database.db.query(`UPDATE export_jobs SET claimed_by = 'crashed', lease_until = now() + interval '1 hour' WHERE id = $1`, [jobOf(statusPath)]);
    const before = (await job(statusPath))!.exported;
    expect(before).toBeGreaterThanOrEqual(4);
    const second = worker({ pageSize: 2, maxPerFile: 5, instance: 'second', leaseMs: 500 });
    if (database.db.kind === 'postgres') {
      // Another live instance's claim is respected until its lease runs out.
      await second.start();
      await new Promise((r) => setTimeout(r, 300));
      expect((await job(statusPath))?.claimed_by).toBe('crashed');
      expect((await job(statusPath))?.exported).toBe(before);
      await database.db.query(`UPDATE export_jobs SET lease_until = now() - interval '1 second' WHERE id = $1`, [jobOf(statusPath)]);
    } else {
      // The embedded database belongs to one process: claims found at start are from a previous run.
      await second.start();
    }
    try {
      const out = await collect(app, statusPath);
      expect(sorted(out.refs)).toEqual(await live(`type IN ('Immunization', 'Organization', 'Patient')`));
      expect(out.output.every((o) => o.count <= 5)).toBe(true);
      expect(out.output.filter((o) => o.type === 'Immunization').map((o) => o.count)).toEqual([5, 5, 2]);
    } finally {
      await second.stop();
      await app.bulkExport.start();
    }
  });

  it('several workers share the queue (FOR UPDATE SKIP LOCKED): every job runs once and completes', async () => {
    await app.bulkExport.stop();
    const paths = [
      '$export',
      '$export?_type=Immunization',
      ...patients.map((id) => `Patient/${id}/$export`),
      'Patient/$export',
      '$export?_type=Organization,Encounter',
    ];
    const statusPaths: string[] = [];
    for (const path of paths) statusPaths.push(await kickOff(app, path));
    const workers = ['a', 'b', 'c'].map((name) => worker({ pageSize: 2, maxPerFile: 3, concurrency: 2, instance: name }));
    await Promise.all(workers.map((w) => w.start()));
    try {
      const results = [];
      for (const statusPath of statusPaths) results.push(await collect(app, statusPath));
      expect(sorted(results[0]!.refs)).toEqual(await live());
      expect(sorted(results[1]!.refs)).toEqual(await live(`type = 'Immunization'`));
      for (const [i, id] of patients.entries()) {
        expect(sorted(results[2 + i]!.refs)).toEqual(await live(`compartments @> ARRAY['Patient/${id}']::text[]`));
      }
      // The server's own Patient/$export: every patient's compartment, no public resources.
      expect(sorted(results[5]!.refs)).toEqual(await live(`cardinality(compartments) > 0`));
      expect(sorted(results[6]!.refs)).toEqual(await live(`type IN ('Organization', 'Encounter')`));
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await app.bulkExport.start();
    }
  });

  it('cancelling a running job stops it and leaves nothing behind', async () => {
    await app.bulkExport.stop();
    const statusPath = await kickOff(app, '$export');
    const slow = worker({ pageSize: 1, instance: 'slow' });
    await slow.start();
    try {
      await until('the job to run', async () => ((await job(statusPath))?.exported ?? 0) >= 2);
      expect((await call(app, 'DELETE', statusPath)).status).toBe(202);
      await new Promise((r) => setTimeout(r, 100));
      expect((await call(app, 'GET', statusPath)).status).toBe(404);
      const left = await database.db.query(`SELECT 1 FROM export_files WHERE job = $1 UNION ALL SELECT 1 FROM export_file_parts WHERE job = $1`, [jobOf(statusPath)]);
      expect(left).toEqual([]);
    } finally {
      await slow.stop();
      await app.bulkExport.start();
    }
  });

  it('finished jobs expire: their status and files are gone, and the rows are purged', async () => {
    await app.bulkExport.stop();
    const short = worker({ retentionMs: 300, instance: 'short' });
    await short.start();
    const statusPath = await kickOff(app, '$export?_type=Organization');
    let file = '';
    try {
      const done = await collect(app, statusPath);
      expect(done.refs.length).toBe(3);
      const manifest = await call(app, 'GET', statusPath);
      expect(manifest.headers.expires).toBeTruthy();
      file = local(manifest.body.output[0].url);
    } finally {
      await short.stop();
    }
    await new Promise((r) => setTimeout(r, 400));
    expect((await call(app, 'GET', statusPath)).status).toBe(404);
    expect((await call(app, 'GET', file)).status).toBe(404);
    const purger = worker({ instance: 'purger' });
    await purger.start();
    await until('the purge', async () => (await database.db.query(`SELECT 1 FROM export_jobs WHERE id = $1`, [jobOf(statusPath)])).length === 0);
    await purger.stop();
    await app.bulkExport.start();
  });
});
