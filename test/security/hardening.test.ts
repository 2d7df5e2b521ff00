/** Security headers, CORS allow-list, per-client rate limits, and logs free of secrets and national ids. */
import { connect } from 'node:net';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { citizenByKey } from '../../src/demo/population.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { capturedLogger } from '../support/logs.js';
import { nhnHeaders } from '../support/security.js';

let app: App;
let database: TestDatabase;
let lines: string[] = [];

beforeAll(async () => {
  database = await openTestDatabase();
  const captured = capturedLogger();
  lines = captured.lines;
  const config = loadConfig({ BASE_URL: 'http://hard.test/fhir', DATA_DIR: database.dataDir, CORS_ORIGINS: 'https://portal.example.no', RATE_LIMIT_PER_MINUTE: '8' });
  app = await createApp(config, captured.logger, { db: database.db });
});
afterAll(async () => {
  await app.close();
  await database.drop();
});

describe('hardening', () => {
  it('answers what the HTTP parser refuses with an OperationOutcome, on a real socket', async () => {
    const address = await app.server.listen({ port: 0, host: '127.0.0.1' });
    const raw = (data: string) =>
      new Promise<string>((resolve, reject) => {
        let text = '';
        const socket = connect(Number(new URL(address).port), '127.0.0.1', () => socket.write(data));
        socket.on('data', (chunk) => (text += chunk.toString()));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
    for (const request of ['NOT HTTP AT ALL\r\n\r\n', `GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]) {
      const res = await raw(request);
      expect(res).toMatch(/^HTTP\/1\.1 400 /);
      expect(res).toMatch(/content-type: application\/fhir\+json/i);
      const body = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4)) as OperationOutcome;
      expect(body.resourceType).toBe('OperationOutcome');
      expect(body.issue[0]?.details?.coding?.[0]?.code).toBe('INVALID_REQUEST');
    }
  });

  it('sends security headers, also on what the identity provider answers itself', async () => {
    for (const url of ['/fhir/metadata', '/fhir/Patient', '/idp/.well-known/openid-configuration', '/nowhere']) {
      const res = await app.server.inject({ url });
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
      expect(res.headers['strict-transport-security'], url).toMatch(/max-age=\d+/);
      expect(res.headers['content-security-policy'], url).toMatch(/default-src 'none'/);
      expect(res.headers['x-frame-options'], url).toBeDefined();
      expect(res.headers['cross-origin-resource-policy'], url).toBe('same-origin');
    }
  });

  it('allows only listed origins by CORS', async () => {
    const allowed = await app.server.inject({ method: 'OPTIONS', url: '/fhir/Patient', headers: { origin: 'https://portal.example.no', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,nhn-patient-nin' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://portal.example.no');
    expect(String(allowed.headers['access-control-allow-headers'])).toMatch(/nhn-patient-nin/);
    const other = await app.server.inject({ method: 'OPTIONS', url: '/fhir/Patient', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('allows no origin by CORS when none is listed, and still answers requests without CORS headers', async () => {
    const config = loadConfig({ BASE_URL: 'http://hard.test/fhir', DATA_DIR: database.dataDir, SEED_DEMO_DATA: 'false' });
    const closed = await createApp(config, capturedLogger().logger, { db: database.db, delivery: false });
    try {
      const preflight = await closed.server.inject({ method: 'OPTIONS', url: '/fhir/Patient', headers: { origin: 'https://portal.example.no', 'access-control-request-method': 'GET' } });
      expect(preflight.statusCode).toBe(404);
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      expect((JSON.parse(preflight.body) as OperationOutcome).resourceType).toBe('OperationOutcome');
      const res = await closed.server.inject({ url: '/fhir/metadata', headers: { origin: 'https://portal.example.no' } });
      expect(res.statusCode).toBe(200);
      expect(Object.keys(res.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    } finally {
      await closed.close();
    }
  });

  it('limits requests per client with 429, Retry-After and an OperationOutcome', async () => {
    const token = await app.idp!.issueAccessToken(app.idp!.clinicianClaims('fastlege'));
    const statuses: number[] = [];
    let limited: { headers: Record<string, unknown>; body: string } | undefined;
    for (let i = 0; i < 12; i++) {
      const res = await app.server.inject({ url: '/fhir/Organization', headers: { authorization: `Bearer ${token}`, ...nhnHeaders() } });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) limited = { headers: res.headers, body: res.body };
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(8);
    expect(statuses.slice(8).every((s) => s === 429)).toBe(true);
    expect(Number(limited?.headers['retry-after'])).toBeGreaterThan(0);
    const outcome = JSON.parse(limited?.body ?? '{}') as OperationOutcome;
    expect(outcome.issue?.[0]?.details?.coding?.[0]?.code).toBe('RATE_LIMITED');
    // Another client is not affected.
    const other = await app.idp!.issueAccessToken(app.idp!.clinicianClaims('hjemmesykepleier'));
    expect((await app.server.inject({ url: '/fhir/Organization', headers: { authorization: `Bearer ${other}`, ...nhnHeaders({ role: 'SP' }) } })).statusCode).toBe(200);
    // Health checks are never limited.
    expect((await app.server.inject({ url: '/healthz' })).statusCode).toBe(200);
  });

  it('limits a token that is not a JWT on its own too', async () => {
    const send = (token: string) => app.server.inject({ url: '/fhir/Organization', headers: { authorization: `Bearer ${token}`, ...nhnHeaders() } });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await send('opaque-token-one')).statusCode);
    expect(statuses).toEqual([...Array(8).fill(401), 429, 429]);
    expect((await send('opaque-token-two')).statusCode).toBe(401);
  });

  it('never logs tokens or national ids', async () => {
    const token = await app.idp!.issueAccessToken(app.idp!.clinicianClaims('kardiolog'));
    const nin = citizenByKey('bjorn').pid;
    await app.server.inject({ url: '/fhir/CarePlan', headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ nin }) } });
    await app.server.inject({ url: '/fhir/CarePlan', headers: { authorization: 'Bearer broken.token.here', ...nhnHeaders({ nin }) } });
    const log = lines.join('');
    expect(log).toContain('"path":"/fhir/CarePlan"');
    expect(log).not.toContain(nin);
    expect(log).not.toContain(token.slice(20, 60));
    expect(log).not.toContain('broken.token.here');
  });
});
