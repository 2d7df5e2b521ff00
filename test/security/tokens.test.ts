/**
 * Token and DPoP validation: every way a credential can be wrong is refused with 401, a clear
 * OperationOutcome and a WWW-Authenticate challenge; the right ones get through.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { HELSEID } from '../../src/security/claims.js';
import { startTestServer, type TestServer } from '../support/app.js';
import { clinicianToken, dpopKey, dpopProof, htu, nhnHeaders, seedPatient } from '../support/security.js';

let t: TestServer;
const nin = citizenByKey('anne').pid;

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  await seedPatient(t, 'anne');
});
afterAll(async () => t?.close());

const get = (headers: Record<string, string>, path = 'CarePlan') => t.request<OperationOutcome>('GET', path, { headers: { ...nhnHeaders({ nin }), ...headers } });
const claims = (extra: Record<string, unknown> = {}) => ({ ...t.app.idp!.clinicianClaims('fastlege'), ...extra });
const sign = (extra: Record<string, unknown> = {}) => t.app.idp!.issueAccessToken(claims(extra));
const code = (o: OperationOutcome) => o.issue?.[0]?.details?.coding?.[0]?.code;

function expect401(res: Awaited<ReturnType<typeof get>>, errorCode: string, says?: RegExp) {
  expect(res.status).toBe(401);
  expect(res.body.resourceType).toBe('OperationOutcome');
  expect(code(res.body)).toBe(errorCode);
  expect(res.headers['www-authenticate']).toMatch(/(Bearer|DPoP) realm="samplan"/);
  if (says) expect(res.body.issue?.[0]?.details?.text).toMatch(says);
}

describe('access tokens', () => {
  it('lets a valid HelseID token through', async () => {
    const res = await get({ authorization: `Bearer ${await sign()}` });
    expect(res.status).toBe(200);
  });

  it('asks for credentials when there are none', async () => {
    expect401(await get({}), 'UNAUTHENTICATED', /needs an access token/);
  });

  it.each([
    ['an unknown scheme', 'Basic dXNlcjpwYXNz', /must be "DPoP <token>" or "Bearer <token>"/],
    ['a token that is not a JWT', 'Bearer not-a-token', /not a well-formed JWT/],
  ])('refuses %s', async (_name, authorization, says) => {
    expect401(await get({ authorization }), 'INVALID_TOKEN', says);
  });

  it('refuses a wrong issuer', async () => {
    expect401(await get({ authorization: `Bearer ${await sign({ iss: 'https://evil.example/idp' })}` }), 'INVALID_TOKEN', /issuer/);
  });

  it('refuses a wrong audience', async () => {
    expect401(await get({ authorization: `Bearer ${await sign({ aud: 'nhn:someone-else' })}` }), 'INVALID_TOKEN', /audience/);
  });

  it('refuses an expired token and one not valid yet (beyond the leeway)', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect401(await get({ authorization: `Bearer ${await sign({ iat: now - 7200, nbf: now - 7200, exp: now - 120 })}` }), 'INVALID_TOKEN', /expired/);
    expect401(await get({ authorization: `Bearer ${await sign({ nbf: now + 600 })}` }), 'INVALID_TOKEN', /not valid yet/);
  });

  it('refuses a signature by another key, and a tampered payload', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT(claims({ iss: t.app.idp!.issuer, aud: 'nhn:samplan', exp: Math.floor(Date.now() / 1000) + 600 }))
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: (t.app.idp!.jwks.keys[0] as { kid: string }).kid })
      .sign(privateKey);
    expect401(await get({ authorization: `Bearer ${forged}` }), 'INVALID_TOKEN', /signature/);
    const [h, p, s] = (await sign()).split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    payload[HELSEID.hprNumber] = '9999999';
    const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    expect401(await get({ authorization: `Bearer ${tampered}` }), 'INVALID_TOKEN', /signature/);
  });

  it('refuses alg none and HMAC signed with the public key', async () => {
    const body = Buffer.from(JSON.stringify(claims({ iss: t.app.idp!.issuer, aud: 'nhn:samplan', exp: Math.floor(Date.now() / 1000) + 600 }))).toString('base64url');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${body}.`;
    expect401(await get({ authorization: `Bearer ${none}` }), 'INVALID_TOKEN');
    const publicPem = new TextEncoder().encode(JSON.stringify(t.app.idp!.jwks.keys[0]));
    const hmac = await new SignJWT(claims({ iss: t.app.idp!.issuer, aud: 'nhn:samplan', exp: Math.floor(Date.now() / 1000) + 600 }))
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: (t.app.idp!.jwks.keys[0] as { kid: string }).kid })
      .sign(publicPem);
    expect401(await get({ authorization: `Bearer ${hmac}` }), 'INVALID_TOKEN', /algorithm/);
  });

  it.each([
    ['security level 3', { [HELSEID.securityLevel]: '3' }, /security_level/],
    ['no point of care', { [HELSEID.orgnrChild]: undefined }, /orgnr_child/],
    ['an invalid legal entity', { [HELSEID.orgnrParent]: '123456789' }, /orgnr_parent/],
    ['an invalid pid', { [HELSEID.pid]: '12345678901' }, /pid/],
  ])('refuses a personnel token with %s', async (_name, extra, says) => {
    expect401(await get({ authorization: `Bearer ${await sign(extra)}` }), 'INVALID_TOKEN', says);
  });

  it('refuses citizen tokens below the highest assurance level and with a malformed representation', async () => {
    const idp = t.app.idp!;
    const low = await idp.issueAccessToken({ ...idp.citizenClaims('anne'), acr: 'idporten-loa-substantial' });
    expect401(await t.request('GET', 'CarePlan', { headers: { authorization: `Bearer ${low}` } }), 'INVALID_TOKEN', /acr/);
    const badRep = await idp.issueAccessToken({ ...idp.citizenClaims('anne'), 'helsenorge://claims/representation': { basis: 'NABO', pid: nin } });
    expect401(await t.request('GET', 'CarePlan', { headers: { authorization: `Bearer ${badRep}` } }), 'INVALID_TOKEN', /representation/);
  });

  it('caches nothing that would let a revoked signature pass: a verified token still needs its headers', async () => {
    const token = await sign();
    expect((await get({ authorization: `Bearer ${token}` })).status).toBe(200);
    const noRole = await t.request('GET', 'CarePlan', { headers: { authorization: `Bearer ${token}`, 'nhn-patient-nin': nin } });
    expect(noRole.status).toBe(400);
  });
});

describe('DPoP', () => {
  async function bound() {
    const key = await dpopKey();
    const token = await clinicianToken(t, 'fastlege', { jkt: key.jkt });
    return { key, token };
  }

  it('accepts a DPoP-bound token with a valid proof', async () => {
    const { key, token } = await bound();
    const proof = await dpopProof(key, { htm: 'GET', htu: htu('CarePlan'), accessToken: token });
    expect((await get({ authorization: `DPoP ${token}`, dpop: proof })).status).toBe(200);
  });

  it('refuses a replayed proof', async () => {
    const { key, token } = await bound();
    const proof = await dpopProof(key, { htm: 'GET', htu: htu('CarePlan'), accessToken: token });
    expect((await get({ authorization: `DPoP ${token}`, dpop: proof })).status).toBe(200);
    expect401(await get({ authorization: `DPoP ${token}`, dpop: proof }), 'INVALID_DPOP_PROOF', /used before/);
  });

  it('refuses replays racing each other', async () => {
    const { key, token } = await bound();
    const proof = await dpopProof(key, { htm: 'GET', htu: htu('CarePlan'), accessToken: token });
    const results = await Promise.all(Array.from({ length: 5 }, () => get({ authorization: `DPoP ${token}`, dpop: proof })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
  });

  it('refuses a proof by another key than the token is bound to', async () => {
    const { token } = await bound();
    const other = await dpopKey();
    const proof = await dpopProof(other, { htm: 'GET', htu: htu('CarePlan'), accessToken: token });
    expect401(await get({ authorization: `DPoP ${token}`, dpop: proof }), 'INVALID_DPOP_PROOF', /another key/);
  });

  it.each([
    ['another method', { htm: 'POST' }, /is for POST/],
    ['another URL', { htu: htu('Patient') }, /another URL/],
    ['another token', { ath: 'x'.repeat(43) }, /hash of this access token/],
    ['an old iat', { iat: Math.floor(Date.now() / 1000) - 3600 }, /too old/],
  ])('refuses a proof for %s', async (_name, change, says) => {
    const { key, token } = await bound();
    const proof = await dpopProof(key, { htm: 'GET', htu: htu('CarePlan'), accessToken: token, ...change });
    expect401(await get({ authorization: `DPoP ${token}`, dpop: proof }), 'INVALID_DPOP_PROOF', says);
  });

  it('refuses a proof with the wrong typ or a private key in its header', async () => {
    const { key, token } = await bound();
    const wrongTyp = await dpopProof(key, { htm: 'GET', htu: htu('CarePlan'), accessToken: token }, { typ: 'JWT' });
    expect401(await get({ authorization: `DPoP ${token}`, dpop: wrongTyp }), 'INVALID_DPOP_PROOF', /typ/);
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const leaky = await dpopProof(key, { htm: 'GET', htu: htu('CarePlan'), accessToken: token }, { jwk: privateJwk });
    expect401(await get({ authorization: `DPoP ${token}`, dpop: leaky }), 'INVALID_DPOP_PROOF', /public key only/);
  });

  it('refuses a bound token sent as Bearer or without a proof, and an unbound token sent as DPoP', async () => {
    const { token } = await bound();
    expect401(await get({ authorization: `Bearer ${token}` }), 'INVALID_TOKEN', /bound to a DPoP key/);
    expect401(await get({ authorization: `DPoP ${token}` }), 'INVALID_DPOP_PROOF', /needs a DPoP proof/);
    expect401(await get({ authorization: `DPoP ${await sign()}` }), 'INVALID_TOKEN', /not bound/);
  });
});

describe('DPoP nonces and Bearer policy', () => {
  let strict: TestServer;
  beforeAll(async () => {
    strict = await startTestServer({ REQUIRE_DPOP_NONCE: 'true', ALLOW_BEARER: 'false' }, { auth: 'tokens' });
    await seedPatient(strict, 'anne');
  });
  afterAll(async () => strict?.close());

  it('requires a server nonce and hands one out', async () => {
    const key = await dpopKey();
    const token = await clinicianToken(strict, 'fastlege', { jkt: key.jkt });
    const first = await strict.request<OperationOutcome>('GET', 'CarePlan', {
      headers: { ...nhnHeaders({ nin }), authorization: `DPoP ${token}`, dpop: await dpopProof(key, { htm: 'GET', htu: htu('CarePlan'), accessToken: token }) },
    });
    expect(first.status).toBe(401);
    expect(first.headers['www-authenticate']).toMatch(/error="use_dpop_nonce"/);
    const nonce = first.headers['dpop-nonce'] as string;
    expect(nonce).toBeTruthy();
    const second = await strict.request('GET', 'CarePlan', {
      headers: { ...nhnHeaders({ nin }), authorization: `DPoP ${token}`, dpop: await dpopProof(key, { htm: 'GET', htu: htu('CarePlan'), accessToken: token, nonce }) },
    });
    expect(second.status).toBe(200);
  });

  it('refuses Bearer tokens when only DPoP is allowed', async () => {
    const token = await clinicianToken(strict, 'fastlege');
    const res = await strict.request<OperationOutcome>('GET', 'CarePlan', { headers: { ...nhnHeaders({ nin }), authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^DPoP /);
  });
});
