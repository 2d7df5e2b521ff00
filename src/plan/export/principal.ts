/**
 * Who an export job belongs to, and the access rule it runs with.
 *
 * A job runs in the background, after the request that started it is gone (and possibly on
 * another instance, after a restart). It keeps what is needed to rebuild the requester's rule:
 * the principal as the token and headers described it, and — for a patient-level export — the
 * Patient ids the request was scoped to. At run time the rule is rebuilt with the patient's privacy
 * settings as they are *then* (a consent withdrawn or a block added meanwhile takes effect), and the
 * patients are those captured at kick-off that the requester can still reach: never more.
 */
import { hash } from 'node:crypto';
import { type Access, SYSTEM_ACCESS } from '../../fhir/access.js';
import { errors } from '../../fhir/outcomes.js';
import { PrincipalAccess, type PolicyOptions } from '../../security/policy.js';
import { patientNinOf, type Principal } from '../../security/principal.js';
import { lookupPatient } from '../../security/privacy.js';
import type { Queryable } from '../../store/db.js';

export type Actor = 'system' | Principal['kind'];

/**
 * The owner of a job: the same person through the same client (and, for a citizen, acting for the
 * same person). Stored as a hash so the national ids are not a lookup key.
 */
export function ownerOf(principal: Principal | undefined): string {
  let key: string;
  if (!principal) key = 'system';
  else if (principal.kind === 'personnel') key = ['personnel', principal.pid, principal.clientId].join('\u0000');
  else if (principal.kind === 'citizen') {
    key = ['citizen', principal.pid, principal.representation.basis, principal.representation.pid, principal.clientId].join('\u0000');
  } else key = ['machine', principal.clientId].join('\u0000');
  return hash('sha256', key, 'base64url');
}

export function actorOf(principal: Principal | undefined): Actor {
  return principal?.kind ?? 'system';
}

export function serialisePrincipal(principal: Principal): string {
  return JSON.stringify({ ...principal, scopes: [...principal.scopes] });
}

export function restorePrincipal(text: string): Principal {
  const raw = JSON.parse(text) as Principal & { scopes: string[] };
  return { ...raw, scopes: new Set(raw.scopes) } as Principal;
}

export interface JobScope {
  actor: Actor;
  principal: string | null;
  level: 'system' | 'patient';
  /** Patient-level: the Patient ids captured at kick-off; null: every patient (system context only). */
  patients: string[] | null;
}

export interface RunAccess {
  access: Access;
  /** Patient-level: the patients to export (possibly none left); null: no compartment restriction. */
  patients: string[] | null;
  /** Whether `access` is the requester's own rule (checked per type) rather than unrestricted. */
  personal: boolean;
}

/**
 * The rule a job reads with. Patient-level jobs of a person: their own rule, rebuilt. System-level
 * jobs (an operator with the export scope, checked at kick-off) and jobs of the server itself: no
 * restriction beyond the export's own (no audit trail, current versions only).
 */
export async function runAccess(q: Queryable, job: JobScope, policy: PolicyOptions): Promise<RunAccess> {
  if (job.actor === 'system' || job.level === 'system') return { access: SYSTEM_ACCESS, patients: job.patients, personal: false };
  if (!job.principal) throw errors.internal();
  const principal = restorePrincipal(job.principal);
  const nin = patientNinOf(principal);
  const current = nin ? await lookupPatient(q, nin) : undefined;
  if (!current) throw errors.internal();
  const captured = job.patients ?? [];
  const patients = current.patientIds.filter((id) => captured.includes(id));
  return {
    access: new PrincipalAccess(principal, { ...current, patientIds: patients }, policy),
    patients,
    personal: true,
  };
}
