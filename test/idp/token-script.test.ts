/**
 * `scripts/token.ts` against a running server: its main function for each kind of token, and the
 * script itself as a process (as `npm run token` runs it), including its messages when there is
 * no server, or a server without the embedded identity provider.
 */
import { citizenByKey } from '../../src/demo/population.js';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../scripts/token.js';
import { HELSEID, HELSENORGE } from '../../src/security/claims.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { freePort, type IdpServer, startIdpServer } from './support.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

let database: TestDatabase;
let server: IdpServer;

beforeAll(async () => {
  database = await openTestDatabase();
  server = await startIdpServer(database.db);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

async function token(...args: string[]) {
  let out = '';
  let err = '';
  const code = await main([...args, '--server', server.origin, '--data-dir', server.dataDir], {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

describe('npm run token (main)', () => {
  it('prints a clinician token, and only the token', async () => {
    const { code, out, err } = await token('clinician', 'fastlege');
    expect([code, err]).toEqual([0, '']);
    expect(out).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const claims = decodeJwt(out.trim());
    expect(claims).toMatchObject({ iss: server.issuer, aud: 'nhn:samplan', client_id: 'ehr-test-client', scope: 'nhn:samplan/read nhn:samplan/write' });
    expect(claims[HELSEID.hprNumber]).toBe('9144901');
  });

  it('prints a citizen token acting for someone, and a machine token', async () => {
    const citizen = await token('citizen', 'marte', '--for', 'lilly');
    expect(citizen.code).toBe(0);
    expect(decodeJwt(citizen.out.trim())[HELSENORGE.representation]).toMatchObject({ basis: 'FORELDREREPRESENTASJON', name: 'Lilly Hauge' });
    const machine = await token('machine');
    expect(machine.code).toBe(0);
    const claims = decodeJwt(machine.out.trim());
    expect(claims.scope).toBe('nhn:samplan/status');
    expect(claims).not.toHaveProperty(HELSEID.pid);
  });

  it('logs in through a portal client with --client', async () => {
    const { code, out } = await token('citizen', 'anne', '--client', 'samplan-citizen-portal');
    expect(code).toBe(0);
    expect(decodeJwt(out.trim()).client_id).toBe('samplan-citizen-portal');
  });

  it('with --dpop prints shell assignments: a bound token, its key and a proof for --htm/--htu', async () => {
    const htu = `${server.origin}/fhir/CarePlan`;
    const { code, out, err } = await token('clinician', 'fastlege', '--dpop', '--htm', 'POST', '--htu', `${htu}?x=1`);
    expect(code).toBe(0);
    const vars = Object.fromEntries(out.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    expect(Object.keys(vars)).toEqual(['ACCESS_TOKEN', 'DPOP_KEY', 'DPOP_PROOF']);
    const key = JSON.parse((vars.DPOP_KEY as string).replace(/^'|'$/g, '')) as JWK;
    expect(typeof key.d).toBe('string');
    const at = decodeJwt(vars.ACCESS_TOKEN as string);
    const header = decodeProtectedHeader(vars.DPOP_PROOF as string);
    expect(header.typ).toBe('dpop+jwt');
    expect((at.cnf as { jkt: string }).jkt).toBe(await calculateJwkThumbprint(header.jwk as JWK));
    const proof = decodeJwt(vars.DPOP_PROOF as string);
    expect(proof).toMatchObject({ htm: 'POST', htu });
    expect(typeof proof.ath).toBe('string');
    expect(err).toContain('curl -H "Authorization: DPoP $ACCESS_TOKEN"');

    // And a fresh proof from the printed key.
    const again = await token('proof', '--jwk', JSON.stringify(key), '--token', vars.ACCESS_TOKEN as string, '--htu', htu);
    expect(again.code).toBe(0);
    const fresh = decodeJwt(again.out.trim());
    expect(fresh.jti).not.toBe(proof.jti);
    expect(decodeProtectedHeader(again.out.trim()).jwk).toEqual(header.jwk);
  });

  it('prints a citizen persona\'s synthetic national id, for nhn-patient-nin', async () => {
    const { code, out } = await token('nin', 'anne');
    expect(code).toBe(0);
    expect(out).toBe(`${citizenByKey('anne').pid}\n`);
    expect(await token('nin', 'nobody')).toMatchObject({ code: 1, err: expect.stringMatching(/Unknown citizen "nobody"/) });
  });

  it('explains mistakes', async () => {
    expect(await token('clinician', 'nobody')).toMatchObject({ code: 1, err: expect.stringMatching(/Unknown clinician "nobody"; choose one of: fastlege/) });
    expect(await token('citizen', 'marte', '--for', 'anne')).toMatchObject({ code: 1, err: expect.stringMatching(/marte may act for: lilly, jonas/) });
    expect(await token('pharmacist')).toMatchObject({ code: 1, err: expect.stringMatching(/Unknown "pharmacist"/) });
    expect(await token()).toMatchObject({ code: 2, err: expect.stringMatching(/^Usage/) });
    const noKey = await main(['machine', '--server', server.origin, '--data-dir', path.join(server.dataDir, 'elsewhere')], { out: () => {}, err: () => {} });
    expect(noKey).toBe(1);
  });
});

describe('scripts/token.ts as a process', () => {
  const script = (args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'scripts/token.ts', ...args], { cwd: ROOT, timeout: 30_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );

  it('prints a token', async () => {
    const { code, stdout } = await script(['clinician', 'kardiolog', '--server', server.origin, '--data-dir', server.dataDir]);
    expect(code).toBe(0);
    expect(decodeJwt(stdout.trim())[HELSEID.hprNumber]).toBe('9144905');
  });

  it('says so when no server is running, or the server has no embedded identity provider', async () => {
    const port = await freePort();
    const down = await script(['machine', '--server', `http://127.0.0.1:${port}`, '--data-dir', server.dataDir]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`token: No server answers at http://127.0.0.1:${port} (ECONNREFUSED). Start Samplan (npm start) or pass --server URL.`);

    const other = Fastify();
    other.get('/healthz', async () => ({ status: 'ok' }));
    await other.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port: otherPort } = other.server.address() as { port: number };
      const external = await script(['machine', '--server', `http://127.0.0.1:${otherPort}`, '--data-dir', server.dataDir]);
      expect(external.code).toBe(1);
      expect(external.stderr).toMatch(/does not run the embedded identity provider.*external issuer/);
    } finally {
      await other.close();
    }
  });
});
