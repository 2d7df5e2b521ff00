/**
 * The token claims Samplan reads, by name. Health personnel tokens follow HelseID
 * (`helseid://claims/...`); citizen tokens follow Helsenorge/ID-porten (`pid`, `acr`) with the
 * representation used; machine tokens have neither person claim. The embedded identity provider
 * issues exactly these shapes, so pointing Samplan at the real services is configuration only.
 */

export const HELSEID = {
  pid: 'helseid://claims/identity/pid',
  securityLevel: 'helseid://claims/identity/security_level',
  hprNumber: 'helseid://claims/hpr/hpr_number',
  orgnrParent: 'helseid://claims/client/claims/orgnr_parent',
  orgnrChild: 'helseid://claims/client/claims/orgnr_child',
  clientName: 'helseid://claims/client/client_name',
} as const;

/** Citizen claims: ID-porten's `pid` and `acr`, and Helsenorge's representation. */
export const HELSENORGE = {
  pid: 'pid',
  acr: 'acr',
  /** `{ basis, pid, name, scope }`: whom the citizen acts for, and on what basis; absent = self. */
  representation: 'helsenorge://claims/representation',
} as const;

/** The only `acr` accepted for citizens: high assurance. */
export const CITIZEN_ACR = 'idporten-loa-high';

/** Representation bases (NHN's citizen access bases). */
export type RepresentationBasis = 'SEGSELV' | 'FORELDREREPRESENTASJON' | 'FULLMAKT' | 'VERGEMAL';

export interface RepresentationClaim {
  basis: RepresentationBasis;
  /** The person acted for. */
  pid: string;
  name?: string;
  /** FULLMAKT service areas: innsyn (see) and/or endre (register or change). */
  scope?: Array<'innsyn' | 'endre'>;
}

/** API audience and scopes, in HelseID's `nhn:<api>` / `nhn:<api>/<scope>` pattern. */
export interface ApiScopes {
  audience: string;
  read: string;
  write: string;
  status: string;
  /** Bulk export of everything ($export at system level), for operators. */
  export: string;
}

export function apiScopes(audience: string): ApiScopes {
  return { audience, read: `${audience}/read`, write: `${audience}/write`, status: `${audience}/status`, export: `${audience}/export` };
}
