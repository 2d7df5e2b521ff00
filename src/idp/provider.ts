/**
 * The oidc-provider configuration of the embedded identity provider: static clients, persisted
 * keys, JWT access tokens for the Samplan API (RFC 9068, `typ` `at+jwt`) with HelseID and
 * Helsenorge claims, PKCE (S256) on every authorization code, DPoP, `private_key_jwt` client
 * assertions checked by HelseID's rules, and Norwegian pages.
 */
import type { JWK } from 'jose';
import type {
  Account,
  KoaContextWithOIDC,
  Provider as ProviderType,
  ResourceServerInfo,
  StructuredToken,
  TokenForCustomizer,
} from 'oidc-provider';
import { type ApiScopes, CITIZEN_ACR, HELSEID } from '../security/claims.js';
import { derivedSecret, type IdpKeys, publicJwk, SIGNING_ALG } from './keys.js';
import { errorPage, loggedOutPage, logoutPage, PAGE_HEADERS } from './pages.js';
import { CLIENT_IDS, CLIENT_PROFILES, clientProfile, identityClaims, personaOf, type TokenClaims } from './personas.js';
import type { IdpStorage } from './storage.js';

/** Asymmetric algorithms only, for client assertions and DPoP proofs (HelseID accepts no HMAC). */
export const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'Ed25519', 'EdDSA'];

/** Identity scopes the provider knows, and the ID-token claims each releases (HelseID's identity scopes too). */
export const OIDC_SCOPES: Readonly<Record<string, string[]>> = {
  openid: ['sub', 'pid', 'acr', 'amr'],
  profile: ['name', 'given_name', 'family_name'],
  'helseid://scopes/identity/pid': [HELSEID.pid],
  'helseid://scopes/identity/security_level': [HELSEID.securityLevel],
  'helseid://scopes/hpr/hpr_number': [HELSEID.hprNumber],
};

/** HelseID: a client assertion may be valid for at most 60 seconds. */
const ASSERTION_MAX_LIFETIME = 60;
const CLOCK_TOLERANCE = 10;

/** Cookie names (the session cookie is withheld from the authorization endpoint; see mount.ts). */
export const COOKIES = { session: '_samplan_idp_session', interaction: '_samplan_idp_interaction', resume: '_samplan_idp_resume' } as const;

export interface ProviderSetup {
  issuer: string;
  scopes: ApiScopes;
  keys: IdpKeys;
  storage: IdpStorage;
  claims: TokenClaims;
  redirectUris: { clinician: string[]; citizen: string[] };
  accessTokenTtlSeconds: number;
}

/** Loopback, any port (RFC 8252); the code is read from the redirect, which need not be served. */
export const EHR_REDIRECT_URIS = ['http://127.0.0.1/callback'];

function postLogoutUris(redirectUris: string[]): string[] {
  const out = new Set<string>();
  for (const uri of redirectUris) {
    const url = new URL(uri);
    out.add(`${url.origin}/`);
    out.add(new URL('./', url).href);
  }
  return [...out];
}

/**
 * oidc-provider wants a sector identifier for (pairwise) clients with redirect URIs on several
 * hosts. Subjects here do not depend on it (see pairwiseIdentifier), so it is a placeholder that is
 * never fetched.
 */
/** A portal: a public browser client, authorization code with PKCE, no client secret. */
function portalClient(clientId: string, redirectUris: string[]) {
  return {
    client_id: clientId,
    client_name: CLIENT_PROFILES[clientId]?.name,
    application_type: 'web',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: redirectUris,
    ...sectorFor(redirectUris),
    post_logout_redirect_uris: postLogoutUris(redirectUris),
  };
}

function sectorFor(redirectUris: string[]): { sector_identifier_uri?: string } {
  return new Set(redirectUris.map((u) => new URL(u).host)).size > 1 ? { sector_identifier_uri: 'https://samplan.invalid/idp-sector' } : {};
}

function sendPage(ctx: KoaContextWithOIDC, status: number | undefined, html: string): void {
  const k = ctx as unknown as { status: number; body: string; set(name: string, value: string): void };
  for (const [name, value] of Object.entries(PAGE_HEADERS)) k.set(name, value);
  if (status !== undefined) k.status = status;
  k.body = html;
}

export async function createProvider(setup: ProviderSetup): Promise<ProviderType> {
  const { default: Provider, errors } = await import('oidc-provider');
  const { issuer, scopes, keys, storage, claims, accessTokenTtlSeconds } = setup;
  const issuerPath = new URL(issuer).pathname.replace(/\/+$/, '');
  const active = keys.signing[0] as JWK;
  const ehrKey = keys.clients.get(CLIENT_IDS.ehr);
  if (!ehrKey) throw new Error('the ehr-test-client key is missing');

  const clients = [
    portalClient(CLIENT_IDS.clinicianPortal, setup.redirectUris.clinician),
    portalClient(CLIENT_IDS.citizenPortal, setup.redirectUris.citizen),
    {
      client_id: CLIENT_IDS.ehr,
      client_name: CLIENT_PROFILES[CLIENT_IDS.ehr]?.name,
      // A native (desktop) EHR: loopback redirect URIs, any port (RFC 8252).
      application_type: 'native',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [publicJwk(ehrKey)] },
      grant_types: ['authorization_code', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: EHR_REDIRECT_URIS,
      ...sectorFor(EHR_REDIRECT_URIS),
    },
  ];

  const apiScopesFor = (ctx: KoaContextWithOIDC, clientId: string | undefined): string[] => {
    const grantType = ctx.oidc.params?.grant_type;
    if (ctx.oidc.route === 'token' && grantType === 'client_credentials') return claims.allowedScopes('machine');
    const kinds = clientProfile(clientId)?.kinds ?? [];
    return [...new Set(kinds.flatMap((k) => claims.allowedScopes(k)))];
  };

  const configuration = {
    adapter: storage.adapter,
    clients,
    jwks: { keys: keys.signing },
    cookies: {
      keys: [derivedSecret(active, 'cookies').toString('base64url')],
      names: COOKIES,
      // The session cookie is only sent to the provider, not to the rest of the server.
      long: { httpOnly: true, sameSite: 'lax', path: issuerPath },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    claims: { ...OIDC_SCOPES, auth_time: null, sid: null, iss: null },
    // `sub` is a pseudonym of the person's national id, never the internal account id (which also
    // records whom a citizen acts for). oidc-provider's hook for that is the pairwise subject type.
    subjectTypes: ['pairwise'],
    pairwiseIdentifier: async (_ctx: KoaContextWithOIDC, accountId: string) => {
      const persona = personaOf(accountId);
      if (!persona) throw new Error('unknown account');
      return identityClaims(persona).sub as string;
    },
    // Clients with redirect URIs on several hosts need a sector identifier; ours is never fetched.
    sectorIdentifierUriValidate: () => false,
    scopes: Object.keys(OIDC_SCOPES),
    acrValues: [CITIZEN_ACR],
    responseTypes: ['code'],
    clockTolerance: CLOCK_TOLERANCE,
    pkce: { required: () => true },
    clientAuthMethods: ['private_key_jwt', 'none'],
    enabledJWA: {
      clientAuthSigningAlgValues: ASYMMETRIC_ALGS,
      dPoPSigningAlgValues: ASYMMETRIC_ALGS,
      idTokenSigningAlgValues: [SIGNING_ALG],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: {
        enabled: true,
        // Nonces are offered (DPoP-Nonce) and honoured but not required; every instance shares the secret.
        nonceSecret: derivedSecret(active, 'dpop-nonce'),
        requireNonce: () => false,
      },
      resourceIndicators: {
        enabled: true,
        // Tokens are always for the Samplan API, whether or not the client sends `resource`.
        defaultResource: async () => scopes.audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx: KoaContextWithOIDC, indicator: string, client: { clientId: string }): Promise<ResourceServerInfo> => {
          if (indicator !== scopes.audience) throw new errors.InvalidTarget(`the only resource served here is ${scopes.audience}`);
          return {
            scope: apiScopesFor(ctx, client.clientId).join(' '),
            audience: scopes.audience,
            accessTokenTTL: accessTokenTtlSeconds,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: SIGNING_ALG } },
          };
        },
      },
      userinfo: { enabled: false },
      revocation: { enabled: false },
      introspection: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => sendPage(ctx, undefined, logoutPage(form)),
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => sendPage(ctx, undefined, loggedOutPage()),
      },
    },
    // HelseID's rules for client assertions, on top of oidc-provider's (iss = client_id, exp and jti present, signature).
    assertJwtClientAuthClaimsAndHeader: async (
      _ctx: KoaContextWithOIDC,
      payload: Record<string, unknown>,
      header: Record<string, unknown>,
      client: { clientId: string },
    ) => {
      const fail = (message: string) => {
        throw new errors.InvalidClientAuth(message);
      };
      const aud = payload.aud;
      if (!(aud === issuer || (Array.isArray(aud) && aud.length === 1 && aud[0] === issuer))) {
        fail(`the client assertion audience (aud) must be the issuer, ${issuer}`);
      }
      if (payload.sub !== client.clientId) fail('the client assertion subject (sub) must be the client_id');
      if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'client-authentication+jwt') {
        fail('the client assertion typ must be JWT');
      }
      for (const claim of ['iat', 'nbf']) if (typeof payload[claim] !== 'number') fail(`the client assertion must have a numeric ${claim}`);
      const exp = payload.exp as number;
      const now = Math.floor(Date.now() / 1000);
      if (exp - now > ASSERTION_MAX_LIFETIME + CLOCK_TOLERANCE || exp - (payload.iat as number) > ASSERTION_MAX_LIFETIME) {
        fail(`the client assertion may be valid for at most ${ASSERTION_MAX_LIFETIME} seconds (exp too far ahead)`);
      }
      // Atomic (also across instances when artifacts are in the database), unlike a find-then-save.
      if (!(await storage.claimOnce(`client_assertion:${client.clientId}:${String(payload.jti)}`, exp + CLOCK_TOLERANCE))) {
        fail('client assertion tokens must only be used once (jti seen before)');
      }
    },
    clientBasedCORS: (_ctx: KoaContextWithOIDC, origin: string, client: { redirectUris?: string[] }) =>
      (client.redirectUris ?? []).some((uri) => URL.parse(uri)?.origin === origin),
    findAccount: async (_ctx: KoaContextWithOIDC, id: string): Promise<Account | undefined> => {
      const persona = personaOf(id);
      return persona ? { accountId: id, claims: () => identityClaims(persona) } : undefined;
    },
    formats: {
      customizers: {
        // The whole payload is rebuilt by the same code as issueAccessToken, so the two agree exactly.
        jwt: async (_ctx: KoaContextWithOIDC, token: TokenForCustomizer, jwt: StructuredToken) => {
          const p = jwt.payload;
          const jkt = (p.cnf as { jkt?: string } | undefined)?.jkt;
          const scope = typeof p.scope === 'string' ? p.scope : '';
          let persona: Record<string, unknown>;
          if (token.kind === 'ClientCredentials') persona = claims.machine(token.clientId, { scope, ...(jkt ? { jkt } : {}) });
          else {
            const found = token.accountId ? personaOf(token.accountId) : undefined;
            if (!found) throw new Error('access token for an unknown account');
            persona = claims.forPersona(found, { scope, clientId: token.clientId, ...(jkt ? { jkt } : {}) });
          }
          jwt.payload = accessTokenPayload({ iss: p.iss, aud: p.aud, iat: p.iat as number, exp: p.exp as number, jti: p.jti }, persona);
        },
      },
    },
    interactions: { url: async (_ctx: KoaContextWithOIDC, interaction: { uid: string }) => `${issuerPath}/interaction/${interaction.uid}` },
    expiresWithSession: async () => false,
    issueRefreshToken: async () => false,
    ttl: {
      AccessToken: () => accessTokenTtlSeconds,
      ClientCredentials: () => accessTokenTtlSeconds,
      AuthorizationCode: () => 60,
      IdToken: () => 3600,
      Interaction: () => 900,
      Session: () => 3600,
      Grant: () => 86_400,
    },
    renderError: async (ctx: KoaContextWithOIDC, out: { error?: string; error_description?: string }) => {
      sendPage(ctx, undefined, errorPage('Innloggingen kunne ikke fullføres', describeError(out.error), [out.error, out.error_description].filter(Boolean).join(': ')));
    },
  };

  const provider = new Provider(issuer, configuration);
  // Every URL the provider builds uses the issuer's scheme and host (see mount.ts), so it trusts the forwarded headers.
  provider.proxy = true;
  return provider;
}

function describeError(error: string | undefined): string {
  switch (error) {
    case 'invalid_client':
      return 'Programmet som ba om innlogging er ikke kjent for testinnloggingen.';
    case 'invalid_redirect_uri':
      return 'Programmet ba om å bli sendt tilbake til en adresse som ikke er registrert.';
    case 'invalid_request':
      return 'Forespørselen om innlogging var ufullstendig eller feil.';
    case 'session_not_found':
      return 'Innloggingen er utløpt eller ble startet i en annen nettleser.';
    case 'access_denied':
      return 'Innloggingen ble avbrutt.';
    default:
      return 'Noe gikk galt under innloggingen.';
  }
}

/** The registered claims every access token has, then the persona's (which may override, for tests). */
export function accessTokenPayload(
  base: { iss: unknown; aud: unknown; iat: number; exp: number; jti: unknown },
  persona: Record<string, unknown>,
): Record<string, unknown> {
  const payload: Record<string, unknown> = { iss: base.iss, aud: base.aud, iat: base.iat, nbf: base.iat, exp: base.exp, jti: base.jti, ...persona };
  if (payload.scope === '') delete payload.scope;
  return payload;
}
