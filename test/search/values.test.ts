import { describe, expect, it } from 'vitest';
import { dateRange, escapeLike, normalizeString, parseNumber } from '../../src/search/values.js';
import { escapeSearchValue, parseSearch } from '../../src/search/parse.js';
import type { ParamFilter } from '../../src/search/query.js';

describe('dateRange', () => {
  it.each([
    ['2024', '2024-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z'],
    ['2024-02', '2024-02-01T00:00:00.000Z', '2024-03-01T00:00:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z', '2024-03-01T00:00:00.000Z'],
    ['2024-03-05T10:00:00Z', '2024-03-05T10:00:00.000Z', '2024-03-05T10:00:01.000Z'],
    ['2024-03-05T10:00:00+01:00', '2024-03-05T09:00:00.000Z', '2024-03-05T09:00:01.000Z'],
    ['2024-03-05T10:00:00.250Z', '2024-03-05T10:00:00.250Z', '2024-03-05T10:00:00.251Z'],
    ['2024-03-05T10:00', '2024-03-05T10:00:00.000Z', '2024-03-05T10:01:00.000Z'],
  ])('%s covers [%s, %s)', (value, lo, hi) => {
    expect(dateRange(value)).toEqual({ lo, hi });
  });

  it('ends a range past year 9999 at its last millisecond (the database takes no year 10000)', () => {
    expect(dateRange('9999-12-31T23:59:59Z')).toEqual({ lo: '9999-12-31T23:59:59.000Z', hi: '9999-12-31T23:59:59.999Z' });
    expect(dateRange('9999-12-31T23:00:00-14:00')).toEqual({ lo: '9999-12-31T23:59:59.999Z', hi: '9999-12-31T23:59:59.999Z' });
  });

  it.each(['2023-02-29', '2024-13', '2024-00-10', 'yesterday', '2024-1-1', '24', '2024-03-05T25:00:00Z', ''])('rejects %s', (v) => {
    expect(dateRange(v)).toBeUndefined();
  });
});

describe('parseNumber', () => {
  it.each([
    ['100', '100', '99.5', '100.5'],
    ['100.0', '100.0', '99.95', '100.05'],
    ['0.5', '0.5', '0.45', '0.55'],
    ['-3', '-3', '-3.5', '-2.5'],
    ['1e2', '100', '50', '150'],
    ['1.5e-3', '0.0015', '0.00145', '0.00155'],
  ])('%s has value %s and range [%s, %s)', (text, value, lo, hi) => {
    expect(parseNumber(text)).toEqual({ value, lo, hi });
  });

  it.each(['abc', '1,5', '', '--1', '1e', 'NaN', '1e99999'])('rejects %s', (v) => expect(parseNumber(v)).toBeUndefined());
});

describe('string normalisation', () => {
  it('ignores case, accents and extra spaces', () => {
    expect(normalizeString('  Åse   BJØRNSTAD  ')).toBe('ase bjornstad');
    expect(normalizeString('Tromsø Ærlig')).toBe('tromso aerlig');
    expect(normalizeString('Müller')).toBe('muller');
  });
  it('gives plain ASCII text (taken by a shorter way) the form the whole folding gives it', () => {
    const folded = (v: string) =>
      v
        .toLowerCase()
        .replace(/[øæœßđłþð]/g, (c) => ({ ø: 'o', æ: 'ae', œ: 'oe', ß: 'ss', đ: 'd', ł: 'l', þ: 'th', ð: 'd' })[c] as string)
        .normalize('NFD')
        .replace(/\p{M}/gu, '')
        .toLowerCase()
        .replace(/\s+/g, ' ')
        .trim()
        .slice(0, 256);
    const alphabet = ['a', 'Z', 'q', '0', '-', '|', '~', '!', ' ', ' ', '  ', '\t', '\n', 'ø', 'Å', 'e\u0301', '\u00a0', 'İ', 'K'];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 5000; i++) {
      const length = Math.floor(next() * (i % 10 === 0 ? 300 : 12));
      const text = Array.from({ length }, () => alphabet[Math.floor(next() * (i % 2 ? 10 : alphabet.length))]).join('');
      expect(normalizeString(text), JSON.stringify(text)).toBe(folded(text));
    }
    expect(normalizeString('Oxygen saturation in Arterial blood by Pulse oximetry')).toBe('oxygen saturation in arterial blood by pulse oximetry');
    expect(normalizeString('x'.repeat(300))).toHaveLength(256);
  });
  it('escapes LIKE wildcards', () => {
    expect(escapeLike('50%_a\\b')).toBe('50\\%\\_a\\\\b');
  });
});

describe('search value escapes', () => {
  it('let a system and codes with , | $ and \\ through the parser unchanged', () => {
    const system = 'urn:x|y';
    const codes = ['a,b', 'c$d\\e'];
    const value = codes.map((c) => `${escapeSearchValue(system)}|${escapeSearchValue(c)}`).join(',');
    const query = parseSearch('Observation', [['component-code', value]], { strict: true, baseUrl: 'http://localhost/fhir' });
    const filter = query.filters[0] as ParamFilter;
    expect(filter.values).toEqual(codes.map((code) => ({ type: 'token', token: { system, code } })));
  });
});
