/** Operations: health endpoints, request ids, logs free of personal data, CapabilityStatement. */
import type { CapabilityStatement } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { SYSTEM_ACCESS } from '../../src/fhir/access.js';
import { syntheticNin } from '../../src/no/identifiers.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { capturedLogger } from '../support/logs.js';

let app: App;
let database: TestDatabase;
let lines: string[] = [];

beforeAll(async () => {
  database = await openTestDatabase();
  const captured = capturedLogger();
  lines = captured.lines;
  app = await createApp(loadConfig({ BASE_URL: 'http://ops.test/fhir', DATA_DIR: database.dataDir }), captured.logger, {
    db: database.db,
    authenticate: async () => ({ access: SYSTEM_ACCESS }),
  });
});
afterAll(async () => {
  await app.close();
  await database.drop();
});

describe('health', () => {
  it('/healthz and /readyz answer 200 while serving', async () => {
    expect((await app.server.inject({ url: '/healthz' })).statusCode).toBe(200);
    const ready = await app.server.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(JSON.parse(ready.body).status).toBe('ready');
  });
});

describe('request ids and logs', () => {
  it('echoes a valid X-Request-Id and makes one otherwise', async () => {
    const given = await app.server.inject({ url: '/fhir/metadata', headers: { 'x-request-id': 'abc-123' } });
    expect(given.headers['x-request-id']).toBe('abc-123');
    const made = await app.server.inject({ url: '/fhir/metadata', headers: { 'x-request-id': 'bad id with spaces' } });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('logs method, path and status, but never the query string or body', async () => {
    const nin = syntheticNin('1948-03-12');
    await app.server.inject({ url: `/fhir/Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1|${nin}` });
    await app.server.inject({
      method: 'POST',
      url: '/fhir/Patient/_search',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `identifier=urn:oid:2.16.578.1.12.4.1.4.1|${nin}`,
    });
    const created = await app.server.inject({
      method: 'POST',
      url: '/fhir/Patient',
      headers: { 'content-type': 'application/fhir+json', authorization: 'Bearer secret-token' },
      payload: JSON.stringify({ resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.578.1.12.4.1.4.1', value: nin }] }),
    });
    const log = lines.join('');
    expect(log).not.toContain(nin);
    expect(log).not.toContain('secret-token');
    const entries = lines.map((l) => JSON.parse(l) as { msg: string; path?: string; status?: number; method?: string; reqId?: string });
    expect(entries.some((e) => e.msg === 'request' && e.path === '/fhir/Patient' && e.status === 400 && e.method === 'GET')).toBe(true);
    expect(entries.some((e) => e.msg === 'request' && e.path === '/fhir/Patient/_search' && e.status === 200)).toBe(true);
    // Each line names the request it is about by the id the client was answered with.
    expect(entries.filter((e) => e.msg === 'request' && e.status === 201).map((e) => e.reqId)).toEqual([created.headers['x-request-id']]);
    expect(entries.filter((e) => e.msg === 'request').every((e) => typeof e.reqId === 'string' && e.reqId.length > 0)).toBe(true);
  });
});

describe('CapabilityStatement', () => {
  it('describes every R4 resource type with its interactions, search parameters and includes', async () => {
    const res = await app.server.inject({ url: '/fhir/metadata' });
    expect(res.statusCode).toBe(200);
    const cs = JSON.parse(res.body) as CapabilityStatement;
    expect(cs.resourceType).toBe('CapabilityStatement');
    expect(cs.fhirVersion).toBe('4.0.1');
    expect(cs.format).toContain('application/fhir+json');
    const rest = cs.rest?.[0];
    expect(rest?.resource?.length).toBeGreaterThanOrEqual(145);
    expect(rest?.interaction?.map((i) => i.code)).toEqual(expect.arrayContaining(['transaction', 'batch', 'search-system', 'history-system']));
    const carePlan = rest?.resource?.find((r) => r.type === 'CarePlan');
    expect(carePlan?.interaction?.map((i) => i.code)).toEqual(
      expect.arrayContaining(['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type']),
    );
    expect(carePlan?.versioning).toBe('versioned-update');
    expect(carePlan?.conditionalCreate).toBe(true);
    expect(carePlan?.searchParam?.map((p) => p.name)).toEqual(expect.arrayContaining(['subject', 'status', 'goal', 'date', '_id', '_lastUpdated', '_tag']));
    expect(carePlan?.searchInclude).toContain('CarePlan:goal');
    expect(carePlan?.searchRevInclude).toContain('CarePlan:part-of');
    expect(carePlan?.operation?.map((o) => o.name)).toContain('validate');
    // Operations are listed where they can be invoked: system ones on the server, type ones on their type.
    expect(rest?.operation?.map((o) => o.name)).toEqual(expect.arrayContaining(['export', 'export-status', 'export-file']));
    expect(carePlan?.operation?.map((o) => o.name)).not.toContain('export-status');
    expect(rest?.resource?.find((r) => r.type === 'Patient')?.operation?.map((o) => o.name)).toContain('export');
    expect(rest?.resource?.find((r) => r.type === 'PlanDefinition')?.operation?.map((o) => o.name)).toContain('apply');
    // What the statement lists must really work: every CarePlan parameter is accepted by search.
    for (const p of carePlan?.searchParam ?? []) {
      const value = p.type === 'date' ? '2024' : p.type === 'number' ? '1' : p.type === 'quantity' ? '1' : p.type === 'composite' ? 'a$b' : 'x';
      const search = await app.server.inject({ url: `/fhir/CarePlan?${p.name}=${value}`, headers: { prefer: 'handling=strict' } });
      expect([200], `${p.name}: ${search.body}`).toContain(search.statusCode);
    }
  });
});
