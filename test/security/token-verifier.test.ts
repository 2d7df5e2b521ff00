/**
 * TokenVerifier against an issuer found by OIDC discovery over real HTTP: JWKS fetched from the
 * discovery document, keys rotated by the issuer are picked up, and tokens that are not access
 * tokens are refused.
 */
import { webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FhirError } from '../../src/fhir/outcomes.js';
import { discoverIssuer, TokenVerifier } from '../../src/security/tokens.js';

let server: Server;
let issuer = '';
let published: JWK[] = [];
let jwksFetches = 0;

async function newKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { privateKey, jwk };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    else if (req.url === '/jwks') {
      jwksFetches++;
      res.end(JSON.stringify({ keys: published }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const claims = () => ({ iss: issuer, aud: 'nhn:samplan', client_id: 'x', scope: 'nhn:samplan/read' });
const sign = (key: webcrypto.CryptoKey, kid: string, typ = 'at+jwt', extra: Record<string, unknown> = {}) =>
  new SignJWT({ ...claims(), ...extra }).setProtectedHeader({ alg: 'ES256', kid, typ }).setIssuedAt().setExpirationTime('5m').sign(key);

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FhirError);
    expect((err as FhirError).status).toBe(401);
    return (err as FhirError).outcome.issue?.[0]?.details?.text ?? '';
  }
  throw new Error('expected a refusal');
}

describe('TokenVerifier with OIDC discovery', () => {
  it('verifies with the published keys and follows a key rotation', async () => {
    const first = await newKey('k1');
    published = [first.jwk];
    const verifier = new TokenVerifier([await discoverIssuer(issuer, 'personnel', { cooldownMs: 0 })], { audience: 'nhn:samplan', clockToleranceSeconds: 5, allowBearer: true });
    const ok = await verifier.verify(await sign(first.privateKey, 'k1'));
    expect(ok.claims.client_id).toBe('x');
    const fetchesBefore = jwksFetches;
    // The issuer rotates: a token signed with the new key makes the verifier fetch the JWKS again.
    const second = await newKey('k2');
    published = [first.jwk, second.jwk];
    await new Promise((r) => setTimeout(r, 10));
    const rotated = await verifier.verify(await sign(second.privateKey, 'k2'));
    expect(rotated.claims.iss).toBe(issuer);
    expect(jwksFetches).toBeGreaterThan(fetchesBefore);
  });

  it('refuses a token that is not an access token, one without exp, and an unknown key', async () => {
    const key = await newKey('k3');
    published = [key.jwk];
    const verifier = new TokenVerifier([await discoverIssuer(issuer, 'personnel')], { audience: 'nhn:samplan', clockToleranceSeconds: 5, allowBearer: true });
    expect(await refusal(verifier.verify(await sign(key.privateKey, 'k3', 'JWT')))).toMatch(/not an access token/);
    const noExp = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: 'k3', typ: 'at+jwt' }).setIssuedAt().sign(key.privateKey);
    expect(await refusal(verifier.verify(noExp))).toMatch(/exp/);
    const stranger = await newKey('k-unknown');
    expect(await refusal(verifier.verify(await sign(stranger.privateKey, 'k-unknown')))).toMatch(/key the issuer does not publish|could not be verified/);
  });

  it('will not start with an issuer whose discovery document names another issuer', async () => {
    await expect(discoverIssuer(`${issuer}/`, 'personnel')).rejects.toThrow(/names another issuer/);
  });
});
