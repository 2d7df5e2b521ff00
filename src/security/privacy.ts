/**
 * A patient's privacy settings, kept as ordinary FHIR Consent resources in the patient's
 * compartment (so they are versioned, audited and readable like everything else), and read here
 * into the few facts the access rules need:
 * - plan consent (category `plan`, provision permit): the patient agrees to having a plan;
 * - Kjernejournal opt-out (`reservasjon`): no plan is stored or shown;
 * - restriction (`begrenset-tilgang`): health personnel need an elevated access basis;
 * - block (`blokkering`, provision.actor with an HPR number): that clinician is refused, always.
 * Only `active` Consents count; withdrawing is setting the Consent inactive (or deleting it).
 */
import type { Consent, Resource } from '@medplum/fhirtypes';
import { OID, NIN_SYSTEMS } from '../no/identifiers.js';
import { searchRegistry } from '../search/registry.js';
import type { Queryable } from '../store/db.js';

export const CONSENT_CATEGORY_SYSTEM = 'https://samplan.no/fhir/CodeSystem/consent-category';
export const ConsentCategory = {
  plan: 'plan',
  optOut: 'reservasjon',
  restriction: 'begrenset-tilgang',
  block: 'blokkering',
} as const;
export type ConsentCategory = (typeof ConsentCategory)[keyof typeof ConsentCategory];

/** Settings only the patient (or whoever may decide for them) can make. */
export const PATIENT_ONLY_CATEGORIES: ReadonlySet<string> = new Set([ConsentCategory.optOut, ConsentCategory.restriction, ConsentCategory.block]);

export interface PatientPrivacy {
  /** Ids of the Patient resources carrying this national id (normally one). */
  patientIds: string[];
  consent: boolean;
  optedOut: boolean;
  restricted: boolean;
  blockedHpr: ReadonlySet<string>;
}

/** Finds a patient's privacy settings by national id (the cache in privacy-cache.ts, in the server). */
export type PrivacyLookup = (nin: string) => Promise<PatientPrivacy>;

/**
 * A privacy setting as the Consent that `privacyFrom` reads: the category, the patient, and the
 * provision (permit for plan consent, deny for the others; a block names the clinician in
 * `provision.actor` by HPR number). One shape for every writer (seeding, tests, portals).
 */
export function privacyConsent(patientId: string, category: ConsentCategory, extra: Partial<Consent> = {}): Consent {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: CONSENT_CATEGORY_SYSTEM, code: category }] }],
    patient: { reference: `Patient/${patientId}` },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    ...extra,
  };
}

/** The Samplan categories of a Consent. */
export function consentCategories(consent: Resource): string[] {
  return ((consent as Consent).category ?? []).flatMap((c) => (c.coding ?? []).filter((x) => x.system === CONSENT_CATEGORY_SYSTEM).map((x) => x.code as string));
}

/** Folds a patient's Consents into the settings the access rules use. */
export function privacyFrom(patientIds: string[], consents: Consent[]): PatientPrivacy {
  const privacy = { patientIds, consent: false, optedOut: false, restricted: false, blockedHpr: new Set<string>() };
  for (const c of consents) {
    if (c.status !== 'active') continue;
    const permit = (c.provision?.type ?? 'permit') === 'permit';
    for (const category of consentCategories(c)) {
      if (category === ConsentCategory.plan && permit) privacy.consent = true;
      if (category === ConsentCategory.optOut) privacy.optedOut = true;
      if (category === ConsentCategory.restriction) privacy.restricted = true;
      if (category === ConsentCategory.block) {
        for (const actor of c.provision?.actor ?? []) {
          const id = actor.reference?.identifier;
          if (id?.system === OID.hpr && id.value) privacy.blockedHpr.add(id.value);
        }
      }
    }
  }
  return privacy;
}

/**
 * Finds the patient with national id `nin` and their privacy settings, in one query: the Patient
 * resources with that identifier (index-backed) and the Consents in their compartments.
 */
export async function lookupPatient(q: Queryable, nin: string): Promise<PatientPrivacy> {
  const identifierSp = searchRegistry().get('Patient', 'identifier')?.sp;
  const rows = await q.query<{ id: string; consent: string | null }>(
    `SELECT p.id, c.content AS consent
       FROM resources p
       LEFT JOIN resources c ON c.type = 'Consent' AND NOT c.deleted AND c.compartments @> ARRAY['Patient/' || p.id]::text[]
      WHERE p.type = 'Patient' AND NOT p.deleted
        AND p.rid IN (SELECT rid FROM idx_token WHERE sp = $1 AND code = $2 AND system = ANY($3::text[]))`,
    [identifierSp, nin, NIN_SYSTEMS],
  );
  const ids = [...new Set(rows.map((r) => r.id))];
  const consents = rows.flatMap((r) => (r.consent ? [JSON.parse(r.consent) as Consent] : []));
  return privacyFrom(ids, consents);
}
