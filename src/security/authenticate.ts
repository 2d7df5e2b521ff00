/**
 * Turns the credentials and headers of a request into a Principal and its compiled Access:
 * access token (Bearer or DPoP) → claims by kind (personnel, citizen, machine) → NHN headers →
 * the patient the request is about and their privacy settings. Everything that is wrong with the
 * credentials is a 401 with a WWW-Authenticate challenge; wrong headers are 400s.
 */
import { BoundedMap, numbering } from '../bounded-map.js';
import { ErrorCode, errors } from '../fhir/outcomes.js';
import { isValidHpr, isValidNin, isValidOrgNr } from '../no/identifiers.js';
import { type ApiScopes, CITIZEN_ACR, HELSEID, HELSENORGE, type RepresentationBasis, type RepresentationClaim } from './claims.js';
import type { DpopVerifier } from './dpop.js';
import * as headers from './headers.js';
import { PrincipalAccess } from './policy.js';
import { type Citizen, type Machine, type Personnel, type Principal, patientNinOf } from './principal.js';
import type { PatientPrivacy, PrivacyLookup } from './privacy.js';
import { challenge, type Claims, type TokenVerifier, type VerifiedToken } from './tokens.js';

export interface AuthRequest {
  method: string;
  /** The request URL as the client addressed it (public origin and path, no query): DPoP htu. */
  url: string;
  header: headers.HeaderGetter;
}

export interface Authenticated {
  principal: Principal;
  access: PrincipalAccess;
}

export interface AuthenticatorOptions {
  scopes: ApiScopes;
  allowBearer: boolean;
  allowedRoles: ReadonlySet<string>;
}

const REPRESENTATION_BASES: readonly RepresentationBasis[] = ['SEGSELV', 'FORELDREREPRESENTASJON', 'FULLMAKT', 'VERGEMAL'];

function scopesOf(claims: Claims): Set<string> {
  const raw = claims.scope ?? claims.scp;
  const list = typeof raw === 'string' ? raw.split(' ') : Array.isArray(raw) ? raw.filter((s): s is string => typeof s === 'string') : [];
  return new Set(list.filter(Boolean));
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The request headers a principal is made from (besides the token's claims). */
const PRINCIPAL_HEADERS = ['nhn-user-role', 'nhn-source-system', 'nhn-access-basis', 'nhn-access-reason', 'nhn-patient-nin'] as const;
/**
 * Principals kept: one per token and patient (and role, basis …) asked about lately. A hospital's
 * EHR may use one token for hundreds of patients; each entry, with its access rule's SQL, is a
 * few KB.
 */
const MAX_PRINCIPALS = 2048;

export class Authenticator {
  constructor(
    /** The patient's privacy settings by national id (src/security/privacy-cache.ts). */
    private readonly privacy: PrivacyLookup,
    private readonly verifier: TokenVerifier,
    private readonly dpop: DpopVerifier,
    private readonly options: AuthenticatorOptions,
  ) {}

  /**
   * Principals by the verified token (the verifier's cached object: a token verified again is a
   * new one) and the headers they were made from. A client sends the same token and headers
   * request after request; checking and decoding them again was about 4 % of a read's CPU.
   * Principals are not changed after they are made; only successes are kept.
   */
  private readonly principals = new BoundedMap<string, Principal>(MAX_PRINCIPALS);
  /** A number for each verified token, for the principals' keys (a token verified again gets a new one). */
  private readonly tokenNumber = numbering<VerifiedToken>();
  private readonly accesses = new WeakMap<Principal, { privacy: PatientPrivacy | undefined; access: PrincipalAccess }>();

  private unauthorized(code: ErrorCode, message: string, error?: string): never {
    const err = errors.unauthorized(code, message, challenge(error, error ? message : undefined, this.options.allowBearer));
    throw err;
  }

  /** Verifies the access token and, for DPoP-bound tokens, the proof of possession. */
  async credentials(req: AuthRequest): Promise<VerifiedToken> {
    const authorization = req.header('authorization');
    if (!authorization) this.unauthorized(ErrorCode.Unauthenticated, 'This request needs an access token (Authorization: DPoP … or Bearer …)');
    const m = /^(Bearer|DPoP)\s+([A-Za-z0-9\-_=.~+/]+)$/i.exec(authorization.trim());
    if (!m) this.unauthorized(ErrorCode.InvalidToken, 'The Authorization header must be "DPoP <token>" or "Bearer <token>"', 'invalid_request');
    const scheme = (m[1] as string).toLowerCase();
    const token = m[2] as string;
    const verified = await this.verifier.verify(token);
    const jkt = (verified.claims.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (typeof jkt === 'string') {
      if (scheme !== 'dpop') this.unauthorized(ErrorCode.InvalidToken, 'This access token is bound to a DPoP key: send it as "Authorization: DPoP …" with a DPoP proof', 'invalid_token');
      const proof = req.header('dpop');
      if (!proof) this.unauthorized(ErrorCode.InvalidDpopProof, 'A DPoP-bound token needs a DPoP proof header', 'invalid_dpop_proof');
      await this.dpop.verify({ proof, method: req.method, url: req.url, accessToken: token, jkt });
    } else if (scheme === 'dpop') {
      this.unauthorized(ErrorCode.InvalidToken, 'The access token is not bound to a DPoP key (no cnf.jkt); use Bearer, or get a DPoP-bound token', 'invalid_token');
    } else if (!this.options.allowBearer) {
      this.unauthorized(ErrorCode.InvalidToken, 'Bearer tokens are not accepted here: use a DPoP-bound token', 'invalid_token');
    }
    return verified;
  }

  async authenticate(req: AuthRequest): Promise<Authenticated> {
    const verified = await this.credentials(req);
    // Checked for a clear 400; the HTTP layer already uses a valid one as the request id.
    headers.eventId(req.header);
    const principal = this.cachedPrincipal(verified, req.header);
    const nin = patientNinOf(principal);
    const privacy = nin ? await this.privacy(nin) : undefined;
    return { principal, access: this.accessFor(principal, privacy) };
  }

  /**
   * The principal's compiled access, made again whenever the patient's privacy settings are a
   * different object (the privacy cache hands out a new one after every change and expiry), so it
   * is never older than they are. PrincipalAccess depends on nothing else, and holds its SQL.
   */
  private accessFor(principal: Principal, privacy: PatientPrivacy | undefined): PrincipalAccess {
    const kept = this.accesses.get(principal);
    if (kept && kept.privacy === privacy) return kept.access;
    const access = new PrincipalAccess(principal, privacy, { scopes: this.options.scopes, allowedRoles: this.options.allowedRoles });
    this.accesses.set(principal, { privacy, access });
    return access;
  }

  private cachedPrincipal(verified: VerifiedToken, get: headers.HeaderGetter): Principal {
    // A header cannot hold a line break or NUL, so the key is unambiguous.
    const key = `${this.tokenNumber(verified)}\n${PRINCIPAL_HEADERS.map((name) => get(name) ?? '\u0000').join('\n')}`;
    let principal = this.principals.get(key);
    if (!principal) {
      principal = this.principal(verified, get);
      this.principals.set(key, principal);
    }
    return principal;
  }

  private principal(verified: VerifiedToken, get: headers.HeaderGetter): Principal {
    const { claims, issuer } = verified;
    const clientId = text(claims.client_id) ?? text(claims.azp) ?? '';
    const missingClaim = (what: string): never => this.unauthorized(ErrorCode.InvalidToken, `The access token lacks ${what}`, 'invalid_token');
    if (claims[HELSEID.pid] !== undefined && issuer.role !== 'citizen') return this.personnel(claims, clientId, get, missingClaim);
    if (claims[HELSENORGE.pid] !== undefined && issuer.role !== 'personnel') return this.citizen(claims, clientId, missingClaim);
    if (!clientId) missingClaim('a client_id');
    const machine: Machine = { kind: 'machine', clientId, scopes: scopesOf(claims) };
    const parent = text(claims[HELSEID.orgnrParent]);
    const child = text(claims[HELSEID.orgnrChild]);
    const clientName = text(claims[HELSEID.clientName]);
    const source = headers.sourceSystem(get, false);
    if (parent) machine.orgnrParent = parent;
    if (child) machine.orgnrChild = child;
    if (clientName) machine.clientName = clientName;
    if (source) machine.sourceSystem = source;
    return machine;
  }

  private personnel(claims: Claims, clientId: string, get: headers.HeaderGetter, missingClaim: (what: string) => never): Personnel {
    const pid = text(claims[HELSEID.pid]);
    if (!pid || !isValidNin(pid)) missingClaim(`a valid ${HELSEID.pid}`);
    if (String(claims[HELSEID.securityLevel]) !== '4') missingClaim(`${HELSEID.securityLevel} 4 (high assurance)`);
    const hpr = text(claims[HELSEID.hprNumber]);
    if (!hpr || !isValidHpr(hpr)) {
      throw errors.forbidden(ErrorCode.NoAccess, 'Only registered health personnel (with an HPR number) can use plans');
    }
    const orgnrParent = text(claims[HELSEID.orgnrParent]);
    const orgnrChild = text(claims[HELSEID.orgnrChild]);
    if (!orgnrParent || !isValidOrgNr(orgnrParent)) missingClaim(`a valid ${HELSEID.orgnrParent} (legal entity)`);
    if (!orgnrChild || !isValidOrgNr(orgnrChild)) missingClaim(`a valid ${HELSEID.orgnrChild} (point of care)`);
    if (!clientId) missingClaim('a client_id');
    const person: Personnel = {
      kind: 'personnel',
      pid,
      hpr,
      role: headers.userRole(get),
      orgnrParent,
      orgnrChild,
      clientId,
      sourceSystem: headers.sourceSystem(get, true) as string,
      accessBasis: headers.accessBasis(get),
      scopes: scopesOf(claims),
    };
    const name = text(claims.name);
    const clientName = text(claims[HELSEID.clientName]);
    const reason = headers.accessReason(get);
    const patientNin = headers.patientNin(get);
    if (name) person.name = name;
    if (clientName) person.clientName = clientName;
    if (reason) person.reason = reason;
    if (patientNin) person.patientNin = patientNin;
    return person;
  }

  private citizen(claims: Claims, clientId: string, missingClaim: (what: string) => never): Citizen {
    const pid = text(claims[HELSENORGE.pid]);
    if (!pid || !isValidNin(pid)) missingClaim('a valid pid');
    if (claims[HELSENORGE.acr] !== CITIZEN_ACR) missingClaim(`acr ${CITIZEN_ACR}: health data needs the highest security level`);
    const rep = claims[HELSENORGE.representation] as Partial<RepresentationClaim> | undefined;
    let representation: Citizen['representation'] = { basis: 'SEGSELV', pid };
    if (rep !== undefined) {
      if (!rep || typeof rep !== 'object' || !REPRESENTATION_BASES.includes(rep.basis as RepresentationBasis) || typeof rep.pid !== 'string' || !isValidNin(rep.pid)) {
        missingClaim(`a valid ${HELSENORGE.representation} ({basis, pid, scope})`);
      }
      representation = {
        basis: rep.basis as RepresentationBasis,
        pid: rep.pid as string,
        ...(typeof rep.name === 'string' ? { name: rep.name } : {}),
        ...(Array.isArray(rep.scope) ? { scope: rep.scope.filter((s): s is 'innsyn' | 'endre' => s === 'innsyn' || s === 'endre') } : {}),
      };
    }
    const citizen: Citizen = { kind: 'citizen', pid, clientId, representation, scopes: scopesOf(claims) };
    const name = text(claims.name);
    if (name) citizen.name = name;
    return citizen;
  }
}
