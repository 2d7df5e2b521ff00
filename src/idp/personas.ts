/**
 * Who can log in at the embedded identity provider and what their access tokens say. The
 * personas are the synthetic population (`src/demo/population.ts`); the claim shapes are those of
 * HelseID (health personnel, systems) and Helsenorge/ID-porten (citizens), by the names in
 * `src/security/claims.ts`. Both the token endpoint and `issueAccessToken` build their claims
 * here, so the two can never disagree.
 */
import { createHash } from 'node:crypto';
import {
  citizenByKey,
  citizens,
  clinicianByKey,
  clinicians,
  type DemoCitizen,
  type DemoClinician,
  type DemoRepresentation,
  organisation,
  representations,
} from '../demo/population.js';
import { type ApiScopes, CITIZEN_ACR, HELSEID, HELSENORGE, type RepresentationClaim } from '../security/claims.js';

export type PersonaKind = 'clinician' | 'citizen';

export const CLIENT_IDS = {
  clinicianPortal: 'samplan-clinician-portal',
  citizenPortal: 'samplan-citizen-portal',
  ehr: 'ehr-test-client',
} as const;

/** What the provider knows about each statically registered client beyond its OAuth metadata. */
export interface ClientProfile {
  clientId: string;
  /** `helseid://claims/client/client_name`. */
  name: string;
  /** Who may log in through this client. */
  kinds: readonly PersonaKind[];
  /** The organisation (demo key) a confidential client is registered for: its machine tokens carry it. */
  organisation?: string;
}

export const CLIENT_PROFILES: Readonly<Record<string, ClientProfile>> = {
  [CLIENT_IDS.clinicianPortal]: { clientId: CLIENT_IDS.clinicianPortal, name: 'Samplan klinikerportal', kinds: ['clinician'] },
  [CLIENT_IDS.citizenPortal]: { clientId: CLIENT_IDS.citizenPortal, name: 'Samplan innbyggerportal', kinds: ['citizen'] },
  // A test tool standing in for any EHR (and, for `npm run token`, any client): both kinds.
  [CLIENT_IDS.ehr]: { clientId: CLIENT_IDS.ehr, name: 'EPJ-testklient', kinds: ['clinician', 'citizen'], organisation: 'lillevik-legekontor' },
};

export function clientProfile(clientId: string | undefined): ClientProfile | undefined {
  return clientId !== undefined && Object.hasOwn(CLIENT_PROFILES, clientId) ? CLIENT_PROFILES[clientId] : undefined;
}

/** A logged-in persona: a clinician, or a citizen acting for themself or for someone they represent. */
export type Persona =
  | { kind: 'clinician'; clinician: DemoClinician }
  | { kind: 'citizen'; citizen: DemoCitizen; actingFor?: { representation: DemoRepresentation; person: DemoCitizen } };

/** Whom `citizen` may act for (from the demo population). */
export function representationsOf(citizenKey: string): Array<{ representation: DemoRepresentation; person: DemoCitizen }> {
  return representations
    .filter((r) => r.representative === citizenKey)
    .map((representation) => ({ representation, person: citizenByKey(representation.represented) }));
}

/** A persona by kind and key, with the citizen's choice of whom they act for (`self` or undefined: themself). */
export function findPersona(kind: string, key: string, actingFor?: string): Persona | undefined {
  if (kind === 'clinician') {
    const clinician = clinicians.find((c) => c.key === key);
    return clinician && actingFor === undefined ? { kind, clinician } : undefined;
  }
  if (kind === 'citizen') {
    const citizen = citizens.find((c) => c.key === key);
    if (!citizen) return undefined;
    if (actingFor === undefined || actingFor === 'self' || actingFor === key) return { kind, citizen };
    const chosen = representationsOf(key).find((r) => r.person.key === actingFor);
    return chosen ? { kind, citizen, actingFor: chosen } : undefined;
  }
  return undefined;
}

/**
 * oidc-provider's account id for a persona: `clinician:<key>`, `citizen:<key>` or
 * `citizen:<key>:<represented key>`. It never appears in tokens (`sub` is a pseudonym).
 */
export function accountIdOf(persona: Persona): string {
  if (persona.kind === 'clinician') return `clinician:${persona.clinician.key}`;
  return persona.actingFor ? `citizen:${persona.citizen.key}:${persona.actingFor.person.key}` : `citizen:${persona.citizen.key}`;
}

export function personaOf(accountId: string): Persona | undefined {
  const [kind = '', key = '', actingFor, ...rest] = accountId.split(':');
  return rest.length ? undefined : findPersona(kind, key, actingFor);
}

const fullName = (p: { name: { given: string; family: string } }) => `${p.name.given} ${p.name.family}`;

/**
 * The token subject of a person: a stable pseudonym of their national id (HelseID's `sub` is a
 * pid pseudonym too). The same person has the same `sub` whichever client and whomever they act for.
 */
export function subjectOf(pid: string): string {
  return createHash('sha256').update(`samplan-idp-subject:${pid}`).digest('base64url');
}

/** The claims of a persona that the ID token and userinfo may carry, by claim name. */
export function identityClaims(persona: Persona): Record<string, unknown> {
  if (persona.kind === 'clinician') {
    const c = persona.clinician;
    return {
      sub: subjectOf(c.pid),
      name: fullName(c),
      given_name: c.name.given,
      family_name: c.name.family,
      [HELSEID.pid]: c.pid,
      [HELSEID.securityLevel]: '4',
      [HELSEID.hprNumber]: c.hpr,
    };
  }
  const c = persona.citizen;
  return { sub: subjectOf(c.pid), name: fullName(c), given_name: c.name.given, family_name: c.name.family, pid: c.pid };
}

/** The login's `acr` and `amr` (ID-porten's for citizens; HelseID's tokens for personnel carry neither here). */
export function authenticationOf(persona: Persona): { acr?: string; amr?: string[] } {
  return persona.kind === 'citizen' ? { acr: CITIZEN_ACR, amr: ['BankID'] } : {};
}

export interface ClaimOptions {
  scope?: string;
  clientId?: string;
  /** JWK SHA-256 thumbprint of the DPoP key the token is bound to (`cnf.jkt`). */
  jkt?: string;
}

/** Builds the persona-specific part of access tokens; `iss`, `aud`, `iat`, `nbf`, `exp`, `jti` are added when signing. */
export class TokenClaims {
  constructor(private readonly scopes: ApiScopes) {}

  /** Which API scopes each kind of subject may be granted. Machine tokens: the status check only (R6). */
  allowedScopes(kind: PersonaKind | 'machine'): string[] {
    const { read, write, status } = this.scopes;
    if (kind === 'clinician') return [read, write, status, this.scopes.export];
    if (kind === 'citizen') return [read, write];
    return [status];
  }

  forPersona(persona: Persona, options: ClaimOptions = {}): Record<string, unknown> {
    if (persona.kind === 'clinician') return this.clinician(persona.clinician, options);
    return this.citizen(persona.citizen, persona.actingFor, options);
  }

  clinician(c: DemoClinician, options: ClaimOptions = {}): Record<string, unknown> {
    const clientId = options.clientId ?? CLIENT_IDS.clinicianPortal;
    const org = organisation(c.organisation);
    return {
      sub: subjectOf(c.pid),
      client_id: clientId,
      scope: options.scope ?? `${this.scopes.read} ${this.scopes.write}`,
      name: fullName(c),
      [HELSEID.pid]: c.pid,
      [HELSEID.securityLevel]: '4',
      [HELSEID.hprNumber]: c.hpr,
      [HELSEID.orgnrParent]: org.orgnrParent,
      [HELSEID.orgnrChild]: org.orgnrChild,
      [HELSEID.clientName]: clientProfile(clientId)?.name ?? clientId,
      ...cnf(options.jkt),
    };
  }

  citizen(c: DemoCitizen, actingFor: { representation: DemoRepresentation; person: DemoCitizen } | undefined, options: ClaimOptions = {}): Record<string, unknown> {
    const claims: Record<string, unknown> = {
      sub: subjectOf(c.pid),
      client_id: options.clientId ?? CLIENT_IDS.citizenPortal,
      scope: options.scope ?? `${this.scopes.read} ${this.scopes.write}`,
      [HELSENORGE.pid]: c.pid,
      [HELSENORGE.acr]: CITIZEN_ACR,
      amr: ['BankID'],
      name: fullName(c),
    };
    if (actingFor) {
      const { representation: r, person } = actingFor;
      const representation: RepresentationClaim = {
        basis: r.basis,
        pid: person.pid,
        name: fullName(person),
        ...(r.basis === 'FULLMAKT' && r.scope ? { scope: [...r.scope] } : {}),
      };
      claims[HELSENORGE.representation] = representation;
    }
    return { ...claims, ...cnf(options.jkt) };
  }

  machine(clientId: string, options: { scope?: string; jkt?: string } = {}): Record<string, unknown> {
    const profile = clientProfile(clientId);
    if (!profile?.organisation) throw new Error(`${clientId} is not a client registered for an organisation at the embedded identity provider`);
    const org = organisation(profile.organisation);
    return {
      sub: clientId,
      client_id: clientId,
      scope: options.scope ?? this.scopes.status,
      [HELSEID.orgnrParent]: org.orgnrParent,
      [HELSEID.orgnrChild]: org.orgnrChild,
      [HELSEID.clientName]: profile.name,
      ...cnf(options.jkt),
    };
  }
}

function cnf(jkt: string | undefined): Record<string, unknown> {
  return jkt ? { cnf: { jkt } } : {};
}

/** Like `clinicianByKey`, with a message that lists the keys. */
export function requireClinician(key: string): DemoClinician {
  if (!clinicians.some((c) => c.key === key)) {
    throw new Error(`Unknown clinician "${key}"; choose one of: ${clinicians.map((c) => c.key).join(', ')}`);
  }
  return clinicianByKey(key);
}

/** Like `citizenByKey`, with a message that lists the keys. */
export function requireCitizen(key: string): DemoCitizen {
  if (!citizens.some((c) => c.key === key)) {
    throw new Error(`Unknown citizen "${key}"; choose one of: ${citizens.map((c) => c.key).join(', ')}`);
  }
  return citizenByKey(key);
}

/** The representation `citizen` has for `actingFor` (undefined for themself), or a clear error. */
export function requireActingFor(citizenKey: string, actingFor: string | undefined) {
  if (actingFor === undefined || actingFor === 'self' || actingFor === citizenKey) return undefined;
  const options = representationsOf(citizenKey);
  const chosen = options.find((r) => r.person.key === actingFor);
  if (!chosen) {
    const list = options.map((r) => r.person.key);
    throw new Error(
      list.length
        ? `${citizenKey} cannot act for "${actingFor}"; ${citizenKey} may act for: ${list.join(', ')}`
        : `${citizenKey} cannot act for anyone else (no representation in the demo population)`,
    );
  }
  return chosen;
}
