/**
 * Composes the security layer from configuration: the trusted issuers (HelseID and Helsenorge by
 * discovery, or the embedded provider's keys in process), token and DPoP verification, and the
 * authenticator that turns each request into a principal and its access rules.
 */
import type { SecurityConfig } from '../config.js';
import type { RequestAuth } from '../http/server.js';
import type { Database } from '../store/db.js';
import type { AuthRequest } from './authenticate.js';
import { Authenticator } from './authenticate.js';
import { apiScopes } from './claims.js';
import { serverSecret } from '../store/secrets.js';
import { DpopVerifier } from './dpop.js';
import type { PrivacyLookup } from './privacy.js';
import { discoverIssuer, localIssuer, TokenVerifier, type TrustedIssuer } from './tokens.js';

export interface Security {
  authenticate(req: AuthRequest): Promise<RequestAuth>;
  dpop: DpopVerifier;
}

/** The embedded identity provider's issuer and keys, when Samplan runs its own. */
export interface LocalIssuer {
  issuer: string;
  jwks: { keys: unknown[] };
}

export async function createSecurity(config: SecurityConfig, db: Database, embedded: LocalIssuer | undefined, privacy: PrivacyLookup): Promise<Security> {
  const issuers: TrustedIssuer[] = [];
  if (config.helseIdIssuer) issuers.push(await discoverIssuer(config.helseIdIssuer, 'personnel'));
  if (config.helsenorgeIssuer) issuers.push(await discoverIssuer(config.helsenorgeIssuer, 'citizen'));
  if (embedded) issuers.push(localIssuer(embedded.issuer, embedded.jwks as never, 'both'));
  if (!issuers.length) throw new Error('No token issuer is configured: set HELSEID_ISSUER/HELSENORGE_ISSUER or run the embedded identity provider');
  const verifier = new TokenVerifier(issuers, {
    audience: config.audience,
    clockToleranceSeconds: config.clockToleranceSeconds,
    allowBearer: config.allowBearer,
  });
  const dpop = new DpopVerifier(db, await serverSecret(db, 'dpop-nonce'), {
    requireNonce: config.requireDpopNonce,
    clockToleranceSeconds: config.clockToleranceSeconds,
    allowBearer: config.allowBearer,
  });
  const authenticator = new Authenticator(privacy, verifier, dpop, {
    scopes: apiScopes(config.audience),
    allowBearer: config.allowBearer,
    allowedRoles: new Set(config.allowedRoles),
  });
  return {
    dpop,
    async authenticate(req) {
      const { principal, access } = await authenticator.authenticate(req);
      return { principal, access, ...(access.privacy ? { patientIds: access.privacy.patientIds } : {}) };
    },
  };
}
