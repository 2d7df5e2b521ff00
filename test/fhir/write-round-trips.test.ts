/**
 * How often a write waits for the database, seen at the socket. An update of a plan resource
 * waits twice: for the row lock (with the lookups its new content needs, sent with it) and for
 * COMMIT (with the UPDATE itself, whose answer is known under the lock, the Provenance, the plan
 * change and the AuditEvent). A transaction's creates do not wait each: their INSERTs can only
 * fail, and a failure takes the transaction down. And what that costs when a create's id exists.
 */
import net from 'node:net';
import type { Bundle, Goal } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACCESS } from '../../src/fhir/access.js';
import { inTransaction } from '../../src/store/db.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';
import { onServer } from '../support/db.js';
import { asClinician, seedPatient } from '../support/security.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
});
afterAll(async () => t?.close());

/** The protocol messages of a write to the database, by their type letter (Q a simple query, B a prepared one's Bind, …). */
function messages(chunk: Buffer): string {
  let types = '';
  for (let i = 0; i + 5 <= chunk.length; i += 1 + chunk.readInt32BE(i + 1)) types += String.fromCharCode(chunk[i] as number);
  return types;
}

/** What goes to the database on the connection of the transaction that `act` runs: the messages of each socket write. */
async function transactionWrites(act: () => Promise<unknown>): Promise<string[]> {
  const write = net.Socket.prototype.write;
  const bySocket = new Map<net.Socket, Buffer[]>();
  net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
    bySocket.set(this, [...(bySocket.get(this) ?? []), Buffer.from(chunk as Uint8Array)]);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  };
  try {
    await act();
  } finally {
    net.Socket.prototype.write = write;
  }
  const [writes] = [...bySocket.values()].filter((w) => /^Q.{4}begin/s.test(w[0]?.toString('latin1') ?? ''));
  return (writes ?? []).map(messages);
}

describe.runIf(onServer)('an update', () => {
  it('waits for the database twice: the lock with its lookups, then COMMIT with the UPDATE and the records', async () => {
    const pid = await seedPatient(t, 'anne');
    const gp = (method: string, path: string, body?: unknown) => asClinician(t, 'fastlege', method, path, { patient: 'anne', ...(body !== undefined ? { body } : {}) });
    const goal = (text: string, id?: string) => ({ resourceType: 'Goal', ...(id ? { id } : {}), lifecycleStatus: 'active', description: { text }, subject: { reference: `Patient/${pid}` } });
    const created = (await gp('POST', 'Goal', goal('Gå tur hver dag'))).body as { id: string };
    // Every statement prepared on every connection of the pool first: a statement's first run waits for its description.
    for (let i = 0; i < 12; i++) await gp('PUT', `Goal/${created.id}`, goal(`Gå tur ${i}`, created.id));

    let status = 0;
    const writes = await transactionWrites(async () => {
      status = (await gp('PUT', `Goal/${created.id}`, goal('Gå tur hver morgen', created.id))).status;
    });
    expect(status).toBe(200);
    // BEGIN, the lock, the reference and subscription lookups; then the UPDATE, the plan change, the
    // AuditEvent, the Provenance and COMMIT (each prepared statement a Bind, Execute and Sync).
    expect(writes).toEqual(['QBESBESBES', 'BESBESBESBESBES']);
    const read = (await gp('GET', `Goal/${created.id}`)).body as { description: { text: string } };
    expect(read.description.text).toBe('Gå tur hver morgen');
  });
});

const goal = (patient: string, text: string): Goal => ({ resourceType: 'Goal', lifecycleStatus: 'active', description: { text }, subject: { reference: `Patient/${patient}` } });

describe.runIf(onServer)('a transaction Bundle', () => {
  it('does not wait for each entry it creates: twelve creates take as many socket writes as two', async () => {
    const pid = await seedPatient(t, 'bjorn');
    const bundle = (n: number): Bundle => ({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: n }, (_, i) => ({ resource: goal(pid, `Mål ${i}`), request: { method: 'POST' as const, url: 'Goal' } })),
    });
    const post = (n: number) => asClinician(t, 'fastlege', 'POST', '/fhir', { patient: 'bjorn', body: bundle(n) });
    for (let i = 0; i < 12; i++) await post(2); // every statement prepared on every connection first
    const sizes: number[] = [];
    for (const n of [2, 12]) {
      let status = 0;
      const writes = await transactionWrites(async () => {
        status = (await post(n)).status;
      });
      expect(status).toBe(200);
      sizes.push(writes.length);
    }
    expect(sizes[1]).toBe(sizes[0]);
    const stored = await asClinician(t, 'fastlege', 'GET', `Goal?subject=Patient/${pid}&_summary=count`, { patient: 'bjorn' });
    expect((stored.body as Bundle).total).toBe(12 * 2 + 2 + 12);
  });
});

describe('a create under an id that exists', () => {
  it('is refused with 409, and nothing its transaction wrote before or after it is stored', async () => {
    const pid = await seedPatient(t, 'dagny');
    const { writer } = t.app.engine.services;
    const ctx = { requestId: 'test', baseUrl: BASE, access: SYSTEM_ACCESS };
    const existing = await writer.create(t.database.db, ctx, goal(pid, 'Finnes fra før'));
    const attempt = inTransaction(t.database.db, async (tx) => {
      await writer.create(tx, ctx, goal(pid, 'Før'));
      await writer.create(tx, ctx, goal(pid, 'Samme id'), existing.version.id);
      await writer.create(tx, ctx, goal(pid, 'Etter'));
    });
    await expect(attempt).rejects.toMatchObject({ status: 409, message: expect.stringContaining('already exists') });
    const texts = await t.database.db.query<{ content: string }>("SELECT content FROM resources WHERE type = 'Goal' AND content LIKE $1", [`%Patient/${pid}%`]);
    expect(texts.map((r) => (JSON.parse(r.content) as Goal).description.text)).toEqual(['Finnes fra før']);
  });
});
