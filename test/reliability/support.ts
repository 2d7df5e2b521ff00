/**
 * Shared pieces of the reliability suite (`npm run test:reliability`): real server processes
 * (`node dist/main.js`), real databases (a PGlite data directory, or a throwaway PostgreSQL
 * cluster that a test can stop and start), real tokens, and a client that never throws on a
 * status so the tests can count what was acknowledged.
 *
 * RELIABILITY=short scales counts and durations down (CI); without it the issue's numbers hold.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { clinicianHeaders, FNR, token } from '../../bench/lib/api.js';
import { type Cluster, startCluster } from '../../bench/lib/database.js';
import { person } from '../../bench/lib/population.js';
import { freePort, productionCommand, type Running, startProcess } from '../../bench/lib/server.js';
import { privacyConsent } from '../../src/security/privacy.js';

export { clinicianHeaders, FNR } from '../../bench/lib/api.js';
export type { Cluster } from '../../bench/lib/database.js';
export type { Running } from '../../bench/lib/server.js';

export const SHORT = process.env.RELIABILITY === 'short';
/** The issue's number, or the CI one in short mode. */
export const scale = <T>(full: T, short: T): T => (SHORT ? short : full);

const repo = path.resolve(import.meta.dirname, '..', '..');
export const MAIN = path.join(repo, 'dist', 'main.js');
const ERROR_CODE_SYSTEM_SUFFIX = 'error-code';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000, everyMs = 100): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Runs `fn` over `items`, `concurrency` at a time. */
export async function inParallel<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) await fn(items[i] as T);
    }),
  );
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (!sorted.length) return 0;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

// ---------------------------------------------------------------------------------------------
// Databases and servers

/** A data directory for the server (PGlite lives in DATA_DIR/pglite; the IdP keeps its keys there). */
export function tempDir(prefix = 'samplan-rel-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A throwaway PostgreSQL cluster; `durable` (fsync, synchronous commit) for the crash tests. */
export function cluster(durable: boolean): Cluster {
  return startCluster({ durable });
}

/** A new database on the cluster; returns its URL. */
export async function createDatabase(c: Cluster, name: string): Promise<string> {
  const admin = postgres(c.url, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(c.url);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Where one test's server keeps its data: a fresh directory and, on PostgreSQL, a throwaway cluster with a new database. */
export interface Workspace {
  dir: string;
  pg?: Cluster;
  databaseUrl?: string;
  /** Destroys the cluster (if any) and removes the directory. */
  remove(): void;
}

export async function workspace(kind: 'postgres', name: string, durable?: boolean): Promise<Workspace & { pg: Cluster; databaseUrl: string }>;
export async function workspace(kind: 'postgres' | 'pglite', name: string, durable?: boolean): Promise<Workspace>;
export async function workspace(kind: 'postgres' | 'pglite', name: string, durable = false): Promise<Workspace> {
  const data = tempDir();
  const pg = kind === 'postgres' ? cluster(durable) : undefined;
  const remove = () => {
    pg?.destroy();
    data.remove();
  };
  try {
    const databaseUrl = pg ? await createDatabase(pg, name) : undefined;
    return { dir: data.dir, ...(pg ? { pg } : {}), ...(databaseUrl ? { databaseUrl } : {}), remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/** Environment of a server under test: quiet, no demo data, no rate limit in the way of the load. */
export function serverEnv(dataDir: string, databaseUrl?: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATA_DIR: dataDir,
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    SEED_DEMO_DATA: 'false',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '1000000000',
    ...extra,
  };
}

/**
 * `node dist/main.js` with the Node options and environment of `npm start`, on a free port (BASE_URL set: vitest
 * puts BASE_URL=/ in the environment).
 */
export async function startServer(env: Record<string, string>): Promise<Running> {
  const port = env.PORT ?? String(await freePort());
  const production = productionCommand();
  return startProcess(MAIN, { ...production.env, BASE_URL: `http://127.0.0.1:${port}/fhir`, ...env, PORT: port }, '/readyz', production.args);
}

// ---------------------------------------------------------------------------------------------
// The client

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface Reply<T = Json> {
  /** HTTP status, or 0 when no answer came (connection refused or reset, timeout). */
  status: number;
  body: T;
  etag: string | null;
  location: string | null;
  ms: number;
  error?: string;
}

/** One request; never throws: a missing answer is status 0. */
export async function request<T = Json>(
  baseUrl: string,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<Reply<T>> {
  const started = performance.now();
  const form = typeof body === 'string';
  try {
    const res = await fetch(`${baseUrl}${urlPath}`, {
      method,
      headers: { ...headers, ...(body !== undefined ? { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/fhir+json' } : {}) },
      ...(body !== undefined ? { body: form ? body : JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      // not JSON: kept as text
    }
    return { status: res.status, body: parsed as T, etag: res.headers.get('etag'), location: res.headers.get('location'), ms: performance.now() - started };
  } catch (err) {
    return { status: 0, body: undefined as T, etag: null, location: null, ms: performance.now() - started, error: String((err as Error).cause ?? err) };
  }
}

/** A clinician (fastlege) with a real token from the server's embedded identity provider. */
export class Clinician {
  constructor(
    public baseUrl: string,
    readonly token: string,
  ) {}

  static async login(server: { url: string }, dataDir: string): Promise<Clinician> {
    return new Clinician(server.url, await token(server.url, dataDir, ['clinician', 'fastlege'], 'nhn:samplan/read nhn:samplan/write'));
  }

  /** A FHIR request about the patient `nin` (the NHN headers an EHR sends). */
  fhir<T = Json>(method: string, fhirPath: string, nin: string | undefined, body?: unknown, extra: Record<string, string> = {}, baseUrl = this.baseUrl): Promise<Reply<T>> {
    return request<T>(baseUrl, method, `/fhir/${fhirPath}`, { ...clinicianHeaders(this.token, nin), ...extra }, body);
  }
}

/** A reply in a line, for assertion messages. */
export const brief = (r: Reply): string => `${r.status} ${r.error ?? JSON.stringify(r.body ?? null).slice(0, 300)}`;

/** The ETag's version (W/"3" → "3"). */
export const versionOf = (etag: string | null): string | undefined => /W\/"([^"]+)"/.exec(etag ?? '')?.[1];

export function isOutcome(body: unknown): boolean {
  return !!body && typeof body === 'object' && (body as { resourceType?: unknown }).resourceType === 'OperationOutcome';
}

/** The stable Samplan error code of an OperationOutcome. */
export function errorCode(body: unknown): string | undefined {
  const issues = (body as { issue?: Array<{ details?: { coding?: Array<{ system?: string; code?: string }> } }> } | undefined)?.issue ?? [];
  for (const i of issues) for (const c of i.details?.coding ?? []) if (c.system?.endsWith(ERROR_CODE_SYSTEM_SUFFIX)) return c.code;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Data

export interface TestPatient {
  n: number;
  nin: string;
  id: string;
}

/** Registers synthetic person `n` with plan consent (what a clinician needs to write for them). */
export async function registerPatient(c: Clinician, n: number): Promise<TestPatient> {
  const p = person(n);
  const made = await c.fhir('POST', 'Patient', p.nin, {
    resourceType: 'Patient',
    identifier: [{ system: FNR, value: p.nin }],
    name: [{ family: p.family, given: [p.given] }],
    birthDate: p.birthDate,
  }, { prefer: 'return=representation' });
  if (made.status !== 201) throw new Error(`Patient: ${made.status} ${JSON.stringify(made.body).slice(0, 400)}`);
  const id = made.body.id as string;
  const consent = await c.fhir('POST', 'Consent', p.nin, privacyConsent(id, 'plan', { provision: { type: 'permit' } }));
  if (consent.status !== 201) throw new Error(`Consent: ${consent.status} ${JSON.stringify(consent.body).slice(0, 400)}`);
  return { n, nin: p.nin, id };
}

export const RELIABILITY_SYSTEM = 'urn:samplan:reliability';

export function carePlan(patientId: string, title: string, status = 'active'): Record<string, unknown> {
  return { resourceType: 'CarePlan', status, intent: 'plan', title, subject: { reference: `Patient/${patientId}` } };
}

export function goal(patientId: string, text: string, marker?: string): Record<string, unknown> {
  return {
    resourceType: 'Goal',
    ...(marker ? { identifier: [{ system: RELIABILITY_SYSTEM, value: marker }] } : {}),
    lifecycleStatus: 'active',
    description: { text },
    subject: { reference: `Patient/${patientId}` },
  };
}

export function observation(patientId: string, text: string, marker?: string): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    ...(marker ? { identifier: [{ system: RELIABILITY_SYSTEM, value: marker }] } : {}),
    status: 'final',
    code: { text },
    subject: { reference: `Patient/${patientId}` },
    valueQuantity: { value: 72, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
  };
}

/** Every resource a search finds, page by page. */
export async function searchAll(c: Clinician, nin: string, query: string): Promise<Json[]> {
  const out: Json[] = [];
  let next: string | undefined = query;
  while (next) {
    const page: Reply = next.startsWith('http') ? await request(next.replace(/\/fhir\/.*$/, ''), 'GET', next.slice(next.indexOf('/fhir/')), clinicianHeaders(c.token, nin)) : await c.fhir('GET', next, nin);
    if (page.status !== 200) throw new Error(`search ${query}: ${page.status} ${JSON.stringify(page.body).slice(0, 400)}`);
    for (const e of page.body.entry ?? []) if (e.search?.mode !== 'include' && e.resource) out.push(e.resource);
    next = (page.body.link ?? []).find((l: { relation: string }) => l.relation === 'next')?.url;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// A notification receiver

export interface Receiver {
  url: string;
  received: Array<{ headers: IncomingHttpHeaders; body: string; at: number }>;
  close(): Promise<void>;
}

/** An HTTP endpoint on 127.0.0.1 that records every POST and answers 200. */
export async function receiver(): Promise<Receiver> {
  const received: Receiver['received'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/notify`,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
