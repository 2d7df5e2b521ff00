/**
 * Who may subscribe to what, and who may see a Subscription. Called by the access policy
 * (security/policy.ts, PrincipalAccess) for the type Subscription; see ./README.md for the wiring.
 *
 * - Health personnel subscribe to what they may see: the patient named in `nhn-patient-nin`, and
 *   only when they may read that patient's plan (role, consent, opt-out, restriction, block —
 *   exactly as for reading the plan). They need the write scope to create or change one.
 * - A token without a person (client credentials) with the status scope may subscribe to "a
 *   patient's plan changed" for any patient, with empty notifications only: like the status
 *   check, it learns that something changed, never what.
 * - Citizens cannot subscribe.
 * - A Subscription belongs to the client (client_id) that created it: only that client reads,
 *   searches, changes or deletes it (personnel only for the patient of the request); to everyone
 *   else it does not exist (404).
 */
import type { Resource } from '@medplum/fhirtypes';
import { type RawBuilder, sql } from 'kysely';
import type { Access, Interaction, WriteCheck } from '../../fhir/access.js';
import { ErrorCode, errors } from '../../fhir/outcomes.js';
import type { ApiScopes } from '../../security/claims.js';
import { column } from '../../store/sql.js';
import type { Principal } from '../../security/principal.js';
import type { PatientPrivacy } from '../../security/privacy.js';
import { ownerOf, PLAN_CHANGED_TOPIC, readSubscription, type SubscriptionSpec } from './spec.js';

export interface SubscriptionRules {
  /** Refuses an interaction on the type Subscription (throws a FhirError). */
  checkInteraction(interaction: Interaction): void;
  /** Refuses a write of a Subscription (throws a FhirError). */
  checkWrite(w: WriteCheck): void;
  /** SQL condition on the `resources` row `alias`: the Subscriptions this caller owns. */
  readFilter(alias: string): RawBuilder<unknown>;
}

/**
 * The rules for Subscription, for one request.
 * @param patientAccess the caller's access to patient data (PrincipalAccess itself): a personnel
 *   request about Subscriptions must pass what a request about the patient (`Patient`) passes,
 *   and subscribing needs what reading the patient's plan (`CarePlan`) needs.
 */
export function subscriptionAccess(
  principal: Principal,
  privacy: PatientPrivacy | undefined,
  scopes: ApiScopes,
  patientAccess: Pick<Access, 'checkInteraction'>,
): SubscriptionRules {
  const patientIds = privacy?.patientIds ?? [];

  const notFound = (resource: Resource | undefined): never => {
    throw errors.notFound('Subscription', String(resource?.id ?? ''));
  };

  const checkOwned = (resource: Resource | undefined): void => {
    if (resource && ownerOf(resource) !== principal.clientId) notFound(resource);
  };

  const patientMatches = (spec: SubscriptionSpec): boolean =>
    'id' in spec.patient
      ? patientIds.includes(spec.patient.id)
      : principal.kind === 'personnel' && principal.patientNin === spec.patient.nin;

  return {
    checkInteraction(interaction) {
      if (interaction === 'capabilities') return;
      if (principal.kind === 'citizen') {
        throw errors.forbidden(ErrorCode.NoAccess, 'Citizens cannot subscribe to notifications: Subscriptions are for the systems of health personnel');
      }
      if (principal.kind === 'machine') {
        if (!principal.scopes.has(scopes.status)) {
          throw errors.forbidden(ErrorCode.InsufficientScope, `A token without a person needs the ${scopes.status} scope to use Subscriptions`);
        }
        return;
      }
      // Personnel: creating or changing a subscription needs what reading the patient's plan
      // needs (and the write scope); reading or deleting one's own, what any request about the
      // patient needs.
      const subscribes = interaction === 'create' || interaction === 'update' || interaction === 'patch';
      patientAccess.checkInteraction(interaction, subscribes ? 'CarePlan' : 'Patient');
    },

    checkWrite(w) {
      if (principal.kind === 'citizen') throw errors.forbidden(ErrorCode.NoAccess, 'Citizens cannot subscribe to notifications');
      checkOwned(w.current);
      if (w.next && ownerOf(w.next) !== principal.clientId) {
        throw errors.forbidden(ErrorCode.NoAccess, 'The Subscription\'s owner was not recorded; it cannot be stored');
      }
      for (const resource of [w.current, w.next]) {
        if (!resource) continue;
        const spec = readSubscription(resource);
        if (principal.kind === 'machine') {
          if (resource === w.next && (spec.topic !== PLAN_CHANGED_TOPIC || spec.types.length || spec.filter || spec.payload !== 'empty')) {
            throw errors.forbidden(
              ErrorCode.NoAccess,
              `A token without a person may only subscribe to the topic ${PLAN_CHANGED_TOPIC} with the filter patient=Patient/<id> (or patient:identifier=…) and payload content empty: like the status check, it may learn that a plan changed, not what changed`,
            );
          }
        } else if (!patientMatches(spec)) {
          throw errors.forbidden(ErrorCode.PatientMismatch, 'A Subscription may only name the patient this request is about (nhn-patient-nin)');
        }
      }
    },

    readFilter(alias) {
      const r = (name: string) => column(alias, name);
      if (principal.kind === 'citizen' || (principal.kind === 'personnel' && !patientIds.length)) return sql`FALSE`;
      const patient = principal.kind === 'personnel' ? sql` AND s.patient = ANY(${patientIds}::text[])` : sql``;
      return sql`(${r('type')} = 'Subscription' AND EXISTS (SELECT 1 FROM subscriptions AS s WHERE s.id = ${r('id')} AND s.owner = ${principal.clientId}${patient}))`;
    },
  };
}
