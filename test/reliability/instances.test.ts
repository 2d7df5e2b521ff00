/**
 * Two server processes on one PostgreSQL database, requests round-robin between them (as behind
 * a load balancer): optimistic locking and the one-active-plan rule hold across instances, and
 * with both outbox workers running a Subscription gets each notification exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLAN_CHANGED_TOPIC, SUBSCRIPTION_EXTENSION } from '../../src/plan/subscriptions/index.js';
import {
  brief,
  carePlan,
  Clinician,
  errorCode,
  isOutcome,
  observation,
  type Receiver,
  receiver,
  registerPatient,
  type Running,
  scale,
  searchAll,
  serverEnv,
  sleep,
  startServer,
  versionOf,
  waitFor,
  workspace,
  type Workspace,
} from './support.js';

const UPDATERS = 100;
const CREATORS = 50;
const CHANGES = scale(200, 60);

describe('two server instances on one PostgreSQL database', () => {
  let ws: Workspace | undefined;
  let servers: Running[] = [];
  let c: Clinician;
  let r: Receiver | undefined;
  /** The i-th request's instance: round-robin. */
  const at = (i: number) => (servers[i % 2] as Running).url;

  beforeAll(async () => {
    const made = await workspace('postgres', 'instances');
    ws = made;
    const first = await startServer(serverEnv(made.dir, made.databaseUrl));
    // One public address for both (the load balancer's): same token issuer, same links. They share
    // the identity provider's keys through the database.
    const second = await startServer(serverEnv(made.dir, made.databaseUrl, { BASE_URL: `${first.url}/fhir` }));
    servers = [first, second];
    c = await Clinician.login(first, made.dir);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await r?.close();
    ws?.remove();
  });

  it('serves one token and one database on both', async () => {
    const p = await registerPatient(c, 400);
    for (const s of servers) expect((await c.fhir('GET', `Patient/${p.id}`, p.nin, undefined, {}, s.url)).status).toBe(200);
  });

  it(`${UPDATERS} If-Match updates of one version spread over both instances: exactly one wins`, async () => {
    const p = await registerPatient(c, 401);
    const made = await c.fhir('POST', 'CarePlan', p.nin, carePlan(p.id, 'Plan'), { prefer: 'return=representation' });
    expect(made.status).toBe(201);
    const plan = made.body;
    const replies = await Promise.all(
      Array.from({ length: UPDATERS }, (_, i) => c.fhir('PUT', `CarePlan/${plan.id}`, p.nin, { ...plan, meta: undefined, description: `Instans ${i % 2}, ${i}` }, { 'if-match': made.etag as string }, at(i))),
    );
    expect(replies.filter((x) => x.status !== 200 && x.status !== 412).map(brief)).toEqual([]);
    const won = replies.filter((x) => x.status === 200);
    expect(won).toHaveLength(1);
    for (const x of replies.filter((y) => y.status === 412)) expect(isOutcome(x.body)).toBe(true);
    const history = await searchAll(c, p.nin, `CarePlan/${plan.id}/_history`);
    expect(history).toHaveLength(2);
    expect(history.find((h) => h.meta.versionId === versionOf(won[0]?.etag ?? null))?.description).toBe(won[0]?.body.description);
  });

  it(`${CREATORS} creations of an active plan for one patient spread over both instances: exactly one 201`, async () => {
    const p = await registerPatient(c, 402);
    const replies = await Promise.all(Array.from({ length: CREATORS }, (_, i) => c.fhir('POST', 'CarePlan', p.nin, carePlan(p.id, `Plan ${i}`), {}, at(i))));
    expect(replies.filter((x) => x.status === 201)).toHaveLength(1);
    const refused = replies.filter((x) => x.status !== 201);
    expect(refused.filter((x) => x.status !== 409 || errorCode(x.body) !== 'ACTIVE_PLAN_EXISTS').map(brief)).toEqual([]);
    expect(await searchAll(c, p.nin, `CarePlan?subject=Patient/${p.id}&status=active`)).toHaveLength(1);
  });

  it(`delivers each of ${CHANGES} notifications exactly once with both outbox workers running`, async () => {
    const p = await registerPatient(c, 403);
    r = await receiver();
    const sub = await c.fhir('POST', 'Subscription', p.nin, {
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'Varsle journalsystemet når pasientens plan endres',
      criteria: PLAN_CHANGED_TOPIC,
      _criteria: { extension: [{ url: SUBSCRIPTION_EXTENSION.filterCriteria, valueString: `patient=Patient/${p.id}` }] },
      channel: {
        type: 'rest-hook',
        endpoint: r.url,
        payload: 'application/fhir+json',
        _payload: { extension: [{ url: SUBSCRIPTION_EXTENSION.payloadContent, valueCode: 'id-only' }] },
      },
      extension: [{ url: SUBSCRIPTION_EXTENSION.secret, valueString: 'reliability-secret-0123456789' }],
    });
    expect(sub.status, brief(sub)).toBe(201);
    expect(sub.body.status).toBe('active');

    // Changes through both instances, in waves, so deliveries and new events overlap.
    const waves = 5;
    const focus: string[] = [];
    for (let wave = 0; wave < waves; wave++) {
      const replies = await Promise.all(
        Array.from({ length: CHANGES / waves }, (_, i) => c.fhir('POST', 'Observation', p.nin, observation(p.id, `Endring ${wave}.${i}`), {}, at(i))),
      );
      expect(replies.filter((x) => x.status !== 201).map(brief)).toEqual([]);
      focus.push(...replies.map((x) => `Observation/${x.body.id}`));
      await sleep(50);
    }
    const events = () =>
      (r as Receiver).received.flatMap((x) =>
        (JSON.parse(x.body).entry[0].resource.parameter as Array<{ name: string; part?: Array<{ name: string; valueString?: string; valueReference?: { reference: string } }> }>)
          .filter((q) => q.name === 'notification-event')
          .map((q) => ({
            number: Number(q.part?.find((y) => y.name === 'event-number')?.valueString),
            focus: q.part?.find((y) => y.name === 'focus')?.valueReference?.reference ?? '',
          })),
      );
    await waitFor('every notification', () => events().length >= CHANGES, 60_000);
    // Both workers poll every 2 s: give a duplicate time to show up.
    await sleep(5_000);
    const got = events();
    expect(got.map((e) => e.number)).toEqual(Array.from({ length: CHANGES }, (_, i) => i + 1));
    expect(new Set(got.map((e) => e.focus.replace(/^.*\/(Observation\/[^/]+)(\/_history\/.*)?$/, '$1')))).toEqual(new Set(focus));
    console.log(`[two instances] ${CHANGES} changes → ${got.length} events in ${(r as Receiver).received.length} notifications, each once, in order`);
  });
});
