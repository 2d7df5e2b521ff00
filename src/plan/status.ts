/**
 * The status check: does this patient have an active plan, and when did it last change? Cheap,
 * content-free, not audited — for the "has plan / changed" badge in an EHR, which may ask with a
 * machine token. Answered as a FHIR operation (`POST /fhir/Patient/$plan-status` with a
 * Parameters body) and in NHN's shape (`POST /status` with `{"nin": …}`), from one function.
 */
import type { Parameters } from '@medplum/fhirtypes';
import { ErrorCode, errors } from '../fhir/outcomes.js';
import type { Operation } from '../fhir/operations.js';
import type { FhirResponse } from '../fhir/types.js';
import type { Principal } from '../security/principal.js';
import type { PrivacyLookup } from '../security/privacy.js';
import { isValidNin } from '../no/identifiers.js';
import { searchRegistry } from '../search/registry.js';
import { forReading, type Queryable, type Transaction } from '../store/db.js';
import { inCompartments } from '../store/compartments.js';
import type { WriteHook } from '../fhir/writer.js';

export interface PlanStatus {
  activeCarePlan: boolean;
  lastChangedDateTime: string | null;
  privacySetting: { consent: boolean; hasReservationKjernejournal: boolean; isRestricted: boolean; isBlocked: boolean };
}

/** What changes "the plan": the plan and the resources it is made of (also in migration 011). */
const PLAN_CONTENT = ['CarePlan', 'Condition', 'Goal', 'ServiceRequest', 'CareTeam'];

const RECORD_CHANGES = `INSERT INTO plan_changes (patient_id, changed) SELECT * FROM unnest($1::text[], $2::timestamptz[])
  ON CONFLICT (patient_id) DO UPDATE SET changed = GREATEST(plan_changes.changed, excluded.changed)`;

/** Notes a write of `type` at `at` for each patient in `compartments`, if it is plan content. */
function noteChange(latest: Map<string, Date>, type: string, compartments: readonly string[], at: Date): void {
  if (!PLAN_CONTENT.includes(type)) return;
  for (const c of compartments) {
    if (!c.startsWith('Patient/')) continue;
    const patient = c.slice('Patient/'.length);
    const known = latest.get(patient);
    if (!known || at > known) latest.set(patient, at);
  }
}

/** RECORD_CHANGES's parameters, in patient id order (two transactions about the same patients lock their rows in the same order). */
function changeParams(latest: ReadonlyMap<string, Date>): [string[], string[]] {
  const ids = [...latest.keys()].sort();
  return [ids, ids.map((id) => (latest.get(id) as Date).toISOString())];
}

/** Records the plan changes of resources stored outside the write pipeline (the bulk loader). */
export async function recordPlanChanges(q: Queryable, written: ReadonlyArray<{ type: string; compartments: readonly string[]; lastUpdated: string }>): Promise<void> {
  const latest = new Map<string, Date>();
  for (const w of written) noteChange(latest, w.type, w.compartments, new Date(w.lastUpdated));
  if (latest.size) await q.query(RECORD_CHANGES, changeParams(latest));
}

/** A transaction's plan changes: the latest time per patient, sent with COMMIT. */
const pendingChanges = new WeakMap<Transaction, Map<string, Date>>();

/**
 * Keeps the time of each patient's last plan change (created, changed or deleted plan content) in
 * plan_changes, for the status check: one row per patient, stored with COMMIT.
 */
export const planChanges: WriteHook = {
  async stored(w) {
    const tx = w.q as Partial<Transaction>;
    if (!tx.defer) {
      await recordPlanChanges(w.q, [{ type: w.type, compartments: w.compartments, lastUpdated: w.version.lastUpdated.toISOString() }]);
      return;
    }
    let latest = pendingChanges.get(tx as Transaction);
    if (!latest) {
      if (!PLAN_CONTENT.includes(w.type)) return;
      const changes = (latest = new Map<string, Date>());
      pendingChanges.set(tx as Transaction, changes);
      // The parameters are read when the statement is sent, after every write of the transaction.
      tx.defer({
        text: RECORD_CHANGES,
        get params() {
          return changeParams(changes);
        },
      });
    }
    noteChange(latest, w.type, w.compartments, w.version.lastUpdated);
  },
};

/**
 * SQL: the resources row `p` is an active CarePlan in the compartments `refs` (an SQL text[]),
 * `statusSp` being CarePlan.status's index key. The status is checked on the patient's plans
 * (OFFSET 0: not a join the planner could start from every active plan in the country). For the
 * status check and the one-active-plan rule (rules.ts).
 */
export function activePlanOf(p: string, refs: string, statusSp: string): string {
  return `${p}.type = 'CarePlan' AND NOT ${p}.deleted AND ${inCompartments(String.raw, `${p}.compartments`, refs)}
    AND EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = ${p}.rid AND t.sp = ${statusSp} AND t.code = 'active' OFFSET 0)`;
}

/**
 * Whether the patients ($1: their compartments, $3: their ids) have an active plan ($2:
 * CarePlan.status's index key), and when their plan last changed. "Last changed" is kept per
 * patient by the write pipeline (recordPlanChanges above): one index lookup, however much the
 * patient has; none for a patient who never had plan content.
 */
const PLAN_STATUS = `SELECT EXISTS (SELECT 1 FROM resources p WHERE ${activePlanOf('p', '$1::text[]', '$2')}) AS active,
          (SELECT max(c.changed) FROM plan_changes c WHERE c.patient_id = ANY($3::text[])) AS changed`;

/** `q` answers the plan query; `lookup` the patient's privacy settings (the cache, which a write of them empties at commit). */
export async function planStatus(q: Queryable, lookup: PrivacyLookup, principal: Principal | undefined, nin: string): Promise<PlanStatus> {
  if (!isValidNin(nin)) throw errors.badRequest('nin must be a valid fødselsnummer or D-nummer');
  const privacy = await lookup(nin);
  const isBlocked = principal?.kind === 'personnel' && privacy.blockedHpr.has(principal.hpr);
  const sharing = privacy.consent && !privacy.optedOut;
  let active = false;
  let lastChanged: Date | null = null;
  if (sharing && privacy.patientIds.length) {
    const status = searchRegistry().get('CarePlan', 'status')?.sp;
    const rows = await q.query<{ active: boolean; changed: Date | null }>(PLAN_STATUS, [privacy.patientIds.map((id) => `Patient/${id}`), status, privacy.patientIds]);
    active = rows[0]?.active ?? false;
    lastChanged = rows[0]?.changed ?? null;
  }
  return {
    activeCarePlan: active,
    lastChangedDateTime: lastChanged ? new Date(lastChanged).toISOString() : null,
    privacySetting: { consent: privacy.consent, hasReservationKjernejournal: privacy.optedOut, isRestricted: privacy.restricted, isBlocked },
  };
}

/** The national id the request asks about: from the body, and matching nhn-patient-nin if both are given. */
export function statusNin(principal: Principal | undefined, nin: unknown): string {
  if (typeof nin !== 'string' || !nin) throw errors.badRequest('Give the patient\'s national id as nin');
  if (principal?.kind === 'personnel' && principal.patientNin && principal.patientNin !== nin) {
    throw errors.forbidden(ErrorCode.PatientMismatch, 'nin differs from nhn-patient-nin');
  }
  return nin;
}

export const planStatusOperation: Operation = {
  name: 'plan-status',
  definition: 'https://samplan.no/fhir/OperationDefinition/Patient-plan-status',
  type: 'Patient',
  interaction: 'status',
  system: false,
  typeLevel: true,
  instance: false,
  get: false,
  spec: {
    title: 'Har pasienten en plan, og når ble den endret?',
    description:
      "The status check for an EHR's badge: whether the patient has an active plan, when the plan last changed, and the patient's privacy settings — without content, and without an audit record. Allowed with the status scope, for machine tokens too. The same answer as NHN's POST /status {\"nin\": …}.",
    affectsState: false,
    comment: 'POST with a Parameters body (the national id never goes in a URL). With nhn-patient-nin, nin must name the same patient.',
    parameter: [
      { name: 'nin', use: 'in', min: 1, max: '1', type: 'string', documentation: "The patient's fødselsnummer or D-nummer" },
      { name: 'activeCarePlan', use: 'out', min: 1, max: '1', type: 'boolean', documentation: 'Whether the patient has an active plan (false without consent, or when opted out)' },
      { name: 'lastChangedDateTime', use: 'out', min: 0, max: '1', type: 'dateTime', documentation: 'When the plan or a resource it is made of was last created, changed or deleted; absent if the patient never had a plan' },
      {
        name: 'privacySetting',
        use: 'out',
        min: 1,
        max: '1',
        documentation: "The patient's privacy settings",
        part: [
          { name: 'consent', use: 'out', min: 1, max: '1', type: 'boolean', documentation: 'The patient has consented to a shared plan' },
          { name: 'hasReservationKjernejournal', use: 'out', min: 1, max: '1', type: 'boolean', documentation: 'The patient has opted out (reservasjon)' },
          { name: 'isRestricted', use: 'out', min: 1, max: '1', type: 'boolean', documentation: 'The patient has restricted access: an elevated access basis is needed' },
          { name: 'isBlocked', use: 'out', min: 1, max: '1', type: 'boolean', documentation: 'The patient has blocked the asking clinician' },
        ],
      },
    ],
  },
  async handler(s, call): Promise<FhirResponse> {
    const body = call.req.body as Parameters | undefined;
    if (body?.resourceType !== 'Parameters') throw errors.badRequest('The body must be a Parameters resource with the parameter nin');
    const nin = statusNin(call.ctx.principal, body.parameter?.find((p) => p.name === 'nin')?.valueString);
    const status = await planStatus(forReading(s.db), s.privacy, call.ctx.principal, nin); // a caught-up read replica may answer
    const out: Parameters = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'activeCarePlan', valueBoolean: status.activeCarePlan },
        ...(status.lastChangedDateTime ? [{ name: 'lastChangedDateTime', valueDateTime: status.lastChangedDateTime }] : []),
        {
          name: 'privacySetting',
          part: [
            { name: 'consent', valueBoolean: status.privacySetting.consent },
            { name: 'hasReservationKjernejournal', valueBoolean: status.privacySetting.hasReservationKjernejournal },
            { name: 'isRestricted', valueBoolean: status.privacySetting.isRestricted },
            { name: 'isBlocked', valueBoolean: status.privacySetting.isBlocked },
          ],
        },
      ],
    };
    return { status: 200, body: JSON.stringify(out) };
  },
};
