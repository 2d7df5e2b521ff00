/** Who is calling, as established from the access token and the NHN request headers. */
import type { RepresentationBasis } from './claims.js';

export const ACCESS_BASES = ['UNNTAK', 'SAMTYKKE', 'AKUTT', 'FORHOYET_SAMTYKKE', 'FORHOYET_AKUTT'] as const;
export type AccessBasis = (typeof ACCESS_BASES)[number];

export const isEmergency = (basis: AccessBasis) => basis === 'AKUTT' || basis === 'FORHOYET_AKUTT';
export const isElevated = (basis: AccessBasis) => basis === 'FORHOYET_SAMTYKKE' || basis === 'FORHOYET_AKUTT';

/** A health professional (HelseID user token), acting from an EHR or the clinician portal. */
export interface Personnel {
  kind: 'personnel';
  pid: string;
  hpr: string;
  name?: string;
  /** Volven 9060 personnel category from `nhn-user-role`. */
  role: { system: string; code: string };
  /** Legal entity and point of care, from the token only (never from the request). */
  orgnrParent: string;
  orgnrChild: string;
  clientId: string;
  clientName?: string;
  sourceSystem: string;
  accessBasis: AccessBasis;
  /** Why, in the user's words: required for emergency access. */
  reason?: string;
  /** The patient the request is about (`nhn-patient-nin`); absent: no patient data may be touched. */
  patientNin?: string;
  scopes: ReadonlySet<string>;
}

/** A citizen (Helsenorge / ID-porten), acting for themself or someone they represent. */
export interface Citizen {
  kind: 'citizen';
  pid: string;
  name?: string;
  clientId: string;
  representation: {
    basis: RepresentationBasis;
    /** The person acted for (the citizen's own pid for SEGSELV). */
    pid: string;
    name?: string;
    scope?: ReadonlyArray<'innsyn' | 'endre'>;
  };
  scopes: ReadonlySet<string>;
}

/** A system without a person (client credentials): only the status check. */
export interface Machine {
  kind: 'machine';
  clientId: string;
  clientName?: string;
  orgnrParent?: string;
  orgnrChild?: string;
  sourceSystem?: string;
  scopes: ReadonlySet<string>;
}

export type Principal = Personnel | Citizen | Machine;

/** The national id of the patient a principal's requests are about, if any. */
export function patientNinOf(principal: Principal): string | undefined {
  if (principal.kind === 'personnel') return principal.patientNin;
  if (principal.kind === 'citizen') return principal.representation.pid;
  return undefined;
}
