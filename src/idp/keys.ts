/**
 * The embedded identity provider's keys, kept in `idp_keys` (migration 002) so tokens stay valid
 * across restarts and every instance on the same database signs with the same key.
 *
 * Rows are of two kinds, told apart by the `kid` column:
 * - signing keys: `kid` is the key's JWK thumbprint (RFC 7638), the `kid` in token headers. The
 *   newest signs; all are published in the JWKS (so a new key can be added for rotation).
 * - client keys: `kid` is `client:<client_id>`, the private key of a test client the provider
 *   registers statically (today `client:ehr-test-client`). Never published in the JWKS.
 *
 * Keys are made on first start, under an advisory lock so instances starting together agree.
 * Cookie-signing keys and the DPoP nonce secret are derived from the active signing key (HKDF),
 * so they too are shared by all instances without another table.
 */
import { hkdfSync } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Database } from '../store/db.js';

/** Arbitrary constant for pg_advisory_xact_lock: key creation happens once, whoever starts first. */
const KEY_LOCK = 7_346_113;
export const SIGNING_ALG = 'RS256';
export const CLIENT_KEY_ALG = 'ES256';
const CLIENT_PREFIX = 'client:';

export interface IdpKeys {
  /** Private signing JWKs, the active (newest) first. */
  signing: JWK[];
  /** Private JWKs of the statically registered test clients, by client_id. */
  clients: Map<string, JWK>;
}

async function newKey(alg: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg.startsWith('RS') ? { modulusLength: 2048 } : {}) });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg, use: 'sig' };
}

function parseJwk(text: string, kid: string): JWK {
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch {
    throw new Error(`idp_keys row ${kid} does not hold a JSON Web Key`);
  }
  if (typeof jwk.kty !== 'string' || typeof jwk.d !== 'string' || typeof jwk.alg !== 'string') {
    throw new Error(`idp_keys row ${kid} does not hold a private JSON Web Key with an alg`);
  }
  return jwk;
}

/** Loads the keys, making the signing key and the given clients' keys if they do not exist yet. */
export async function loadKeys(db: Database, clientIds: readonly string[]): Promise<IdpKeys> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [KEY_LOCK]);
    const rows = await tx.query<{ kid: string; private_jwk: string }>('SELECT kid, private_jwk FROM idp_keys ORDER BY created DESC, kid');
    const signing = rows.filter((r) => !r.kid.startsWith(CLIENT_PREFIX)).map((r) => parseJwk(r.private_jwk, r.kid));
    if (signing.length === 0) {
      const key = await newKey(SIGNING_ALG);
      await tx.query('INSERT INTO idp_keys (kid, private_jwk) VALUES ($1, $2)', [key.kid, JSON.stringify(key)]);
      signing.push(key);
    }
    const clients = new Map<string, JWK>();
    for (const clientId of clientIds) {
      const kid = CLIENT_PREFIX + clientId;
      const row = rows.find((r) => r.kid === kid);
      let key: JWK;
      if (row) key = parseJwk(row.private_jwk, kid);
      else {
        key = await newKey(CLIENT_KEY_ALG);
        await tx.query('INSERT INTO idp_keys (kid, private_jwk) VALUES ($1, $2)', [kid, JSON.stringify(key)]);
      }
      clients.set(clientId, key);
    }
    return { signing, clients };
  });
}

/** The public half of a private JWK (only the members a public key has). */
export function publicJwk(jwk: JWK): JWK {
  const { kty, kid, alg, use, n, e, crv, x, y } = jwk;
  const out: JWK = { kty };
  for (const [k, v] of Object.entries({ kid, alg, use, n, e, crv, x, y })) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** A 32-byte secret for `purpose`, derived from the active signing key: the same on every instance. */
export function derivedSecret(signingKey: JWK, purpose: string): Buffer {
  if (!signingKey.d) throw new Error('a private signing key is needed to derive secrets');
  return Buffer.from(hkdfSync('sha256', Buffer.from(signingKey.d, 'base64url'), 'samplan-idp', purpose, 32));
}
