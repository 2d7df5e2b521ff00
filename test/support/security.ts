/**
 * Helpers for the security tests: real tokens from the embedded identity provider (its persisted
 * signing key), DPoP proofs made with real keys, the NHN headers an EHR sends, and patients with
 * privacy settings seeded through the server's own system context.
 */
import { createHash, randomUUID, webcrypto } from 'node:crypto';
import type { Patient } from '@medplum/fhirtypes';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { citizenByKey, clinicianByKey } from '../../src/demo/population.js';
import { OID } from '../../src/no/identifiers.js';
import { privacyConsent } from '../../src/security/privacy.js';
import { BASE, type TestServer } from './app.js';

export const ROLE = 'urn:oid:2.16.578.1.12.4.1.1.9060';

export interface ClinicianHeaders {
  role?: string;
  basis?: string;
  nin?: string;
  reason?: string;
  source?: string;
}

/** The headers an EHR sends for a clinician about a patient. */
export function nhnHeaders(h: ClinicianHeaders = {}): Record<string, string> {
  const headers: Record<string, string> = {
    'nhn-user-role': encodeURIComponent(JSON.stringify({ system: ROLE, code: h.role ?? 'LE' })),
    'nhn-source-system': h.source ?? 'Testjournal 1.0',
    'nhn-access-basis': h.basis ?? 'SAMTYKKE',
  };
  if (h.nin) headers['nhn-patient-nin'] = h.nin;
  if (h.reason) headers['nhn-access-reason'] = encodeURIComponent(h.reason);
  return headers;
}

export async function clinicianToken(t: TestServer, key: string, options: { scope?: string; jkt?: string } = {}): Promise<string> {
  const idp = t.app.idp!;
  return idp.issueAccessToken(idp.clinicianClaims(key, options));
}

export async function citizenToken(t: TestServer, key: string, options: { actingFor?: string; scope?: string } = {}): Promise<string> {
  const idp = t.app.idp!;
  return idp.issueAccessToken(idp.citizenClaims(key, options));
}

export async function machineToken(t: TestServer): Promise<string> {
  const idp = t.app.idp!;
  return idp.issueAccessToken(idp.machineClaims('ehr-test-client', { scope: 'nhn:samplan/status nhn:samplan/read nhn:samplan/write' }));
}

/** A clinician's request about a patient (by persona keys). */
export async function asClinician(
  t: TestServer,
  clinician: string,
  method: string,
  path: string,
  options: ClinicianHeaders & { body?: unknown; patient?: string } = {},
) {
  const token = await clinicianToken(t, clinician);
  const nin = options.nin ?? (options.patient ? citizenByKey(options.patient).pid : undefined);
  return t.request(method, path, {
    ...(options.body !== undefined ? { body: options.body } : {}),
    headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ ...options, ...(nin ? { nin } : {}) }) },
  });
}

export async function asCitizen(t: TestServer, citizen: string, method: string, path: string, options: { body?: unknown; actingFor?: string } = {}) {
  const token = await citizenToken(t, citizen, options.actingFor ? { actingFor: options.actingFor } : {});
  return t.request(method, path, { ...(options.body !== undefined ? { body: options.body } : {}), headers: { authorization: `Bearer ${token}` } });
}

export interface DpopKey {
  privateKey: webcrypto.CryptoKey;
  jwk: JWK;
  jkt: string;
}

export async function dpopKey(alg = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

export async function dpopProof(
  key: DpopKey,
  claims: { htm: string; htu: string; accessToken?: string; iat?: number; jti?: string; nonce?: string; ath?: string },
  header: Record<string, unknown> = {},
): Promise<string> {
  const ath = claims.ath ?? (claims.accessToken ? createHash('sha256').update(claims.accessToken).digest('base64url') : undefined);
  return new SignJWT({
    htm: claims.htm,
    htu: claims.htu,
    iat: claims.iat ?? Math.floor(Date.now() / 1000),
    jti: claims.jti ?? randomUUID(),
    ...(ath ? { ath } : {}),
    ...(claims.nonce ? { nonce: claims.nonce } : {}),
  })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk, ...header })
    .sign(key.privateKey);
}

/** The URL a DPoP proof must name for a path of the test server. */
export const htu = (path: string) => `${BASE}/${path.replace(/^\//, '').split('?')[0]}`;

export interface PrivacySettings {
  consent?: boolean;
  optedOut?: boolean;
  restricted?: boolean;
  blocked?: string[];
}

const consentOf = privacyConsent;

/** Seeds a citizen persona as a Patient with privacy settings (and a plan when consented); returns its id. */
export async function seedPatient(t: TestServer, citizen: string, settings: PrivacySettings = {}): Promise<string> {
  const person = citizenByKey(citizen);
  const patient = await t.system<Patient>('POST', 'Patient', {
    resourceType: 'Patient',
    identifier: [{ system: OID.fnr, value: person.pid }],
    name: [{ family: person.name.family, given: [person.name.given] }],
    birthDate: person.birthDate,
    gender: person.gender,
  });
  const id = patient.body.id as string;
  if (settings.consent !== false) await t.system('POST', 'Consent', consentOf(id, 'plan', { provision: { type: 'permit' } }));
  if (settings.optedOut) await t.system('POST', 'Consent', consentOf(id, 'reservasjon', { provision: { type: 'deny' } }));
  if (settings.restricted) await t.system('POST', 'Consent', consentOf(id, 'begrenset-tilgang', { provision: { type: 'deny' } }));
  for (const clinician of settings.blocked ?? []) {
    const c = clinicianByKey(clinician);
    await t.system(
      'POST',
      'Consent',
      consentOf(id, 'blokkering', {
        provision: { type: 'deny', actor: [{ role: { text: 'blokkert helsepersonell' }, reference: { identifier: { system: OID.hpr, value: c.hpr }, display: `${c.name.given} ${c.name.family}` } }] },
      }),
    );
  }
  const plan = await t.system<{ id: string }>('POST', 'CarePlan', {
    resourceType: 'CarePlan',
    status: 'active',
    intent: 'plan',
    title: `Plan for ${person.name.given}`,
    subject: { reference: `Patient/${id}` },
  });
  // What the patient sees is what has been published to them.
  await t.system('POST', `CarePlan/${plan.body.id}/$publish`, { resourceType: 'Parameters' });
  return id;
}

export { consentOf };
