/**
 * The patient's access log: AuditEvents about one patient, newest first, served from the
 * append-only audit trail (not the resources table, so they cannot be written through the API).
 * Only records about the patients the request is about are visible; a clinician's national id is
 * left out of what citizens see.
 */
import type { AuditEvent, Organization } from '@medplum/fhirtypes';
import { OID } from '../../no/identifiers.js';
import { searchRegistry } from '../../search/registry.js';
import { withNarrative } from '../../security/access-log.js';
import { AUDIT_SELECT, type AuditRow, renderAuditEvent } from '../../security/audit.js';
import { sql } from 'kysely';
import { DEFAULT_COUNT, MAX_COUNT } from '../../search/query.js';
import { dateRange } from '../../search/values.js';
import { compile, type Fragment } from '../../store/sql.js';
import { type BundleLink, bundleText, fullUrl, SEARCH_MATCH } from '../bundles.js';
import { errors } from '../outcomes.js';
import type { Call, Services } from '../services.js';
import type { FhirResponse } from '../types.js';

/**
 * What a citizen is shown of audit records: everything but the clinicians' national ids, with a
 * plain-language narrative naming the organisations (from the directory, when registered).
 */
async function forCitizen(s: Services, contents: string[]): Promise<string[]> {
  const events = contents.map((c) => JSON.parse(c) as AuditEvent);
  const orgnrs = [...new Set(events.flatMap((e) => (e.agent ?? []).map((a) => a.who?.identifier).filter((i) => i?.system === OID.orgnr).map((i) => i?.value as string)))];
  const names = new Map<string, string>();
  if (orgnrs.length) {
    const sp = searchRegistry().get('Organization', 'identifier')?.sp;
    const rows = await s.db.query<{ content: string }>(
      `SELECT content FROM resources WHERE type = 'Organization' AND NOT deleted
         AND rid IN (SELECT rid FROM idx_token WHERE sp = $1 AND system = $2 AND code = ANY($3::text[]))`,
      [sp, OID.orgnr, orgnrs],
    );
    for (const row of rows) {
      const org = JSON.parse(row.content) as Organization;
      for (const id of org.identifier ?? []) if (id.system === OID.orgnr && id.value && org.name) names.set(id.value, org.name);
    }
  }
  return events.map((event) => {
    for (const agent of event.agent ?? []) delete agent.altId;
    return JSON.stringify(withNarrative(event, names));
  });
}

function allowedPatients(call: Call): string[] {
  return [...(call.ctx.patientIds ?? [])];
}

export async function auditLogRead(s: Services, call: Call, id: string): Promise<FhirResponse> {
  const patients = allowedPatients(call);
  const rows = await s.db.query<AuditRow>(`${AUDIT_SELECT} WHERE e.id = $1 AND e.patient_id = ANY($2::text[])`, [id, patients]);
  const row = rows[0];
  if (!row) throw errors.notFound('AuditEvent', id);
  return { status: 200, body: (await forCitizen(s, [renderAuditEvent(row)]))[0] as string };
}

export async function auditLogSearch(s: Services, call: Call): Promise<FhirResponse> {
  const { ctx, req } = call;
  let patients = allowedPatients(call);
  let count = DEFAULT_COUNT;
  const where: Fragment[] = [];
  let after: { recorded: string; seq: number } | undefined;
  const used: Array<[string, string]> = [];
  for (const [name, value] of req.query) {
    if (name === 'patient') {
      const id = value.replace(/^Patient\//, '');
      patients = patients.filter((p) => p === id);
      used.push([name, value]);
    } else if (name === 'date') {
      const m = /^(ge|le|gt|lt|eq)?(.+)$/.exec(value);
      const range = m ? dateRange(m[2] as string) : undefined;
      if (!m || !range) throw errors.invalidSearch(`Invalid date "${value.slice(0, 40)}" for the access log`);
      const prefix = m[1] ?? 'eq';
      where.push(
        prefix === 'ge' ? sql`e.recorded >= ${range.lo}::timestamptz`
        : prefix === 'gt' ? sql`e.recorded >= ${range.hi}::timestamptz`
        : prefix === 'le' ? sql`e.recorded < ${range.hi}::timestamptz`
        : prefix === 'lt' ? sql`e.recorded < ${range.lo}::timestamptz`
        : sql`e.recorded >= ${range.lo}::timestamptz AND e.recorded < ${range.hi}::timestamptz`,
      );
      used.push([name, value]);
    } else if (name === '_count') {
      if (!/^\d+$/.test(value)) throw errors.invalidSearch('_count must be a non-negative integer');
      count = Math.min(Number(value), MAX_COUNT);
      used.push([name, value]);
    } else if (name === '_cursor') {
      try {
        const c = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as { recorded: unknown; seq: unknown };
        if (typeof c.recorded !== 'string' || Number.isNaN(Date.parse(c.recorded)) || !Number.isSafeInteger(c.seq)) throw new Error();
        after = { recorded: c.recorded, seq: c.seq as number };
      } catch {
        throw errors.invalidSearch('The paging cursor is not valid');
      }
    } else if (name === '_sort') {
      if (value !== '-date') throw errors.invalidSearch('The access log is sorted newest first (_sort=-date)');
    } else if (req.preferHandling === 'strict') {
      throw errors.invalidSearch(`Unknown parameter "${name}" for the access log (Prefer: handling=strict)`);
    }
  }
  const c = compile(sql`${sql.raw(AUDIT_SELECT)}
    WHERE e.patient_id = ANY(${patients}::text[]) ${where.length ? sql`AND ${sql.join(where, sql` AND `)}` : sql``}
    ${after ? sql`AND (e.recorded, e.seq) < (${after.recorded}::timestamptz, ${after.seq}::bigint)` : sql``}
    ORDER BY e.recorded DESC, e.seq DESC LIMIT ${count + 1}`);
  const rows = count === 0 ? [] : await s.db.query<AuditRow>(c.sql, c.parameters);
  const page = rows.slice(0, count);
  const base = `${ctx.baseUrl}/AuditEvent`;
  const link = (params: Array<[string, string]>) => (params.length ? `${base}?${new URLSearchParams(params).toString()}` : base);
  const links: BundleLink[] = [{ relation: 'self', url: link(used) }];
  const last = page[page.length - 1];
  if (rows.length > count && last) {
    const cursor = Buffer.from(JSON.stringify({ recorded: last.recorded.toISOString(), seq: last.seq })).toString('base64url');
    links.push({ relation: 'next', url: link([...used, ['_cursor', cursor]]) });
  }
  const shown = await forCitizen(s, page.map(renderAuditEvent));
  return {
    status: 200,
    body: bundleText('searchset', {
      link: links,
      entries: page.map((r, i) => ({ fullUrl: fullUrl(ctx.baseUrl, 'AuditEvent', r.id), resource: shown[i], extra: SEARCH_MATCH })),
    }),
  };
}
