/**
 * Access-token validation (RFC 9068 JWT access tokens) with `jose`: the issuer must be one we
 * trust, the signature must verify with that issuer's keys (fetched by OIDC discovery and JWKS,
 * refreshed when an unknown key id appears, so key rotation works), `aud` must be ours, `exp` and
 * `nbf` hold with a small leeway, `typ` is `at+jwt`, and only asymmetric algorithms are accepted —
 * never `none`, never HMAC. Verified tokens are cached until they expire, keyed by the whole
 * token, so a token is verified once however many requests carry it.
 */
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors as jose, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { BoundedMap } from '../bounded-map.js';
import { ErrorCode, errors, type FhirError } from '../fhir/outcomes.js';

export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** What a trusted issuer may vouch for: health personnel and systems (HelseID), citizens (Helsenorge), or both (the embedded provider). */
export type IssuerRole = 'personnel' | 'citizen' | 'both';

export interface TrustedIssuer {
  issuer: string;
  role: IssuerRole;
  keys: JWTVerifyGetKey;
}

export type Claims = JWTPayload & Record<string, unknown>;

export interface VerifiedToken {
  issuer: TrustedIssuer;
  claims: Claims;
}

/** A trusted issuer whose keys we hold in process (the embedded provider). */
export function localIssuer(issuer: string, jwks: JSONWebKeySet, role: IssuerRole): TrustedIssuer {
  return { issuer, role, keys: createLocalJWKSet(jwks) };
}

/**
 * A trusted issuer found by OIDC discovery; its JWKS is fetched lazily and fetched again when a
 * token names an unknown key id (at most once per `cooldownMs`, so bad tokens cannot make us
 * hammer the issuer).
 */
export async function discoverIssuer(issuer: string, role: IssuerRole, options: { cooldownMs?: number } = {}): Promise<TrustedIssuer> {
  const res = await fetch(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`OIDC discovery for ${issuer} failed: HTTP ${res.status}`);
  const doc = (await res.json()) as { issuer?: string; jwks_uri?: string };
  if (doc.issuer !== issuer) throw new Error(`OIDC discovery for ${issuer} names another issuer: ${String(doc.issuer)}`);
  if (!doc.jwks_uri) throw new Error(`OIDC discovery for ${issuer} has no jwks_uri`);
  return { issuer, role, keys: createRemoteJWKSet(new URL(doc.jwks_uri), { cooldownDuration: options.cooldownMs ?? 30_000, cacheMaxAge: 600_000 }) };
}

/** The Bearer/DPoP challenge sent with every 401. */
export function challenge(error: string | undefined, description: string | undefined, allowBearer: boolean): string {
  // Header values are ASCII; the description is a hint for developers, the OperationOutcome says it in full.
  const safe = description?.replace(/\u2026/g, '...').replace(/[^\x20-\x7e]/g, '').replace(/["\\]/g, "'");
  const params = ['realm="samplan"', ...(error ? [`error="${error}"`] : []), ...(safe ? [`error_description="${safe}"`] : [])].join(', ');
  const dpop = `DPoP ${params}, algs="${ASYMMETRIC_ALGORITHMS.join(' ')}"`;
  return allowBearer ? `Bearer ${params}, ${dpop}` : dpop;
}

const MAX_CACHED = 10_000;

export class TokenVerifier {
  private readonly cache = new BoundedMap<string, { verified: VerifiedToken; expiresAt: number }>(MAX_CACHED);

  constructor(
    private readonly issuers: readonly TrustedIssuer[],
    private readonly options: { audience: string; clockToleranceSeconds: number; allowBearer: boolean },
  ) {}

  private invalid(message: string): FhirError {
    return errors.unauthorized(ErrorCode.InvalidToken, message, challenge('invalid_token', message, this.options.allowBearer));
  }

  async verify(token: string): Promise<VerifiedToken> {
    const cached = this.cache.get(token);
    if (cached) {
      if (cached.expiresAt > Date.now() - this.options.clockToleranceSeconds * 1000) {
        // Refresh its place so the most used tokens stay cached.
        this.cache.set(token, cached);
        return cached.verified;
      }
      this.cache.delete(token);
    }
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch {
      throw this.invalid('The access token is not a well-formed JWT');
    }
    const issuer = this.issuers.find((i) => i.issuer === unverified.iss);
    if (!issuer) throw this.invalid('The access token is from an issuer this server does not trust');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, issuer.keys, {
        issuer: issuer.issuer,
        audience: this.options.audience,
        algorithms: ASYMMETRIC_ALGORITHMS,
        clockTolerance: this.options.clockToleranceSeconds,
        typ: 'at+jwt',
        requiredClaims: ['exp', 'iat'],
      }));
    } catch (err) {
      throw this.invalid(describe(err));
    }
    const verified: VerifiedToken = { issuer, claims: payload as Claims };
    this.cache.set(token, { verified, expiresAt: (payload.exp as number) * 1000 });
    return verified;
  }
}

function describe(err: unknown): string {
  if (err instanceof jose.JWTExpired) return 'The access token has expired';
  if (err instanceof jose.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'aud':
        return 'The access token is not meant for this API (wrong audience)';
      case 'iss':
        return 'The access token is from an issuer this server does not trust';
      case 'nbf':
        return 'The access token is not valid yet';
      case 'typ':
        return 'The token is not an access token (typ must be at+jwt)';
      default:
        return `The access token lacks a valid "${err.claim}" claim`;
    }
  }
  if (err instanceof jose.JOSEAlgNotAllowed) return 'The access token is signed with an algorithm this server does not accept';
  if (err instanceof jose.JWSSignatureVerificationFailed) return 'The access token signature is not valid';
  if (err instanceof jose.JWKSNoMatchingKey) return 'The access token is signed with a key the issuer does not publish';
  if (err instanceof jose.JWKSTimeout || err instanceof jose.JOSEError) return `The access token could not be verified (${err.code})`;
  return 'The access token could not be verified';
}
