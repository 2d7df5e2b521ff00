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
import { forReading, type Queryable } from '../store/db.js';

export interface PlanStatus {
  activeCarePlan: boolean;
  lastChangedDateTime: string | null;
  privacySetting: { consent: boolean; hasReservationKjernejournal: boolean; isRestricted: boolean; isBlocked: boolean };
}

/** What changes "the plan": the plan and the resources it is made of. */
const PLAN_CONTENT = ['CarePlan', 'Condition', 'Goal', 'ServiceRequest', 'CareTeam'];

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
    // NOT deleted lets the compartment index (partial: live rows only) find the patient's rows; a deletion leaves no compartments anyway.
    const rows = await q.query<{ active: boolean; changed: Date | null }>(
      `SELECT EXISTS (SELECT 1 FROM resources p WHERE p.type = 'CarePlan' AND NOT p.deleted AND p.compartments && $1::text[]
                        AND EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = p.rid AND t.sp = $2 AND t.code = 'active')) AS active,
              (SELECT max(r.last_updated) FROM resources r WHERE r.compartments && $1::text[] AND NOT r.deleted AND r.type = ANY($3::text[])) AS changed`,
      [privacy.patientIds.map((id) => `Patient/${id}`), status, PLAN_CONTENT],
    );
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
      { name: 'lastChangedDateTime', use: 'out', min: 0, max: '1', type: 'dateTime', documentation: 'When the plan or a resource it is made of last changed' },
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
