/**
 * The audit trail by month (migration 018): records from before it stay readable and append-only
 * in the first partition, each new month is a table of its own made ahead, a month's table refuses
 * change like the trail, and a record for a month nobody made is refused rather than stored
 * where archiving would miss it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACCESS } from '../../src/fhir/access.js';
import { AUDIT_SELECT, type AuditRow, AuditWriter, renderAuditEvent } from '../../src/security/audit.js';
import { keepAuditPartitions } from '../../src/security/audit-partitions.js';
import { migrate } from '../../src/store/migrate.js';
import { auditMonthTable } from '../support/audit.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';

let t: TestDatabase;
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

const midMonth = (offset: number) => {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 15, 12)).toISOString();
};

const exists = async (table: string) => (await t.db.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [table]))[0]?.found === table;
const partitionOf = async (id: string) => (await t.db.query<{ part: string }>('SELECT tableoid::regclass::text AS part FROM audit_events WHERE id = $1', [id]))[0]?.part;

beforeAll(async () => {
  // The database as the release before left it, with records in its trail.
  t = await openTestDatabase({ migrateThrough: '017-audit-agents' });
  await t.db.query(
    `INSERT INTO audit_events (id, recorded, patient_id, content) VALUES ('old-whole', '2025-03-04T05:06:07Z', 'p1', '{"resourceType":"AuditEvent","id":"old-whole"}')`,
  );
  await t.db.query(`INSERT INTO audit_agents (key, agents, purpose) VALUES ('k1', '[{"who":{"display":"Samplan"},"requestor":true}]', NULL)`);
  await t.db.query(
    `INSERT INTO audit_events (id, recorded, patient_id, agents_key, content) VALUES ('old-compact', now(), 'p1', 'k1', '{"interaction":"read","outcome":"0","entity":["CarePlan/c1/_history/2"]}')`,
  );
  expect((await migrate(t.db))[0]).toBe('018-audit-partitions');
});
afterAll(async () => {
  await t.drop();
});

describe('the audit trail by month', () => {
  it('keeps the records stored before, readable as before, in the first partition', async () => {
    const rows = await t.db.query<AuditRow>(`${AUDIT_SELECT} WHERE e.patient_id = $1 ORDER BY e.recorded DESC, e.seq DESC`, ['p1']);
    expect(rows.map((r) => r.id)).toEqual(['old-compact', 'old-whole']);
    expect(renderAuditEvent(rows[1] as AuditRow)).toBe('{"resourceType":"AuditEvent","id":"old-whole"}');
    expect(JSON.parse(renderAuditEvent(rows[0] as AuditRow))).toMatchObject({ id: 'old-compact', entity: [{ what: { reference: 'Patient/p1' } }, { what: { reference: 'CarePlan/c1/_history/2' } }] });
    expect(await partitionOf('old-whole')).toBe('audit_events_initial');
  });

  it('stores new records after the old ones, this month with them and next month in a table of its own', async () => {
    const writer = new AuditWriter(t.db);
    await writer.record({ ctx: { requestId: 'r1', baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS, patientIds: ['p1'] }, interaction: 'read', outcome: 'success', entities: [] });
    const [newest] = await t.db.query<{ id: string; seq: number }>(`SELECT id, seq FROM audit_events WHERE patient_id = 'p1' ORDER BY seq DESC LIMIT 1`);
    expect(newest?.id).not.toMatch(/^old-/);
    const [old] = await t.db.query<{ seq: number }>(`SELECT max(seq) AS seq FROM audit_events WHERE id LIKE 'old-%'`);
    expect(Number(newest?.seq)).toBeGreaterThan(Number(old?.seq));
    expect(await partitionOf(newest?.id as string)).toBe('audit_events_initial');

    await t.db.query(`INSERT INTO audit_events (id, recorded, patient_id, content) VALUES ('next-month', $1, 'p1', '{}')`, [midMonth(1)]);
    expect(await partitionOf('next-month')).toBe(auditMonthTable(1));
    expect(await exists(auditMonthTable(2))).toBe(true);
  });

  it('refuses change on the whole trail and on each month’s table', async () => {
    for (const table of ['audit_events', 'audit_events_initial', auditMonthTable(1)]) {
      await expect(t.db.query(`UPDATE ${table} SET content = '{}'`), table).rejects.toThrow(/cannot be changed or deleted/);
      await expect(t.db.query(`DELETE FROM ${table}`), table).rejects.toThrow(/cannot be changed or deleted/);
      await expect(t.db.query(`TRUNCATE ${table}`), table).rejects.toThrow(/cannot be changed or deleted/);
    }
    expect(Number((await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events'))[0]?.n)).toBe(4);
  });

  it('makes the months ahead once, however many instances ask at the same moment', async () => {
    expect(await exists(auditMonthTable(3))).toBe(false);
    const a = await keepAuditPartitions(t.db, silent, { monthsAhead: 3 });
    const b = await keepAuditPartitions(t.db, silent, { monthsAhead: 3 });
    try {
      expect(await exists(auditMonthTable(3))).toBe(true);
      const made = await Promise.all([a.ensure(), b.ensure(), a.ensure()]);
      expect(made).toEqual([0, 0, 0]);
      // Both asking for a month nobody has made yet: one makes it, the other finds it made.
      const far = await Promise.all([
        t.db.query<{ made: number }>(`SELECT samplan_audit_partitions(now() + interval '5 years', 0) AS made`),
        t.db.query<{ made: number }>(`SELECT samplan_audit_partitions(now() + interval '5 years', 0) AS made`),
      ]);
      expect(far.map((r) => r[0]?.made).sort()).toEqual([0, 1]);
    } finally {
      a.stop();
      b.stop();
    }
  });

  it('logs a round that fails and makes the months on the next one', async () => {
    const errors: string[] = [];
    const log = { ...silent, error: (_details: Record<string, unknown>, message: string) => void errors.push(message) };
    const keeper = await keepAuditPartitions(t.db, log, { monthsAhead: 4, everyMs: 20 });
    try {
      expect(await exists(auditMonthTable(4))).toBe(true);
      // The database cannot make months for a while, and a month ahead (still empty) is gone.
      await t.db.query('ALTER FUNCTION samplan_audit_partitions(timestamptz, int) RENAME TO samplan_audit_partitions_away');
      await t.db.query(`DROP TABLE ${auditMonthTable(4)}`);
      await expect.poll(() => errors.length, { timeout: 5000 }).toBeGreaterThan(0);
      expect(errors[0]).toMatch(/audit trail's next monthly partitions/);
      await t.db.query('ALTER FUNCTION samplan_audit_partitions_away(timestamptz, int) RENAME TO samplan_audit_partitions');
      await expect.poll(() => exists(auditMonthTable(4)), { timeout: 5000 }).toBe(true);
    } finally {
      keeper.stop();
    }
  });

  it('refuses a record for a month that was not made, so none is stored outside the months', async () => {
    await expect(t.db.query(`INSERT INTO audit_events (id, recorded, patient_id, content) VALUES ('far', '2100-01-01T00:00:00Z', 'p1', '{}')`)).rejects.toThrow(/no partition/);
    expect(await partitionOf('far')).toBeUndefined();
  });
});
