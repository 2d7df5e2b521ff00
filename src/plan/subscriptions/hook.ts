/**
 * The write hook: keeps Subscriptions and their server-side state in step, and puts an event in
 * the outbox for every active subscription a change matches — in the transaction of the change,
 * so a rolled-back change notifies no one and a committed one is never lost.
 *
 * Subscription writes (prepare): the criteria, endpoint, headers and payload are checked; the
 * secret extension is taken out of the resource (it never reaches storage or history) and kept in
 * `subscriptions.secret`; the owner (the client_id) is recorded; the status is the server's:
 * `requested` (or `active`) becomes `active`, `off` pauses, `error` is set by the delivery worker
 * only (a client sets `requested` again to resume).
 *
 * Other writes (stored): one indexed lookup (per patient and transaction) finds the active
 * subscriptions of the patients whose compartment the resource is (or was) in; each is matched with the search engine — the new
 * version by searching its filter plus `_id` in the transaction, the previous one (deletes, moves,
 * a status that no longer matches) by putting the previous version back inside a savepoint,
 * searching, and rolling the savepoint back. Events are numbered per subscription and inserted
 * just before commit, one statement for the whole transaction.
 */
import type { Resource, Subscription } from '@medplum/fhirtypes';
import { errors } from '../../fhir/outcomes.js';
import type { LockingWrite, PendingWrite, StoredWrite, WriteHook } from '../../fhir/writer.js';
import { serialize } from '../../fhir/writer.js';
import { executeSearch } from '../../search/execute.js';
import { extractIndex } from '../../search/extract.js';
import { parseSearch } from '../../search/parse.js';
import type { SearchQuery } from '../../search/query.js';
import { lookupPatient } from '../../security/privacy.js';
import type { Queryable, Transaction } from '../../store/db.js';
import { ResourceStore } from '../../store/resources.js';
import { registerSubscriptionDefinitions } from './definitions.js';
import { ownerOf, readSubscription, secretOf, type SubscriptionSpec, withOwner, withoutServerExtensions, notifies } from './spec.js';

/** An event waiting for its transaction to commit. */
interface PendingEvent {
  subscription: string;
  focus: string;
  method: string;
  occurred: string;
}

interface Candidate {
  id: string;
  patient: string;
  types: string[];
  filter: string | null;
}

const MIN_SECRET = 16;
const MAX_SECRET = 512;

const outboxListeners = new Set<() => void>();

/** Called (in this process) shortly after a transaction that added outbox events: wakes the delivery workers. */
export function onOutboxWritten(listener: () => void): () => void {
  outboxListeners.add(listener);
  return () => outboxListeners.delete(listener);
}

function signalOutbox(): void {
  // The transaction commits right after its before-commit checks; a worker on another
  // connection may look too early, so it retries shortly after a nudge (see delivery.ts).
  setTimeout(() => {
    for (const listener of outboxListeners) listener();
  }, 0).unref?.();
}

const isTransaction = (q: Queryable): q is Transaction => (q as Partial<Transaction>).inTransaction === true;

/** The Patient ids of `Patient/<id>` compartments. */
function patientsIn(compartments: readonly string[]): string[] {
  return compartments.filter((c) => c.startsWith('Patient/')).map((c) => c.slice('Patient/'.length));
}

/**
 * Patients a resource refers to (a superset of its patient compartments, found without computing
 * its index): only used to look up candidate subscriptions for the previous version of an update.
 */
function referencedPatients(value: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const v of value) referencedPatients(v, found);
  } else if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === 'reference' && typeof v === 'string') {
        const m = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(v);
        if (m) found.add(m[1] as string);
      } else if (typeof v === 'object') referencedPatients(v, found);
    }
  }
  return found;
}

export class SubscriptionHook implements WriteHook {
  private readonly store = new ResourceStore();
  /** What prepare learnt about a Subscription write, for stored: per transaction, by id. */
  private readonly prepared = new WeakMap<Queryable, Map<string, { spec: SubscriptionSpec; secret?: string }>>();
  private readonly pending = new WeakMap<Queryable, PendingEvent[]>();
  /** Active subscriptions by patient, as looked up in a transaction (forgotten when it writes a Subscription). */
  private readonly known = new WeakMap<Transaction, Map<string, Promise<Candidate[]>>>();
  /** Parsed filters, by type and query string. */
  private readonly filters = new Map<string, SearchQuery>();

  constructor() {
    registerSubscriptionDefinitions();
  }

  async prepare(w: PendingWrite): Promise<Resource> {
    if (w.type !== 'Subscription') return w.next;
    const principal = w.ctx.principal;
    const secret = secretOf(w.next);
    if (secret !== undefined && (typeof secret !== 'string' || secret.length < MIN_SECRET || secret.length > MAX_SECRET)) {
      throw errors.badRequest(`The subscription secret must be a string of ${MIN_SECRET} to ${MAX_SECRET} characters`, 'Subscription.extension');
    }
    if (!w.current && secret === undefined) {
      throw errors.badRequest(
        'A new Subscription needs a secret to sign its notifications with: an extension https://samplan.no/fhir/StructureDefinition/subscription-secret with a valueString of at least 16 random characters (it is never returned)',
        'Subscription.extension',
      );
    }
    const stripped = withoutServerExtensions(w.next) as Subscription;
    const spec = readSubscription(stripped, w.ctx.baseUrl);
    const current = w.current as Subscription | undefined;
    const { error: _clientError, ...rest } = stripped;
    let next: Subscription;
    if (!principal) {
      // The server's own writes (the delivery worker setting `error`) are taken as they are.
      next = stripped.status === 'error' ? stripped : { ...rest, status: stripped.status === 'requested' ? 'active' : stripped.status };
    } else if (stripped.status === 'requested' || stripped.status === 'active') {
      next = { ...rest, status: 'active' };
    } else if (stripped.status === 'off') {
      next = { ...rest, status: 'off' };
    } else if (current?.status === 'error') {
      next = { ...rest, status: 'error', ...(current.error ? { error: current.error } : {}) };
    } else {
      throw errors.badRequest('Only the server sets a Subscription to error; set status requested to start it or off to pause it', 'Subscription.status');
    }
    // The owner is whoever created it; the access rules check that only the owner changes it.
    const owner = current ? ownerOf(current) : principal?.clientId;
    let map = this.prepared.get(w.q);
    if (!map) this.prepared.set(w.q, (map = new Map()));
    map.set(w.id, { spec, ...(typeof secret === 'string' ? { secret } : {}) });
    // A new secret alone changes nothing in the resource (so no new version is stored): keep it
    // now. The owner was checked before this hook ran (the writer checks access to the current
    // version first); the rest of the write can still fail, and then this rolls back with it.
    if (current && typeof secret === 'string') await w.q.query('UPDATE subscriptions SET secret = $2::text WHERE id = $1::text', [w.id, secret]);
    return withOwner(next, owner);
  }

  /** The patients whose subscriptions a write of plan content may concern (none for other writes). */
  private patientsOf(w: StoredWrite): string[] {
    if (w.type === 'Subscription' || !notifies(w.type)) return [];
    const deleted = w.method === 'DELETE';
    const nextPatients = deleted ? [] : patientsIn(w.compartments);
    const previousPatients = deleted ? patientsIn(w.compartments) : w.previous ? [...referencedPatients(w.previous)] : [];
    return [...new Set([...nextPatients, ...previousPatients])];
  }

  /** An update's lookup goes out with its lock: the patients its new content refers to (usually those of the version it replaces). */
  locking(w: LockingWrite): Promise<Candidate[]> | undefined {
    if (w.type === 'Subscription' || !notifies(w.type)) return undefined;
    const patients = [...referencedPatients(w.next)];
    return patients.length ? this.subscriptionsOf(w.q, patients) : undefined;
  }

  /** The lookup goes out with the write's own statement (in a transaction, where `stored` finds it), if not made with the lock. */
  storing(w: StoredWrite): void {
    const patients = this.patientsOf(w);
    if (patients.length && isTransaction(w.q)) void this.subscriptionsOf(w.q, patients).catch(() => undefined);
  }

  async stored(w: StoredWrite): Promise<void> {
    if (w.type === 'Subscription') return this.storeSubscription(w);
    const patients = this.patientsOf(w);
    if (!patients.length) return;
    const deleted = w.method === 'DELETE';
    const candidates = (await this.subscriptionsOf(w.q, patients)).filter((c) => !c.types.length || c.types.includes(w.type));
    if (!candidates.length) return;
    let previousCompartments: readonly string[] | undefined;
    const wasIn = (patient: string): boolean => {
      if (!w.previous) return false;
      previousCompartments ??= deleted ? w.compartments : extractIndex(w.previous, w.ctx.baseUrl).compartments;
      return previousCompartments.includes(`Patient/${patient}`);
    };
    const matched: Candidate[] = [];
    const checkPrevious: Candidate[] = [];
    for (const c of candidates) {
      const isIn = !deleted && w.compartments.includes(`Patient/${c.patient}`);
      if (isIn && (!c.filter || (await this.matches(w.q, w, c)))) matched.push(c);
      else if (wasIn(c.patient)) (c.filter ? checkPrevious : matched).push(c);
    }
    if (checkPrevious.length) matched.push(...(await this.matchPrevious(w, checkPrevious)));
    if (!matched.length) return;
    const occurred = w.version.lastUpdated.toISOString();
    for (const c of matched) await this.add(w.q, { subscription: c.id, focus: `${w.type}/${w.id}`, method: w.method, occurred });
  }

  /**
   * The active subscriptions of these patients: the one lookup a write of plan content costs
   * (index subscriptions_patient), made once per patient in a transaction — a whole plan written
   * in one Bundle is one patient's. Started by `storing`, awaited by `stored`; outside a
   * transaction (no place to keep it) `stored` looks up again.
   */
  private subscriptionsOf(q: Queryable, patients: string[]): Promise<Candidate[]> {
    const lookup = (list: string[]) =>
      q.query<Candidate>(
        `SELECT id, patient, types, filter FROM subscriptions
          WHERE patient = ANY($1::text[]) AND status = 'active' AND (ends IS NULL OR ends > now())`,
        [list],
      );
    if (!isTransaction(q)) return lookup(patients);
    let known = this.known.get(q);
    if (!known) this.known.set(q, (known = new Map()));
    const missing = patients.filter((p) => !known.has(p));
    if (missing.length) {
      const rows = lookup(missing);
      for (const p of missing) {
        const mine = rows.then((list) => list.filter((r) => r.patient === p));
        mine.catch(() => undefined); // a lookup started early may fail unawaited: its transaction fails anyway
        known.set(p, mine);
      }
    }
    return Promise.all(patients.map((p) => known.get(p) as Promise<Candidate[]>)).then((lists) => lists.flat());
  }

  /** Whether `type/id` as it is now in the transaction matches the subscription's filter. */
  private async matches(q: Queryable, w: StoredWrite, c: Candidate): Promise<boolean> {
    const key = `${w.type}?${c.filter}`;
    let query = this.filters.get(key);
    if (!query) {
      query = parseSearch(w.type, [...new URLSearchParams(c.filter ?? '').entries()], { strict: true, baseUrl: w.ctx.baseUrl });
      if (this.filters.size > 1000) this.filters.clear();
      this.filters.set(key, query);
    }
    const result = await executeSearch(
      q,
      { ...query, filters: [...query.filters, { kind: 'id', ids: [w.id] }], compartment: `Patient/${c.patient}`, summary: 'count', total: 'accurate' },
      undefined,
    );
    return (result.total ?? 0) > 0;
  }

  /**
   * Matches the previous version: puts it back (content and index rows) inside a savepoint,
   * searches, and rolls the savepoint back, so the search engine itself decides.
   */
  private async matchPrevious(w: StoredWrite, candidates: Candidate[]): Promise<Candidate[]> {
    const q = w.q;
    const previous = w.previous as Resource;
    if (!isTransaction(q)) return [];
    await q.query('SAVEPOINT samplan_subscription_match');
    try {
      const [row] = await q.query<{ rid: number; version: number }>('SELECT rid, version FROM resources WHERE type = $1 AND id = $2', [w.type, w.id]);
      if (!row) return [];
      const index = extractIndex(previous, w.ctx.baseUrl);
      await this.store.update(
        q,
        row,
        {
          type: w.type,
          id: w.id,
          version: row.version + 1,
          lastUpdated: previous.meta?.lastUpdated ?? w.version.lastUpdated.toISOString(),
          method: 'PUT',
          content: serialize(previous),
          compartments: index.compartments,
        },
        index.rows,
      );
      const found: Candidate[] = [];
      for (const c of candidates) if (await this.matches(q, w, c)) found.push(c);
      return found;
    } finally {
      await q.query('ROLLBACK TO SAVEPOINT samplan_subscription_match');
      await q.query('RELEASE SAVEPOINT samplan_subscription_match');
    }
  }

  private async add(q: Queryable, event: PendingEvent): Promise<void> {
    if (!isTransaction(q)) {
      await this.flush(q, [event]);
      return;
    }
    let list = this.pending.get(q);
    if (!list) {
      const events: PendingEvent[] = (list = []);
      this.pending.set(q, events);
      q.beforeCommit(() => this.flush(q, events));
    }
    list.push(event);
  }

  /**
   * Numbers the transaction's events per subscription and inserts them. The subscriptions are
   * locked in id order (so concurrent transactions cannot deadlock here) and re-checked: one
   * switched off or deleted meanwhile gets nothing.
   */
  private async flush(q: Queryable, events: PendingEvent[]): Promise<void> {
    if (!events.length) return;
    const ids = [...new Set(events.map((e) => e.subscription))].sort();
    const locked = await q.query<{ id: string; events: number }>(
      `SELECT id, events FROM subscriptions WHERE id = ANY($1::text[]) AND status = 'active' ORDER BY id FOR UPDATE`,
      [ids],
    );
    const counters = new Map(locked.map((r) => [r.id, Number(r.events)]));
    const rows = { subscription: [] as string[], number: [] as number[], focus: [] as string[], method: [] as string[], occurred: [] as string[] };
    for (const e of events) {
      const n = counters.get(e.subscription);
      if (n === undefined) continue;
      counters.set(e.subscription, n + 1);
      rows.subscription.push(e.subscription);
      rows.number.push(n + 1);
      rows.focus.push(e.focus);
      rows.method.push(e.method);
      rows.occurred.push(e.occurred);
    }
    if (!rows.subscription.length) return;
    await q.query(
      `INSERT INTO subscription_outbox (subscription, event_number, focus, method, occurred)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[])`,
      [rows.subscription, rows.number, rows.focus, rows.method, rows.occurred],
    );
    const touched = [...counters.entries()].filter(([id]) => rows.subscription.includes(id));
    await q.query(
      `UPDATE subscriptions AS s SET events = c.events, due = COALESCE(s.due, now())
         FROM unnest($1::text[], $2::bigint[]) AS c(id, events) WHERE s.id = c.id`,
      [touched.map(([id]) => id), touched.map(([, n]) => n)],
    );
    signalOutbox();
  }

  /** Keeps `subscriptions` in step with a Subscription write. */
  private async storeSubscription(w: StoredWrite): Promise<void> {
    if (isTransaction(w.q)) this.known.delete(w.q);
    if (w.method === 'DELETE' || !w.next) {
      // A tombstone keeps the owner (so the owner reads 410 Gone and the history, others 404);
      // the secret and the undelivered events go.
      await w.q.query('DELETE FROM subscription_outbox WHERE subscription = $1::text', [w.id]);
      await w.q.query(
        `UPDATE subscriptions SET status = 'deleted', secret = '', due = NULL, lease_until = NULL, lease_owner = NULL WHERE id = $1::text`,
        [w.id],
      );
      return;
    }
    const known = this.prepared.get(w.q)?.get(w.id);
    this.prepared.get(w.q)?.delete(w.id);
    const spec = known?.spec ?? readSubscription(w.next, w.ctx.baseUrl);
    const patient = await this.resolvePatient(w.q, spec);
    const resource = w.next as Subscription;
    const principal = w.ctx.principal;
    const values = [
      w.id,
      patient,
      spec.types,
      spec.filter ?? null,
      spec.topic ?? null,
      resource.status,
      spec.endpoint,
      spec.headers,
      spec.payload,
      spec.end ?? null,
    ];
    if (!w.previous) {
      // Created (again, if it was deleted): a new subscription, with a new owner and counters.
      await w.q.query('DELETE FROM subscriptions WHERE id = $1::text', [w.id]);
    }
    const updated = await w.q.query(
      `UPDATE subscriptions SET
         patient = $2::text, types = $3::text[], filter = $4::text, topic = $5::text, endpoint = $7::text, headers = $8::text[],
         payload = $9::text, ends = $10::timestamptz, secret = COALESCE($11::text, secret),
         attempts = CASE WHEN $6::text = 'active' AND status <> 'active' THEN 0 ELSE attempts END,
         failing_since = CASE WHEN $6::text = 'active' AND status <> 'active' THEN NULL ELSE failing_since END,
         due = CASE WHEN $6::text <> 'active' THEN NULL
                    WHEN status <> 'active' AND events > delivered_through THEN now()
                    ELSE due END,
         status = $6::text
       WHERE id = $1::text RETURNING id`,
      [...values, known?.secret ?? null],
    );
    if (updated.length) return;
    if (!known?.secret) {
      throw errors.badRequest('The Subscription needs a secret (extension https://samplan.no/fhir/StructureDefinition/subscription-secret)', 'Subscription.extension');
    }
    await w.q.query(
      `INSERT INTO subscriptions (id, patient, types, filter, topic, status, endpoint, headers, payload, ends, secret, owner, owner_kind, creator_hpr)
       VALUES ($1::text, $2::text, $3::text[], $4::text, $5::text, $6::text, $7::text, $8::text[], $9::text, $10::timestamptz,
               $11::text, $12::text, $13::text, $14::text)`,
      [...values, known.secret, ownerOf(w.next) ?? null, principal?.kind ?? 'system', principal?.kind === 'personnel' ? principal.hpr : null],
    );
  }

  /** The Patient id the subscription is about; it must exist. */
  private async resolvePatient(q: Queryable, spec: SubscriptionSpec): Promise<string> {
    if ('nin' in spec.patient) {
      const found = await lookupPatient(q, spec.patient.nin);
      const id = found.patientIds[0];
      if (!id) throw errors.badRequest('No patient with this national id is registered in Samplan, so there is no plan to subscribe to', 'Subscription.criteria');
      return id;
    }
    const rows = await q.query('SELECT 1 FROM resources WHERE type = $1 AND id = $2 AND NOT deleted', ['Patient', spec.patient.id]);
    if (!rows.length) throw errors.badRequest(`Patient/${spec.patient.id} does not exist, so there is no plan to subscribe to`, 'Subscription.criteria');
    return spec.patient.id;
  }
}

/** The hook to add to the write pipeline: `writer.use(subscriptionHook())`. */
export function subscriptionHook(): WriteHook {
  return new SubscriptionHook();
}
