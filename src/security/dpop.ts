/**
 * DPoP proof checking (RFC 9449) for DPoP-bound access tokens: the proof is a JWT of type
 * `dpop+jwt` signed with an asymmetric key carried in its header; it must name this request's
 * method (`htm`) and URL (`htu`), be fresh (`iat`), carry the hash of the access token (`ath`),
 * be signed by the key the token is bound to (`cnf.jkt`), and be used once (`jti`, remembered in
 * the database so a proof cannot be replayed against another server instance). The server can
 * also hand out nonces (`DPoP-Nonce`) and, if configured, require them.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, type JWK, jwtVerify } from 'jose';
import { ErrorCode, errors, type FhirError } from '../fhir/outcomes.js';
import { Batcher } from '../store/batch.js';
import type { Database } from '../store/db.js';
import { ASYMMETRIC_ALGORITHMS, challenge } from './tokens.js';

/** How far a proof's iat may be from now, before leeway. */
const PROOF_WINDOW_SECONDS = 60;
/** Nonces rotate every five minutes; the previous one stays valid. */
const NONCE_PERIOD_MS = 300_000;

export interface ProofCheck {
  proof: string;
  method: string;
  /** The request URL as the client addressed it, without query and fragment. */
  url: string;
  accessToken: string;
  /** Thumbprint the access token is bound to (`cnf.jkt`). */
  jkt: string;
}

/** A URL for htu comparison: the URL parser lower-cases scheme and host and drops a default port; query and fragment go. */
export function normalizeHtu(url: string): string | undefined {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return undefined;
  }
}

export class DpopVerifier {
  private readonly replays: Batcher<{ id: string; expires: string }, boolean>;
  private writes = 0;

  constructor(
    db: Database,
    private readonly secret: Buffer,
    private readonly options: { requireNonce: boolean; clockToleranceSeconds: number; allowBearer: boolean },
  ) {
    this.replays = new Batcher(async (items) => {
      const rows = await db.query<{ id: string }>(
        'INSERT INTO dpop_proofs (id, expires) SELECT * FROM unnest($1::text[], $2::timestamptz[]) ON CONFLICT (id) DO NOTHING RETURNING id',
        [items.map((i) => i.id), items.map((i) => i.expires)],
      );
      if (++this.writes % 1000 === 0) void db.query('DELETE FROM dpop_proofs WHERE expires < now()').catch(() => undefined);
      const stored = new Set(rows.map((r) => r.id));
      // A proof id repeated within one batch is a replay too: only its first use counts.
      const seen = new Set<string>();
      return items.map((i) => {
        const fresh = stored.has(i.id) && !seen.has(i.id);
        seen.add(i.id);
        return fresh;
      });
    });
  }

  private fail(message: string, code: ErrorCode = ErrorCode.InvalidDpopProof, error = 'invalid_dpop_proof'): FhirError {
    const err = errors.unauthorized(code, message, challenge(error, message, this.options.allowBearer));
    err.headers['dpop-nonce'] = this.nonce();
    return err;
  }

  /** The nonce to send in `DPoP-Nonce` now. */
  nonce(at = Date.now()): string {
    const period = Math.floor(at / NONCE_PERIOD_MS);
    return createHmac('sha256', this.secret).update(`dpop-nonce:${period}`).digest('base64url').slice(0, 32);
  }

  private nonceValid(nonce: string): boolean {
    const now = Date.now();
    return [this.nonce(now), this.nonce(now - NONCE_PERIOD_MS)].some(
      (n) => n.length === nonce.length && timingSafeEqual(Buffer.from(n), Buffer.from(nonce)),
    );
  }

  async verify(check: ProofCheck): Promise<void> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(check.proof);
    } catch {
      throw this.fail('The DPoP proof is not a well-formed JWT');
    }
    if (header.typ !== 'dpop+jwt') throw this.fail('The DPoP proof must have typ dpop+jwt');
    if (!header.alg || !ASYMMETRIC_ALGORITHMS.includes(header.alg)) throw this.fail('The DPoP proof must be signed with an asymmetric algorithm');
    const jwk = header.jwk as JWK | undefined;
    if (!jwk || typeof jwk !== 'object') throw this.fail('The DPoP proof must carry its public key (jwk) in the header');
    if ('d' in jwk || 'k' in jwk) throw this.fail('The DPoP proof header must carry a public key only');
    let payload: Record<string, unknown>;
    try {
      const key = await importJWK(jwk, header.alg);
      ({ payload } = await jwtVerify(check.proof, key, { typ: 'dpop+jwt', algorithms: [header.alg], clockTolerance: this.options.clockToleranceSeconds }));
    } catch {
      throw this.fail('The DPoP proof signature is not valid');
    }
    const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
    if (!safeEqual(thumbprint, check.jkt)) throw this.fail('The DPoP proof is signed with another key than the access token is bound to');
    if (typeof payload.jti !== 'string' || payload.jti.length < 8 || payload.jti.length > 256) throw this.fail('The DPoP proof needs a unique jti');
    if (payload.htm !== check.method) throw this.fail(`The DPoP proof is for ${String(payload.htm)}, not ${check.method}`);
    if (typeof payload.htu !== 'string' || normalizeHtu(payload.htu) !== normalizeHtu(check.url)) {
      throw this.fail('The DPoP proof is for another URL (htu)');
    }
    const iat = payload.iat;
    const tolerance = PROOF_WINDOW_SECONDS + this.options.clockToleranceSeconds;
    if (typeof iat !== 'number' || Math.abs(Date.now() / 1000 - iat) > tolerance) throw this.fail('The DPoP proof is too old or from the future (iat)');
    const ath = hash('sha256', check.accessToken, 'base64url');
    if (typeof payload.ath !== 'string' || !safeEqual(payload.ath, ath)) throw this.fail('The DPoP proof does not carry the hash of this access token (ath)');
    if (payload.nonce !== undefined || this.options.requireNonce) {
      if (typeof payload.nonce !== 'string' || !this.nonceValid(payload.nonce)) {
        throw this.fail('A fresh DPoP nonce is required; use the one in the DPoP-Nonce header', ErrorCode.DpopNonceRequired, 'use_dpop_nonce');
      }
    }
    const expires = new Date((iat + tolerance) * 1000).toISOString();
    if (!(await this.replays.add({ id: `${thumbprint}:${payload.jti}`, expires }))) throw this.fail('The DPoP proof has been used before');
  }
}

/** Constant-time string comparison, for values derived from secrets or keys. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
