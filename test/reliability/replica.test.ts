/**
 * Read replicas (DATABASE_REPLICA_URL, src/store/replica.ts) with real PostgreSQL processes: a
 * primary and a streaming replica made by `pg_basebackup -R`, and two Samplan instances (in
 * process, real authentication and audit) on both. Shows that reads are served by the replica
 * when it has caught up, that a client always reads its own writes — also when replay on the
 * replica is paused and it serves stale data, and across instances with the consistency token —
 * and that reads still succeed when the replica is stopped, and move back when it returns.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { OID, syntheticNin } from '../../src/no/identifiers.js';
import { privacyConsent } from '../../src/security/privacy.js';
import { CONSISTENCY_HEADER, type ReplicatedDatabase } from '../../src/store/replica.js';
import { freePort } from '../../bench/lib/server.js';

const ROLE = 'urn:oid:2.16.578.1.12.4.1.1.9060';
const NIN = syntheticNin('1970-04-15', 321); // synthetic (Tenor: month + 80)
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// The newest Debian PostgreSQL; as root its programs run as `postgres` (initdb refuses root).
const BIN = path.join('/usr/lib/postgresql', readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b)).at(-1) as string, 'bin');
const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];

function pg(program: string, ...args: string[]): string {
  const [cmd, ...rest] = [...asPostgres, path.join(BIN, program), ...args] as [string, ...string[]];
  return execFileSync(cmd, rest, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

interface Node {
  port: number;
  data: string;
  url: string;
  start(): void;
  stop(): void;
}

function node(dir: string, name: string, port: number, opts: string): Node {
  const data = path.join(dir, name);
  return {
    port,
    data,
    url: `postgres://samplan@127.0.0.1:${port}/postgres`,
    start: () => void pg('pg_ctl', '-D', data, '-l', path.join(dir, `${name}.log`), '-w', '-t', '60', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 ${opts}`, 'start'),
    stop: () => void pg('pg_ctl', '-D', data, '-m', 'fast', '-w', 'stop'),
  };
}

// ---------------------------------------------------------------------------------------------

let dir: string;
let primary: Node;
let replica: Node;
let onPrimary: postgres.Sql;
let onReplica: postgres.Sql;
let a: App;
let b: App;
let token: string;
let planId: string;

/** A clinician's request to instance `app` about the test patient; answers status, body, headers. */
async function fhir(app: App, method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const form = typeof body === 'string';
  const res = await app.server.inject({
    method: method as 'GET',
    url: `/fhir/${url}`,
    headers: {
      authorization: `Bearer ${token}`,
      'nhn-user-role': encodeURIComponent(JSON.stringify({ system: ROLE, code: 'LE' })),
      'nhn-source-system': 'Replikatest 1.0',
      'nhn-access-basis': 'SAMTYKKE',
      'nhn-patient-nin': NIN,
      ...(body !== undefined ? { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/fhir+json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { payload: form ? body : JSON.stringify(body) } : {}),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: res.statusCode, body: (res.body ? JSON.parse(res.body) : {}) as any, headers: res.headers };
}

const stats = (app: App) => (app.db as ReplicatedDatabase).replicaStats();

/** Statements that read resources, as counted on the replica by pg_stat_statements. */
async function replicaResourceReads(): Promise<number> {
  const [row] = await onReplica<Array<{ calls: string | null }>>`SELECT sum(calls)::text AS calls FROM pg_stat_statements WHERE query LIKE '%FROM resources%' AND query NOT LIKE '%pg_stat_statements%'`;
  return Number(row?.calls ?? 0);
}

async function startInstance(): Promise<App> {
  const config = loadConfig({
    DATABASE_URL: primary.url,
    DATABASE_REPLICA_URL: replica.url,
    BASE_URL: 'http://replica.test/fhir',
    DATA_DIR: dir,
    LOG_LEVEL: 'silent',
    SEED_DEMO_DATA: 'false',
    RATE_LIMIT_PER_MINUTE: '1000000000',
  });
  return createApp(config, pino({ level: 'silent' }), { delivery: false });
}

const plan = (title: string) => ({ resourceType: 'CarePlan', id: planId, status: 'draft', intent: 'plan', title, subject: { reference: `Patient/${patientId}` } });
let patientId: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'samplan-replica-'));
  chmodSync(dir, 0o755);
  if (asPostgres.length) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })));
  const common = '-c fsync=off -c max_connections=100 -c shared_preload_libraries=pg_stat_statements';
  primary = node(dir, 'primary', await freePort(), `${common} -c wal_level=replica -c max_wal_senders=4`);
  pg('initdb', '-D', primary.data, '-U', 'samplan', '--auth=trust', '-E', 'UTF8', '--no-locale');
  primary.start();
  onPrimary = postgres(primary.url, { max: 2, onnotice: () => undefined });
  await onPrimary`CREATE EXTENSION pg_stat_statements`;

  // The replica: a base backup with standby.signal and primary_conninfo (-R), streaming its WAL.
  replica = node(dir, 'replica', await freePort(), `${common} -c hot_standby=on`);
  pg('pg_basebackup', '-h', '127.0.0.1', '-p', String(primary.port), '-U', 'samplan', '-D', replica.data, '-R', '-X', 'stream', '-c', 'fast');
  replica.start();
  onReplica = postgres(replica.url, { max: 2, onnotice: () => undefined });
  await waitFor('the replica to stream', async () => (await onPrimary`SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'`).length === 1);
  expect((await onReplica`SELECT pg_is_in_recovery() AS r`)[0]?.r).toBe(true);

  a = await startInstance();
  b = await startInstance();
  token = await a.idp!.issueAccessToken(a.idp!.clinicianClaims('fastlege'));

  const patient = await fhir(a, 'POST', 'Patient', { resourceType: 'Patient', identifier: [{ system: OID.fnr, value: NIN }], name: [{ family: 'Replika', given: ['Rita'] }], birthDate: '1970-04-15' });
  expect(patient.status, JSON.stringify(patient.body)).toBe(201);
  patientId = patient.body.id;
  const consent = await fhir(a, 'POST', 'Consent', privacyConsent(patientId, 'plan', { provision: { type: 'permit' } }));
  expect(consent.status, JSON.stringify(consent.body)).toBe(201);
  planId = 'replica-plan';
  const created = await fhir(a, 'PUT', `CarePlan/${planId}`, plan('v0'));
  expect(created.status, JSON.stringify(created.body)).toBe(201);
}, 120_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  await onPrimary?.end();
  await onReplica?.end();
  for (const n of [replica, primary]) {
    try {
      n?.stop();
    } catch {
      // already stopped
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a streaming read replica', () => {
  it('serves reads and searches when it has caught up', async () => {
    await waitFor('the replica to catch up', async () => {
      const [p] = await onPrimary`SELECT pg_current_wal_insert_lsn() AS lsn`;
      const [r] = await onReplica`SELECT pg_last_wal_replay_lsn() >= ${p?.lsn as string}::pg_lsn AS ok`;
      return r?.ok === true;
    });
    await sleep(50);
    const before = stats(a);
    const countedBefore = await replicaResourceReads();
    for (let i = 0; i < 20; i++) {
      expect((await fhir(a, 'GET', `CarePlan/${planId}`)).body.title).toBe('v0');
      const found = await fhir(a, 'POST', 'CarePlan/_search', `_id=${planId}&_include=*`);
      expect(found.body.entry?.[0]?.resource?.title).toBe('v0');
      expect((await fhir(a, 'GET', `CarePlan/${planId}/_history`)).body.entry?.length).toBe(1);
    }
    const after = stats(a);
    // 60 interactions, one or more statements each (search: page, includes), on the replica (a
    // read may meet the replica just behind the primary position sampled every 500 ms: primary).
    const onReplicaNow = after.replica - before.replica;
    expect(onReplicaNow).toBeGreaterThanOrEqual(60);
    expect(after.primary - before.primary).toBeLessThanOrEqual(onReplicaNow / 10);
    // The replica's own statistics agree: at least the 20 reads and 20 searches ran there.
    expect((await replicaResourceReads()) - countedBefore).toBeGreaterThanOrEqual(40);
    // …while every read's AuditEvent went to the primary.
    const [audits] = await onPrimary`SELECT count(*)::int AS n FROM audit_events WHERE patient_id = ${patientId}`;
    expect(audits?.n).toBeGreaterThanOrEqual(60);
  });

  it('reads its own writes, 200 times, on a replica that keeps up and on one whose replay is paused', async () => {
    // Each time: an update, then at once a read, a vread, a POST _search and a history: 4+ statements.
    let version = 1;
    const writeThenRead = async (i: number) => {
      const title = `v${i}`;
      const put = await fhir(a, 'PUT', `CarePlan/${planId}`, plan(title));
      expect(put.status).toBe(200);
      version++;
      expect(put.headers[CONSISTENCY_HEADER]).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      const read = await fhir(a, 'GET', `CarePlan/${planId}`);
      expect(read.body.title).toBe(title);
      expect(read.headers.etag).toBe(`W/"${version}"`);
      const vread = await fhir(a, 'GET', `CarePlan/${planId}/_history/${version}`);
      expect(vread.body.title).toBe(title);
      const found = await fhir(a, 'POST', 'CarePlan/_search', `_id=${planId}`);
      expect(found.body.entry?.[0]?.resource?.title).toBe(title);
      const history = await fhir(a, 'GET', `CarePlan/${planId}/_history?_count=1`);
      expect(history.body.entry?.[0]?.resource?.title).toBe(title);
    };

    const live = stats(a);
    for (let i = 1; i <= 100; i++) await writeThenRead(i);
    const afterLive = stats(a);
    // Reads right after a write go to the replica when it has replayed the write already, else to the primary.
    expect(afterLive.replica + afterLive.primary - live.replica - live.primary).toBeGreaterThanOrEqual(400);
    console.info(`replica keeping up: ${afterLive.replica - live.replica} statements on the replica, ${afterLive.primary - live.primary} on the primary`);

    await onReplica`SELECT pg_wal_replay_pause()`;
    await waitFor('replay to pause', async () => (await onReplica`SELECT pg_get_wal_replay_pause_state() AS s`)[0]?.s === 'paused');
    try {
      const paused = stats(a);
      for (let i = 101; i <= 200; i++) await writeThenRead(i);
      // The replica is stale (it still has the version from before the pause)…
      const [stale] = await onReplica`SELECT content FROM resources WHERE type = 'CarePlan' AND id = ${planId}`;
      expect(JSON.parse(stale?.content as string).title).not.toBe('v200');
      // …so none of the 400 reads after those writes was served by it.
      expect(stats(a).replica).toBe(paused.replica);
      expect(stats(a).primary - paused.primary).toBeGreaterThanOrEqual(400);
    } finally {
      await onReplica`SELECT pg_wal_replay_resume()`;
    }
  });

  it('reads a write made through another instance when the client sends the consistency token back', async () => {
    await onReplica`SELECT pg_wal_replay_pause()`;
    try {
      for (let i = 1; i <= 50; i++) {
        const title = `b${i}`;
        const put = await fhir(a, 'PUT', `CarePlan/${planId}`, plan(title));
        const consistency = put.headers[CONSISTENCY_HEADER] as string;
        expect(consistency).toBeTruthy();
        const read = await fhir(b, 'GET', `CarePlan/${planId}`, undefined, { [CONSISTENCY_HEADER]: consistency });
        expect(read.body.title).toBe(title);
        const found = await fhir(b, 'POST', 'CarePlan/_search', `_id=${planId}`, { [CONSISTENCY_HEADER]: consistency });
        expect(found.body.entry?.[0]?.resource?.title).toBe(title);
      }
    } finally {
      await onReplica`SELECT pg_wal_replay_resume()`;
    }
  });

  it('falls back to the primary when the replica is down, and uses it again when it is back', async () => {
    const [current] = await onPrimary`SELECT content FROM resources WHERE type = 'CarePlan' AND id = ${planId}`;
    const title = JSON.parse(current?.content as string).title as string;
    await onReplica.end();
    replica.stop();
    const down = stats(a);
    for (let i = 0; i < 30; i++) {
      const read = await fhir(a, 'GET', `CarePlan/${planId}`);
      expect(read.status).toBe(200);
      expect(read.body.title).toBe(title);
      const found = await fhir(a, 'POST', 'CarePlan/_search', `_id=${planId}`);
      expect(found.status).toBe(200);
      // Writes carry on as before.
      if (i % 10 === 0) expect((await fhir(a, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'peak flow' }, subject: { reference: `Patient/${patientId}` } })).status).toBe(201);
    }
    expect(stats(a).replica).toBe(down.replica);
    expect(stats(a).primary - down.primary).toBeGreaterThanOrEqual(60);

    replica.start();
    onReplica = postgres(replica.url, { max: 2, onnotice: () => undefined });
    const back = stats(a).replica;
    await waitFor('reads on the replica again', async () => {
      expect((await fhir(a, 'GET', `CarePlan/${planId}`)).body.title).toBe(title);
      return stats(a).replica > back;
    });
  });
});
