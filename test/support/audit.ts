/** The audit trail as an auditor or the access log sees it: each record as the AuditEvent it is served as. */
import type { AuditEvent } from '@medplum/fhirtypes';
import { AUDIT_SELECT, type AuditRow, renderAuditEvent } from '../../src/security/audit.js';
import type { Queryable } from '../../src/store/db.js';

export interface AuditedRow {
  seq: number;
  patientId: string | null;
  /** The AuditEvent's JSON text. */
  text: string;
  event: AuditEvent;
}

/** Records oldest first; `where` (e.g. `WHERE e.patient_id = $1`) names the record's columns as `e.`, its agents' as `a.`. */
export async function auditTrail(db: Queryable, where = '', params: unknown[] = []): Promise<AuditedRow[]> {
  const rows = await db.query<AuditRow>(`${AUDIT_SELECT} ${where} ORDER BY e.seq`, params);
  return rows.map((r) => {
    const text = renderAuditEvent(r);
    return { seq: r.seq, patientId: r.patient_id, text, event: JSON.parse(text) as AuditEvent };
  });
}

/** The AuditEvents of `auditTrail`. */
export async function auditEvents(db: Queryable, where = '', params: unknown[] = []): Promise<AuditEvent[]> {
  return (await auditTrail(db, where, params)).map((r) => r.event);
}

/** The trail's table for the month `offset` months from now (UTC), as migration 018 names it: `audit_events_YYYY_MM`. */
export function auditMonthTable(offset = 0): string {
  const now = new Date();
  const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1));
  return `audit_events_${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;
}
