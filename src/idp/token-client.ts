/**
 * A small OAuth client for the embedded identity provider, over real HTTP — what `npm run token`
 * and the tests use. Persons: authorization code + PKCE through the login page (GET authorize,
 * follow to the login page, POST the persona, follow the redirects to the code, exchange it).
 * Machines: client_credentials. The confidential client authenticates with `private_key_jwt`
 * (HelseID's rules: iss = sub = client_id, aud = issuer, exp 60 s ahead, a fresh jti); with a
 * DPoP key every token request carries a proof and the token comes back DPoP-bound.
 */
import { createHash, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { publicJwk } from './keys.js';

export class TokenClientError extends Error {
  override name = 'TokenClientError';
}

export interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  [key: string]: unknown;
}

export interface DpopKey {
  privateKey: CryptoKey;
  /** Public JWK (goes in every proof's header). */
  publicJwk: JWK;
  /** Private JWK, for printing. */
  privateJwk: JWK;
  /** RFC 7638 thumbprint: the token's `cnf.jkt`. */
  jkt: string;
}

export interface PersonLogin {
  kind: 'clinician' | 'citizen';
  /** Persona key from the demo population, e.g. `fastlege`, `marte`. */
  persona: string;
  /** For a citizen: whom they act for (a represented person's key); omitted = themself. */
  actingFor?: string;
}

export interface TokenRequest {
  issuer: string;
  /** `ehr-test-client` (default) or a public portal client. */
  clientId?: string;
  /** Private JWK for `private_key_jwt`; without it the client is treated as public. */
  clientKey?: JWK;
  scope?: string;
  /** Where the provider sends the code (never fetched). Default: a loopback URI registered for ehr-test-client. */
  redirectUri?: string;
  dpop?: DpopKey;
  /** A person to log in as; without it, client_credentials. */
  login?: PersonLogin;
}

export interface TokenResult {
  accessToken: string;
  tokenType: string;
  expiresIn: number;
  scope?: string;
  idToken?: string;
}

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const b64url = (bytes: Buffer) => bytes.toString('base64url');

async function request(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(15_000), ...init });
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    const origin = URL.parse(url)?.origin ?? url;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ECONNRESET') {
      throw new TokenClientError(`No server answers at ${origin} (${code}). Start Samplan (npm start) or pass --server URL.`);
    }
    throw new TokenClientError(`Could not reach ${origin}: ${(err as Error).message}${code ? ` (${code})` : ''}`);
  }
}

/** Reads the provider's discovery document, with a clear message when there is none. */
export async function discover(issuer: string): Promise<Discovery> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const res = await request(url, { headers: { accept: 'application/json' } });
  let doc: Partial<Discovery> | undefined;
  if (res.ok) doc = (await res.json().catch(() => undefined)) as Partial<Discovery> | undefined;
  if (!doc?.token_endpoint || !doc.authorization_endpoint || !doc.issuer) {
    throw new TokenClientError(
      `${URL.parse(url)?.origin} does not run the embedded identity provider at ${issuer} (GET ${url} answered ${res.status}). ` +
        'It is probably configured with an external issuer (HelseID/Helsenorge): get tokens from that issuer instead.',
    );
  }
  return doc as Discovery;
}

export async function generateDpopKey(alg = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), alg };
  return { privateKey, publicJwk, privateJwk: { ...(await exportJWK(privateKey)), alg }, jkt: await calculateJwkThumbprint(publicJwk) };
}

export async function dpopKeyFromJwk(privateJwk: JWK): Promise<DpopKey> {
  const alg = privateJwk.alg ?? 'ES256';
  const privateKey = (await importJWK(privateJwk, alg)) as CryptoKey;
  const pub = { ...publicJwk(privateJwk), alg };
  return { privateKey, publicJwk: pub, privateJwk, jkt: await calculateJwkThumbprint(pub) };
}

/** A DPoP proof (RFC 9449) for one request; with `accessToken` it carries `ath`, as API calls need. */
export async function dpopProof(key: DpopKey, options: { htm: string; htu: string; accessToken?: string; nonce?: string }): Promise<string> {
  const htu = new URL(options.htu);
  htu.search = '';
  htu.hash = '';
  return new SignJWT({
    jti: b64url(randomBytes(16)),
    htm: options.htm.toUpperCase(),
    htu: htu.href,
    ...(options.accessToken ? { ath: createHash('sha256').update(options.accessToken).digest('base64url') } : {}),
    ...(options.nonce ? { nonce: options.nonce } : {}),
  })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.publicJwk.alg as string, jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

/** A `private_key_jwt` client assertion by HelseID's rules. */
export async function clientAssertion(clientId: string, key: JWK, audience: string): Promise<string> {
  const alg = key.alg ?? 'ES256';
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: clientId, sub: clientId, aud: audience, jti: b64url(randomBytes(16)), iat: now, nbf: now, exp: now + 60 })
    .setProtectedHeader({ alg, typ: 'JWT', ...(key.kid ? { kid: key.kid } : {}) })
    .sign(await importJWK(key, alg));
}

/** Just enough of a cookie jar for a login: name, value and path. */
export class CookieJar {
  private readonly cookies = new Map<string, { value: string; path: string }>();

  store(res: Response, url: string): void {
    for (const header of res.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = new URL('./', url).pathname;
      let expired = false;
      for (const attribute of attributes) {
        const [k = '', v = ''] = attribute.split('=').map((s) => s.trim());
        if (k.toLowerCase() === 'path') path = v || '/';
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const id = `${name}\u0000${path}`;
      if (expired || value === '') this.cookies.delete(id);
      else this.cookies.set(id, { value, path });
    }
  }

  header(url: string): string | undefined {
    const path = new URL(url).pathname;
    const pairs: string[] = [];
    for (const [id, c] of this.cookies) {
      if (path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)) pairs.push(`${id.split('\u0000')[0]}=${c.value}`);
    }
    return pairs.length ? pairs.join('; ') : undefined;
  }
}

/** The text of the login page's error box, or of an error page's description. */
function pageMessage(html: string): string | undefined {
  const found = /<p class="error"[^>]*>([\s\S]*?)<\/p>/.exec(html) ?? /<code>([\s\S]*?)<\/code>/.exec(html) ?? /<h1>([\s\S]*?)<\/h1>/.exec(html);
  return found?.[1]
    ?.replace(/<[^>]+>/g, '')
    .replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n)))
    .trim();
}

async function describeFailure(step: string, res: Response): Promise<TokenClientError> {
  const text = await res.text().catch(() => '');
  let detail: string | undefined;
  try {
    const body = JSON.parse(text) as { error?: string; error_description?: string };
    detail = [body.error, body.error_description].filter(Boolean).join(': ');
  } catch {
    detail = pageMessage(text);
  }
  return new TokenClientError(`${step} failed: HTTP ${res.status}${detail ? ` — ${detail}` : ''}`);
}

export interface LoginOptions {
  clientId: string;
  redirectUri: string;
  scope?: string;
  login: PersonLogin;
  /** Binds the code to a DPoP key (`dpop_jkt`). */
  dpopJkt?: string;
  /** A browser's cookies, to make several logins in one "browser". */
  jar?: CookieJar;
  /** Replaces the PKCE challenge parameters (tests: none at all, another method). */
  pkce?: Record<string, string>;
}

/** Logs in through the login page (authorization code + PKCE) and returns the code and its verifier. */
export async function loginForCode(discovery: Discovery, options: LoginOptions): Promise<{ code: string; verifier: string }> {
  const jar = options.jar ?? new CookieJar();
  const { redirectUri } = options;
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const authUrl = new URL(discovery.authorization_endpoint);
  authUrl.search = new URLSearchParams({
    client_id: options.clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: ['openid', options.scope].filter(Boolean).join(' '),
    ...(options.pkce ?? { code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' }),
    state,
    nonce: b64url(randomBytes(16)),
    ...(options.dpopJkt ? { dpop_jkt: options.dpopJkt } : {}),
  }).toString();

  /** Follows redirects until the provider sends the browser back to the client (or shows a page). */
  const follow = async (start: Response, from: string): Promise<{ res: Response; url: string } | { callback: URL }> => {
    let res = start;
    let url = from;
    for (let hops = 0; hops < 10; hops++) {
      jar.store(res, url);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) return { res, url };
      const next = new URL(location, url).href;
      if (next.startsWith(redirectUri)) return { callback: new URL(next) };
      url = next;
      const cookie = jar.header(url);
      res = await request(url, { headers: cookie ? { cookie } : {} });
    }
    throw new TokenClientError('Too many redirects during the login');
  };

  const cookie0 = jar.header(authUrl.href);
  const first = await follow(await request(authUrl.href, { headers: cookie0 ? { cookie: cookie0 } : {} }), authUrl.href);
  if ('callback' in first) return { code: codeFrom(first.callback, state, discovery.issuer), verifier };
  if (first.res.status !== 200 || !/\/interaction\//.test(first.url)) throw await describeFailure('The authorization request', first.res);
  await first.res.text();

  const form = new URLSearchParams({ person: `${options.login.kind}:${options.login.persona}` });
  if (options.login.kind === 'citizen') form.set('for', options.login.actingFor ?? 'self');
  const cookie = jar.header(first.url);
  const posted = await request(first.url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
    body: form.toString(),
  });
  if (posted.status !== 303) throw await describeFailure('Logging in at the login page', posted);
  const done = await follow(posted, first.url);
  if (!('callback' in done)) throw await describeFailure('Finishing the login', done.res);
  return { code: codeFrom(done.callback, state, discovery.issuer), verifier };
}

function codeFrom(callback: URL, state: string, issuer: string): string {
  const p = callback.searchParams;
  if (p.get('error')) throw new TokenClientError(`The provider refused the login: ${p.get('error')}${p.get('error_description') ? ` — ${p.get('error_description')}` : ''}`);
  if (p.get('state') !== state) throw new TokenClientError('The authorization response has the wrong state');
  if (p.get('iss') !== null && p.get('iss') !== issuer) throw new TokenClientError('The authorization response names another issuer');
  const code = p.get('code');
  if (!code) throw new TokenClientError('The authorization response has no code');
  return code;
}

/** Calls the token endpoint, authenticating the client and, with a DPoP key, retrying once with the server's nonce. */
export async function tokenCall(discovery: Discovery, req: Pick<TokenRequest, 'clientKey' | 'dpop'>, clientId: string, params: Record<string, string>): Promise<TokenResult> {
  let nonce: string | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    const body = new URLSearchParams({ ...params, client_id: clientId });
    if (req.clientKey) {
      body.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
      body.set('client_assertion', await clientAssertion(clientId, req.clientKey, discovery.issuer));
    }
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (req.dpop) headers.dpop = await dpopProof(req.dpop, { htm: 'POST', htu: discovery.token_endpoint, ...(nonce ? { nonce } : {}) });
    const res = await request(discovery.token_endpoint, { method: 'POST', headers, body: body.toString() });
    if (res.ok) {
      const t = (await res.json()) as { access_token: string; token_type: string; expires_in: number; scope?: string; id_token?: string };
      return {
        accessToken: t.access_token,
        tokenType: t.token_type,
        expiresIn: t.expires_in,
        ...(t.scope ? { scope: t.scope } : {}),
        ...(t.id_token ? { idToken: t.id_token } : {}),
      };
    }
    const offered = res.headers.get('dpop-nonce');
    if (req.dpop && offered && attempt === 0 && res.status === 400) {
      const text = await res.text();
      if (/use_dpop_nonce/.test(text)) {
        nonce = offered;
        continue;
      }
      throw await describeFailure('The token request', new Response(text, { status: res.status }));
    }
    const failure = await describeFailure('The token request', res);
    if (/invalid_client/.test(failure.message) && req.clientKey) {
      failure.message += ` (is ${clientId}'s key file from this server's data directory? Pass --data-dir if the server uses another DATA_DIR.)`;
    }
    throw failure;
  }
  throw new TokenClientError('The token request failed: the server kept asking for a new DPoP nonce');
}

/** Gets an access token: for a person through the login page, or for the client itself. */
export async function requestToken(req: TokenRequest): Promise<TokenResult> {
  const discovery = await discover(req.issuer);
  const clientId = req.clientId ?? 'ehr-test-client';
  if (!req.login) {
    if (!req.clientKey) throw new TokenClientError('client_credentials needs the client key (private_key_jwt)');
    return tokenCall(discovery, req, clientId, { grant_type: 'client_credentials', ...(req.scope ? { scope: req.scope } : {}) });
  }
  const redirectUri = req.redirectUri ?? 'http://127.0.0.1/callback';
  const { code, verifier } = await loginForCode(discovery, {
    clientId,
    redirectUri,
    login: req.login,
    ...(req.scope ? { scope: req.scope } : {}),
    ...(req.dpop ? { dpopJkt: req.dpop.jkt } : {}),
  });
  return tokenCall(discovery, req, clientId, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier });
}
