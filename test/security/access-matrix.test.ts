/**
 * The access matrix: health personnel (role × access basis × patient settings × operation),
 * citizens and their representatives (basis × operation), and machine tokens — every cell
 * checked against the rules of docs/security.md, written out here as the expected outcome.
 */
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey, clinicianByKey } from '../../src/demo/population.js';
import { OID } from '../../src/no/identifiers.js';
import { startTestServer, type TestServer } from '../support/app.js';
import { citizenToken, consentOf, machineToken, nhnHeaders, seedPatient } from '../support/security.js';

let t: TestServer;
const ids: Record<string, string> = {};

type Setting = 'consent' | 'none' | 'restricted' | 'blocked' | 'optedOut';
const PATIENT_FOR: Record<Setting, string> = { consent: 'dagny', none: 'gunnar', restricted: 'bjorn', blocked: 'anne', optedOut: 'eldar' };

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens' });
  ids.dagny = await seedPatient(t, 'dagny');
  ids.gunnar = await seedPatient(t, 'gunnar', { consent: false });
  ids.bjorn = await seedPatient(t, 'bjorn', { restricted: true });
  ids.anne = await seedPatient(t, 'anne', { blocked: ['vikarlege'] });
  ids.eldar = await seedPatient(t, 'eldar', { optedOut: true });
  ids.lilly = await seedPatient(t, 'lilly');
  ids.jonas = await seedPatient(t, 'jonas');
  // A plan still being drafted: clinicians see it, the patient does not.
  await t.system('POST', 'CarePlan', { resourceType: 'CarePlan', status: 'draft', intent: 'plan', title: 'Utkast', subject: { reference: `Patient/${ids.dagny}` } });
});
afterAll(async () => t?.close());

type Op = 'read-plan' | 'write-goal' | 'read-patient' | 'set-block';

function request(op: Op, patient: string, by: 'personnel' | 'citizen'): { method: string; path: string; body?: unknown } {
  const id = ids[patient] as string;
  switch (op) {
    case 'read-plan':
      return { method: 'GET', path: `CarePlan?subject=Patient/${id}` };
    case 'read-patient':
      return { method: 'GET', path: `Patient/${id}` };
    case 'write-goal':
      return {
        method: 'POST',
        path: 'Goal',
        body: {
          resourceType: 'Goal',
          lifecycleStatus: 'active',
          description: { text: 'Gå tur hver dag' },
          subject: { reference: `Patient/${id}` },
          ...(by === 'citizen' ? { expressedBy: { reference: `Patient/${id}` } } : {}),
        },
      };
    case 'set-block':
      return {
        method: 'POST',
        path: 'Consent',
        body: consentOf(id, 'blokkering', {
          provision: { type: 'deny', actor: [{ role: { text: 'blokkert' }, reference: { identifier: { system: OID.hpr, value: clinicianByKey('fysioterapeut').hpr } } }] },
        }),
      };
  }
}

const isContent = (op: Op) => op === 'read-plan' || op === 'write-goal';
const ok = (op: Op) => (op === 'write-goal' || op === 'set-block' ? 201 : 200);

interface Expected {
  status: number;
  code?: string;
}

/** The rules for health personnel, in the order they apply (docs/security.md). */
function personnelExpected(role: string, basis: string, reason: boolean, setting: Setting, op: Op): Expected {
  if (!['LE', 'SP'].includes(role)) return { status: 403, code: 'ROLE_NOT_ALLOWED' };
  if (setting === 'blocked') return { status: 403, code: 'BLOCKED' };
  if (basis.includes('AKUTT') && !reason) return { status: 400, code: 'EMERGENCY_REASON_REQUIRED' };
  if (basis.startsWith('FORHOYET') && setting !== 'restricted') return { status: 403, code: 'ELEVATED_BASIS_UNNECESSARY' };
  if (isContent(op)) {
    if (setting === 'optedOut') return { status: 403, code: 'OPTED_OUT' };
    if (setting === 'none') return { status: 403, code: 'CONSENT_MISSING' };
    if (setting === 'restricted' && !basis.startsWith('FORHOYET')) return { status: 403, code: 'RESTRICTED' };
  }
  if (op === 'set-block') return { status: 403, code: 'NO_ACCESS' };
  return { status: ok(op) };
}

const code = (body: unknown) => (body as OperationOutcome).issue?.[0]?.details?.coding?.[0]?.code;

describe('health personnel', () => {
  const cases: Array<[string, string, boolean, Setting, Op]> = [];
  for (const role of ['LE', 'SP', 'XX'])
    for (const basis of ['UNNTAK', 'SAMTYKKE', 'AKUTT', 'FORHOYET_SAMTYKKE', 'FORHOYET_AKUTT'])
      for (const reason of basis.includes('AKUTT') ? [true, false] : [false])
        for (const setting of ['consent', 'none', 'restricted', 'blocked', 'optedOut'] as Setting[])
          for (const op of ['read-plan', 'write-goal', 'read-patient', 'set-block'] as Op[]) cases.push([role, basis, reason, setting, op]);

  it(`covers every combination (${cases.length} cells)`, () => expect(cases.length).toBe(3 * 7 * 5 * 4));

  it.each(cases)('role %s, basis %s, reason %s, patient %s, %s', async (role, basis, reason, setting, op) => {
    const patient = PATIENT_FOR[setting];
    // The blocked patient has blocked the substitute GP; everyone else asks as the GP.
    const clinician = setting === 'blocked' ? 'vikarlege' : 'fastlege';
    const token = await t.app.idp!.issueAccessToken(t.app.idp!.clinicianClaims(clinician));
    const r = request(op, patient, 'personnel');
    const res = await t.request(r.method, r.path, {
      ...(r.body ? { body: r.body } : {}),
      headers: { authorization: `Bearer ${token}`, ...nhnHeaders({ role, basis, nin: citizenByKey(patient).pid, ...(reason ? { reason: 'Bevisstløs pasient i akuttmottak' } : {}) }) },
    });
    const expected = personnelExpected(role, basis, reason, setting, op);
    expect({ status: res.status, code: res.status >= 400 ? code(res.body) : undefined }).toEqual({ status: expected.status, code: expected.code });
    if (op === 'read-plan' && res.status === 200) expect((res.body as Bundle).total).toBeGreaterThanOrEqual(1);
  });
});

describe('citizens and representatives', () => {
  type CitizenOp = 'read-plan' | 'write-goal' | 'set-block' | 'write-condition';
  const rules: Array<{ who: string; actingFor?: string; scope?: Array<'innsyn' | 'endre'>; about: string; expect: Record<CitizenOp, Expected> }> = [
    { who: 'dagny', about: 'dagny', expect: { 'read-plan': { status: 200 }, 'write-goal': { status: 201 }, 'set-block': { status: 201 }, 'write-condition': { status: 403, code: 'NO_ACCESS' } } },
    {
      who: 'gunnar',
      about: 'gunnar',
      expect: { 'read-plan': { status: 200 }, 'write-goal': { status: 403, code: 'CONSENT_MISSING' }, 'set-block': { status: 201 }, 'write-condition': { status: 403, code: 'NO_ACCESS' } },
    },
    { who: 'marte', actingFor: 'lilly', about: 'lilly', expect: { 'read-plan': { status: 200 }, 'write-goal': { status: 201 }, 'set-block': { status: 201 }, 'write-condition': { status: 403, code: 'NO_ACCESS' } } },
    {
      who: 'marte',
      actingFor: 'jonas',
      about: 'jonas',
      expect: {
        'read-plan': { status: 403, code: 'REPRESENTATION_NOT_ALLOWED' },
        'write-goal': { status: 403, code: 'REPRESENTATION_NOT_ALLOWED' },
        'set-block': { status: 403, code: 'REPRESENTATION_NOT_ALLOWED' },
        'write-condition': { status: 403, code: 'REPRESENTATION_NOT_ALLOWED' },
      },
    },
    {
      who: 'hanne',
      actingFor: 'anne',
      about: 'anne',
      expect: {
        'read-plan': { status: 200 },
        'write-goal': { status: 201 },
        'set-block': { status: 403, code: 'REPRESENTATION_NOT_ALLOWED' },
        'write-condition': { status: 403, code: 'NO_ACCESS' },
      },
    },
    {
      who: 'hanne',
      actingFor: 'anne',
      scope: ['innsyn'],
      about: 'anne',
      expect: {
        'read-plan': { status: 200 },
        'write-goal': { status: 403, code: 'REPRESENTATION_NOT_ALLOWED' },
        'set-block': { status: 403, code: 'REPRESENTATION_NOT_ALLOWED' },
        'write-condition': { status: 403, code: 'REPRESENTATION_NOT_ALLOWED' },
      },
    },
  ];
  const cases = rules.flatMap((r) => (Object.keys(r.expect) as CitizenOp[]).map((op) => [`${r.who}${r.actingFor ? ` for ${r.actingFor}` : ''}${r.scope ? ` (${r.scope.join('+')})` : ''}`, op, r] as const));

  it.each(cases)('%s: %s', async (_name, op, rule) => {
    const idp = t.app.idp!;
    const claims = idp.citizenClaims(rule.who, rule.actingFor ? { actingFor: rule.actingFor } : {}) as Record<string, unknown>;
    if (rule.scope) {
      const rep = claims['helsenorge://claims/representation'] as Record<string, unknown>;
      claims['helsenorge://claims/representation'] = { ...rep, scope: rule.scope };
    }
    const token = await idp.issueAccessToken(claims);
    const r =
      op === 'write-condition'
        ? { method: 'POST', path: 'Condition', body: { resourceType: 'Condition', subject: { reference: `Patient/${ids[rule.about]}` }, code: { text: 'Selvdiagnose' } } }
        : request(op, rule.about, 'citizen');
    const res = await t.request(r.method, r.path, { ...(r.body ? { body: r.body } : {}), headers: { authorization: `Bearer ${token}` } });
    const expected = rule.expect[op];
    expect({ status: res.status, code: res.status >= 400 ? code(res.body) : undefined }).toEqual({ status: expected.status, code: expected.code });
  });

  it('shows the patient the active plan but not the draft; clinicians see both', async () => {
    const token = await citizenToken(t, 'dagny');
    const mine = await t.request<Bundle>('GET', 'CarePlan', { headers: { authorization: `Bearer ${token}` } });
    expect(mine.body.entry?.map((e) => (e.resource as { status: string }).status)).toEqual(['active']);
    const gp = await t.app.idp!.issueAccessToken(t.app.idp!.clinicianClaims('fastlege'));
    const theirs = await t.request<Bundle>('GET', 'CarePlan', { headers: { authorization: `Bearer ${gp}`, ...nhnHeaders({ nin: citizenByKey('dagny').pid }) } });
    expect(theirs.body.entry?.map((e) => (e.resource as { status: string }).status).sort()).toEqual(['active', 'draft']);
  });

  it('lets citizens change only what they wrote themselves', async () => {
    const gp = await t.app.idp!.issueAccessToken(t.app.idp!.clinicianClaims('fastlege'));
    const clinicianGoal = await t.request<{ id: string }>('POST', 'Goal', {
      body: { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Klinisk mål' }, subject: { reference: `Patient/${ids.dagny}` } },
      headers: { authorization: `Bearer ${gp}`, ...nhnHeaders({ nin: citizenByKey('dagny').pid }) },
    });
    expect(clinicianGoal.status).toBe(201);
    const token = await citizenToken(t, 'dagny');
    const takeOver = await t.request('PUT', `Goal/${clinicianGoal.body.id}`, {
      body: { resourceType: 'Goal', id: clinicianGoal.body.id, lifecycleStatus: 'cancelled', description: { text: 'Endret' }, subject: { reference: `Patient/${ids.dagny}` }, expressedBy: { reference: `Patient/${ids.dagny}` } },
      headers: { authorization: `Bearer ${token}` },
    });
    expect(takeOver.status).toBe(403);
    expect((await t.request('DELETE', `Goal/${clinicianGoal.body.id}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);
  });
});

describe('machine tokens', () => {
  it.each(['read-plan', 'write-goal', 'read-patient'] as Op[])('cannot %s', async (op) => {
    const token = await machineToken(t);
    const r = request(op, 'dagny', 'personnel');
    const res = await t.request(r.method, r.path, { ...(r.body ? { body: r.body } : {}), headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(403);
    expect(code(res.body)).toBe('MACHINE_TOKEN_NOT_ALLOWED');
  });

  it('can read the CapabilityStatement, like anyone', async () => {
    expect((await t.request('GET', 'metadata')).status).toBe(200);
  });
});
