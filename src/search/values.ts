/**
 * Value normalisation shared by indexing (extract.ts) and querying (parse.ts), so that a value is
 * always written and searched in the same form.
 */

/** Longest string kept in the string index; longer values are matched on this prefix. */
export const MAX_INDEXED_STRING = 256;

/** Letters that do not decompose into a base letter and an accent, folded the way people type them. */
const FOLDED: Record<string, string> = { ø: 'o', æ: 'ae', œ: 'oe', ß: 'ss', đ: 'd', ł: 'l', þ: 'th', ð: 'd' };

/**
 * Printable ASCII words with single spaces between them: their normal form is their lower case.
 * Most indexed text is like that (codes' displays, most names): the test spares it decomposition
 * and four more passes, a fifth of a check-in's index extraction.
 */
const PLAIN_ASCII = /^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/;

/**
 * Case- and accent-insensitive form of a string, as FHIR string search requires: "Tromsø" and
 * "tromso" match, as do "Åse" and "ase".
 */
export function normalizeString(value: string): string {
  if (value.length <= MAX_INDEXED_STRING && PLAIN_ASCII.test(value)) return value.toLowerCase();
  return value
    .toLowerCase()
    .replace(/[øæœßđłþð]/g, (c) => FOLDED[c] as string)
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, MAX_INDEXED_STRING);
}

/** Escapes LIKE wildcards so user input only ever matches literally. */
export function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export interface DateRange {
  /** Inclusive start, ISO 8601 or '-infinity'. */
  lo: string;
  /** Exclusive end, ISO 8601 or 'infinity'. */
  hi: string;
}

const DATE_RE =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * The range of instants a FHIR date, dateTime or instant covers, given its precision:
 * "2024" covers the whole year, "2024-03-05T10:00:00Z" one second. A value without a time zone
 * is taken as UTC. Returns undefined for text that is not a valid date.
 */
export function dateRange(value: string): DateRange | undefined {
  const m = DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : 1;
  const day = d ? Number(d) : 1;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  const hour = h ? Number(h) : 0;
  const minute = mi ? Number(mi) : 0;
  const second = s ? Number(s) : 0;
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  let offsetMinutes = 0;
  if (tz && tz !== 'Z') {
    const sign = tz.startsWith('-') ? -1 : 1;
    offsetMinutes = sign * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6)));
  }
  const start = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMinutes * 60_000;
  let end: number;
  if (!mo) end = Date.UTC(year + 1, 0, 1);
  else if (!d) end = Date.UTC(year, month, 1);
  else if (!h) end = Date.UTC(year, month - 1, day + 1);
  else if (!s) end = start + 60_000;
  else if (!frac) end = start + 1000;
  else end = start + 1;
  if (!h) return { lo: iso(Date.UTC(year, month - 1, day)), hi: iso(end) };
  return { lo: iso(start), hi: iso(end) };
}

/**
 * The latest instant written: the end of a range in year 9999 (`9999-12-31T23:59:59Z` ends at
 * year 10000) would be `+010000-01-01T…`, which PostgreSQL refuses (a 500 for a search or a write
 * with such a date). Held at the year's last millisecond, the range loses only that millisecond.
 */
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const iso = (ms: number) => new Date(Math.min(ms, LATEST)).toISOString();

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

const DECIMAL_RE = /^[+-]?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

export interface NumberValue {
  /** The exact value, as a plain decimal (valid PostgreSQL numeric input). */
  value: string;
  /** Implicit range from the precision the value was written with: "100" → [99.5, 100.5). */
  lo: string;
  hi: string;
}

/** Formats mantissa × 10^-scale as a plain decimal string. */
function formatDecimal(mantissa: bigint, scale: number): string {
  const negative = mantissa < 0n;
  let digits = (negative ? -mantissa : mantissa).toString();
  if (scale <= 0) digits += '0'.repeat(-scale);
  else {
    digits = digits.padStart(scale + 1, '0');
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  }
  return negative ? `-${digits}` : digits;
}

/** Parses a FHIR decimal, with the range its significant digits imply. */
export function parseNumber(text: string): NumberValue | undefined {
  const m = DECIMAL_RE.exec(text);
  if (!m) return undefined;
  const exponent = Number(m[3] ?? 0);
  if (!Number.isFinite(exponent) || Math.abs(exponent) > 1000) return undefined;
  const sign = text.startsWith('-') ? -1n : 1n;
  const mantissa = sign * BigInt(`${m[1]}${m[2] ?? ''}`);
  const scale = (m[2]?.length ?? 0) - exponent;
  // Half a unit in the last given digit, at one more decimal place: (10·M ∓ 5) × 10^-(scale+1).
  return {
    value: formatDecimal(mantissa, scale),
    lo: formatDecimal(mantissa * 10n - 5n, scale + 1),
    hi: formatDecimal(mantissa * 10n + 5n, scale + 1),
  };
}
