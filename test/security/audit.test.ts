/**
 * The audit trail: every read, search and write of patient data leaves an AuditEvent saying who,
 * for whom, which patient, what, why and from where; writes record it in their own transaction,
 * reads before returning; if the record cannot be stored the request fails; nobody can change a
 * record; and the patient can read their own log, emergency access included.
 */
import type { AuditEvent, Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey, clinicianByKey, organisation } from '../../src/demo/population.js';
import { hasErrors, validateResource } from '../../src/fhir/validation/validator.js';
import { OID } from '../../src/no/identifiers.js';
import { SYSTEM_ACCESS } from '../../src/fhir/access.js';
import { AUDIT_SELECT, type AuditRecord, type AuditRow, AuditWriter, auditEvent, renderAuditEvent, type StoredAuditEvent, timeOrderedUuid } from '../../src/security/audit.js';
import { auditEvents, auditMonthTable, auditTrail } from '../support/audit.js';
import type { Personnel, Principal } from '../../src/security/principal.js';
import { startTestServer, type TestServer } from '../support/app.js';
import { asClinician, citizenToken, clinicianToken, nhnHeaders, seedPatient } from '../support/security.js';

let t: TestServer;
let anne = '';
let bjorn = '';

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  anne = await seedPatient(t, 'anne', { blocked: ['vikarlege'] });
  bjorn = await seedPatient(t, 'bjorn');
  const ward = organisation('helse-nordvest-lunge');
  await t.system('POST', 'Organization', { resourceType: 'Organization', name: ward.name, identifier: [{ system: OID.orgnr, value: ward.orgnrChild }] });
});
afterAll(async () => t?.close());

const events = (patientId: string): Promise<AuditEvent[]> => auditEvents(t.database.db, 'WHERE e.patient_id = $1', [patientId]);
/** The AuditEvent of a record made in memory, as it is served once stored. */
const rendered = (r: StoredAuditEvent) =>
  renderAuditEvent({ seq: 0, id: r.id, recorded: new Date(r.recorded), patient_id: r.patientId, content: r.content, agents_key: r.agents.key, agents: r.agents.agents, purpose: r.agents.purpose || null });
const last = async (patientId: string) => (await events(patientId)).at(-1) as AuditEvent;

describe('what is recorded', () => {
  it('records a clinician read with who, where, why and what', async () => {
    const plan = ((await t.system<Bundle>('GET', `CarePlan?subject=Patient/${bjorn}`)).body.entry?.[0]?.resource) as { id: string };
    const res = await asClinician(t, 'fastlege', 'GET', `CarePlan/${plan.id}`, { patient: 'bjorn', basis: 'UNNTAK' });
    expect(res.status).toBe(200);
    const e = await last(bjorn);
    const gp = clinicianByKey('fastlege');
    const org = organisation(gp.organisation);
    expect(e.action).toBe('R');
    expect(e.subtype?.[0]?.code).toBe('read');
    expect(e.outcome).toBe('0');
    const user = e.agent?.find((a) => a.requestor);
    expect(user?.who?.identifier).toEqual({ system: OID.hpr, value: gp.hpr });
    expect(user?.altId).toBe(gp.pid);
    expect(user?.role?.[0]?.coding?.[0]?.code).toBe('LE');
    const orgs = e.agent?.filter((a) => a.who?.identifier?.system === OID.orgnr).map((a) => a.who?.identifier?.value);
    expect(orgs?.sort()).toEqual([org.orgnrChild, org.orgnrParent].sort());
    expect(e.agent?.some((a) => a.who?.display === 'Testjournal 1.0')).toBe(true);
    expect(e.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('UNNTAK');
    expect(e.entity?.map((x) => x.what?.reference)).toEqual([`Patient/${bjorn}`, `CarePlan/${plan.id}/_history/1`]);
    expect(hasErrors(validateResource(e))).toBe(false);
  });

  it('takes each request’s headers as sent, when one token makes request after request', async () => {
    const token = await clinicianToken(t, 'lungelege');
    const as = (headers: Record<string, string>) => t.request('GET', 'CarePlan', { headers: { authorization: `Bearer ${token}`, ...headers } });
    const requestor = (e: AuditEvent) => e.agent?.find((a) => a.requestor);

    expect((await as(nhnHeaders({ nin: citizenByKey('anne').pid }))).status).toBe(200);
    expect((await last(anne)).purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('SAMTYKKE');
    expect((await as(nhnHeaders({ nin: citizenByKey('bjorn').pid, basis: 'AKUTT', reason: 'Innlagt med pustebesvær', role: 'SP' }))).status).toBe(200);
    const emergency = await last(bjorn);
    expect(emergency.purposeOfEvent?.[0]).toMatchObject({ coding: [{ code: 'AKUTT' }], text: 'Innlagt med pustebesvær' });
    expect(requestor(emergency)?.role?.[0]?.coding?.[0]?.code).toBe('SP');
    // The same headers as a request before: still refused when they say something else now.
    expect((await as(nhnHeaders({ nin: citizenByKey('bjorn').pid, basis: 'AKUTT' }))).status).toBe(400);
    expect((await as({ ...nhnHeaders({ nin: citizenByKey('anne').pid }), 'nhn-user-role': 'LE' })).status).toBe(400);
    expect((await as(nhnHeaders({ nin: citizenByKey('anne').pid, basis: 'UNNTAK' }))).status).toBe(200);
    const again = await last(anne);
    expect(again.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('UNNTAK');
    expect(requestor(again)?.role?.[0]?.coding?.[0]?.code).toBe('LE');
    expect(again.entity?.[0]?.what?.reference).toBe(`Patient/${anne}`);
  });

  it('records searches with parameter names but never their values', async () => {
    const nin = citizenByKey('bjorn').pid;
    await t.request('POST', 'Patient/_search', {
      raw: `identifier=${OID.fnr}|${nin}`,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Bearer ${await t.app.idp!.issueAccessToken(t.app.idp!.clinicianClaims('fastlege'))}`,
        'nhn-user-role': encodeURIComponent(JSON.stringify({ system: 'urn:oid:2.16.578.1.12.4.1.1.9060', code: 'LE' })),
        'nhn-source-system': 'Testjournal 1.0',
        'nhn-access-basis': 'SAMTYKKE',
        'nhn-patient-nin': nin,
      },
    });
    const raw = (await auditTrail(t.database.db, 'WHERE e.patient_id = $1', [bjorn])).at(-1)?.text as string;
    const e = JSON.parse(raw) as AuditEvent;
    expect(e.subtype?.[0]?.code).toBe('search-type');
    expect(e.entity?.find((x) => x.role?.code === '24')?.description).toBe('Search parameters: identifier');
    expect(e.entity?.some((x) => x.what?.reference === `Patient/${bjorn}`)).toBe(true);
    // The national id is recorded as the patient reference only, never as a search value.
    expect(raw.split(nin).length - 1).toBe(0);
  });

  it('records a write in the same transaction, with the new version', async () => {
    const before = (await events(bjorn)).length;
    const res = await asClinician(t, 'hjemmesykepleier', 'POST', 'Goal', {
      patient: 'bjorn',
      role: 'SP',
      body: { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Veie seg hver morgen' }, subject: { reference: `Patient/${bjorn}` } },
    });
    expect(res.status).toBe(201);
    const all = await events(bjorn);
    expect(all.length).toBe(before + 1);
    const e = all.at(-1) as AuditEvent;
    expect(e.action).toBe('C');
    expect(e.entity?.map((x) => x.what?.reference)).toContain(`Goal/${(res.body as { id: string }).id}/_history/1`);
  });

  it('records refused attempts (a blocked clinician) about the patient', async () => {
    const res = await asClinician(t, 'vikarlege', 'GET', 'CarePlan', { patient: 'anne' });
    expect(res.status).toBe(403);
    const e = await last(anne);
    expect(e.outcome).toBe('4');
    expect(e.outcomeDesc).toMatch(/blocked/);
    expect(e.agent?.find((a) => a.requestor)?.who?.identifier?.value).toBe(clinicianByKey('vikarlege').hpr);
  });

  it('does not keep a record of a write that failed as if it succeeded', async () => {
    const before = await events(bjorn);
    const res = await asClinician(t, 'fastlege', 'POST', 'Goal', {
      patient: 'bjorn',
      body: { resourceType: 'Goal', lifecycleStatus: 'not-a-status', description: { text: 'x' }, subject: { reference: `Patient/${bjorn}` } },
    });
    expect(res.status).toBe(400);
    const after = await events(bjorn);
    expect(after.length).toBe(before.length + 1);
    expect(after.at(-1)?.outcome).toBe('4');
    expect(after.at(-1)?.entity?.some((x) => x.what?.reference?.startsWith('Goal/'))).toBe(false);
  });
});

describe('emergency access and the patient’s log', () => {
  it('marks emergency access with its reason and shows it to the patient, without the clinician’s national id', async () => {
    const res = await asClinician(t, 'lungelege', 'GET', 'CarePlan', { patient: 'bjorn', basis: 'AKUTT', reason: 'Innlagt bevisstløs, trenger egenbehandlingsplan' });
    expect(res.status).toBe(200);
    const e = await last(bjorn);
    expect(e.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('AKUTT');
    expect(e.purposeOfEvent?.[0]?.text).toBe('Innlagt bevisstløs, trenger egenbehandlingsplan');
    expect(e.agent?.find((a) => a.requestor)?.purposeOfUse?.[0]?.coding?.some((c) => c.code === 'ETREAT')).toBe(true);

    const token = await citizenToken(t, 'bjorn');
    const log = await t.request<Bundle>('GET', 'AuditEvent?_count=50', { headers: { authorization: `Bearer ${token}` } });
    expect(log.status).toBe(200);
    const shown = log.body.entry?.map((x) => x.resource as AuditEvent) ?? [];
    const emergency = shown.find((x) => x.purposeOfEvent?.[0]?.coding?.[0]?.code === 'AKUTT');
    expect(emergency?.agent?.find((a) => a.requestor)?.who?.display).toBe('Erik Hansen');
    // In plain words, naming the organisation from the directory.
    expect(emergency?.text?.div).toMatch(/Erik Hansen \(lege, Helse Nord-Vest HF, lungemedisinsk avdeling\) søkte i planen din .*i en akutt situasjon \(begrunnelse: Innlagt bevisstløs/);
    expect(hasErrors(validateResource(emergency))).toBe(false);
    expect(log.text).not.toContain(clinicianByKey('lungelege').pid);
    // Newest first.
    const times = shown.map((x) => x.recorded as string);
    expect([...times].sort().reverse()).toEqual(times);
  });

  it('refuses emergency access without a reason', async () => {
    const res = await asClinician(t, 'lungelege', 'GET', 'CarePlan', { patient: 'bjorn', basis: 'AKUTT' });
    expect(res.status).toBe(400);
    expect((res.body as OperationOutcome).issue?.[0]?.details?.coding?.[0]?.code).toBe('EMERGENCY_REASON_REQUIRED');
  });

  it('lets a representative read the log of the person they act for, and clinicians not at all', async () => {
    const hanne = await t.app.idp!.issueAccessToken(t.app.idp!.citizenClaims('hanne', { actingFor: 'anne' }));
    const log = await t.request<Bundle>('GET', 'AuditEvent', { headers: { authorization: `Bearer ${hanne}` } });
    expect(log.status).toBe(200);
    expect((log.body.entry ?? []).length).toBeGreaterThan(0);
    expect((await asClinician(t, 'fastlege', 'GET', 'AuditEvent', { patient: 'anne' })).status).toBe(403);
  });
});

describe('the stored record', () => {
  it('is the AuditEvent exactly as made, character for character, for reads (group-committed) and writes', async () => {
    const writer = new AuditWriter(t.database.db);
    // \u0000 too: error messages echo requests, and a NUL once failed the audit write (fuzzer).
    const tricky = 'Årsak: "akutt"\n\\ \u2028 \u{1F600} <b>&</b> \u0000 \u0001';
    const record = (requestId: string): AuditRecord => ({
      ctx: { requestId, baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS, patientIds: [bjorn] },
      interaction: 'read',
      outcome: 'refused',
      outcomeText: tricky,
      entities: [{ type: 'Goal', id: 'g1', version: 2 }],
    });
    const ids = ['exact-1', 'exact-2', 'exact-3'];
    await Promise.all(ids.map((id) => writer.record(record(id))));
    await t.database.db.transaction(async (tx) => writer.recordIn(tx, record('exact-4'), (err) => err));
    const rows = (await auditTrail(t.database.db, 'WHERE e.patient_id = $1 AND e.content LIKE $2', [bjorn, '%Årsak: %'])).slice(-4);
    expect(rows).toHaveLength(4);
    for (const { text, event } of rows) {
      expect(event.outcomeDesc).toBe(tricky);
      // Re-serialising gives the same text: nothing was re-encoded on the way into the table.
      expect(text).toBe(JSON.stringify(event));
    }
  });
});

describe('the row beside the record', () => {
  const record = (requestId: string, patientIds?: string[]): AuditRecord => ({
    ctx: { requestId, baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS, ...(patientIds ? { patientIds } : {}) },
    interaction: 'read',
    outcome: 'success',
    entities: [{ type: 'Goal', id: requestId, version: 1 }],
  });
  const stored = async (requestIds: string[]) => {
    const rows = await t.database.db.query<AuditRow>(`${AUDIT_SELECT} WHERE e.content LIKE ANY($1::text[]) ORDER BY e.seq`, [requestIds.map((r) => `%Goal/${r}/%`)]);
    return rows.map((r) => ({ row: r, event: JSON.parse(renderAuditEvent(r)) as AuditEvent }));
  };

  it('carries its own record\'s id, time and patient in a batch of many, with and without a patient', async () => {
    const writer = new AuditWriter(t.database.db);
    const requests = Array.from({ length: 9 }, (_, i) => ({ id: `row-${i}`, patient: i % 3 === 0 ? undefined : i % 3 === 1 ? anne : bjorn }));
    await Promise.all(requests.map((r) => writer.record(record(r.id, r.patient ? [r.patient] : undefined))));
    const rows = await stored(requests.map((r) => r.id));
    expect(rows).toHaveLength(9);
    for (const { row, event } of rows) {
      const request = requests.find((r) => event.entity?.some((e) => e.what?.reference === `Goal/${r.id}/_history/1`));
      expect(row.id).toBe(event.id);
      expect(row.recorded.toISOString()).toBe(event.recorded);
      expect(row.patient_id).toBe(request?.patient ?? null);
    }
  });

  it('has no patient when its record is alone in its batch and about none, for reads and writes', async () => {
    const writer = new AuditWriter(t.database.db);
    await writer.record(record('alone-read'));
    await t.database.db.transaction(async (tx) => writer.recordIn(tx, record('alone-write'), (err) => err));
    const rows = await stored(['alone-read', 'alone-write']);
    expect(rows.map(({ row }) => row.patient_id)).toEqual([null, null]);
    expect(rows.map(({ row, event }) => row.id === event.id)).toEqual([true, true]);
  });

  it('has a UUID version 7 as its id, in the order the records were made', () => {
    const ids = [0, 1, 2 ** 32, Date.parse('2026-11-26T12:00:00Z'), 2 ** 48 - 1].map((ms) => timeOrderedUuid(ms));
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    // 0x01a217ba1200 milliseconds since 1970.
    expect(timeOrderedUuid(Date.parse('2026-11-26T12:00:00Z')).slice(0, 13)).toBe('01a217ba-1200');
  });
});

describe('the trail at scale', () => {
  it('answers an auditor\'s time range across all patients from an index (BRIN: almost free for the inserts every read makes)', async () => {
    const db = t.database.db;
    const writer = new AuditWriter(db);
    // Enough records, over many patients, for the planner's choice to be the one it makes at scale.
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) =>
        writer.record({ ctx: { requestId: `scale-${i}`, baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS, patientIds: [`p${i % 500}`] }, interaction: 'read', outcome: 'success', entities: [] }),
      ),
    );
    await db.query('ANALYZE audit_events');
    const plan = await db.transaction(async (tx) => {
      await tx.query('SET LOCAL enable_seqscan = off');
      const rows = await tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT id FROM audit_events WHERE recorded >= now() - interval '1 minute' AND recorded < now()`);
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan).toMatch(/Bitmap Index Scan on audit_events_\w*recorded/);
    const index = await db.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_events' AND indexname = 'audit_events_recorded'`);
    expect(index[0]?.indexdef).toMatch(/USING brin \(recorded\)/);
  });
});

describe('stored compactly', () => {
  const agentRows = async () => (await t.database.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_agents'))[0]?.n ?? 0;

  it('stores who asked once, however many reads they make, and each record without it', async () => {
    const token = await clinicianToken(t, 'fastlege');
    const read = (headers: Record<string, string>) => t.request('GET', 'CarePlan', { headers: { authorization: `Bearer ${token}`, ...headers } });
    const basis = { nin: citizenByKey('bjorn').pid, basis: 'UNNTAK' as const };
    expect((await read(nhnHeaders(basis))).status).toBe(200);
    const before = await agentRows();
    const seq = (await t.database.db.query<{ seq: string }>('SELECT max(seq) AS seq FROM audit_events'))[0]?.seq;
    const many = await Promise.all(Array.from({ length: 8 }, () => read(nhnHeaders(basis))));
    expect(many.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(await agentRows()).toBe(before);
    // Another role is another set of agents: one row more, for all its reads.
    const elsewhere = nhnHeaders({ ...basis, role: 'SP' });
    await Promise.all(Array.from({ length: 3 }, () => read(elsewhere)));
    expect(await agentRows()).toBe(before + 1);
    const rows = await t.database.db.query<{ content: string; agents_key: string }>('SELECT content, agents_key FROM audit_events WHERE seq > $1 ORDER BY seq', [seq]);
    expect(rows).toHaveLength(11);
    expect(new Set(rows.map((r) => r.agents_key)).size).toBe(2);
    const gp = clinicianByKey('fastlege');
    for (const { content } of rows) {
      // The record itself holds none of the agents, and is a few hundred bytes at most.
      expect(content).not.toContain(gp.hpr);
      expect(content.length).toBeLessThan(300);
    }
    const served = (await auditEvents(t.database.db, 'WHERE e.seq > $1', [seq])).map((e) => e.agent?.find((a) => a.requestor)?.role?.[0]?.coding?.[0]?.code);
    expect(served).toEqual([...Array(8).fill('LE'), ...Array(3).fill('SP')]);
  });

  it('stores the agents again after a write whose transaction rolled back took them with it', async () => {
    const writer = new AuditWriter(t.database.db);
    const principal = { kind: 'machine', scopes: new Set<string>(), clientId: `rollback-${Date.now()}`, clientName: 'Rullet tilbake' } as unknown as Principal;
    const record = (requestId: string): AuditRecord => ({
      ctx: { requestId, baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS, principal, patientIds: [bjorn] },
      interaction: 'update',
      outcome: 'success',
      entities: [{ type: 'Goal', id: requestId, version: 1 }],
    });
    await expect(
      t.database.db.transaction(async (tx) => {
        writer.recordIn(tx, record('rolled-back'), (err) => err);
        await tx.query('SELECT 1');
        throw new Error('the write failed');
      }),
    ).rejects.toThrow('the write failed');
    await writer.record(record('after-rollback'));
    const [row] = await auditTrail(t.database.db, "WHERE e.content LIKE '%Goal/after-rollback/%'");
    expect(row?.event.agent?.[0]?.who?.identifier?.value).toBe(principal.clientId);
    expect(await auditTrail(t.database.db, "WHERE e.content LIKE '%Goal/rolled-back/%'")).toEqual([]);
  });

  it('stores agents once when two instances (or one restarted) record them for the first time at once', async () => {
    const principal = { kind: 'machine', scopes: new Set<string>(), clientId: `two-instances-${Date.now()}`, clientName: 'To instanser' } as unknown as Principal;
    const record = (requestId: string): AuditRecord => ({
      ctx: { requestId, baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS, principal, patientIds: [bjorn] },
      interaction: 'read',
      outcome: 'success',
      entities: [{ type: 'Goal', id: requestId, version: 1 }],
    });
    // Each writer knows nothing of what the other stored, as two server processes or one after a restart.
    const writers = [new AuditWriter(t.database.db), new AuditWriter(t.database.db)];
    await Promise.all(Array.from({ length: 10 }, (_, i) => (writers[i % 2] as AuditWriter).record(record(`instances-${i}`))));
    const rows = await auditTrail(t.database.db, "WHERE e.content LIKE '%Goal/instances-%'");
    expect(rows).toHaveLength(10);
    for (const { event } of rows) expect(event.agent?.[0]?.who?.identifier?.value).toBe(principal.clientId);
    const keys = await t.database.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_agents WHERE key IN (SELECT agents_key FROM audit_events WHERE content LIKE '%Goal/instances-%')",
    );
    expect(keys[0]?.n).toBe(1);
  });

  it('serves a record stored whole, before the agents had a table of their own, as it was stored', async () => {
    const id = timeOrderedUuid();
    const whole = JSON.stringify({ resourceType: 'AuditEvent', id, recorded: '2026-11-01T10:00:00.000Z', type: { code: 'rest' }, agent: [{ who: { display: 'Før' }, requestor: true }], source: { observer: { display: 'Samplan' } } });
    await t.database.db.query(`INSERT INTO audit_events (id, recorded, patient_id, content) VALUES ($1, '2026-11-01T10:00:00Z', $2, $3)`, [id, bjorn, whole]);
    const res = await t.request<AuditEvent>('GET', `AuditEvent/${id}`, { headers: { authorization: `Bearer ${await citizenToken(t, 'bjorn')}` } });
    expect(res.status).toBe(200);
    expect(res.body.agent?.[0]?.who?.display).toBe('Før');
    expect(res.body.recorded).toBe('2026-11-01T10:00:00.000Z');
  });

  it('refuses to serve a record whose agents are not stored, rather than serve it without them', async () => {
    // A patient of its own: the record stays in the (append-only) trail, and no other test reads that log.
    const dagny = await seedPatient(t, 'dagny');
    const id = timeOrderedUuid();
    await t.database.db.query(`INSERT INTO audit_events (id, recorded, patient_id, agents_key, content) VALUES ($1, now(), $2, 'nowhere', $3)`, [
      id,
      dagny,
      '{"interaction":"read","outcome":"0","entity":[]}',
    ]);
    const res = await t.request<OperationOutcome>('GET', `AuditEvent/${id}`, { headers: { authorization: `Bearer ${await citizenToken(t, 'dagny')}` } });
    expect(res.status).toBe(500);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.text).not.toContain('"interaction"');
  });

  it('the database refuses to change or delete stored agents', async () => {
    const db = t.database.db;
    await expect(db.query("UPDATE audit_agents SET agents = '[]'")).rejects.toThrow(/cannot be changed or deleted/);
    await expect(db.query('DELETE FROM audit_agents')).rejects.toThrow(/cannot be changed or deleted/);
    await expect(db.query('TRUNCATE audit_agents')).rejects.toThrow(/cannot be changed or deleted/);
  });
});

describe('the record is kept, whatever happens', () => {
  it('fails the request, and stores nothing, when the record cannot be written', async () => {
    const db = t.database.db;
    const goals = async () => (await t.system<Bundle>('GET', `Goal?subject=Patient/${bjorn}&_summary=count`)).body.total;
    const goalsBefore = await goals();
    await db.query(`CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$`);
    await db.query('CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION fail_audit()');
    try {
      const read = await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'bjorn' });
      expect(read.status).toBe(500);
      expect((read.body as OperationOutcome).issue?.[0]?.details?.coding?.[0]?.code).toBe('AUDIT_FAILED');
      expect(read.text).not.toContain('CarePlan/');
      // Reads at the same moment wait for one another's record (one INSERT at a time): each fails, none hangs.
      const together = await Promise.all(Array.from({ length: 6 }, () => asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'bjorn' })));
      expect(together.map((r) => [r.status, (r.body as OperationOutcome).issue?.[0]?.details?.coding?.[0]?.code])).toEqual(Array(6).fill([500, 'AUDIT_FAILED']));
      const write = await asClinician(t, 'fastlege', 'POST', 'Goal', {
        patient: 'bjorn',
        body: { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Skal ikke lagres' }, subject: { reference: `Patient/${bjorn}` } },
      });
      expect(write.status).toBe(500);
      expect((write.body as OperationOutcome).issue?.[0]?.details?.coding?.[0]?.code).toBe('AUDIT_FAILED');
    } finally {
      await db.query('DROP TRIGGER audit_broken ON audit_events');
      await db.query('DROP FUNCTION fail_audit()');
    }
    expect(await goals()).toBe(goalsBefore);
    // Once the records can be written again, so are reads' (the failure is not kept).
    const after = await Promise.all(Array.from({ length: 6 }, () => asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'bjorn' })));
    expect(after.map((r) => r.status)).toEqual(Array(6).fill(200));
  });

  it('fails the request when the month has no table in the trail (migration 018 keeps none for stray records)', async () => {
    const db = t.database.db;
    const month = auditMonthTable();
    const [current] = await db.query<{ name: string; bound: string }>(
      `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_events'::regclass AND c.relname IN ($1, 'audit_events_initial') ORDER BY c.relname = $1 DESC LIMIT 1`,
      [month],
    );
    await db.query(`ALTER TABLE audit_events DETACH PARTITION ${current?.name}`);
    try {
      const read = await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'bjorn' });
      expect(read.status).toBe(500);
      expect((read.body as OperationOutcome).issue?.[0]?.details?.coding?.[0]?.code).toBe('AUDIT_FAILED');
      expect(read.text).not.toContain('CarePlan/');
    } finally {
      await db.query(`ALTER TABLE audit_events ATTACH PARTITION ${current?.name} ${current?.bound}`);
    }
    expect((await asClinician(t, 'fastlege', 'GET', 'CarePlan', { patient: 'bjorn' })).status).toBe(200);
  });

  it('the database refuses to change or delete a record, whoever asks', async () => {
    const db = t.database.db;
    await expect(db.query("UPDATE audit_events SET content = '{}'")).rejects.toThrow(/cannot be changed or deleted/);
    await expect(db.query('DELETE FROM audit_events')).rejects.toThrow(/cannot be changed or deleted/);
    await expect(db.query('TRUNCATE audit_events')).rejects.toThrow(/cannot be changed or deleted/);
  });

  it.each([
    ['POST', 'AuditEvent'],
    ['PUT', 'AuditEvent/x'],
    ['DELETE', 'AuditEvent/x'],
    ['PATCH', 'AuditEvent/x'],
  ])('the API refuses %s %s', async (method, path) => {
    const token = await citizenToken(t, 'bjorn');
    const res = await t.request(method, path, {
      ...(method !== 'DELETE' ? { body: { resourceType: 'AuditEvent' } } : {}),
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(405);
    expect((res.body as OperationOutcome).issue?.[0]?.details?.coding?.[0]?.code).toBe('READ_ONLY');
  });
});

describe('the record\'s text', () => {
  const gp: Personnel = {
    kind: 'personnel',
    pid: '12057900499',
    hpr: '565505933',
    name: 'Lege "Legesen" Ås',
    role: { system: 'urn:oid:2.16.578.1.12.4.1.1.9060', code: 'LE' },
    orgnrParent: '974760673',
    orgnrChild: '974760681',
    clientId: 'ehr-1',
    sourceSystem: 'DIPS Arena',
    accessBasis: 'TREAT',
    scopes: ['user/*.read'],
  } as unknown as Personnel;
  const made = (principal: Personnel) => {
    const content = rendered(auditEvent({ ctx: { requestId: 'r', baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS, principal, patientIds: ['p1'] }, interaction: 'read', outcome: 'success', entities: [{ type: 'Goal', id: 'g1', version: 2 }] }));
    return { content, event: JSON.parse(content) as AuditEvent };
  };

  it('names each request\'s own agents and purpose, however often the same person asked before', () => {
    const first = made(gp);
    for (let i = 0; i < 3; i++) expect(made(gp).event.agent).toEqual(first.event.agent);
    const emergency = made({ ...gp, accessBasis: 'EMERGENCY' as Personnel['accessBasis'], reason: 'Akutt "innlagt"\n' });
    expect(emergency.event.agent?.[0]?.purposeOfUse?.[0]?.text).toBe('Akutt "innlagt"\n');
    expect(emergency.event.purposeOfEvent?.[0]?.text).toBe('Akutt "innlagt"\n');
    const elsewhere = made({ ...gp, orgnrChild: '974760682', sourceSystem: 'Infodoc' });
    expect(elsewhere.event.agent?.map((a) => a.who?.identifier?.value ?? a.who?.display)).toContain('974760682');
    expect(JSON.stringify(elsewhere.event.agent)).toContain('Infodoc');
    expect(made(gp).event.agent).toEqual(first.event.agent);
    // Put together from parts, the text is still what JSON.stringify makes of the record.
    for (const { content, event } of [first, emergency, elsewhere]) expect(content).toBe(JSON.stringify(event));
  });

  it('names each request\'s own interaction and operation, whatever came before', () => {
    const ctx = { requestId: 'r', baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS, principal: gp, patientIds: ['p1'] };
    const record = (interaction: string, operation?: { name: string; definition: string }) =>
      JSON.parse(rendered(auditEvent({ ctx, interaction, ...(operation ? { operation } : {}), outcome: 'success', entities: [] }))) as AuditEvent;
    const apply = { name: 'apply', definition: 'http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply' };
    const seen = [record('read'), record('update'), record('operation', apply), record('operation', { name: 'export', definition: 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export' }), record('read'), record('delete')];
    expect(seen.map((e) => [e.subtype?.map((c) => c.code), e.action])).toEqual([
      [['read'], 'R'],
      [['update'], 'U'],
      [['operation', 'http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply'], 'E'],
      [['operation', 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export'], 'E'],
      [['read'], 'R'],
      [['delete'], 'D'],
    ]);
    expect(seen[2]?.subtype?.[1]?.display).toBe('$apply');
    // A machine client has no purpose of use; a clinician's request has theirs.
    expect(JSON.parse(auditEvent({ ctx: { ...ctx, principal: undefined }, interaction: 'read', outcome: 'success', entities: [] }).content)).not.toHaveProperty('purposeOfEvent');
    expect(seen[0]?.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('TREAT');
  });
});
