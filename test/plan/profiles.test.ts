/**
 * Samplan's profiles and terminology as FHIR conformance resources: served by the server itself
 * (`StructureDefinition?url=…`, with snapshots), used by `$validate` when asked for, and installed
 * without a new version on every start.
 */
import type { Bundle, CodeSystem, OperationOutcome, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installConformance } from '../../src/plan/profiles/index.js';
import { conformanceResources } from '../../src/plan/profiles/definitions.js';
import { PROFILE } from '../../src/plan/conventions.js';
import { BASE, startTestServer, type TestServer } from '../support/app.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => t?.close());

const errors = (o: OperationOutcome) => (o.issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');

describe('conformance resources', () => {
  it('serves every Samplan profile by its canonical URL, resource profiles with a snapshot', async () => {
    const profiles = conformanceResources.filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition');
    expect(profiles.map((p) => p.url)).toEqual(expect.arrayContaining(Object.values(PROFILE)));
    for (const p of profiles) {
      const res = await t.request<Bundle<StructureDefinition>>('GET', `StructureDefinition?url=${encodeURIComponent(p.url)}`);
      expect(res.status).toBe(200);
      expect(res.body.entry, p.url).toHaveLength(1);
      const served = res.body.entry?.[0]?.resource as StructureDefinition;
      // Extension definitions are published as their differential (slices of sub-extensions).
      const elements = p.type === 'Extension' ? served.differential?.element : served.snapshot?.element;
      expect(elements?.length, p.url).toBeGreaterThan(0);
      expect(served.status).toBe('active');
    }
  });

  it('serves its code systems and value sets', async () => {
    for (const r of conformanceResources.filter((x) => x.resourceType !== 'StructureDefinition') as Array<CodeSystem | ValueSet>) {
      const res = await t.request<Bundle>('GET', `${r.resourceType}?url=${encodeURIComponent(r.url as string)}`);
      expect(res.body.entry, r.url).toHaveLength(1);
    }
  });

  it('installs again without new versions (every start runs it)', async () => {
    const before = await t.request<Bundle>('GET', `StructureDefinition?url=${encodeURIComponent(PROFILE.carePlan)}`);
    await installConformance(t.app.engine, BASE);
    const after = await t.request<Bundle>('GET', `StructureDefinition?url=${encodeURIComponent(PROFILE.carePlan)}`);
    expect(after.body.entry?.[0]?.resource?.meta?.versionId).toBe(before.body.entry?.[0]?.resource?.meta?.versionId);
  });
});

describe('$validate with a profile', () => {
  const bare = { resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: 'Patient/p1' } };

  it('checks a resource against the profile named, by parameter or in the query', async () => {
    const base = await t.request<OperationOutcome>('POST', 'CarePlan/$validate', { body: bare });
    expect(errors(base.body)).toEqual([]);
    const asParam = await t.request<OperationOutcome>('POST', 'CarePlan/$validate', {
      body: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: bare }, { name: 'profile', valueUri: PROFILE.carePlan }] },
    });
    expect(asParam.status).toBe(200);
    expect(errors(asParam.body).map((i) => i.expression?.[0])).toContain('CarePlan.title');
    const inQuery = await t.request<OperationOutcome>('POST', `CarePlan/$validate?profile=${encodeURIComponent(PROFILE.carePlan)}`, { body: bare });
    expect(errors(inQuery.body).map((i) => i.expression?.[0])).toContain('CarePlan.title');
    const titled = await t.request<OperationOutcome>('POST', `CarePlan/$validate?profile=${encodeURIComponent(PROFILE.carePlan)}`, { body: { ...bare, title: 'Behandlingsplan' } });
    expect(errors(titled.body)).toEqual([]);
  });

  it('says clearly when the profile is unknown', async () => {
    const res = await t.request<OperationOutcome>('POST', `CarePlan/$validate?profile=${encodeURIComponent('https://example.org/fhir/StructureDefinition/nope')}`, { body: bare });
    expect(res.status).toBeLessThan(500);
    expect(JSON.stringify(res.body)).toMatch(/nope/);
    expect(errors(res.body).length).toBeGreaterThan(0);
  });
});
