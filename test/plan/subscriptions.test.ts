/**
 * Change notifications (src/plan/subscriptions): FHIR R4 Subscriptions, classic and topic-based
 * (R4 Subscriptions Backport), delivered from the outbox to real HTTP receivers on 127.0.0.1.
 *
 * Delivery: one signed notification per change with the right focus and no content; nothing for
 * other patients or rolled-back transactions; an endpoint that is down gets the notification once
 * it is up; a new worker delivers what an earlier one left; two workers on one database deliver
 * each notification once, in order; failing for too long sets the Subscription to error, and
 * setting it to requested again resumes. Matching: filters, previous versions (deletes, a status
 * that stops matching). Access (real tokens): clinicians subscribe to their patient only, citizens
 * not at all, machine tokens with the status scope to "a patient's plan changed" (empty); only
 * the owning client sees or deletes a Subscription. Bad Subscriptions get clear OperationOutcomes.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from '@medplum/fhirtypes';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { ERROR_CODE_SYSTEM } from '../../src/fhir/outcomes.js';
import { OID } from '../../src/no/identifiers.js';
import {
  type Delivery,
  type DeliveryOptions,
  PLAN_CHANGED_TOPIC,
  SUBSCRIPTION_EXTENSION,
  startDelivery,
  verifySignature,
} from '../../src/plan/subscriptions/index.js';
import type { Database } from '../../src/store/db.js';
import { openPostgres } from '../../src/store/postgres.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';
import { nhnHeaders, seedPatient } from '../support/security.js';

const SECRET = 'test-secret-0123456789abcdef';

/** The app without its own delivery worker: the tests start theirs. */
function startServer(options: { tokens?: boolean } = {}): Promise<TestServer> {
  return startTestServer({}, { auth: options.tokens ? 'tokens' : 'system', app: { delivery: false } });
}

/** A notification receiver on 127.0.0.1: records what it gets, answers `status()`. */
interface Receiver {
  url: string;
  port: number;
  received: Array<{ headers: IncomingHttpHeaders; body: string }>;
  status: () => number;
  delayMs: number;
  listen(): Promise<void>;
  close(): Promise<void>;
}

async function receiver(options: { listening?: boolean; port?: number } = {}): Promise<Receiver> {
  let server: Server | undefined;
  const r: Receiver = {
    url: '',
    port: options.port ?? 0,
    received: [],
    status: () => 200,
    delayMs: 0,
    async listen() {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          r.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
          setTimeout(() => {
            res.statusCode = r.status();
            res.end();
          }, r.delayMs);
        });
      });
      await new Promise<void>((resolve) => (server as Server).listen(r.port, '127.0.0.1', resolve));
      r.port = (server.address() as AddressInfo).port;
      r.url = `http://127.0.0.1:${r.port}/notify`;
    },
    async close() {
      if (!server) return;
      const s = server;
      server = undefined;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  if (options.listening === false) {
    // Take a free port, then let it go: connections are refused until listen().
    await r.listen();
    await r.close();
  } else await r.listen();
  return r;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function worker(t: TestServer, options: Partial<DeliveryOptions> = {}, db: Database = t.app.db): Delivery {
  return startDelivery(db, { writer: t.app.engine.services.writer, baseUrl: BASE, pollIntervalMs: 100, retryDelaysMs: [100, 200], timeoutMs: 2000, ...options });
}

// ---------------------------------------------------------------------------------------------
// Subscriptions and the resources they watch

interface SubscriptionInput {
  endpoint?: string;
  content?: 'empty' | 'id-only' | 'full-resource';
  filter?: string;
  headers?: string[];
  secret?: string | null;
}

function topicSubscription(filter: string, input: SubscriptionInput = {}): Record<string, unknown> {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Varsle journalsystemet når pasientens plan endres',
    criteria: PLAN_CHANGED_TOPIC,
    _criteria: { extension: [{ url: SUBSCRIPTION_EXTENSION.filterCriteria, valueString: filter }] },
    channel: {
      type: 'rest-hook',
      ...(input.endpoint !== undefined ? { endpoint: input.endpoint } : {}),
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: SUBSCRIPTION_EXTENSION.payloadContent, valueCode: input.content ?? 'id-only' }] },
      ...(input.headers ? { header: input.headers } : {}),
    },
    ...(input.secret === null ? {} : { extension: [{ url: SUBSCRIPTION_EXTENSION.secret, valueString: input.secret ?? SECRET }] }),
  };
}

function classicSubscription(criteria: string, input: SubscriptionInput & { payload?: string } = {}): Record<string, unknown> {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Varsle journalsystemet',
    criteria,
    channel: {
      type: 'rest-hook',
      ...(input.endpoint !== undefined ? { endpoint: input.endpoint } : {}),
      ...(input.payload ? { payload: input.payload } : {}),
      ...(input.headers ? { header: input.headers } : {}),
    },
    ...(input.secret === null ? {} : { extension: [{ url: SUBSCRIPTION_EXTENSION.secret, valueString: input.secret ?? SECRET }] }),
  };
}

const flag = (patient: string, text: string, status = 'active') => ({
  resourceType: 'Flag',
  status,
  code: { text },
  subject: { reference: `Patient/${patient}` },
});

const observation = (patient: string, text: string, status = 'final') => ({
  resourceType: 'Observation',
  status,
  code: { text },
  subject: { reference: `Patient/${patient}` },
  valueQuantity: { value: 72, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
});

async function planOf(t: TestServer, patient: string): Promise<Resource & { id: string }> {
  const res = await t.system<{ entry?: Array<{ resource: Resource & { id: string } }> }>('GET', `CarePlan?subject=Patient/${patient}`);
  const plan = res.body.entry?.[0]?.resource;
  if (!plan) throw new Error(`no CarePlan for Patient/${patient}`);
  return plan;
}

/** Changes the patient's plan (a new version of its CarePlan). */
async function changePlan(t: TestServer, patient: string, description: string): Promise<string> {
  const plan = await planOf(t, patient);
  const res = await t.system('PUT', `CarePlan/${plan.id}`, { ...plan, description });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return plan.id;
}

async function subscribe(t: TestServer, subscription: Record<string, unknown>): Promise<string> {
  const res = await t.system<{ id: string; status: string }>('POST', 'Subscription', subscription);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  expect(res.body.status).toBe('active');
  return res.body.id;
}

interface Notification {
  bundle: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  status: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  events: Array<{ number: number; focus?: string }>;
}

function parse(body: string): Notification {
  const bundle = JSON.parse(body);
  const status = bundle.entry[0].resource;
  const events = (status.parameter as Array<{ name: string; part?: Array<{ name: string; valueString?: string; valueReference?: { reference: string } }> }>)
    .filter((p) => p.name === 'notification-event')
    .map((p) => {
      const focus = p.part?.find((x) => x.name === 'focus')?.valueReference?.reference;
      return { number: Number(p.part?.find((x) => x.name === 'event-number')?.valueString), ...(focus ? { focus } : {}) };
    });
  return { bundle, status, events };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const param = (status: Record<string, any>, name: string): any => (status.parameter as Array<Record<string, unknown>>).find((p) => p.name === name);

const errorCode = (body: Record<string, any>) => body.issue?.[0]?.details?.coding?.find((c: { system: string }) => c.system === ERROR_CODE_SYSTEM)?.code; // eslint-disable-line @typescript-eslint/no-explicit-any

async function outboxCount(t: TestServer): Promise<number> {
  const [row] = await t.app.db.query<{ n: number }>('SELECT count(*)::int AS n FROM subscription_outbox');
  return row?.n ?? 0;
}

// =============================================================================================

describe('delivery', () => {
  let t: TestServer;
  let anne: string;
  let bjorn: string;
  const workers: Delivery[] = [];
  const receivers: Receiver[] = [];
  const start = (options: Partial<DeliveryOptions> = {}, db?: Database) => {
    const w = worker(t, options, db);
    workers.push(w);
    return w;
  };
  const listen = async (options: { listening?: boolean } = {}) => {
    const r = await receiver(options);
    receivers.push(r);
    return r;
  };

  beforeAll(async () => {
    t = await startServer();
    anne = await seedPatient(t, 'anne');
    bjorn = await seedPatient(t, 'bjorn');
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    // Each test starts from an empty outbox and no active subscriptions.
    await t.app.db.query(`DELETE FROM subscriptions`);
    await t.app.db.query(`DELETE FROM resources WHERE type = 'Subscription'`);
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });
  afterAll(async () => {
    await t.close();
  });

  it('sends one signed id-only notification for a change to the subscribed patient\'s plan, and none for another patient', async () => {
    const r = await listen();
    const id = await subscribe(t, topicSubscription(`patient=Patient/${anne}`, { endpoint: r.url, headers: ['Authorization: Bearer receiver-token'] }));
    start();
    const plan = await changePlan(t, anne, 'Ny beskrivelse med helseopplysninger');
    await changePlan(t, bjorn, 'Endring for en annen pasient');
    await waitFor('a notification', () => r.received.length >= 1);
    await sleep(400);
    expect(r.received).toHaveLength(1);
    const [got] = r.received;
    expect(got?.headers['content-type']).toBe('application/fhir+json');
    expect(got?.headers.authorization).toBe('Bearer receiver-token');
    expect(verifySignature(SECRET, got?.body ?? '', got?.headers['x-samplan-signature'] as string)).toBe(true);
    expect(verifySignature('another secret of some length', got?.body ?? '', got?.headers['x-samplan-signature'] as string)).toBe(false);
    expect(verifySignature(SECRET, `${got?.body} `, got?.headers['x-samplan-signature'] as string)).toBe(false);

    const n = parse(got?.body ?? '');
    expect(n.bundle.resourceType).toBe('Bundle');
    expect(n.bundle.type).toBe('history');
    expect(n.status.resourceType).toBe('Parameters');
    expect(param(n.status, 'subscription').valueReference.reference).toBe(`${BASE}/Subscription/${id}`);
    expect(param(n.status, 'topic').valueCanonical).toBe(PLAN_CHANGED_TOPIC);
    expect(param(n.status, 'status').valueCode).toBe('active');
    expect(param(n.status, 'type').valueCode).toBe('event-notification');
    expect(param(n.status, 'events-since-subscription-start').valueString).toBe('1');
    // One event (the Provenance written with the change does not notify), focused on the plan.
    expect(n.events).toEqual([{ number: 1, focus: `${BASE}/CarePlan/${plan}` }]);
    const timestamp = (param(n.status, 'notification-event').part as Array<{ name: string; valueInstant?: string }>).find((p) => p.name === 'timestamp');
    expect(Date.parse(timestamp?.valueInstant ?? '')).toBeGreaterThan(0);
    expect(n.bundle.entry).toHaveLength(2);
    expect(n.bundle.entry[1]).toEqual({ fullUrl: `${BASE}/CarePlan/${plan}`, request: { method: 'PUT', url: `CarePlan/${plan}` }, response: { status: '200' } });
    // id-only: no content of the changed resource, no resource but the status.
    expect(got?.body).not.toContain('helseopplysninger');
    expect(n.bundle.entry[1].resource).toBeUndefined();
    await waitFor('the outbox to empty', async () => (await outboxCount(t)) === 0);
  });

  it('sends empty notifications without focus, and classic R4 pings without a body', async () => {
    const r1 = await listen();
    const r2 = await listen();
    await subscribe(t, topicSubscription(`patient=Patient/${anne}`, { endpoint: r1.url, content: 'empty' }));
    await subscribe(t, classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint: r2.url }));
    start();
    await changePlan(t, anne, 'Tom varsling');
    await waitFor('both notifications', () => r1.received.length >= 1 && r2.received.length >= 1);
    const empty = parse(r1.received[0]?.body ?? '');
    expect(empty.events).toEqual([{ number: 1 }]);
    expect(empty.bundle.entry).toHaveLength(1);
    expect(r1.received[0]?.body).not.toContain('CarePlan');
    const ping = r2.received[0];
    expect(ping?.body).toBe('');
    expect(ping?.headers['content-type']).toBeUndefined();
    expect(verifySignature(SECRET, '', ping?.headers['x-samplan-signature'] as string)).toBe(true);
  });

  it('matches filters against the new and the previous version: a status that stops matching, a deletion', async () => {
    const r = await listen();
    await subscribe(t, classicSubscription(`Observation?patient=Patient/${anne}&status=final`, { endpoint: r.url, payload: 'application/fhir+json' }));
    start();
    const f = await t.system<{ id: string }>('POST', 'Observation', observation(anne, 'Vekt'));
    expect(f.status, JSON.stringify(f.body)).toBe(201);
    await waitFor('the create', () => r.received.length >= 1);
    // final → entered-in-error: the new version does not match, the previous one did.
    const withdrawn = await t.system('PUT', `Observation/${f.body.id}`, { ...observation(anne, 'Vekt', 'entered-in-error'), id: f.body.id });
    expect(withdrawn.status, JSON.stringify(withdrawn.body)).toBe(200);
    await waitFor('the update', () => r.received.length >= 2);
    // entered-in-error with another text: neither version matches.
    await t.system('PUT', `Observation/${f.body.id}`, { ...observation(anne, 'Vekt (feil)', 'entered-in-error'), id: f.body.id });
    // An observation that does not match at all.
    await t.system('POST', 'Observation', observation(anne, 'Foreløpig', 'preliminary'));
    const g = await t.system<{ id: string }>('POST', 'Observation', observation(anne, 'Slettes'));
    await waitFor('the second create', () => r.received.length >= 3);
    expect((await t.system('DELETE', `Observation/${g.body.id}`)).status).toBe(204);
    await waitFor('the deletion', () => r.received.length >= 4);
    await sleep(300);
    const all = r.received.map((x) => parse(x.body));
    const events = all.flatMap((n) => n.events);
    expect(events.map((e) => e.number)).toEqual([1, 2, 3, 4]);
    expect(events.map((e) => e.focus)).toEqual([
      `${BASE}/Observation/${f.body.id}`,
      `${BASE}/Observation/${f.body.id}`,
      `${BASE}/Observation/${g.body.id}`,
      `${BASE}/Observation/${g.body.id}`,
    ]);
    const methods = all.flatMap((n) => n.bundle.entry.slice(1).map((e: { request: { method: string } }) => e.request.method));
    expect(methods).toEqual(['POST', 'PUT', 'POST', 'DELETE']);
    // The classic subscription has no topic.
    expect(param(all[0]?.status ?? {}, 'topic')).toBeUndefined();
  });

  // An update's subscription lookup goes out with its lock, for the patients of the new content:
  // the patient the resource leaves must still be found.
  it('notifies the patient a resource is moved away from, as well as the one it is moved to', async () => {
    const ra = await listen();
    const rb = await listen();
    await subscribe(t, classicSubscription(`Observation?patient=Patient/${anne}`, { endpoint: ra.url, payload: 'application/fhir+json' }));
    await subscribe(t, classicSubscription(`Observation?patient=Patient/${bjorn}`, { endpoint: rb.url, payload: 'application/fhir+json' }));
    start();
    const o = await t.system<{ id: string }>('POST', 'Observation', observation(anne, 'Vekt'));
    expect(o.status, JSON.stringify(o.body)).toBe(201);
    await waitFor('the create', () => ra.received.length >= 1);
    const moved = await t.system('PUT', `Observation/${o.body.id}`, { ...observation(bjorn, 'Vekt'), id: o.body.id });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    await waitFor('the move, on both sides', () => ra.received.length >= 2 && rb.received.length >= 1);
    const focus = (r: typeof ra) => r.received.flatMap((x) => parse(x.body).events.map((e: { focus?: string }) => e.focus));
    expect(focus(ra)).toEqual([`${BASE}/Observation/${o.body.id}`, `${BASE}/Observation/${o.body.id}`]);
    expect(focus(rb)).toEqual([`${BASE}/Observation/${o.body.id}`]);
  });

  it('notifies nothing for a rolled-back transaction', async () => {
    const r = await listen();
    await subscribe(t, topicSubscription(`patient=Patient/${anne}`, { endpoint: r.url }));
    const plan = await planOf(t, anne);
    const res = await t.system('POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { ...plan, description: 'Rulles tilbake' }, request: { method: 'PUT', url: `CarePlan/${plan.id}` } },
        { resource: flag(anne, 'Også tilbake'), request: { method: 'POST', url: 'Flag' } },
        { resource: { resourceType: 'Flag', status: 'no-such-status', code: { text: 'x' }, subject: { reference: `Patient/${anne}` } }, request: { method: 'POST', url: 'Flag' } },
      ],
    });
    expect(res.status).toBe(400);
    start();
    await sleep(500);
    expect(r.received).toHaveLength(0);
    expect(await outboxCount(t)).toBe(0);
    const [row] = await t.app.db.query<{ events: number }>('SELECT events FROM subscriptions');
    expect(Number(row?.events)).toBe(0);
  });

  it('puts a committed transaction\'s changes in one subscription\'s outbox in order', async () => {
    const r = await listen();
    await subscribe(t, topicSubscription(`patient=Patient/${anne}`, { endpoint: r.url }));
    const res = await t.system<{ entry: Array<{ response: { location: string } }> }>('POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: flag(anne, 'En'), request: { method: 'POST', url: 'Flag' } },
        { resource: flag(anne, 'To'), request: { method: 'POST', url: 'Flag' } },
        { resource: flag(bjorn, 'Ikke Anne'), request: { method: 'POST', url: 'Flag' } },
      ],
    });
    expect(res.status).toBe(200);
    start();
    await waitFor('the notification', () => r.received.length >= 1);
    await sleep(200);
    const events = r.received.flatMap((x) => parse(x.body).events);
    expect(events.map((e) => e.number)).toEqual([1, 2]);
    expect(events.every((e) => e.focus?.startsWith(`${BASE}/Flag/`))).toBe(true);
  });

  it('retries while the endpoint is down and delivers once it is up', async () => {
    const r = await listen({ listening: false });
    const id = await subscribe(t, topicSubscription(`patient=Patient/${anne}`, { endpoint: r.url }));
    start({ retryDelaysMs: [100, 200, 300] });
    await changePlan(t, anne, 'Mens mottakeren er nede');
    await waitFor('two failed attempts', async () => {
      const [row] = await t.app.db.query<{ attempts: number }>('SELECT attempts FROM subscriptions WHERE id = $1', [id]);
      return (row?.attempts ?? 0) >= 2;
    });
    const [failing] = await t.app.db.query<{ last_error: string; due: Date }>('SELECT last_error, due FROM subscriptions WHERE id = $1', [id]);
    expect(failing?.last_error).toMatch(/could not be reached/);
    expect(await outboxCount(t)).toBe(1);
    await r.listen();
    await waitFor('the delivery after the endpoint came back', () => r.received.length >= 1);
    await sleep(300);
    expect(r.received).toHaveLength(1);
    expect(parse(r.received[0]?.body ?? '').events).toHaveLength(1);
    const [done] = await t.app.db.query<{ attempts: number; last_error: string | null }>('SELECT attempts, last_error FROM subscriptions WHERE id = $1', [id]);
    expect(done).toEqual({ attempts: 0, last_error: null });
  });

  it('loses nothing across a restart: a new worker delivers what is pending', async () => {
    const r = await listen({ listening: false });
    await subscribe(t, topicSubscription(`patient=Patient/${anne}`, { endpoint: r.url }));
    const first = start({ retryDelaysMs: [50] });
    await changePlan(t, anne, 'Før omstart');
    await waitFor('a failed attempt', async () => (await t.app.db.query<{ attempts: number }>('SELECT attempts FROM subscriptions'))[0]?.attempts !== 0);
    await first.stop();
    await changePlan(t, anne, 'Mens ingen sender');
    await r.listen();
    await sleep(200);
    expect(r.received).toHaveLength(0);
    start();
    await waitFor('both events after the restart', () => r.received.flatMap((x) => parse(x.body).events).length >= 2);
    expect(r.received.flatMap((x) => parse(x.body).events.map((e) => e.number))).toEqual([1, 2]);
  });

  it('takes over a delivery whose worker died (its lease expired)', async () => {
    const r = await listen();
    const id = await subscribe(t, topicSubscription(`patient=Patient/${anne}`, { endpoint: r.url }));
    await changePlan(t, anne, 'Arbeideren døde');
    // A worker that claimed the subscription and died before sending.
    await t.app.db.query(`UPDATE subscriptions SET lease_owner = 'dead', lease_until = now() + interval '1 hour' WHERE id = $1`, [id]);
    start();
    await sleep(400);
    expect(r.received).toHaveLength(0);
    await t.app.db.query(`UPDATE subscriptions SET lease_until = now() - interval '1 second' WHERE id = $1`, [id]);
    await waitFor('the delivery after the lease expired', () => r.received.length >= 1);
  });

  it('with two workers on one database, delivers each notification once and in order', async () => {
    const receiversBySubscription = new Map<string, Receiver>();
    for (let i = 0; i < 6; i++) {
      const r = await listen();
      r.delayMs = 15;
      const patient = i % 2 === 0 ? anne : bjorn;
      receiversBySubscription.set(await subscribe(t, topicSubscription(`patient=Patient/${patient}`, { endpoint: r.url })), r);
    }
    // Two instances: on a PostgreSQL server each with its own connection pool.
    const second = t.database.url ? await openPostgres(t.database.url) : undefined;
    // Count what each worker claims, to see that both took part.
    const claims = [0, 0];
    const counting = (db: Database, i: number): Database => ({
      ...db,
      query: async <R,>(text: string, params?: readonly unknown[]) => {
        const rows = await db.query<R>(text, params);
        if (text.includes('SET lease_until')) claims[i] = (claims[i] ?? 0) + rows.length;
        return rows;
      },
      transaction: (fn) => db.transaction(fn),
    });
    try {
      start({ maxEventsPerNotification: 2, concurrency: 2 }, counting(t.app.db, 0));
      start({ maxEventsPerNotification: 2, concurrency: 2 }, counting(second ?? t.app.db, 1));
      const changes = 40;
      // In waves, so that deliveries and new events overlap.
      for (let wave = 0; wave < 4; wave++) {
        await Promise.all(
          Array.from({ length: changes / 4 }, (_, i) => t.system('POST', 'Flag', flag(i % 2 === 0 ? anne : bjorn, `Endring ${wave}.${i}`)).then((res) => expect(res.status).toBe(201))),
        );
        await sleep(30);
      }
      // Each patient has three subscriptions and gets half the changes.
      const expected = Array.from({ length: changes / 2 }, (_, i) => i + 1);
      await waitFor('every event', () => [...receiversBySubscription.values()].every((r) => r.received.flatMap((x) => parse(x.body).events).length >= expected.length));
      await sleep(400);
      for (const [id, r] of receiversBySubscription) {
        const numbers = r.received.flatMap((x) => parse(x.body).events.map((e) => e.number));
        expect(numbers, `Subscription/${id}`).toEqual(expected);
      }
      expect(await outboxCount(t)).toBe(0);
      expect(claims[0], 'claims by the first worker').toBeGreaterThan(0);
      expect(claims[1], 'claims by the second worker').toBeGreaterThan(0);
    } finally {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
      await second?.close();
    }
  });

  it('sets the subscription to error after failing too long, keeps the events, and resumes when set to requested', async () => {
    const r = await listen({ listening: false });
    const id = await subscribe(t, topicSubscription(`patient=Patient/${anne}`, { endpoint: r.url }));
    start({ retryDelaysMs: [50], giveUpAfterMs: 300 });
    await changePlan(t, anne, 'Feiler lenge');
    await waitFor('status error', async () => (await t.system<{ status: string }>('GET', `Subscription/${id}`)).body.status === 'error');
    const failed = await t.system<Record<string, unknown>>('GET', `Subscription/${id}`);
    expect(failed.body.error).toMatch(/could not be delivered since .*could not be reached/);
    const status = await t.system<{ entry: Array<{ resource: Record<string, any> }> }>('GET', `Subscription/${id}/$status`); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(status.status).toBe(200);
    const parameters = status.body.entry[0]?.resource ?? {};
    expect(param(parameters, 'status').valueCode).toBe('error');
    expect(param(parameters, 'type').valueCode).toBe('query-status');
    expect(param(parameters, 'events-since-subscription-start').valueString).toBe('1');
    expect(param(parameters, 'error').valueCodeableConcept.text).toMatch(/could not be delivered/);
    expect(await outboxCount(t)).toBe(1);
    await r.listen();
    const again = await t.system('PUT', `Subscription/${id}`, { ...failed.body, status: 'requested' });
    expect(again.status).toBe(200);
    await waitFor('delivery after reactivation', () => r.received.length >= 1);
    expect(parse(r.received[0]?.body ?? '').events.map((e) => e.number)).toEqual([1]);
    const resumed = await t.system<Record<string, unknown>>('GET', `Subscription/${id}`);
    expect(resumed.body.status).toBe('active');
    expect(resumed.body.error).toBeUndefined();
  });

  it('withholds events while the patient has no plan consent', async () => {
    const r = await listen();
    const gunnar = await seedPatient(t, 'gunnar', { consent: false });
    await subscribe(t, topicSubscription(`patient=Patient/${gunnar}`, { endpoint: r.url }));
    await t.system('POST', 'Flag', flag(gunnar, 'Uten samtykke'));
    start();
    await waitFor('the outbox to empty', async () => (await outboxCount(t)) === 0);
    await sleep(200);
    expect(r.received).toHaveLength(0);
  });

  it('keeps the secret out of the resource and its history, and lets the client turn a subscription off', async () => {
    const r = await listen();
    const id = await subscribe(t, classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint: r.url, payload: 'application/fhir+json' }));
    const read = await t.system<Record<string, unknown>>('GET', `Subscription/${id}`);
    expect(JSON.stringify(read.body)).not.toContain(SECRET);
    const off = await t.system<Record<string, unknown>>('PUT', `Subscription/${id}`, { ...read.body, status: 'off' });
    expect(off.status).toBe(200);
    expect(off.body.status).toBe('off');
    // A new secret alone is taken, though the resource does not change.
    const rotated = await t.system('PUT', `Subscription/${id}`, { ...off.body, extension: [...((off.body.extension as object[]) ?? []), { url: SUBSCRIPTION_EXTENSION.secret, valueString: 'a-rotated-secret-of-enough-length' }] });
    expect(rotated.status).toBe(200);
    const versions = await t.app.db.query<{ content: string | null }>(`SELECT v.content FROM resource_versions v JOIN resources r ON r.rid = v.rid WHERE r.type = 'Subscription'`);
    expect(versions.length).toBeGreaterThan(0);
    for (const v of versions) {
      expect(v.content).not.toContain(SECRET);
      expect(v.content).not.toContain('a-rotated-secret');
    }
    start();
    await changePlan(t, anne, 'Mens abonnementet er av');
    await sleep(400);
    expect(r.received).toHaveLength(0);
    const on = await t.system<Record<string, unknown>>('PUT', `Subscription/${id}`, { ...off.body, status: 'requested' });
    expect(on.body.status).toBe('active');
    await changePlan(t, anne, 'Når abonnementet er på igjen');
    await waitFor('a notification', () => r.received.length >= 1);
    expect(verifySignature('a-rotated-secret-of-enough-length', r.received[0]?.body ?? '', r.received[0]?.headers['x-samplan-signature'] as string)).toBe(true);
    expect(parse(r.received[0]?.body ?? '').events.map((e) => e.number)).toEqual([1]);
  });

  describe('refuses bad Subscriptions with clear OperationOutcomes', () => {
    const cases: Array<[string, () => Record<string, unknown>, RegExp, string]> = [
      ['no endpoint', () => topicSubscription(`patient=Patient/${anne}`), /needs channel\.endpoint/, 'Subscription.channel.endpoint'],
      ['an ftp endpoint', () => topicSubscription(`patient=Patient/${anne}`, { endpoint: 'ftp://example.org/x' }), /http or https URL, not ftp/, 'Subscription.channel.endpoint'],
      ['an unknown criteria parameter', () => classicSubscription(`CarePlan?patient=Patient/${anne}&colour=blue`, { endpoint: 'https://ehr.example/notify' }), /Unknown search parameter "colour"/, 'Subscription.criteria'],
      ['full-resource payload', () => topicSubscription(`patient=Patient/${anne}`, { endpoint: 'https://ehr.example/notify', content: 'full-resource' }), /never carry health information/, 'Subscription.channel.payload'],
      ['no secret', () => topicSubscription(`patient=Patient/${anne}`, { endpoint: 'https://ehr.example/notify', secret: null }), /needs a secret/, 'Subscription.extension'],
      ['a short secret', () => topicSubscription(`patient=Patient/${anne}`, { endpoint: 'https://ehr.example/notify', secret: 'short' }), /16 to 512 characters/, 'Subscription.extension'],
      ['a type outside the plan', () => classicSubscription(`Patient?_id=${anne}`, { endpoint: 'https://ehr.example/notify' }), /resources of a patient's plan/, 'Subscription.criteria'],
      ['no patient', () => classicSubscription('CarePlan?status=active', { endpoint: 'https://ehr.example/notify' }), /must name the patient/, 'Subscription.criteria'],
      ['two patients', () => classicSubscription(`CarePlan?patient=Patient/${anne},Patient/${bjorn}`, { endpoint: 'https://ehr.example/notify' }), /one patient only/, 'Subscription.criteria'],
      ['a patient that does not exist', () => classicSubscription('CarePlan?patient=Patient/no-such-patient', { endpoint: 'https://ehr.example/notify' }), /does not exist/, 'Subscription.criteria'],
      ['an unknown topic', () => ({ ...topicSubscription(`patient=Patient/${anne}`, { endpoint: 'https://ehr.example/notify' }), criteria: 'https://example.org/SubscriptionTopic/other' }), /Unknown subscription topic/, 'Subscription.criteria'],
      ['a topic filter on other parameters without a type', () => topicSubscription(`patient=Patient/${anne}&status=active`, { endpoint: 'https://ehr.example/notify' }), /name a resource type/, 'Subscription.criteria'],
      ['a websocket channel', () => ({ ...classicSubscription(`CarePlan?patient=Patient/${anne}`), channel: { type: 'websocket' } }), /Only rest-hook/, 'Subscription.channel.type'],
      ['a header with a line break', () => classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint: 'https://ehr.example/notify', headers: ['X-A: b\r\nX-Evil: c'] }), /"Name: value"/, 'Subscription.channel.header[0]'],
      ['a header Samplan sets', () => classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint: 'https://ehr.example/notify', headers: ['X-Samplan-Signature: forged'] }), /sets X-Samplan-Signature itself/, 'Subscription.channel.header[0]'],
      ['a payload that is not FHIR JSON', () => classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint: 'https://ehr.example/notify', payload: 'text/plain' }), /must be application\/fhir\+json/, 'Subscription.channel.payload'],
    ];
    it.each(cases)('%s', async (_what, make, message, expression) => {
      // Through HTTP as a client (the system context stands in for the caller), so the engine's answer is checked whole.
      const res = await t.request('POST', 'Subscription', { body: make() });
      expect(res.status, res.text).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].details.text).toMatch(message);
      expect(res.body.issue[0].expression).toEqual([expression]);
    });
  });
});

// =============================================================================================

describe('access', () => {
  let t: TestServer;
  let anne: string;
  let bjorn: string;
  const annesNin = citizenByKey('anne').pid;

  const token = async (claims: Record<string, unknown>) => t.app.idp!.issueAccessToken(claims); // eslint-disable-line @typescript-eslint/no-non-null-assertion
  const clinician = async (options: { clientId?: string; scope?: string } = {}) => token(t.app.idp!.clinicianClaims('fastlege', options)); // eslint-disable-line @typescript-eslint/no-non-null-assertion
  /** A client-credentials token; the embedded provider knows one such client, so others are made from its claims. */
  const machine = async (clientId: string, scope = 'nhn:samplan/status') =>
    token({ ...t.app.idp!.machineClaims('ehr-test-client', { scope }), sub: clientId, client_id: clientId }); // eslint-disable-line @typescript-eslint/no-non-null-assertion
  const asClinician = (bearer: string, method: string, path: string, nin: string | undefined, body?: unknown) =>
    t.request(method, path, { ...(body !== undefined ? { body } : {}), headers: { authorization: `Bearer ${bearer}`, ...nhnHeaders(nin ? { nin } : {}) } });
  const asMachine = (bearer: string, method: string, path: string, body?: unknown) =>
    t.request(method, path, { ...(body !== undefined ? { body } : {}), headers: { authorization: `Bearer ${bearer}` } });
  const endpoint = 'https://ehr.example/notify';

  beforeAll(async () => {
    t = await startServer({ tokens: true });
    anne = await seedPatient(t, 'anne');
    bjorn = await seedPatient(t, 'bjorn');
    await seedPatient(t, 'gunnar', { consent: false });
  });
  afterAll(async () => {
    await t.close();
  });

  it('lets a clinician subscribe to the patient of the request, not to another', async () => {
    const bearer = await clinician();
    const own = await asClinician(bearer, 'POST', 'Subscription', annesNin, classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint }));
    expect(own.status, own.text).toBe(201);
    expect(own.body.status).toBe('active');
    expect(own.text).not.toContain(SECRET);
    expect(own.body.extension).toEqual([{ url: SUBSCRIPTION_EXTENSION.owner, valueString: expect.any(String) }]);
    const byNin = await asClinician(bearer, 'POST', 'Subscription', annesNin, topicSubscription(`patient:identifier=${OID.fnr}|${annesNin}`, { endpoint }));
    expect(byNin.status, byNin.text).toBe(201);
    const other = await asClinician(bearer, 'POST', 'Subscription', annesNin, classicSubscription(`CarePlan?patient=Patient/${bjorn}`, { endpoint }));
    expect(other.status).toBe(403);
    expect(errorCode(other.body)).toBe('PATIENT_MISMATCH');
    const otherByNin = await asClinician(bearer, 'POST', 'Subscription', annesNin, topicSubscription(`patient:identifier=${citizenByKey('bjorn').pid}`, { endpoint }));
    expect(otherByNin.status).toBe(403);
    expect(errorCode(otherByNin.body)).toBe('PATIENT_MISMATCH');
    const noPatient = await asClinician(bearer, 'POST', 'Subscription', undefined, classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint }));
    expect(noPatient.status).toBe(400);
    expect(errorCode(noPatient.body)).toBe('MISSING_HEADER');
  });

  it('refuses a clinician who may not see the plan, and a token without the write scope', async () => {
    const bearer = await clinician();
    const gunnarsNin = citizenByKey('gunnar').pid;
    const gunnar = (await t.system<{ entry: Array<{ resource: { id: string } }> }>('GET', `Patient?identifier=${gunnarsNin}`)).body.entry[0]?.resource.id;
    const res = await asClinician(bearer, 'POST', 'Subscription', gunnarsNin, classicSubscription(`CarePlan?patient=Patient/${gunnar}`, { endpoint }));
    expect(res.status).toBe(403);
    expect(errorCode(res.body)).toBe('CONSENT_MISSING');
    const readOnly = await clinician({ scope: 'openid nhn:samplan/read' });
    const res2 = await asClinician(readOnly, 'POST', 'Subscription', annesNin, classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint }));
    expect(res2.status).toBe(403);
    expect(errorCode(res2.body)).toBe('INSUFFICIENT_SCOPE');
  });

  it('does not let citizens subscribe', async () => {
    const bearer = await token(t.app.idp!.citizenClaims('anne')); // eslint-disable-line @typescript-eslint/no-non-null-assertion
    const res = await t.request('POST', 'Subscription', { body: topicSubscription(`patient=Patient/${anne}`, { endpoint }), headers: { authorization: `Bearer ${bearer}` } });
    expect(res.status).toBe(403);
    expect(errorCode(res.body)).toBe('NO_ACCESS');
    const search = await t.request('GET', 'Subscription', { headers: { authorization: `Bearer ${bearer}` } });
    expect(search.status).toBe(403);
  });

  it('lets a machine token with the status scope subscribe to "a patient\'s plan changed", empty only', async () => {
    const bearer = await machine('status-client');
    const ok = await asMachine(bearer, 'POST', 'Subscription', topicSubscription(`patient:identifier=${OID.fnr}|${annesNin}`, { endpoint, content: 'empty' }));
    expect(ok.status, ok.text).toBe(201);
    const byId = await asMachine(bearer, 'POST', 'Subscription', topicSubscription(`patient=Patient/${bjorn}`, { endpoint, content: 'empty' }));
    expect(byId.status, byId.text).toBe(201);
    for (const body of [
      topicSubscription(`patient=Patient/${anne}`, { endpoint, content: 'id-only' }),
      topicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint, content: 'empty' }),
      classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint }),
    ]) {
      const res = await asMachine(bearer, 'POST', 'Subscription', body);
      expect(res.status, res.text).toBe(403);
      expect(errorCode(res.body)).toBe('NO_ACCESS');
    }
    const error = await asMachine(bearer, 'POST', 'Subscription', { ...topicSubscription(`patient=Patient/${anne}`, { endpoint, content: 'empty' }), status: 'error' });
    expect(error.status).toBe(400);
    expect(error.body.issue[0].details.text).toMatch(/Only the server sets a Subscription to error/);
    const noScope = await asMachine(await machine('status-client', 'nhn:samplan/read'), 'POST', 'Subscription', topicSubscription(`patient=Patient/${anne}`, { endpoint, content: 'empty' }));
    expect(noScope.status).toBe(403);
    expect(errorCode(noScope.body)).toBe('INSUFFICIENT_SCOPE');
    // The machine token still reaches no content.
    const plan = await asMachine(bearer, 'GET', `CarePlan?subject=Patient/${anne}`);
    expect(plan.status).toBe(403);
  });

  it('lets only the owning client read, search, check and delete a Subscription', async () => {
    const owner = await machine('owner-client');
    const stranger = await machine('other-client');
    const created = await asMachine(owner, 'POST', 'Subscription', topicSubscription(`patient=Patient/${anne}`, { endpoint, content: 'empty' }));
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    const read = await asMachine(owner, 'GET', `Subscription/${id}`);
    expect(read.status).toBe(200);
    expect(read.text).not.toContain(SECRET);
    const status = await asMachine(owner, 'GET', `Subscription/${id}/$status`);
    expect(status.status).toBe(200);
    const mine = await asMachine(owner, 'GET', 'Subscription');
    expect(mine.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([id]);

    expect((await asMachine(stranger, 'GET', `Subscription/${id}`)).status).toBe(404);
    expect((await asMachine(stranger, 'GET', `Subscription/${id}/$status`)).status).toBe(404);
    expect((await asMachine(stranger, 'GET', `Subscription/${id}/_history`)).body.entry ?? []).toEqual([]);
    expect((await asMachine(stranger, 'GET', 'Subscription')).body.entry ?? []).toEqual([]);
    expect((await asMachine(stranger, 'PUT', `Subscription/${id}`, { ...read.body, status: 'off' })).status).toBe(404);
    expect((await asMachine(stranger, 'DELETE', `Subscription/${id}`)).status).toBe(404);
    // A clinician (another client) does not see it either.
    const doctor = await clinician({ clientId: 'some-ehr' });
    expect((await asClinician(doctor, 'GET', `Subscription/${id}`, annesNin)).status).toBe(404);
    expect((await asClinician(doctor, 'DELETE', `Subscription/${id}`, annesNin)).status).toBe(404);

    expect((await asMachine(owner, 'DELETE', `Subscription/${id}`)).status).toBe(204);
    expect((await asMachine(owner, 'GET', `Subscription/${id}`)).status).toBe(410);
    expect((await asMachine(stranger, 'GET', `Subscription/${id}`)).status).toBe(404);
    const [left] = await t.app.db.query<{ status: string; secret: string }>('SELECT status, secret FROM subscriptions WHERE id = $1', [id]);
    expect(left).toEqual({ status: 'deleted', secret: '' });
  });

  it('shows a clinician\'s client its subscriptions for the patient of the request only', async () => {
    const doctor = await clinician({ clientId: 'gp-ehr' });
    const created = await asClinician(doctor, 'POST', 'Subscription', annesNin, classicSubscription(`CarePlan?patient=Patient/${anne}`, { endpoint }));
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await asClinician(doctor, 'GET', `Subscription/${id}`, annesNin)).status).toBe(200);
    expect((await asClinician(doctor, 'GET', `Subscription/${id}`, citizenByKey('bjorn').pid)).status).toBe(404);
    // The same clinician through another system: not its Subscription.
    const elsewhere = await clinician({ clientId: 'hospital-ehr' });
    expect((await asClinician(elsewhere, 'GET', `Subscription/${id}`, annesNin)).status).toBe(404);
    expect((await asClinician(elsewhere, 'PUT', `Subscription/${id}`, annesNin, { ...created.body, status: 'off' })).status).toBe(404);
    const changed = await asClinician(doctor, 'PUT', `Subscription/${id}`, annesNin, { ...created.body, status: 'off' });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body.status).toBe('off');
    // Moving it to another patient is refused like subscribing to one.
    const moved = await asClinician(doctor, 'PUT', `Subscription/${id}`, annesNin, { ...created.body, criteria: `CarePlan?patient=Patient/${bjorn}` });
    expect(moved.status).toBe(403);
    expect((await asClinician(doctor, 'DELETE', `Subscription/${id}`, annesNin)).status).toBe(204);
  });
});
