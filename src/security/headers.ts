/**
 * The NHN request headers EHR systems send with every call (docs/security.md): user role,
 * source system, access basis, patient, event id — and Samplan's `nhn-access-reason` for
 * emergency access. A missing or malformed header is a 400 with a code saying which; a national
 * id is never echoed in a message.
 */
import { ErrorCode, errors } from '../fhir/outcomes.js';
import { CODE_SYSTEM } from '../no/codes.js';
import { isValidNin } from '../no/identifiers.js';
import { ACCESS_BASES, type AccessBasis } from './principal.js';

const ROLE_SYSTEM = CODE_SYSTEM.personnelCategory;

export type HeaderGetter = (name: string) => string | undefined;

const missing = (name: string, why: string) => errors.header(ErrorCode.MissingHeader, `The ${name} header is required: ${why}`);
const invalid = (name: string, why: string) => errors.header(ErrorCode.InvalidHeader, `The ${name} header is not valid: ${why}`);

function decode(name: string, raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw invalid(name, 'it is not validly URL-encoded');
  }
}

/** `nhn-user-role`: URL-encoded JSON `{"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"LE"}`. */
export function userRole(get: HeaderGetter): { system: string; code: string } {
  const raw = get('nhn-user-role');
  if (!raw) throw missing('nhn-user-role', 'the user\'s role as URL-encoded JSON {"system","code"} (Volven 9060)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(decode('nhn-user-role', raw));
  } catch {
    throw invalid('nhn-user-role', 'it must be URL-encoded JSON like {"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"LE"}');
  }
  const { system, code } = (parsed ?? {}) as { system?: unknown; code?: unknown };
  if (system !== ROLE_SYSTEM) throw invalid('nhn-user-role', `system must be ${ROLE_SYSTEM} (Volven 9060)`);
  if (typeof code !== 'string' || !/^[A-Z]{2}$/.test(code)) throw invalid('nhn-user-role', 'code must be a Volven 9060 code such as LE or SP');
  return { system, code };
}

export function sourceSystem(get: HeaderGetter, required: boolean): string | undefined {
  const raw = get('nhn-source-system');
  if (!raw) {
    if (required) throw missing('nhn-source-system', 'the name and version of the EHR system (3–512 characters)');
    return undefined;
  }
  const value = decode('nhn-source-system', raw);
  if (value.length < 3 || value.length > 512 || /[\u0000-\u001f]/.test(value)) throw invalid('nhn-source-system', 'it must be 3–512 printable characters');
  return value;
}

export function accessBasis(get: HeaderGetter): AccessBasis {
  const raw = get('nhn-access-basis');
  if (!raw) throw missing('nhn-access-basis', `the grounds for access, one of ${ACCESS_BASES.join(', ')}`);
  if (!(ACCESS_BASES as readonly string[]).includes(raw)) throw invalid('nhn-access-basis', `it must be one of ${ACCESS_BASES.join(', ')}`);
  return raw as AccessBasis;
}

/** `nhn-patient-nin`: a valid fødselsnummer or D-nummer (synthetic test numbers accepted). */
export function patientNin(get: HeaderGetter): string | undefined {
  const raw = get('nhn-patient-nin');
  if (raw === undefined || raw === '') return undefined;
  if (!isValidNin(raw.trim())) throw invalid('nhn-patient-nin', 'it must be a valid fødselsnummer or D-nummer (11 digits, both check digits)');
  return raw.trim();
}

/** `nhn-event-id`: the caller's trace id, at most 128 characters; echoed in errors and logs. */
export function eventId(get: HeaderGetter): string | undefined {
  const raw = get('nhn-event-id');
  if (raw === undefined || raw === '') return undefined;
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(raw)) throw invalid('nhn-event-id', 'it must be at most 128 letters, digits or . _ : -');
  return raw;
}

/** `nhn-access-reason`: why emergency access is needed, URL-encoded, 3–500 characters. */
export function accessReason(get: HeaderGetter): string | undefined {
  const raw = get('nhn-access-reason');
  if (raw === undefined || raw === '') return undefined;
  const value = decode('nhn-access-reason', raw).trim();
  if (value.length < 3 || value.length > 500 || /[\u0000-\u0008\u000b-\u001f]/.test(value)) {
    throw invalid('nhn-access-reason', 'it must be 3–500 characters of text');
  }
  return value;
}
