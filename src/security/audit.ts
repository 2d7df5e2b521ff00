/**
 * The audit trail: an AuditEvent for every read, search and write of patient data (the status
 * check excepted), saying who (pid, HPR number, role, legal entity, point of care), for whom
 * (representation), which patient, what (resources and versions), why (access basis, reason),
 * from which client system, and the outcome. Writes record theirs in the same database
 * transaction as the change; reads wait for their record to be stored (group-committed with
 * concurrent reads) before any data is returned. The table is append-only (see migration 003).
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from '@medplum/fhirtypes';
import type { RequestContext } from '../fhir/types.js';
import { OID } from '../no/identifiers.js';
import { CODE_SYSTEM } from '../no/codes.js';
import { Batcher } from '../store/batch.js';
import type { Database, Transaction } from '../store/db.js';
import { isEmergency, type Principal } from './principal.js';

export const AUDIT_CODES = {
  agentType: 'https://samplan.no/fhir/CodeSystem/audit-agent-type',
  accessBasis: 'https://samplan.no/fhir/CodeSystem/nhn-access-basis',
  representation: 'https://samplan.no/fhir/CodeSystem/representation-basis',
  clientId: 'https://samplan.no/fhir/NamingSystem/client-id',
} as const;

/** The kinds of agent besides the person: the client system, and the point of care and legal entity the person acts for. */
export const AUDIT_AGENT_TYPE = {
  clientSystem: { code: 'client-system', display: 'Client system' },
  pointOfCare: { code: 'point-of-care', display: 'Point of care' },
  legalEntity: { code: 'legal-entity', display: 'Legal entity' },
} as const;

export interface AuditedEntity {
  type: string;
  id: string;
  version?: number;
}

/** What the engine tells the audit trail about one request. */
export interface AuditRecord {
  ctx: RequestContext;
  /** FHIR restful-interaction code: read, vread, search-type, create, update, patch, delete, transaction, history-instance, operation … */
  interaction: string;
  /** For an operation: its name and OperationDefinition, so the record says which one ran. */
  operation?: { name: string; definition: string };
  outcome: 'success' | 'refused' | 'failed';
  outcomeText?: string;
  entities: readonly AuditedEntity[];
  /** Names of the search parameters used (never their values: they may hold national ids). */
  queryParams?: readonly string[];
}

export interface StoredAuditEvent {
  id: string;
  recorded: string;
  patientId: string | null;
  content: string;
}

const ACTION: Record<string, AuditEvent['action']> = {
  create: 'C',
  read: 'R',
  vread: 'R',
  'history-instance': 'R',
  'history-type': 'R',
  'history-system': 'R',
  'search-type': 'E',
  'search-system': 'E',
  update: 'U',
  patch: 'U',
  delete: 'D',
  transaction: 'E',
  operation: 'E',
};

const coding = (system: string, code: string, display?: string): Coding => ({ system, code, ...(display ? { display } : {}) });
const agentType = (t: { code: string; display: string }): Coding => coding(AUDIT_CODES.agentType, t.code, t.display);

function agents(p: Principal): AuditEventAgent[] {
  const purpose = p.kind === 'personnel' ? [{ coding: [coding(AUDIT_CODES.accessBasis, p.accessBasis), coding('http://terminology.hl7.org/CodeSystem/v3-ActReason', isEmergency(p.accessBasis) ? 'ETREAT' : 'TREAT')], ...(p.reason ? { text: p.reason } : {}) }] : undefined;
  const user = coding('http://terminology.hl7.org/CodeSystem/extra-security-role-type', 'humanuser', 'human user');
  const client = (clientId: string, display?: string): AuditEventAgent => ({
    type: { coding: [agentType(AUDIT_AGENT_TYPE.clientSystem)] },
    who: { identifier: { system: AUDIT_CODES.clientId, value: clientId }, ...(display ? { display } : {}) },
    requestor: false,
  });
  if (p.kind === 'personnel') {
    return [
      {
        type: { coding: [user] },
        who: { identifier: { system: OID.hpr, value: p.hpr }, ...(p.name ? { display: p.name } : {}) },
        altId: p.pid,
        requestor: true,
        role: [{ coding: [coding(CODE_SYSTEM.personnelCategory, p.role.code)] }],
        ...(purpose ? { purposeOfUse: purpose } : {}),
      },
      { type: { coding: [agentType(AUDIT_AGENT_TYPE.pointOfCare)] }, who: { identifier: { system: OID.orgnr, value: p.orgnrChild } }, requestor: false },
      { type: { coding: [agentType(AUDIT_AGENT_TYPE.legalEntity)] }, who: { identifier: { system: OID.orgnr, value: p.orgnrParent } }, requestor: false },
      client(p.clientId, p.sourceSystem),
    ];
  }
  if (p.kind === 'citizen') {
    return [
      {
        type: { coding: [user] },
        who: { identifier: { system: OID.fnr, value: p.pid }, ...(p.name ? { display: p.name } : {}) },
        requestor: true,
        role: [{ coding: [coding(AUDIT_CODES.representation, p.representation.basis)] }],
      },
      client(p.clientId),
    ];
  }
  return [client(p.clientId, p.sourceSystem ?? p.clientName)];
}

/**
 * A UUID version 7 (RFC 9562): the time in milliseconds first, then random bits. The table's
 * unique index on the id then grows at its right edge like the sequence's, instead of every read
 * dirtying a random page of an index as large as the trail (and, after each checkpoint, writing
 * that whole page to the WAL again).
 */
export function timeOrderedUuid(now = Date.now()): string {
  const time = now.toString(16).padStart(12, '0');
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${crypto.randomUUID().slice(15)}`;
}

const PATIENT_ENTITY = `"type":${JSON.stringify(coding('http://terminology.hl7.org/CodeSystem/audit-entity-type', '1', 'Person'))},"role":${JSON.stringify(coding('http://terminology.hl7.org/CodeSystem/object-role', '1', 'Patient'))}`;
const RESOURCE_ENTITY = `"type":${JSON.stringify(coding('http://terminology.hl7.org/CodeSystem/audit-entity-type', '2', 'System Object'))},"role":${JSON.stringify(coding('http://terminology.hl7.org/CodeSystem/object-role', '4', 'Domain Resource'))}`;
const EVENT_TYPE = JSON.stringify(coding('http://terminology.hl7.org/CodeSystem/audit-event-type', 'rest', 'RESTful Operation'));
const SOURCE = JSON.stringify({
  site: 'Samplan',
  observer: { display: 'Samplan' },
  type: [coding('http://terminology.hl7.org/CodeSystem/security-source-type', '4', 'Application Server')],
} satisfies AuditEvent['source']);
const NO_PRINCIPAL = JSON.stringify([{ who: { display: 'Samplan' }, requestor: true }] satisfies AuditEventAgent[]);

/** The parts of a record that depend only on who asked: its agents, and the purpose of a clinician's request. */
interface PrincipalParts {
  agents: string;
  /** `,"purposeOfEvent":[…]`, or '' when there is none. */
  purpose: string;
}

/**
 * By principal: the authenticator hands out the same principal object while a client sends the
 * same token and headers, so these parts are serialised once per principal.
 */
const partsByPrincipal = new WeakMap<Principal, PrincipalParts>();
const NO_PRINCIPAL_PARTS: PrincipalParts = { agents: NO_PRINCIPAL, purpose: '' };

function principalParts(p: Principal | undefined): PrincipalParts {
  if (!p) return NO_PRINCIPAL_PARTS;
  let parts = partsByPrincipal.get(p);
  if (parts === undefined) {
    const purpose: AuditEvent['purposeOfEvent'] =
      p.kind === 'personnel' ? [{ coding: [coding(AUDIT_CODES.accessBasis, p.accessBasis)], ...(p.reason ? { text: p.reason } : {}) }] : undefined;
    parts = { agents: JSON.stringify(agents(p)), purpose: purpose ? `,"purposeOfEvent":${JSON.stringify(purpose)}` : '' };
    partsByPrincipal.set(p, parts);
  }
  return parts;
}

/** `"subtype":[…],"action":"…"` of an interaction without an operation: the same for every request. */
const interactionParts = new Map<string, string>();

function subtypeAndAction(record: AuditRecord): string {
  let text = record.operation ? undefined : interactionParts.get(record.interaction);
  if (text === undefined) {
    const subtype: Coding[] = [
      coding('http://hl7.org/fhir/restful-interaction', record.interaction),
      ...(record.operation ? [coding('urn:ietf:rfc:3986', record.operation.definition, `$${record.operation.name}`)] : []),
    ];
    text = `"subtype":${JSON.stringify(subtype)},"action":${JSON.stringify(ACTION[record.interaction] ?? 'E')}`;
    if (!record.operation) interactionParts.set(record.interaction, text);
  }
  return text;
}

/**
 * The AuditEvent for a request, and the row that stores it. Its JSON is put together from parts,
 * the constant ones and the agents serialised once (JSON.stringify of the whole record was most of
 * its 10 µs for a read, 31 µs for a plan Bundle's 25 entities); each part is JSON.stringify's, so
 * the text is what JSON.stringify would make of the AuditEvent (test/security/audit.test.ts).
 */
export function auditEvent(record: AuditRecord): StoredAuditEvent {
  const { ctx } = record;
  const now = Date.now();
  const id = timeOrderedUuid(now);
  const recorded = new Date(now).toISOString();
  const patientId = ctx.patientIds?.[0] ?? record.entities.find((e) => e.type === 'Patient')?.id ?? null;
  const entities: string[] = [];
  if (patientId) entities.push(`{"what":{"reference":${JSON.stringify(`Patient/${patientId}`)}},${PATIENT_ENTITY}}`);
  for (const e of record.entities) {
    if (e.type === 'Patient' && e.id === patientId) continue;
    const reference = `${e.type}/${e.id}${e.version !== undefined ? `/_history/${e.version}` : ''}`;
    entities.push(`{"what":{"reference":${JSON.stringify(reference)}},${RESOURCE_ENTITY}}`);
  }
  if (record.queryParams?.length) {
    entities.push(
      JSON.stringify({
        type: coding('http://terminology.hl7.org/CodeSystem/audit-entity-type', '2', 'System Object'),
        role: coding('http://terminology.hl7.org/CodeSystem/object-role', '24', 'Query'),
        description: `Search parameters: ${[...new Set(record.queryParams)].join(', ')}`,
      } satisfies AuditEventEntity),
    );
  }
  const { agents: agentsText, purpose } = principalParts(ctx.principal);
  const content =
    `{"resourceType":"AuditEvent","id":${JSON.stringify(id)},"meta":{"versionId":"1","lastUpdated":${JSON.stringify(recorded)}}` +
    `,"type":${EVENT_TYPE},${subtypeAndAction(record)}` +
    `,"recorded":${JSON.stringify(recorded)},"outcome":${JSON.stringify(record.outcome === 'success' ? '0' : record.outcome === 'refused' ? '4' : '8')}` +
    (record.outcomeText ? `,"outcomeDesc":${JSON.stringify(record.outcomeText.slice(0, 500))}` : '') +
    purpose +
    `,"agent":${agentsText},"source":${SOURCE}` +
    (entities.length ? `,"entity":[${entities.join(',')}]` : '') +
    '}';
  return { id, recorded, patientId, content };
}

// The rows go as four texts, one line per row, split by PostgreSQL: no escaping on either side.
// A line break cannot occur inside a value: the content is JSON.stringify's output (which escapes
// every control character), the ids are UUIDs and resource ids, the times ISO strings. (Before,
// one JSON text of the rows: each record escaped a second time by JavaScript, then parsed by
// PostgreSQL.) No patient is an empty line; string_to_array('') is empty, and unnest() pads the
// shorter arrays with NULL, so a batch of one row without a patient also gets NULL.
const INSERT = `INSERT INTO audit_events (id, recorded, patient_id, content)
  SELECT id, recorded::timestamptz, NULLIF(patient_id, ''), content
  FROM unnest(string_to_array($1::text, E'\\n'), string_to_array($2::text, E'\\n'), string_to_array($3::text, E'\\n'), string_to_array($4::text, E'\\n')) AS x(id, recorded, patient_id, content)`;

function insertParams(rows: StoredAuditEvent[]): unknown[] {
  const lines = (value: (r: StoredAuditEvent) => string) => rows.map(value).join('\n');
  return [lines((r) => r.id), lines((r) => r.recorded), lines((r) => r.patientId ?? ''), lines((r) => r.content)];
}

export class AuditWriter {
  private readonly batch: Batcher<StoredAuditEvent, undefined>;

  constructor(db: Database) {
    // One INSERT at a time: under load the next batch gathers every read that arrives meanwhile
    // (10 rows a statement instead of 4 at 32 connections, a third less database time per row).
    this.batch = new Batcher<StoredAuditEvent, undefined>(
      async (rows) => {
        await db.query(INSERT, insertParams(rows));
        return rows.map(() => undefined);
      },
      { maxInFlight: 1 },
    );
  }

  /** Stores the record of a read (or a refused request); resolves once it is committed. */
  async record(record: AuditRecord): Promise<void> {
    await this.batch.add(auditEvent(record));
  }

  /**
   * Stores the record of a write in the write's own transaction, as its last statement (sent with
   * COMMIT): the change commits with its record or not at all; `fail` says what a failure is.
   */
  recordIn(tx: Transaction, record: AuditRecord, fail: (err: unknown) => unknown): void {
    tx.defer({ text: INSERT, params: insertParams([auditEvent(record)]), fail });
  }
}
