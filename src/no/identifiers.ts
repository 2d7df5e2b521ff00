/**
 * Norwegian identifiers (HL7 Norway no-basis systems): fødselsnummer, D-nummer, synthetic test
 * numbers from Skatteetaten's Tenor (month + 80), HPR numbers and organisation numbers. Pure
 * functions, tested exhaustively; nothing here logs or stores a number.
 */

export const OID = {
  fnr: 'urn:oid:2.16.578.1.12.4.1.4.1',
  dnr: 'urn:oid:2.16.578.1.12.4.1.4.2',
  fhn: 'urn:oid:2.16.578.1.12.4.1.4.3',
  hpr: 'urn:oid:2.16.578.1.12.4.1.4.4',
  orgnr: 'urn:oid:2.16.578.1.12.4.1.4.101',
  resh: 'urn:oid:2.16.578.1.12.4.1.4.102',
  herId: 'urn:oid:2.16.578.1.12.4.1.2',
} as const;

/** Systems a person's national identity number may be written under. */
export const NIN_SYSTEMS: readonly string[] = [OID.fnr, OID.dnr];

const K1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const K2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
const ORG = [3, 2, 7, 6, 5, 4, 3, 2];

/** The mod-11 check digit for `digits` with `weights`, or undefined when none exists (remainder 1). */
export function mod11(digits: string, weights: readonly number[]): number | undefined {
  let sum = 0;
  for (let i = 0; i < weights.length; i++) sum += Number(digits[i]) * (weights[i] as number);
  const check = 11 - (sum % 11);
  if (check === 11) return 0;
  return check === 10 ? undefined : check;
}

export type NinKind = 'fnr' | 'dnr';

export interface NinInfo {
  kind: NinKind;
  /** A synthetic test person (Tenor): can never belong to a real person. */
  synthetic: boolean;
  /** Date of birth as YYYY-MM-DD. */
  birthDate: string;
}

/**
 * Parses a fødselsnummer or D-nummer: 11 digits, both check digits, a real calendar date (after
 * removing the D-nummer day offset of 40 and the Tenor month offset of 80), and a century from
 * the individual number. Returns undefined for anything else.
 */
export function parseNin(nin: string): NinInfo | undefined {
  if (!/^\d{11}$/.test(nin)) return undefined;
  if (mod11(nin, K1) !== Number(nin[9]) || mod11(nin, K2) !== Number(nin[10])) return undefined;
  let day = Number(nin.slice(0, 2));
  let month = Number(nin.slice(2, 4));
  const year2 = Number(nin.slice(4, 6));
  const individual = Number(nin.slice(6, 9));
  let kind: NinKind = 'fnr';
  if (day > 40) {
    day -= 40;
    kind = 'dnr';
  }
  let synthetic = false;
  if (month > 80) {
    month -= 80;
    synthetic = true;
  }
  let century: number | undefined;
  if (individual <= 499) century = 1900;
  else if (individual <= 749 && year2 >= 54) century = 1800;
  else if (individual >= 500 && year2 <= 39) century = 2000;
  else if (individual >= 900 && year2 >= 40) century = 1900;
  if (century === undefined) return undefined;
  const year = century + year2;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  return { kind, synthetic, birthDate: `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}` };
}

// Checked on every request (the user's and the patient's ids): arithmetic, not Date objects.
function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

export function isValidNin(nin: string): boolean {
  return parseNin(nin) !== undefined;
}

/** Whole years from `birthDate` (YYYY-MM-DD) to `on`. */
export function ageOn(birthDate: string, on: Date = new Date()): number {
  const [y, m, d] = birthDate.split('-').map(Number) as [number, number, number];
  let age = on.getUTCFullYear() - y;
  if (on.getUTCMonth() + 1 < m || (on.getUTCMonth() + 1 === m && on.getUTCDate() < d)) age--;
  return age;
}

/**
 * Makes a valid synthetic (Tenor) fødselsnummer for a birth date: the month carries +80, so the
 * number can never be a real person's. `serial` picks the individual number (0–99 within the
 * century's range); numbers whose check digit does not exist are skipped.
 */
export function syntheticNin(birthDate: string, serial = 0, kind: NinKind = 'fnr'): string {
  const [y, m, d] = birthDate.split('-').map(Number) as [number, number, number];
  const base = y >= 2000 ? 500 : y >= 1900 ? 0 : 500;
  const start = Math.abs(Math.trunc(serial));
  for (let i = start; i < start + 400; i++) {
    const individual = String(base + (i % 400)).padStart(3, '0');
    const day = String(kind === 'dnr' ? d + 40 : d).padStart(2, '0');
    const head = `${day}${String(m + 80).padStart(2, '0')}${String(y % 100).padStart(2, '0')}${individual}`;
    const k1 = mod11(head, K1);
    if (k1 === undefined) continue;
    const k2 = mod11(`${head}${k1}`, K2);
    if (k2 === undefined) continue;
    return `${head}${k1}${k2}`;
  }
  throw new Error(`no synthetic number for ${birthDate}`);
}

/** Organisation number (Enhetsregisteret): 9 digits, mod-11 check digit. */
export function isValidOrgNr(orgnr: string): boolean {
  return /^\d{9}$/.test(orgnr) && mod11(orgnr, ORG) === Number(orgnr[8]);
}

/** Makes a valid organisation number from an 8-digit stem (for synthetic demo data). */
export function orgNrFrom(stem: string): string {
  for (let i = 0; i < 100; i++) {
    const head = String(Number(stem) + i).padStart(8, '0').slice(-8);
    const check = mod11(head, ORG);
    if (check !== undefined) return `${head}${check}`;
  }
  throw new Error(`no organisation number near ${stem}`);
}

/**
 * HPR number (Helsepersonellregisteret): a positive whole number of 4 to 9 digits. No public
 * source documents a check digit, so only the form is checked [unverified].
 */
export function isValidHpr(hpr: string): boolean {
  return /^[1-9]\d{3,8}$/.test(hpr);
}

/** A national identity number written under the FNR or DNR system, when valid. */
export function ninOf(identifier: { system?: string; value?: string } | undefined): string | undefined {
  if (!identifier?.system || !identifier.value || !NIN_SYSTEMS.includes(identifier.system)) return undefined;
  return isValidNin(identifier.value) ? identifier.value : undefined;
}
