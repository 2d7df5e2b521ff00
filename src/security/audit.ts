/**
 * The audit trail: an AuditEvent for every read, search and write of patient data (the status
 * check excepted), saying who (pid, HPR number, role, legal entity, point of care), for whom
 * (representation), which patient, what (resources and versions), why (access basis, reason),
 * from which client system, and the outcome. Writes record theirs in the same database
 * transaction as the change; reads wait for their record to be stored (group-committed with
 * concurrent reads) before any data is returned. The table is append-only (see migration 003).
 *
 * A record is stored compactly (migration 017): what differs from request to request (the
 * interaction, outcome, entities, search parameter names) in `audit_events`, and the agents and
 * purpose — the same for every request a person makes from one place — once in `audit_agents`.
 * The AuditEvent is put together when the trail is read (`renderAuditEvent`), the same text that
 * was stored whole before; records stored before the migration are served as stored.
 */
import { createHash } from 'node:crypto';
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

/** The parts of a record that depend only on who asked: stored once in `audit_agents`, by key. */
export interface AuditAgents {
  /** A digest of the two texts below. */
  key: string;
  /** The AuditEvent's `agent` array, as JSON. */
  agents: string;
  /** Its `purposeOfEvent` array, as JSON, or '' when there is none. */
  purpose: string;
}

/** A record as stored: `content` holds what differs from request to request (see `renderAuditEvent`). */
export interface StoredAuditEvent {
  id: string;
  recorded: string;
  patientId: string | null;
  agents: AuditAgents;
  content: string;
}

/** The compact record in `audit_events.content`. */
interface CompactRecord {
  interaction: string;
  operation?: { name: string; definition: string };
  /** The AuditEvent's outcome code: 0, 4 or 8. */
  outcome: string;
  outcomeDesc?: string;
  /** References of the entities besides the patient (`patient_id`), with their versions. */
  entity: string[];
  /** Names of the search parameters used. */
  query?: string[];
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

const agentsOf = (agents: string, purpose: string): AuditAgents => ({
  key: createHash('sha256').update(agents).update('\n').update(purpose).digest('base64url').slice(0, 22),
  agents,
  purpose,
});

/**
 * By principal: the authenticator hands out the same principal object while a client sends the
 * same token and headers, so these parts are serialised (and their key computed) once per principal.
 */
const partsByPrincipal = new WeakMap<Principal, AuditAgents>();
const NO_PRINCIPAL_PARTS = agentsOf(NO_PRINCIPAL, '');

function principalParts(p: Principal | undefined): AuditAgents {
  if (!p) return NO_PRINCIPAL_PARTS;
  let parts = partsByPrincipal.get(p);
  if (parts === undefined) {
    const purpose: AuditEvent['purposeOfEvent'] =
      p.kind === 'personnel' ? [{ coding: [coding(AUDIT_CODES.accessBasis, p.accessBasis)], ...(p.reason ? { text: p.reason } : {}) }] : undefined;
    parts = agentsOf(JSON.stringify(agents(p)), purpose ? JSON.stringify(purpose) : '');
    partsByPrincipal.set(p, parts);
  }
  return parts;
}

/** `"subtype":[…],"action":"…"` of an interaction without an operation: the same for every request. */
const interactionParts = new Map<string, string>();

function subtypeAndAction(record: Pick<CompactRecord, 'interaction' | 'operation'>): string {
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

const reference = (e: AuditedEntity) => `${e.type}/${e.id}${e.version !== undefined ? `/_history/${e.version}` : ''}`;

/**
 * The record of a request, as stored. Its compact part is put together as text (it is made for
 * every read; JSON.stringify of each value), the agents' parts are the principal's, made once.
 */
export function auditEvent(record: AuditRecord): StoredAuditEvent {
  const { ctx } = record;
  const now = Date.now();
  const patientId = ctx.patientIds?.[0] ?? record.entities.find((e) => e.type === 'Patient')?.id ?? null;
  const entities: string[] = [];
  for (const e of record.entities) if (e.type !== 'Patient' || e.id !== patientId) entities.push(reference(e));
  const params = record.queryParams?.length ? [...new Set(record.queryParams)] : undefined;
  const content =
    `{"interaction":${JSON.stringify(record.interaction)}` +
    (record.operation ? `,"operation":${JSON.stringify({ name: record.operation.name, definition: record.operation.definition })}` : '') +
    `,"outcome":"${record.outcome === 'success' ? '0' : record.outcome === 'refused' ? '4' : '8'}"` +
    (record.outcomeText ? `,"outcomeDesc":${JSON.stringify(record.outcomeText.slice(0, 500))}` : '') +
    `,"entity":${JSON.stringify(entities)}` +
    (params ? `,"query":${JSON.stringify(params)}` : '') +
    '}';
  return { id: timeOrderedUuid(now), recorded: new Date(now).toISOString(), patientId, agents: principalParts(ctx.principal), content };
}

/** A row of the trail as `AUDIT_SELECT` reads it. */
export interface AuditRow {
  seq: number;
  id: string;
  recorded: Date;
  patient_id: string | null;
  content: string;
  /** NULL for a record stored whole, before migration 017. */
  agents_key: string | null;
  agents: string | null;
  purpose: string | null;
}

/** Reads the trail's rows with their agents; add WHERE, ORDER BY (`e.` is the record, `a.` its agents). */
export const AUDIT_SELECT = 'SELECT e.seq, e.id, e.recorded, e.patient_id, e.content, e.agents_key, a.agents, a.purpose FROM audit_events e LEFT JOIN audit_agents a ON a.key = e.agents_key';

/**
 * The AuditEvent of a stored record: its JSON is put together from parts, the constant ones
 * serialised once; each part is JSON.stringify's, so the text is what JSON.stringify would make of
 * the AuditEvent (test/security/audit.test.ts).
 */
export function renderAuditEvent(row: AuditRow): string {
  if (row.agents_key === null) return row.content;
  // Never the case: a record's agents go in the same statement as the record, or before it.
  if (row.agents === null) throw new Error(`audit record ${row.id}: its agents (${row.agents_key}) are not stored`);
  const r = JSON.parse(row.content) as CompactRecord;
  const recorded = JSON.stringify(row.recorded.toISOString());
  const entities: string[] = [];
  if (row.patient_id) entities.push(`{"what":{"reference":${JSON.stringify(`Patient/${row.patient_id}`)}},${PATIENT_ENTITY}}`);
  for (const e of r.entity) entities.push(`{"what":{"reference":${JSON.stringify(e)}},${RESOURCE_ENTITY}}`);
  if (r.query) {
    entities.push(
      JSON.stringify({
        type: coding('http://terminology.hl7.org/CodeSystem/audit-entity-type', '2', 'System Object'),
        role: coding('http://terminology.hl7.org/CodeSystem/object-role', '24', 'Query'),
        description: `Search parameters: ${r.query.join(', ')}`,
      } satisfies AuditEventEntity),
    );
  }
  return (
    `{"resourceType":"AuditEvent","id":${JSON.stringify(row.id)},"meta":{"versionId":"1","lastUpdated":${recorded}}` +
    `,"type":${EVENT_TYPE},${subtypeAndAction(r)}` +
    `,"recorded":${recorded},"outcome":${JSON.stringify(r.outcome)}` +
    (r.outcomeDesc !== undefined ? `,"outcomeDesc":${JSON.stringify(r.outcomeDesc)}` : '') +
    (row.purpose ? `,"purposeOfEvent":${row.purpose}` : '') +
    `,"agent":${row.agents},"source":${SOURCE}` +
    (entities.length ? `,"entity":[${entities.join(',')}]` : '') +
    '}'
  );
}

// The rows go as texts, one line per row, split by PostgreSQL: no escaping on either side. A line
// break cannot occur inside a value: the contents and agents are JSON.stringify's output (which
// escapes every control character), the ids are UUIDs, digests and resource ids, the times ISO
// strings. No patient is an empty line; string_to_array('') is empty, and unnest() pads the
// shorter arrays with NULL, so a batch of one row without a patient also gets NULL (and agents
// without a purpose likewise). The agents go in the same statement as the first records that
// name them, unless already stored: a record is never without its agents.
const INSERT = `WITH agents AS (
    INSERT INTO audit_agents (key, agents, purpose)
    SELECT key, agents, NULLIF(purpose, '')
    FROM unnest(string_to_array($6::text, E'\\n'), string_to_array($7::text, E'\\n'), string_to_array($8::text, E'\\n')) AS a(key, agents, purpose)
    ON CONFLICT (key) DO NOTHING
  )
  INSERT INTO audit_events (id, recorded, patient_id, agents_key, content)
  SELECT id, recorded::timestamptz, NULLIF(patient_id, ''), agents_key, content
  FROM unnest(string_to_array($1::text, E'\\n'), string_to_array($2::text, E'\\n'), string_to_array($3::text, E'\\n'), string_to_array($4::text, E'\\n'), string_to_array($5::text, E'\\n')) AS x(id, recorded, patient_id, agents_key, content)`;

/** Agents known to be stored; bounded, as free-text reasons make every emergency access's agents its own. */
const KNOWN_LIMIT = 10_000;

function insertParams(rows: StoredAuditEvent[], known: ReadonlySet<string>): { params: unknown[]; added: AuditAgents[] } {
  const lines = <T>(items: T[], value: (r: T) => string) => items.map(value).join('\n');
  const added = new Map<string, AuditAgents>();
  for (const r of rows) if (!known.has(r.agents.key)) added.set(r.agents.key, r.agents);
  const agents = [...added.values()];
  return {
    params: [
      lines(rows, (r) => r.id),
      lines(rows, (r) => r.recorded),
      lines(rows, (r) => r.patientId ?? ''),
      lines(rows, (r) => r.agents.key),
      lines(rows, (r) => r.content),
      lines(agents, (a) => a.key),
      lines(agents, (a) => a.agents),
      lines(agents, (a) => a.purpose),
    ],
    added: agents,
  };
}

export class AuditWriter {
  private readonly batch: Batcher<StoredAuditEvent, undefined>;
  /** Keys of agents committed by this process's reads' batches (a write's may still roll back). */
  private readonly known = new Set<string>();

  constructor(db: Database) {
    // One INSERT at a time: under load the next batch gathers every read that arrives meanwhile
    // (10 rows a statement instead of 4 at 32 connections, a third less database time per row).
    this.batch = new Batcher<StoredAuditEvent, undefined>(
      async (rows) => {
        const { params, added } = insertParams(rows, this.known);
        await db.query(INSERT, params);
        if (this.known.size + added.length > KNOWN_LIMIT) this.known.clear();
        for (const a of added) this.known.add(a.key);
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
    tx.defer({ text: INSERT, params: insertParams([auditEvent(record)], this.known).params, fail });
  }
}
