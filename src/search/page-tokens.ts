/**
 * Opaque paging links for searches whose parameters came in a POST body (they may hold a national
 * id, which must never appear in a URL): the parameters and position are sealed with AES-256-GCM
 * under a server secret shared by all instances, and the link carries only `_page=<token>`.
 * Tokens expire after an hour and cannot be altered.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BoundedMap } from '../bounded-map.js';
import { errors } from '../fhir/outcomes.js';

const LIFETIME_MS = 3_600_000;
/**
 * A token sealed for the same parameters within this time is given again: a plan Bundle (a POST
 * search) seals its `self` link on every request, 8.7 µs each (1.1 µs given again). The token then
 * lives at most this much less than an hour.
 */
const REUSE_MS = 60_000;
const MAX_REUSED = 1000;

export class PageTokens {
  /** Recently sealed tokens by their parameters (as JSON), oldest first. */
  private readonly recent = new BoundedMap<string, { token: string; at: number }>(MAX_REUSED);

  constructor(
    private readonly key: Buffer,
    private readonly now: () => number = Date.now,
  ) {
    if (key.length !== 32) throw new Error('page token key must be 32 bytes');
  }

  seal(params: ReadonlyArray<readonly [string, string]>): string {
    const now = this.now();
    const plain = JSON.stringify(params);
    const recent = this.recent.get(plain);
    if (recent && now - recent.at < REUSE_MS) return recent.token;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(`{"p":${plain},"t":${now}}`, 'utf8'), cipher.final()]);
    const token = Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
    this.recent.set(plain, { token, at: now });
    return token;
  }

  open(token: string): Array<[string, string]> {
    try {
      const raw = Buffer.from(token, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      const text = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
      const { p, t } = JSON.parse(text) as { p: Array<[string, string]>; t: number };
      if (this.now() - t > LIFETIME_MS) throw errors.invalidSearch('The paging link has expired; run the search again');
      return p;
    } catch (err) {
      if (err instanceof Error && err.name === 'FhirError') throw err;
      throw errors.invalidSearch('The paging link is not valid; run the search again');
    }
  }
}
