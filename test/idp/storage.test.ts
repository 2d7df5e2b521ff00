/**
 * Several instances on one database share keys (idp_keys) and artifacts (idp_artifacts): a login
 * started on one instance finishes on another, and a client assertion used on one is refused on
 * the other.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeJwt, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientAssertion, CookieJar, tokenCall } from '../../src/idp/token-client.js';
import { HELSEID } from '../../src/security/claims.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { type IdpServer, startIdpServer } from './support.js';

function clientKey(server: IdpServer): JWK {
  const { client_id: _id, ...key } = JSON.parse(readFileSync(server.idp.clientKeyFile, 'utf8')) as JWK & { client_id: string };
  return key;
}

describe('two instances behind one address share logins and replay detection', () => {
  let database: TestDatabase;
  let a: IdpServer;
  let b: IdpServer;

  beforeAll(async () => {
    database = await openTestDatabase();
    a = await startIdpServer(database.db);
    // B serves the same issuer from another port, as a second instance behind a load balancer would.
    b = await startIdpServer(database.db, { issuer: a.issuer, dataDir: a.dataDir });
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await database?.drop();
  });

  it('uses the database and the same keys', () => {
    expect(b.idp.jwks).toEqual(a.idp.jwks);
  });

  it('runs each step of a login on alternating instances', async () => {
    const jar = new CookieJar();
    const redirectUri = 'http://127.0.0.1/callback';
    const verifier = 'v'.repeat(43);
    const at = (server: IdpServer, url: string) => {
      const u = new URL(url, a.issuer);
      return `${server.origin}${u.pathname}${u.search}`;
    };
    const get = async (url: string) => {
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header(url) ?? '' } });
      jar.store(res, url);
      return res;
    };
    const auth = new URL(a.discovery.authorization_endpoint);
    auth.search = new URLSearchParams({
      client_id: 'ehr-test-client',
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: 'openid nhn:samplan/read',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      state: 's',
    }).toString();
    const started = await get(auth.href); // on A
    expect(started.status).toBe(303);
    const page = await get(at(b, started.headers.get('location') as string)); // login page on B
    expect(page.status).toBe(200);
    const loginUrl = at(a, started.headers.get('location') as string); // the form is posted on A
    const posted = await fetch(loginUrl, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header(loginUrl) ?? '' },
      body: 'person=clinician%3Ahjemmesykepleier',
    });
    jar.store(posted, loginUrl);
    expect(posted.status).toBe(303);
    const resumed = await get(at(b, posted.headers.get('location') as string)); // resume on B
    const callback = new URL(resumed.headers.get('location') as string);
    expect(callback.href.startsWith(redirectUri)).toBe(true);
    const code = callback.searchParams.get('code') as string;
    const result = await tokenCall(b.discovery, { clientKey: clientKey(a) }, 'ehr-test-client', {
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
    }); // token on B
    const claims = decodeJwt(result.accessToken);
    expect(claims.iss).toBe(a.issuer);
    expect(claims[HELSEID.hprNumber]).toBe('9144902');
    // The code is used up for A too.
    const again = await fetch(a.discovery.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        code_verifier: verifier,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await clientAssertion('ehr-test-client', clientKey(a), a.issuer),
      }).toString(),
    });
    expect(again.status).toBe(400);
  });

  it('refuses on one instance a client assertion already used on the other', async () => {
    const assertion = await clientAssertion('ehr-test-client', clientKey(a), a.issuer);
    const post = (server: IdpServer) =>
      fetch(server.discovery.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          scope: 'nhn:samplan/status',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }).toString(),
      });
    expect((await post(a)).status).toBe(200);
    expect((await post(b)).status).toBe(401);
  });
});
