/**
 * Prints an access token from a running Samplan's embedded identity provider, for curl:
 *
 *   npm run -s token -- clinician fastlege
 *   npm run -s token -- citizen marte --for lilly
 *   npm run -s token -- machine
 *   npm run -s token -- clinician fastlege --dpop --htu http://localhost:8080/fhir/CarePlan
 *
 * It goes through the real endpoints: persons log in through the login page (authorization code
 * + PKCE), machines use client_credentials, and both authenticate as `ehr-test-client` with
 * `private_key_jwt`, using the key the server writes to its data directory. Run with `--help`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeJwt, type JWK } from 'jose';
import { citizens, clinicians } from '../src/demo/population.js';
import { EHR_CLIENT_KEY_FILE } from '../src/idp/index.js';
import { CLIENT_IDS, representationsOf, requireActingFor, requireCitizen, requireClinician } from '../src/idp/personas.js';
import { dpopKeyFromJwk, dpopProof, generateDpopKey, requestToken, TokenClientError, type PersonLogin } from '../src/idp/token-client.js';
import { apiScopes } from '../src/security/claims.js';

const USAGE = `Usage: npm run -s token -- <who> [options]

who:
  clinician KEY              a health worker (HelseID-shaped token)
  citizen KEY [--for KEY]    a citizen, acting for themself or for someone they represent
  machine                    the EHR test client itself (client_credentials)
  proof                      a new DPoP proof for a DPoP-bound token (needs --jwk and --token)
  list                       the personas you can log in as
  nin KEY                    the (synthetic) national id of a citizen persona, for nhn-patient-nin

options:
  --server URL     the Samplan server (default http://localhost:8080)
  --issuer URL     the identity provider (default <server>/idp)
  --scope SCOPES   scopes to ask for (default "nhn:samplan/read nhn:samplan/write"; machine: "nhn:samplan/status")
  --data-dir DIR   the server's data directory, holding ${EHR_CLIENT_KEY_FILE} (default $DATA_DIR or ./data)
  --client ID      log in through another client, e.g. samplan-citizen-portal (public: no key used)
  --redirect-uri U the redirect URI to use with --client (default <server>/clinician|citizen/callback)
  --dpop           make the token DPoP-bound; also prints the DPoP key and a proof for --htm/--htu
  --htm METHOD     method of the printed proof (default GET)
  --htu URL        URL of the printed proof (default <server>/fhir/metadata)
  --jwk JSON       (proof) the DPoP private key printed with --dpop
  --token TOKEN    (proof) the DPoP-bound access token
  --nonce=NONCE    put this server nonce (from a DPoP-Nonce header) in the printed proof
                   (write it with "=": a nonce may begin with "-")
  --decode         also print the token's claims (to stderr)

Without --dpop the token alone is printed, so TOKEN=$(npm run -s token -- clinician fastlege) works.
With --dpop the output is shell assignments: eval "$(npm run -s token -- clinician fastlege --dpop)".`;

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function listPersonas(io: Io): void {
  io.out('Clinicians (npm run -s token -- clinician KEY):\n');
  for (const c of clinicians) io.out(`  ${c.key.padEnd(18)} ${c.name.given} ${c.name.family}, ${c.title}\n`);
  io.out('Citizens (npm run -s token -- citizen KEY [--for KEY]):\n');
  for (const c of citizens) {
    const reps = representationsOf(c.key).map((r) => `${r.person.key} (${r.representation.basis})`);
    io.out(`  ${c.key.padEnd(18)} ${c.name.given} ${c.name.family}, ${c.about}${reps.length ? `; --for ${reps.join(', ')}` : ''}\n`);
  }
}

async function readClientKey(dataDir: string): Promise<JWK> {
  const file = path.resolve(dataDir, EHR_CLIENT_KEY_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new TokenClientError(
      `No key for ${CLIENT_IDS.ehr} at ${file}. The embedded identity provider writes it when the server starts: ` +
        'start the server (npm start), or pass --data-dir with the server\'s DATA_DIR.',
    );
  }
  try {
    const jwk = JSON.parse(text) as JWK & { client_id?: string };
    if (typeof jwk.d !== 'string') throw new Error('not a private key');
    const { client_id: _clientId, ...key } = jwk;
    return key;
  } catch (err) {
    throw new TokenClientError(`${file} does not hold a private JWK: ${(err as Error).message}`);
  }
}

/** Runs the command; returns the exit code. */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        server: { type: 'string', default: 'http://localhost:8080' },
        issuer: { type: 'string' },
        scope: { type: 'string' },
        'data-dir': { type: 'string', default: process.env.DATA_DIR || 'data' },
        client: { type: 'string' },
        'redirect-uri': { type: 'string' },
        for: { type: 'string' },
        dpop: { type: 'boolean', default: false },
        htm: { type: 'string', default: 'GET' },
        htu: { type: 'string' },
        jwk: { type: 'string' },
        token: { type: 'string' },
        nonce: { type: 'string' },
        decode: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  const [who, key, ...extra] = positionals;
  if (o.help || !who) {
    (o.help ? io.out : io.err)(`${USAGE}\n`);
    return o.help ? 0 : 2;
  }
  const server = o.server.replace(/\/+$/, '');
  const issuer = (o.issuer ?? `${server}/idp`).replace(/\/+$/, '');
  const scopes = apiScopes('nhn:samplan');
  const htu = o.htu ?? `${server}/fhir/metadata`;

  try {
    if (who === 'list') {
      listPersonas(io);
      return 0;
    }
    if (who === 'nin') {
      io.out(`${requireCitizen(key ?? '').pid}\n`);
      return 0;
    }
    if (who === 'proof') {
      if (!o.jwk || !o.token) throw new TokenClientError('proof needs --jwk (the DPoP key printed with --dpop) and --token');
      const dpop = await dpopKeyFromJwk(JSON.parse(o.jwk) as JWK);
      io.out(`${await dpopProof(dpop, { htm: o.htm, htu, accessToken: o.token, ...(o.nonce ? { nonce: o.nonce } : {}) })}\n`);
      return 0;
    }

    let login: PersonLogin | undefined;
    if (who === 'clinician' || who === 'citizen') {
      if (!key) throw new TokenClientError(`Say which ${who}: npm run -s token -- ${who} KEY (npm run -s token -- list shows them)`);
      if (who === 'clinician') {
        requireClinician(key);
        if (o.for) throw new TokenClientError('--for is for citizens');
      } else {
        requireCitizen(key);
        requireActingFor(key, o.for);
      }
      login = { kind: who, persona: key, ...(o.for ? { actingFor: o.for } : {}) };
    } else if (who !== 'machine') {
      throw new TokenClientError(`Unknown "${who}": say clinician, citizen, machine, proof or list`);
    }
    if (extra.length || (who === 'machine' && key)) throw new TokenClientError(`Unexpected argument: ${[key, ...extra].filter(Boolean).join(' ')}`);

    const clientId = o.client ?? CLIENT_IDS.ehr;
    const confidential = clientId === CLIENT_IDS.ehr;
    if (!confidential && !login) throw new TokenClientError('machine tokens are for the confidential ehr-test-client only');
    const clientKey = confidential ? await readClientKey(o['data-dir']) : undefined;
    const dpop = o.dpop ? await generateDpopKey() : undefined;
    const portal = login?.kind === 'citizen' ? 'citizen' : 'clinician';
    const redirectUri = o['redirect-uri'] ?? (confidential ? undefined : `${new URL(issuer).origin}/${portal}/callback`);
    const scope = o.scope ?? (login ? `${scopes.read} ${scopes.write}` : scopes.status);

    const result = await requestToken({
      issuer,
      clientId,
      scope,
      ...(clientKey ? { clientKey } : {}),
      ...(redirectUri ? { redirectUri } : {}),
      ...(dpop ? { dpop } : {}),
      ...(login ? { login } : {}),
    });

    if (o.decode) io.err(`${JSON.stringify(decodeJwt(result.accessToken), null, 2)}\n`);
    if (!dpop) {
      io.out(`${result.accessToken}\n`);
      return 0;
    }
    const proof = await dpopProof(dpop, { htm: o.htm, htu, accessToken: result.accessToken, ...(o.nonce ? { nonce: o.nonce } : {}) });
    io.out(`ACCESS_TOKEN=${result.accessToken}\n`);
    io.out(`DPOP_KEY=${shellQuote(JSON.stringify(dpop.privateJwk))}\n`);
    io.out(`DPOP_PROOF=${proof}\n`);
    io.err(
      `# token_type ${result.tokenType}, expires in ${result.expiresIn} s; the proof is for ${o.htm.toUpperCase()} ${htu} and good for one request:\n` +
        `#   curl -H "Authorization: DPoP $ACCESS_TOKEN" -H "DPoP: $DPOP_PROOF" ${htu}\n` +
        `# another proof: npm run -s token -- proof --jwk "$DPOP_KEY" --token "$ACCESS_TOKEN" --htm GET --htu URL\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof TokenClientError || (err instanceof Error && /^Unknown (clinician|citizen)|cannot act for/.test(err.message))) {
      io.err(`token: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
