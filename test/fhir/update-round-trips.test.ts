/**
 * An update of a plan resource waits for the database twice: for the row lock (with the lookups
 * its new content needs, sent with it) and for COMMIT (with the UPDATE itself, whose answer is
 * known under the lock, the Provenance, the plan change and the AuditEvent). Seen at the socket.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/app.js';
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
