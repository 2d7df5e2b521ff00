/**
 * The embedded identity provider for local use: when no external issuer is configured, Samplan
 * runs its own OpenID Connect provider (oidc-provider) under `/idp` on the same server. It issues
 * access tokens with exactly the claims of the real services — HelseID for health personnel and
 * systems, Helsenorge/ID-porten for citizens — for the synthetic personas of
 * `src/demo/population.ts`, so pointing Samplan at the real services is configuration only.
 *
 *   clients   samplan-clinician-portal, samplan-citizen-portal (public, code + PKCE S256),
 *             ehr-test-client (private_key_jwt; code + PKCE and client_credentials)
 *   tokens    JWT (`typ` at+jwt, RS256, `kid`), `aud` = the API audience, DPoP-bound (`cnf.jkt`)
 *             when the token request carries a DPoP proof
 *   keys      persisted in `idp_keys` (see keys.ts); the ehr-test-client private key is also
 *             written to `<dataDir>/ehr-test-client.jwk.json` for `npm run token`
 *   storage   see storage.ts
 */
import { type JsonWebKey, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { importJWK, type JWK, SignJWT } from 'jose';
import type { ApiScopes } from '../security/claims.js';
import type { Database } from '../store/db.js';
import { loadKeys, publicJwk, SIGNING_ALG } from './keys.js';
import { mountProvider } from './mount.js';
import {
  CLIENT_IDS,
  requireActingFor,
  requireCitizen,
  requireClinician,
  TokenClaims,
} from './personas.js';
import { accessTokenPayload, COOKIES, createProvider } from './provider.js';
import { openStorage } from './storage.js';

export { CLIENT_IDS } from './personas.js';

/** File name of the ehr-test-client private key in the data directory. */
export const EHR_CLIENT_KEY_FILE = 'ehr-test-client.jwk.json';

export interface EmbeddedIdpOptions {
  db: Database;
  /** Issuer URL, e.g. http://localhost:8080/idp (the provider is served under this path on the same server). */
  issuer: string;
  scopes: ApiScopes;
  /** Where to write the demo EHR client's private key (JWK) for `npm run token`, e.g. ./data. */
  dataDir: string;
  /** Allowed redirect URIs for the two portal clients (defaults: `${origin}/clinician/callback`, `${origin}/citizen/callback`). */
  redirectUris?: { clinician?: string[]; citizen?: string[] };
  accessTokenTtlSeconds?: number;
}

export interface EmbeddedIdp {
  readonly issuer: string;
  /** Public JWKS of the signing key(s), for validating tokens in-process without an HTTP call. */
  readonly jwks: { keys: JsonWebKey[] };
  /** Path of the ehr-test-client private key file. */
  readonly clientKeyFile: string;
  /** Serves everything under the issuer path (discovery, jwks, authorize, login/interaction pages, token, ...). */
  register(app: FastifyInstance): Promise<void>;
  /** Signs an access token with the same key and shape the token endpoint uses (for tests and tools). */
  issueAccessToken(claims: Record<string, unknown>, options?: { expiresInSeconds?: number }): Promise<string>;
  /** Access-token claims for a persona, exactly as the token endpoint would put them. */
  clinicianClaims(key: string, options?: { scope?: string; clientId?: string; jkt?: string }): Record<string, unknown>;
  citizenClaims(key: string, options?: { actingFor?: string; scope?: string; clientId?: string; jkt?: string }): Record<string, unknown>;
  machineClaims(clientId: string, options?: { scope?: string; jkt?: string }): Record<string, unknown>;
  close(): Promise<void>;
}

function checkIssuer(issuer: string): URL {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new Error(`The identity provider issuer must be an absolute URL, got "${issuer}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`The identity provider issuer must be http(s), got "${issuer}"`);
  if (url.search || url.hash) throw new Error(`The identity provider issuer must have no query or fragment, got "${issuer}"`);
  if (url.pathname.replace(/\/+$/, '') === '') throw new Error(`The identity provider issuer needs a path to be served under (e.g. ${url.origin}/idp), got "${issuer}"`);
  return url;
}

/** Writes the client's private key where `npm run token` finds it (owner-only), unless it is already there. */
async function writeClientKey(dataDir: string, jwk: JWK): Promise<string> {
  const file = path.resolve(dataDir, EHR_CLIENT_KEY_FILE);
  const text = `${JSON.stringify({ ...jwk, client_id: CLIENT_IDS.ehr }, null, 2)}\n`;
  await mkdir(path.dirname(file), { recursive: true });
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === text) {
    await chmod(file, 0o600);
    return file;
  }
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
  return file;
}

export async function createEmbeddedIdp(options: EmbeddedIdpOptions): Promise<EmbeddedIdp> {
  const url = checkIssuer(options.issuer);
  const issuer = options.issuer.replace(/\/+$/, '');
  const ttl = options.accessTokenTtlSeconds ?? 3600;
  if (!Number.isInteger(ttl) || ttl <= 0) throw new Error(`accessTokenTtlSeconds must be a positive integer, got ${ttl}`);
  const { scopes } = options;

  const keys = await loadKeys(options.db, [CLIENT_IDS.ehr]);
  const clientKeyFile = await writeClientKey(options.dataDir, keys.clients.get(CLIENT_IDS.ehr) as JWK);
  const storage = openStorage(options.db);
  const claims = new TokenClaims(scopes);
  const redirectUris = {
    clinician: options.redirectUris?.clinician ?? [`${url.origin}/clinician/callback`],
    citizen: options.redirectUris?.citizen ?? [`${url.origin}/citizen/callback`],
  };
  const provider = await createProvider({ issuer, scopes, keys, storage, claims, redirectUris, accessTokenTtlSeconds: ttl });

  const active = keys.signing[0] as JWK;
  const signingKey = await importJWK(active, SIGNING_ALG);
  let registered = false;

  return {
    issuer,
    jwks: { keys: keys.signing.map((k) => publicJwk(k) as JsonWebKey) },
    clientKeyFile,
    async register(app) {
      if (registered) throw new Error('the embedded identity provider is already registered on a server');
      registered = true;
      await mountProvider(app, { provider, issuer, audience: scopes.audience, claims, sessionCookie: COOKIES.session });
    },
    async issueAccessToken(tokenClaims, tokenOptions = {}) {
      const iat = Math.floor(Date.now() / 1000);
      const payload = accessTokenPayload(
        { iss: issuer, aud: scopes.audience, iat, exp: iat + (tokenOptions.expiresInSeconds ?? ttl), jti: randomBytes(16).toString('base64url') },
        tokenClaims,
      );
      return new SignJWT(payload).setProtectedHeader({ alg: SIGNING_ALG, typ: 'at+jwt', kid: active.kid as string }).sign(signingKey);
    },
    clinicianClaims(key, claimOptions = {}) {
      return claims.clinician(requireClinician(key), claimOptions);
    },
    citizenClaims(key, claimOptions = {}) {
      const citizen = requireCitizen(key);
      return claims.citizen(citizen, requireActingFor(key, claimOptions.actingFor), claimOptions);
    },
    machineClaims(clientId, claimOptions = {}) {
      return claims.machine(clientId, claimOptions);
    },
    async close() {
      // Nothing to release: the database belongs to the caller, and the routes close with the server.
    },
  };
}
