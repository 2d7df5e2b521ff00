/**
 * The embedded identity provider over real HTTP: discovery and JWKS, key persistence, the
 * authorization code + PKCE flow through the login page for clinicians and citizens (also acting
 * for a child), client_credentials with private_key_jwt, HelseID's client assertion rules, DPoP
 * binding, PKCE enforcement, and tokens from `issueAccessToken`. Token claims are checked exactly,
 * against values written out from the demo population, and signatures against the JWKS.
 */
import { executionAsyncId } from 'node:async_hooks';
import { readFileSync, statSync } from 'node:fs';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey, clinicianByKey, organisation } from '../../src/demo/population.js';
import { createEmbeddedIdp } from '../../src/idp/index.js';
import {
  clientAssertion,
  CookieJar,
  dpopProof,
  generateDpopKey,
  loginForCode,
  requestToken,
  tokenCall,
  TokenClientError,
} from '../../src/idp/token-client.js';
import { CITIZEN_ACR, HELSEID, HELSENORGE } from '../../src/security/claims.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { type IdpServer, SCOPES, startIdpServer } from './support.js';

let database: TestDatabase;
let server: IdpServer;
let ehrKey: JWK;

const RW = 'nhn:samplan/read nhn:samplan/write';

beforeAll(async () => {
  database = await openTestDatabase();
  server = await startIdpServer(database.db);
  const { client_id: _id, ...key } = JSON.parse(readFileSync(server.idp.clientKeyFile, 'utf8')) as JWK & { client_id: string };
  ehrKey = key;
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

async function verify(token: string) {
  const options = { issuer: server.issuer, audience: 'nhn:samplan', typ: 'at+jwt', algorithms: ['RS256'] };
  const local = await jwtVerify(token, createLocalJWKSet(server.idp.jwks as never), options);
  const remote = await jwtVerify(token, createRemoteJWKSet(new URL(server.discovery.jwks_uri)), options);
  expect(remote.payload).toEqual(local.payload);
  expect(local.protectedHeader).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: server.idp.jwks.keys[0]?.kid });
  const p = local.payload;
  expect(p.nbf).toBe(p.iat);
  expect((p.exp as number) - (p.iat as number)).toBe(3600);
  expect(Math.abs((p.iat as number) - Date.now() / 1000)).toBeLessThan(30);
  expect(typeof p.jti).toBe('string');
  return p as Record<string, unknown>;
}

/** The claims other than the registered ones (iss, aud, iat, nbf, exp, jti). */
function personal(payload: Record<string, unknown>): Record<string, unknown> {
  const { iss, aud, iat, nbf, exp, jti, ...rest } = payload;
  expect(iss).toBe(server.issuer);
  expect(aud).toBe('nhn:samplan');
  expect([iat, nbf, exp, jti].every((v) => v !== undefined)).toBe(true);
  return rest;
}

async function postToken(body: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(server.discovery.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body).toString(),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

async function assertion(claims: Record<string, unknown>, options: { key?: JWK; alg?: string; header?: Record<string, unknown> } = {}) {
  const key = options.key ?? ehrKey;
  const alg = options.alg ?? 'ES256';
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: 'ehr-test-client', sub: 'ehr-test-client', aud: server.issuer, jti: crypto.randomUUID(), iat: now, nbf: now, exp: now + 60, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete (payload as Record<string, unknown>)[k];
  const { importJWK } = await import('jose');
  const signingKey = alg === 'HS256' ? new TextEncoder().encode('a-client-secret-that-is-long-enough!') : await importJWK(key, alg);
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', kid: key.kid, ...options.header }).sign(signingKey);
}

describe('discovery and keys', () => {
  it('publishes a discovery document for the issuer', () => {
    const d = server.discovery;
    expect(d.issuer).toBe(server.issuer);
    expect(d.jwks_uri).toBe(`${server.issuer}/jwks`);
    expect(d.token_endpoint).toBe(`${server.issuer}/token`);
    expect(d.authorization_endpoint).toBe(`${server.issuer}/auth`);
    expect(d.code_challenge_methods_supported).toEqual(['S256']);
    expect(d.token_endpoint_auth_methods_supported).toEqual(['private_key_jwt', 'none']);
    expect(d.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'PS256', 'RS256', 'EdDSA']));
    for (const list of ['dpop_signing_alg_values_supported', 'token_endpoint_auth_signing_alg_values_supported']) {
      expect((d[list] as string[]).some((alg) => alg.startsWith('HS'))).toBe(false);
    }
    expect(d.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'client_credentials']));
  });

  it('serves the public signing keys, the same as idp.jwks', async () => {
    const res = await fetch(server.discovery.jwks_uri);
    expect(res.status).toBe(200);
    const jwks = (await res.json()) as { keys: JWK[] };
    expect(jwks.keys).toHaveLength(1);
    const [key] = jwks.keys as [JWK];
    expect(key).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(key.kid).toBe(await calculateJwkThumbprint(key));
    for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(key).not.toHaveProperty(secret);
    expect(jwks).toEqual(server.idp.jwks);
  });

  it('keeps its keys in the database: a second provider on the same database has the same kid and client key', async () => {
    const before = readFileSync(server.idp.clientKeyFile, 'utf8');
    const other = await createEmbeddedIdp({ db: database.db, issuer: 'http://other.test/idp', scopes: SCOPES, dataDir: server.dataDir });
    expect(other.jwks).toEqual(server.idp.jwks);
    expect(readFileSync(other.clientKeyFile, 'utf8')).toBe(before);
    // A token signed by one validates with the other's keys.
    const token = await other.issueAccessToken(other.machineClaims('ehr-test-client'));
    await jwtVerify(token, createLocalJWKSet(server.idp.jwks as never), { audience: 'nhn:samplan' });
    const rows = await database.db.query<{ kid: string }>('SELECT kid FROM idp_keys ORDER BY kid');
    expect(rows.map((r) => r.kid)).toEqual([server.idp.jwks.keys[0]?.kid, 'client:ehr-test-client'].sort());
  });

  it('writes the ehr-test-client private key for npm run token, readable by the owner only', () => {
    const key = JSON.parse(readFileSync(server.idp.clientKeyFile, 'utf8')) as JWK & { client_id: string };
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', client_id: 'ehr-test-client' });
    expect(typeof key.d).toBe('string');
    expect(statSync(server.idp.clientKeyFile).mode & 0o777).toBe(0o600);
  });

  it('refuses an issuer it cannot be served under', async () => {
    await expect(createEmbeddedIdp({ db: database.db, issuer: 'http://localhost:8080', scopes: SCOPES, dataDir: server.dataDir })).rejects.toThrow(/needs a path/);
  });
});

describe('authorization code + PKCE', () => {
  it('gives a clinician (through the clinician portal) a HelseID-shaped token, exactly', async () => {
    const result = await requestToken({
      issuer: server.issuer,
      clientId: 'samplan-clinician-portal',
      redirectUri: `${server.origin}/clinician/callback`,
      scope: RW,
      login: { kind: 'clinician', persona: 'fastlege' },
    });
    expect(result.tokenType).toBe('Bearer');
    expect(result.expiresIn).toBe(3600);
    expect(result.scope).toBe(RW);
    const payload = await verify(result.accessToken);
    const kari = clinicianByKey('fastlege');
    const org = organisation('lillevik-legekontor');
    expect(personal(payload)).toEqual({
      sub: expect.stringMatching(/^[\w-]{43}$/),
      client_id: 'samplan-clinician-portal',
      scope: RW,
      name: 'Kari Lindqvist',
      [HELSEID.pid]: kari.pid,
      [HELSEID.securityLevel]: '4',
      [HELSEID.hprNumber]: '9144901',
      [HELSEID.orgnrParent]: org.orgnrParent,
      [HELSEID.orgnrChild]: org.orgnrChild,
      [HELSEID.clientName]: 'Samplan klinikerportal',
    });
    // The ID token is for the portal: same subject, the person's name.
    const id = decodeJwt(result.idToken as string);
    expect(id).toMatchObject({ iss: server.issuer, aud: 'samplan-clinician-portal', sub: payload.sub });
    expect(id.sub).not.toContain(kari.pid);
  });

  it('gives a citizen acting for their child (through the citizen portal) a Helsenorge-shaped token, exactly', async () => {
    const result = await requestToken({
      issuer: server.issuer,
      clientId: 'samplan-citizen-portal',
      redirectUri: `${server.origin}/citizen/callback`,
      scope: RW,
      login: { kind: 'citizen', persona: 'marte', actingFor: 'lilly' },
    });
    const payload = await verify(result.accessToken);
    expect(personal(payload)).toEqual({
      sub: expect.stringMatching(/^[\w-]{43}$/),
      client_id: 'samplan-citizen-portal',
      scope: RW,
      [HELSENORGE.pid]: citizenByKey('marte').pid,
      [HELSENORGE.acr]: CITIZEN_ACR,
      amr: ['BankID'],
      name: 'Marte Hauge',
      [HELSENORGE.representation]: { basis: 'FORELDREREPRESENTASJON', pid: citizenByKey('lilly').pid, name: 'Lilly Hauge' },
    });
    expect(decodeJwt(result.idToken as string)).toMatchObject({ sub: payload.sub, acr: CITIZEN_ACR, amr: ['BankID'] });
  });

  it('carries the fullmakt scope, and no representation claim when the citizen acts for themself', async () => {
    const base = { issuer: server.issuer, clientId: 'samplan-citizen-portal', redirectUri: `${server.origin}/citizen/callback`, scope: RW };
    const fullmakt = decodeJwt((await requestToken({ ...base, login: { kind: 'citizen', persona: 'hanne', actingFor: 'anne' } })).accessToken);
    expect(fullmakt[HELSENORGE.representation]).toEqual({
      basis: 'FULLMAKT',
      pid: citizenByKey('anne').pid,
      name: 'Anne Nilsen',
      scope: ['innsyn', 'endre'],
    });
    const self = decodeJwt((await requestToken({ ...base, login: { kind: 'citizen', persona: 'marte' } })).accessToken);
    expect(self).not.toHaveProperty(HELSENORGE.representation);
    expect(self.sub).toBe(decodeJwt((await requestToken({ ...base, login: { kind: 'citizen', persona: 'marte', actingFor: 'jonas' } })).accessToken).sub);
  });

  it('lets the EHR client log in a clinician with private_key_jwt; the token names that client', async () => {
    const result = await requestToken({ issuer: server.issuer, clientKey: ehrKey, scope: `${RW} nhn:samplan/status`, login: { kind: 'clinician', persona: 'lungelege' } });
    const payload = await verify(result.accessToken);
    const org = organisation('helse-nordvest-lunge');
    expect(payload).toMatchObject({
      client_id: 'ehr-test-client',
      scope: `${RW} nhn:samplan/status`,
      [HELSEID.clientName]: 'EPJ-testklient',
      [HELSEID.hprNumber]: '9144904',
      [HELSEID.orgnrParent]: org.orgnrParent,
      [HELSEID.orgnrChild]: org.orgnrChild,
    });
  });

  it('grants a citizen no status scope even when asked', async () => {
    const result = await requestToken({
      issuer: server.issuer,
      clientKey: ehrKey,
      scope: `nhn:samplan/read nhn:samplan/status`,
      login: { kind: 'citizen', persona: 'anne' },
    });
    expect(decodeJwt(result.accessToken).scope).toBe('nhn:samplan/read');
  });

  it('matches the token endpoint exactly with clinicianClaims/citizenClaims', async () => {
    const viaEndpoint = decodeJwt((await requestToken({ issuer: server.issuer, clientKey: ehrKey, scope: RW, login: { kind: 'clinician', persona: 'kardiolog' } })).accessToken);
    expect(personal(viaEndpoint)).toEqual(server.idp.clinicianClaims('kardiolog', { clientId: 'ehr-test-client', scope: RW }));
    const citizen = decodeJwt(
      (await requestToken({ issuer: server.issuer, clientKey: ehrKey, scope: RW, login: { kind: 'citizen', persona: 'hanne', actingFor: 'anne' } })).accessToken,
    );
    expect(personal(citizen)).toEqual(server.idp.citizenClaims('hanne', { actingFor: 'anne', clientId: 'ehr-test-client', scope: RW }));
  });

  it('requires PKCE with S256 of every client, and the code_verifier at the token endpoint', async () => {
    const portal = { clientId: 'samplan-clinician-portal', redirectUri: `${server.origin}/clinician/callback`, scope: RW, login: { kind: 'clinician' as const, persona: 'fastlege' } };
    await expect(loginForCode(server.discovery, { ...portal, pkce: {} })).rejects.toThrow(/invalid_request.*PKCE/);
    await expect(loginForCode(server.discovery, { ...portal, pkce: { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' } })).rejects.toThrow(
      /invalid_request/,
    );
    await expect(
      loginForCode(server.discovery, { clientId: 'ehr-test-client', redirectUri: 'http://127.0.0.1/callback', login: portal.login, pkce: {} }),
    ).rejects.toThrow(/PKCE/);

    const { code, verifier } = await loginForCode(server.discovery, portal);
    const missing = await postToken({ grant_type: 'authorization_code', code, redirect_uri: portal.redirectUri, client_id: portal.clientId });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe('invalid_grant');
    // The failed attempt did not consume the code... but a wrong verifier is refused too, and then the code is gone.
    const wrong = await postToken({ grant_type: 'authorization_code', code, redirect_uri: portal.redirectUri, client_id: portal.clientId, code_verifier: `${verifier}x` });
    expect(wrong.body.error).toBe('invalid_grant');
  });

  it('gives each code once', async () => {
    const portal = { clientId: 'samplan-clinician-portal', redirectUri: `${server.origin}/clinician/callback`, scope: RW, login: { kind: 'clinician' as const, persona: 'fastlege' } };
    const { code, verifier } = await loginForCode(server.discovery, portal);
    const params = { grant_type: 'authorization_code', code, redirect_uri: portal.redirectUri, client_id: portal.clientId, code_verifier: verifier };
    expect((await postToken(params)).status).toBe(200);
    const again = await postToken(params);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
  });

  it('refuses a persona of the wrong kind for the client, and unknown personas', async () => {
    await expect(
      requestToken({ issuer: server.issuer, clientId: 'samplan-clinician-portal', redirectUri: `${server.origin}/clinician/callback`, login: { kind: 'citizen', persona: 'anne' } }),
    ).rejects.toThrow(/Samplan klinikerportal er for helsepersonell/);
    await expect(
      requestToken({ issuer: server.issuer, clientId: 'samplan-citizen-portal', redirectUri: `${server.origin}/citizen/callback`, login: { kind: 'clinician', persona: 'fastlege' } }),
    ).rejects.toThrow(/er for innbyggere/);
    await expect(requestToken({ issuer: server.issuer, clientKey: ehrKey, login: { kind: 'clinician', persona: 'ingen' } })).rejects.toThrow(/finnes ikke/);
    await expect(requestToken({ issuer: server.issuer, clientKey: ehrKey, login: { kind: 'citizen', persona: 'marte', actingFor: 'anne' } })).rejects.toThrow(
      TokenClientError,
    );
  });

  it('has no single sign-on: every authorization shows the login page, and switching persona just works', async () => {
    const jar = new CookieJar();
    const portal = { clientId: 'samplan-clinician-portal', redirectUri: `${server.origin}/clinician/callback`, scope: RW, jar };
    const exchange = async (code: string, verifier: string) =>
      decodeJwt(
        (await tokenCall(server.discovery, {}, portal.clientId, { grant_type: 'authorization_code', code, redirect_uri: portal.redirectUri, code_verifier: verifier }))
          .accessToken,
      );
    const first = await loginForCode(server.discovery, { ...portal, login: { kind: 'clinician', persona: 'fastlege' } });
    expect((await exchange(first.code, first.verifier))[HELSEID.hprNumber]).toBe('9144901');
    // The browser now holds a session cookie; the next authorization still asks who you are.
    const probe = new URL(server.discovery.authorization_endpoint);
    probe.search = new URLSearchParams({
      client_id: portal.clientId,
      response_type: 'code',
      redirect_uri: portal.redirectUri,
      scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }).toString();
    const res = await fetch(probe, { redirect: 'manual', headers: { cookie: jar.header(probe.href) ?? '' } });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toMatch(/^\/idp\/interaction\//);
    const second = await loginForCode(server.discovery, { ...portal, login: { kind: 'clinician', persona: 'koordinator' } });
    expect((await exchange(second.code, second.verifier))[HELSEID.hprNumber]).toBe('9144903');
  });
});

describe('client_credentials and client authentication', () => {
  it('gives the EHR client a machine token with its organisation and no person claims', async () => {
    const result = await requestToken({ issuer: server.issuer, clientKey: ehrKey, scope: 'nhn:samplan/status' });
    expect(result.tokenType).toBe('Bearer');
    const payload = await verify(result.accessToken);
    const org = organisation('lillevik-legekontor');
    expect(personal(payload)).toEqual({
      sub: 'ehr-test-client',
      client_id: 'ehr-test-client',
      scope: 'nhn:samplan/status',
      [HELSEID.orgnrParent]: org.orgnrParent,
      [HELSEID.orgnrChild]: org.orgnrChild,
      [HELSEID.clientName]: 'EPJ-testklient',
    });
    expect(personal(payload)).toEqual(server.idp.machineClaims('ehr-test-client'));
  });

  it('leaves no promise hooks on after its requests, and serves requests that overlap', async () => {
    // With promise hooks on (an AsyncLocalStorage in use), a promise continuation has an async id.
    const continuationId = () => new Promise((resolve) => setImmediate(resolve)).then(() => executionAsyncId());
    expect(await continuationId()).toBe(0);
    const results = await Promise.all(
      Array.from({ length: 12 }, () => requestToken({ issuer: server.issuer, clientKey: ehrKey, scope: 'nhn:samplan/status' })),
    );
    for (const result of results) expect((await verify(result.accessToken)).scope).toBe('nhn:samplan/status');
    expect(await continuationId()).toBe(0);
  });

  it('gives machine tokens the status scope only', async () => {
    const result = await requestToken({ issuer: server.issuer, clientKey: ehrKey, scope: 'nhn:samplan/read nhn:samplan/status' });
    expect(decodeJwt(result.accessToken).scope).toBe('nhn:samplan/status');
  });

  it('refuses client secrets', async () => {
    const post = await postToken({ grant_type: 'client_credentials', scope: 'nhn:samplan/status', client_id: 'ehr-test-client', client_secret: 'secret' });
    expect(post.status).toBe(401);
    expect(post.body.error).toBe('invalid_client');
    const basic = await postToken(
      { grant_type: 'client_credentials', scope: 'nhn:samplan/status' },
      { authorization: `Basic ${Buffer.from('ehr-test-client:secret').toString('base64')}` },
    );
    expect(basic.status).toBe(401);
    expect(basic.body.error).toBe('invalid_client');
    const none = await postToken({ grant_type: 'client_credentials', scope: 'nhn:samplan/status', client_id: 'ehr-test-client' });
    expect(none.status).toBe(401);
  });

  it('refuses an assertion with a wrong signature, an HMAC, or against HelseID rules', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const stranger = { ...(await exportJWK(privateKey)), kid: ehrKey.kid, alg: 'ES256' };
    const cases: Array<[string, Promise<string>]> = [
      ['wrong key', assertion({}, { key: stranger })],
      ['HS256', assertion({}, { alg: 'HS256' })],
      ['aud = token endpoint', assertion({ aud: server.discovery.token_endpoint })],
      ['aud = someone else', assertion({ aud: 'https://helseid-sts.nhn.no' })],
      ['exp 5 min ahead', assertion({ exp: Math.floor(Date.now() / 1000) + 300 })],
      ['no nbf', assertion({ nbf: undefined })],
      ['typ at+jwt', assertion({}, { header: { typ: 'at+jwt' } })],
    ];
    const mismatch = await postToken({
      grant_type: 'client_credentials',
      client_id: 'ehr-test-client',
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await assertion({ sub: 'someone' }),
    });
    expect([mismatch.status, mismatch.body.error, mismatch.body.error_description]).toEqual([400, 'invalid_request', 'client_id mismatch']);
    for (const [label, made] of cases) {
      const res = await postToken({
        grant_type: 'client_credentials',
        scope: 'nhn:samplan/status',
        client_id: 'ehr-test-client',
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: await made,
      });
      // oidc-provider answers invalid_client with a generic description; the reason is logged.
      expect([label, res.status, res.body.error, res.body.error_description]).toEqual([label, 401, 'invalid_client', 'client authentication failed']);
    }
  });

  it('accepts each assertion once (single-use jti)', async () => {
    const token = await clientAssertion('ehr-test-client', ehrKey, server.issuer);
    const body = { grant_type: 'client_credentials', scope: 'nhn:samplan/status', client_assertion_type: ASSERTION_TYPE, client_assertion: token };
    expect((await postToken(body)).status).toBe(200);
    const again = await postToken(body);
    expect(again.status).toBe(401);
    expect(again.body.error).toBe('invalid_client');
  });
});

describe('DPoP', () => {
  it('binds a client_credentials token to the proof key (cnf.jkt) and says token_type DPoP', async () => {
    const dpop = await generateDpopKey();
    const result = await requestToken({ issuer: server.issuer, clientKey: ehrKey, scope: 'nhn:samplan/status', dpop });
    expect(result.tokenType).toBe('DPoP');
    const payload = await verify(result.accessToken);
    expect(payload.cnf).toEqual({ jkt: await calculateJwkThumbprint(dpop.publicJwk) });
    expect(personal(payload)).toEqual(server.idp.machineClaims('ehr-test-client', { jkt: dpop.jkt }));
  });

  it('binds a public client’s code-flow token, and a token from issueAccessToken likewise', async () => {
    const dpop = await generateDpopKey('PS256');
    const result = await requestToken({
      issuer: server.issuer,
      clientId: 'samplan-citizen-portal',
      redirectUri: `${server.origin}/citizen/callback`,
      scope: RW,
      dpop,
      login: { kind: 'citizen', persona: 'dagny' },
    });
    expect(result.tokenType).toBe('DPoP');
    const payload = personal(await verify(result.accessToken));
    expect(payload).toEqual(server.idp.citizenClaims('dagny', { jkt: dpop.jkt }));
    expect(payload.cnf).toEqual({ jkt: dpop.jkt });
  });

  it('refuses a proof for another URL or used twice, and offers (without requiring) a nonce', async () => {
    const dpop = await generateDpopKey();
    const body = async () => ({
      grant_type: 'client_credentials',
      scope: 'nhn:samplan/status',
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await clientAssertion('ehr-test-client', ehrKey, server.issuer),
    });
    const elsewhere = await postToken(await body(), { dpop: await dpopProof(dpop, { htm: 'POST', htu: `${server.origin}/fhir/token` }) });
    expect([elsewhere.status, elsewhere.body.error]).toEqual([400, 'invalid_dpop_proof']);

    const proof = await dpopProof(dpop, { htm: 'POST', htu: server.discovery.token_endpoint });
    const ok = await postToken(await body(), { dpop: proof });
    expect(ok.status).toBe(200);
    const nonce = ok.headers.get('dpop-nonce');
    expect(nonce).toBeTruthy();
    const replay = await postToken(await body(), { dpop: proof });
    expect(replay.status).toBe(400);

    const withNonce = await postToken(await body(), { dpop: await dpopProof(dpop, { htm: 'POST', htu: server.discovery.token_endpoint, nonce: nonce as string }) });
    expect(withNonce.status).toBe(200);
    expect(withNonce.body.token_type).toBe('DPoP');
  });
});

describe('issueAccessToken and the claim helpers', () => {
  it('signs tokens that validate against jwks, shaped like the token endpoint’s', async () => {
    const token = await server.idp.issueAccessToken(server.idp.clinicianClaims('fastlege', { clientId: 'ehr-test-client' }));
    const payload = await verify(token);
    const viaEndpoint = decodeJwt((await requestToken({ issuer: server.issuer, clientKey: ehrKey, scope: RW, login: { kind: 'clinician', persona: 'fastlege' } })).accessToken);
    expect(Object.keys(payload)).toEqual(Object.keys(viaEndpoint));
    expect(personal(payload)).toEqual(personal(viaEndpoint));
  });

  it('honours expiresInSeconds and lets tests override claims', async () => {
    const token = await server.idp.issueAccessToken({ ...server.idp.citizenClaims('anne'), aud: 'nhn:other' }, { expiresInSeconds: 60 });
    const payload = decodeJwt(token);
    expect((payload.exp as number) - (payload.iat as number)).toBe(60);
    expect(payload.aud).toBe('nhn:other');
    await expect(jwtVerify(token, createLocalJWKSet(server.idp.jwks as never), { audience: 'nhn:samplan' })).rejects.toThrow(/aud/);
  });

  it('refuses unknown personas, representations and clients', () => {
    expect(() => server.idp.clinicianClaims('ingen')).toThrow(/Unknown clinician "ingen"; choose one of: fastlege/);
    expect(() => server.idp.citizenClaims('marte', { actingFor: 'anne' })).toThrow(/may act for: lilly, jonas/);
    expect(() => server.idp.citizenClaims('anne', { actingFor: 'marte' })).toThrow(/cannot act for anyone else/);
    expect(() => server.idp.machineClaims('samplan-clinician-portal')).toThrow(/not a client registered for an organisation/);
    expect(server.idp.citizenClaims('marte', { actingFor: 'self' })).toEqual(server.idp.citizenClaims('marte'));
  });
});

describe('pages and the rest of the server', () => {
  async function openLogin(clientId: string, redirectUri: string) {
    const jar = new CookieJar();
    const auth = new URL(server.discovery.authorization_endpoint);
    auth.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: `openid ${RW}`,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 'abc',
    }).toString();
    const res = await fetch(auth, { redirect: 'manual' });
    jar.store(res, auth.href);
    const url = new URL(res.headers.get('location') as string, auth).href;
    const page = await fetch(url, { headers: { cookie: jar.header(url) ?? '' } });
    return { url, jar, page, html: await page.text() };
  }

  it('shows an accessible Norwegian login page listing the clinicians for the clinician portal', async () => {
    const { page, html } = await openLogin('samplan-clinician-portal', `${server.origin}/clinician/callback`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(html).toMatch(/^<!DOCTYPE html>\n<html lang="nb">/);
    expect(html).toContain('<h1>Logg inn i Samplan (testmiljø)</h1>');
    expect(html).toMatch(/Testmiljø:.*syntetiske/);
    expect(html).toContain('Kari Lindqvist');
    expect(html).toContain('Lege, HPR-nummer 9144901');
    expect(html).toContain('Lillevik legekontor');
    expect(html).not.toContain('Marte Hauge');
    expect(html).not.toMatch(/<script|type="password"/);
    for (const [, label] of html.matchAll(/<button[^>]*>([^<]*)<\/button>/g)) expect(label?.trim()).not.toBe('');
  });

  it('asks a citizen with representations whom they act for, then logs them in', async () => {
    const { url, jar, html } = await openLogin('samplan-citizen-portal', `${server.origin}/citizen/callback`);
    expect(html).toContain('<h2 id="innbyggere">Innbyggere</h2>');
    expect(html).toContain('Marte Hauge');
    expect(html).not.toContain('Kari Lindqvist');
    const post = (form: Record<string, string>) =>
      fetch(url, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header(url) ?? '' },
        body: new URLSearchParams(form).toString(),
      });
    const step2 = await post({ person: 'citizen:marte' });
    expect(step2.status).toBe(200);
    const page = await step2.text();
    expect(page).toContain('<legend>Hvem handler du for?</legend>');
    expect(page).toMatch(/<input type="radio" id="for-self" name="for" value="self" checked>\s*<label for="for-self">Meg selv \(Marte Hauge\)<\/label>/);
    expect(page).toMatch(/<label for="for-lilly">Lilly Hauge, 8 år – som forelder<\/label>/);
    const done = await post({ person: 'citizen:marte', for: 'lilly' });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/idp\/auth\//);
  });

  it('lets the user cancel: the client gets access_denied', async () => {
    const { url, jar } = await openLogin('samplan-clinician-portal', `${server.origin}/clinician/callback`);
    const cancel = await fetch(`${url}/avbryt`, { method: 'POST', redirect: 'manual', headers: { cookie: jar.header(`${url}/avbryt`) ?? '' } });
    expect(cancel.status).toBe(303);
    const resume = new URL(cancel.headers.get('location') as string, url).href;
    const back = await fetch(resume, { redirect: 'manual', headers: { cookie: jar.header(resume) ?? '' } });
    const location = new URL(back.headers.get('location') as string);
    expect(location.origin + location.pathname).toBe(`${server.origin}/clinician/callback`);
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect(location.searchParams.get('state')).toBe('abc');
  });

  it('answers a stale login page with a Norwegian error page', async () => {
    const res = await fetch(`${server.issuer}/interaction/nothing-here`);
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toContain('<h1>Innloggingen er utløpt</h1>');
  });

  it('answers a login form it cannot read with a page, not the FHIR server’s error format', async () => {
    const res = await fetch(`${server.issuer}/interaction/abc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(415);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await res.text()).toContain('Skjemaet som ble sendt, kunne ikke leses.');
  });

  it('renders authorization errors in Norwegian', async () => {
    const res = await fetch(`${server.discovery.authorization_endpoint}?client_id=nobody&response_type=code`);
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toContain('lang="nb"');
    expect(html).toContain('Programmet som ba om innlogging er ikke kjent');
  });

  it('leaves the rest of the server alone: its routes and body parsing work as before', async () => {
    expect((await fetch(`${server.origin}/healthz`)).status).toBe(200);
    const echo = await fetch(`${server.origin}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(await echo.json()).toEqual({ received: { a: 1 } });
    const unknown = await fetch(`${server.issuer}/nothing`);
    expect(unknown.status).toBe(404);
  });
});
