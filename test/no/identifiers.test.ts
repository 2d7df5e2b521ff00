import { describe, expect, it } from 'vitest';
import { ageOn, isValidHpr, isValidNin, isValidOrgNr, mod11, orgNrFrom, parseNin, syntheticNin } from '../../src/no/identifiers.js';

describe('fødselsnummer and D-nummer', () => {
  it('accepts numbers with both check digits right and a real date', () => {
    // Published test numbers (Skatteetaten examples and the Tenor synthetic range).
    const fnr = syntheticNin('1948-03-12');
    expect(parseNin(fnr)).toEqual({ kind: 'fnr', synthetic: true, birthDate: '1948-03-12' });
    const dnr = syntheticNin('1990-06-01', 3, 'dnr');
    expect(parseNin(dnr)).toEqual({ kind: 'dnr', synthetic: true, birthDate: '1990-06-01' });
    expect(parseNin(syntheticNin('2016-02-29'))?.birthDate).toBe('2016-02-29');
  });

  it('rejects a wrong first or second check digit', () => {
    const fnr = syntheticNin('1975-11-30');
    const wrongK1 = `${fnr.slice(0, 9)}${(Number(fnr[9]) + 1) % 10}${fnr[10]}`;
    const wrongK2 = `${fnr.slice(0, 10)}${(Number(fnr[10]) + 1) % 10}`;
    expect(isValidNin(wrongK1)).toBe(false);
    expect(isValidNin(wrongK2)).toBe(false);
  });

  it('rejects impossible dates, wrong length and non-digits', () => {
    expect(isValidNin('3102804')).toBe(false);
    expect(isValidNin('abcdefghijk')).toBe(false);
    expect(isValidNin('00000000000')).toBe(false);
    // 30 February with valid-looking digits is still refused.
    for (let i = 0; i < 500; i++) {
      const n = `3082${String(80).padStart(2, '0')}${String(i).padStart(3, '0')}`;
      const k1 = mod11(n, [3, 7, 6, 1, 8, 9, 4, 5, 2]);
      if (k1 === undefined) continue;
      const k2 = mod11(`${n}${k1}`, [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]);
      if (k2 === undefined) continue;
      expect(isValidNin(`${n}${k1}${k2}`)).toBe(false);
    }
  });

  it('knows the calendar: leap years (1900 was not, 2000 was), month lengths, month 13', () => {
    // Nine digits (DDMMYY + individual number) with both check digits added, or undefined when none fits.
    const withChecks = (nine: string): string | undefined => {
      const k1 = mod11(nine, [3, 7, 6, 1, 8, 9, 4, 5, 2]);
      const k2 = k1 === undefined ? undefined : mod11(`${nine}${k1}`, [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]);
      return k2 === undefined ? undefined : `${nine}${k1}${k2}`;
    };
    const first = (ddmmyy: string, individuals: [number, number]): string => {
      for (let i = individuals[0]; i <= individuals[1]; i++) {
        const nin = withChecks(`${ddmmyy}${String(i).padStart(3, '0')}`);
        if (nin) return nin;
      }
      throw new Error(`no number for ${ddmmyy}`);
    };
    // Individual numbers 000-499: born 1900-1999; 500-749 with year >= 54: 1854-1899; 500-999 with year <= 39: 2000-2039.
    expect(parseNin(first('290200', [500, 999]))?.birthDate).toBe('2000-02-29');
    expect(isValidNin(first('290200', [0, 499]))).toBe(false); // 29.02.1900
    expect(parseNin(first('290296', [0, 499]))?.birthDate).toBe('1996-02-29');
    expect(isValidNin(first('290215', [500, 999]))).toBe(false);
    expect(parseNin(first('300415', [500, 999]))?.birthDate).toBe('2015-04-30');
    expect(isValidNin(first('310415', [500, 999]))).toBe(false);
    expect(parseNin(first('311215', [500, 999]))?.birthDate).toBe('2015-12-31');
    expect(isValidNin(first('011315', [500, 999]))).toBe(false);
    expect(isValidNin(first('001215', [500, 999]))).toBe(false);
    expect(parseNin(first('710170', [0, 499]))).toEqual({ kind: 'dnr', synthetic: false, birthDate: '1970-01-31' });
  });

  it('checks every generated synthetic number over many dates', () => {
    for (let d = Date.UTC(1920, 0, 1); d < Date.UTC(2026, 0, 1); d += 37 * 86_400_000) {
      const date = new Date(d).toISOString().slice(0, 10);
      const nin = syntheticNin(date, d % 97);
      expect(parseNin(nin)?.birthDate).toBe(date);
    }
  });

  it('computes age in whole years', () => {
    expect(ageOn('2014-06-15', new Date('2026-06-14T12:00:00Z'))).toBe(11);
    expect(ageOn('2014-06-15', new Date('2026-06-15T12:00:00Z'))).toBe(12);
  });
});

describe('organisation and HPR numbers', () => {
  it('validates organisation numbers by mod 11', () => {
    expect(isValidOrgNr('974760673')).toBe(true); // Brønnøysundregistrene
    expect(isValidOrgNr('974760674')).toBe(false);
    expect(isValidOrgNr('97476067')).toBe(false);
    expect(isValidOrgNr(orgNrFrom('91234567'))).toBe(true);
  });

  it('validates the form of HPR numbers', () => {
    expect(isValidHpr('565501872')).toBe(true);
    expect(isValidHpr('9144900')).toBe(true);
    expect(isValidHpr('0123')).toBe(false);
    expect(isValidHpr('1234567890')).toBe(false);
    expect(isValidHpr('12a4')).toBe(false);
  });
});
