import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/app.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => t?.close());

describe('smoke', () => {
  it('creates and reads a patient', async () => {
    const created = await t.request('POST', 'Patient', { body: { resourceType: 'Patient', name: [{ family: 'Nordmann' }] } });
    expect(created.status).toBe(201);
    const id = (created.body as { id: string }).id;
    const read = await t.request('GET', `Patient/${id}`);
    expect(read.status).toBe(200);
    expect(read.headers.etag).toBe('W/"1"');
    const s = await t.request('GET', 'Patient?name=nord');
    expect(s.status).toBe(200);
    expect((s.body as { total: number }).total).toBe(1);
  });
});
