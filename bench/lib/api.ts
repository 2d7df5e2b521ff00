/**
 * The benchmark's client side of the API: tokens from the server's embedded identity provider
 * (through `npm run token`'s code, i.e. the real login), NHN headers, and small JSON requests.
 */
import { main as tokenMain } from '../../scripts/token.js';

export const FNR = 'urn:oid:2.16.578.1.12.4.1.4.1';
const ROLE = 'urn:oid:2.16.578.1.12.4.1.1.9060';

/** An access token for a persona (`clinician fastlege`, `machine`, …) from a running server. */
export async function token(serverUrl: string, dataDir: string, who: string[], scope?: string): Promise<string> {
  let out = '';
  let err = '';
  const code = await tokenMain([...who, '--server', serverUrl, '--data-dir', dataDir, ...(scope ? ['--scope', scope] : [])], {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  if (code !== 0) throw new Error(`token ${who.join(' ')} failed: ${err}`);
  return out.trim();
}

/** The headers an EHR sends for a GP (fastlege) about a patient. */
export function clinicianHeaders(token: string, nin?: string): Record<string, string> {
  return {
    authorization: `Bearer ${token}`,
    'nhn-user-role': encodeURIComponent(JSON.stringify({ system: ROLE, code: 'LE' })),
    'nhn-source-system': 'Samplan benchmark 1.0',
    'nhn-access-basis': 'SAMTYKKE',
    ...(nin ? { 'nhn-patient-nin': nin } : {}),
  };
}

export interface Answer<T> {
  status: number;
  body: T;
  etag: string | null;
}

/** One request to the FHIR API; throws with the OperationOutcome text when the status is not `expect`. */
export async function call<T = Record<string, unknown>>(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
  expect: number[] = [200, 201],
): Promise<Answer<T>> {
  const form = typeof body === 'string';
  const res = await fetch(`${baseUrl}/fhir/${path}`, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/fhir+json' } : {}) },
    ...(body !== undefined ? { body: form ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!expect.includes(res.status)) throw new Error(`${method} ${path.split('?')[0]}: ${res.status} ${text.slice(0, 500)}`);
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, etag: res.headers.get('etag') };
}
