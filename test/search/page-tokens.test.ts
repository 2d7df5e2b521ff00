/**
 * Sealed paging links (for searches whose parameters came in a POST body): they give back exactly
 * the parameters sealed, cannot be altered or opened with another key, expire after an hour, and
 * the same parameters sealed within a minute give the same token (sealing is on every POST search).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PageTokens } from '../../src/search/page-tokens.js';

const PARAMS: Array<[string, string]> = [
  ['subject:Patient.identifier', 'urn:oid:2.16.578.1.12.4.1.4.1|13116900216'],
  ['_include', '*'],
];

function tokens(start = 1_800_000_000_000) {
  const clock = { now: start };
  return { clock, pages: new PageTokens(randomBytes(32), () => clock.now) };
}

describe('page tokens', () => {
  it('give back the parameters sealed, and show none of them', () => {
    const { pages } = tokens();
    const token = pages.seal(PARAMS);
    expect(pages.open(token)).toEqual(PARAMS);
    expect(token).not.toContain('13116900216');
    expect(Buffer.from(token, 'base64url').toString('latin1')).not.toContain('13116900216');
  });

  it('cannot be altered or opened under another key', () => {
    const { pages } = tokens();
    const token = pages.seal(PARAMS);
    const raw = Buffer.from(token, 'base64url');
    raw[raw.length - 1] = (raw[raw.length - 1] as number) ^ 1;
    expect(() => pages.open(raw.toString('base64url'))).toThrow('not valid');
    expect(() => tokens().pages.open(token)).toThrow('not valid');
    expect(() => pages.open('not-a-token')).toThrow('not valid');
  });

  it('expire after an hour', () => {
    const { clock, pages } = tokens();
    const token = pages.seal(PARAMS);
    clock.now += 3_600_000;
    expect(pages.open(token)).toEqual(PARAMS);
    clock.now += 1;
    expect(() => pages.open(token)).toThrow('expired');
  });

  it('are given again for the same parameters within a minute, and sealed anew after', () => {
    const { clock, pages } = tokens();
    const first = pages.seal(PARAMS);
    clock.now += 59_999;
    expect(pages.seal(PARAMS)).toBe(first);
    expect(pages.seal([...PARAMS, ['_cursor', 'abc']])).not.toBe(first);
    clock.now += 1;
    const later = pages.seal(PARAMS);
    expect(later).not.toBe(first);
    // A token given again still expires an hour after it was first sealed.
    clock.now += 3_600_000 - 60_000;
    expect(pages.open(first)).toEqual(PARAMS);
    clock.now += 1;
    expect(() => pages.open(first)).toThrow('expired');
    expect(pages.open(later)).toEqual(PARAMS);
  });
});
