import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { definitions } from '../../src/fhir/definitions.js';
import { hasErrors, registerProfile, validateResource } from '../../src/fhir/validation/validator.js';

const errors = (resource: unknown, options = {}) => validateResource(resource, options).filter((i) => i.severity === 'error');
const where = (resource: unknown, options = {}) => errors(resource, options).map((i) => i.expression?.[0]);

const carePlan = {
  resourceType: 'CarePlan',
  id: 'cp-1',
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><p>Oppfølging etter hjerneslag</p></div>' },
  status: 'active',
  intent: 'plan',
  category: [{ coding: [{ system: 'http://snomed.info/sct', code: '736353004' }] }],
  title: 'Oppfølging',
  subject: { reference: 'Patient/p1', display: 'Kari Nordmann' },
  period: { start: '2024-01-10', end: '2024-06-30' },
  goal: [{ reference: 'Goal/g1' }],
  activity: [{ detail: { kind: 'ServiceRequest', status: 'in-progress', description: 'Fysioterapi; SpO2 < 92 % gir varsel' } }],
};

describe('validateResource: input that is not a resource', () => {
  it.each([
    ['null', null, '$this'],
    ['an array', [], '$this'],
    ['a number', 42, '$this'],
    ['a string', 'Patient', '$this'],
    ['an empty object', {}, 'resourceType'],
    ['an unknown type', { resourceType: 'Nope' }, 'resourceType'],
    ['an abstract type', { resourceType: 'DomainResource' }, 'resourceType'],
    ['a non-string type', { resourceType: 7 }, 'resourceType'],
  ])('%s gives one error issue, not an exception', (_label, input, expression) => {
    const issues = validateResource(input);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ severity: 'error', expression: [expression], details: { coding: [{ code: 'VALIDATION_ERROR' }] } });
    expect(issues[0]?.details?.text?.length).toBeGreaterThan(10);
  });

  it('reports values of the wrong JSON shape once, without Medplum noise beneath them', () => {
    const issues = errors({ resourceType: 'Patient', name: 'Kari', _gender: 5, birthDate: { year: 1948 }, contained: [{ resourceType: 'Nope' }, 3] });
    expect(issues.map((i) => i.expression?.[0]).sort()).toEqual(['Patient.birthDate', 'Patient.contained[0]', 'Patient.contained[1]', 'Patient.gender', 'Patient.name']);
  });

  // Medplum refuses an object where an array belongs but let an empty one through; stored, it
  // broke the search index extraction of the resource (a 500, found by the fuzzer).
  it('refuses an object where an array belongs, also an empty one', () => {
    const plan = structuredClone(carePlan) as Record<string, unknown>;
    plan.category = [{ coding: {} }];
    const issues = errors(plan);
    expect(issues.map((i) => i.expression?.[0])).toEqual(['CarePlan.category[0].coding']);
    expect(issues[0]?.details?.text).toMatch(/^Expected an array for coding but found an object/);
    expect(where({ resourceType: 'Basic', code: { coding: [{ code: 'a' }] }, identifier: [{ value: '1', type: { coding: {} } }] })).toEqual(['Basic.identifier[0].type.coding']);
    plan.category = [{ coding: { system: 'urn:x', code: 'a' } }];
    expect(errors(plan)).toHaveLength(1);
  });

  it.each([
    // Each wrong element is an issue, and each issue quoted the whole array: 20,000 took 12 s.
    ['an array where a Coding belongs', [Array.from({ length: 30_000 }, () => 'x')], 1],
    // Each of Medplum's issues was compared with each wrong value: 8,000 took 37 s.
    ['strings where Codings belong', Array.from({ length: 30_000 }, () => 'x'), 30_000],
  ])('takes time linear in the number of wrong values: %s', (_name, coding, count) => {
    // Both blocked the server (found by the fuzzer); now each takes a fraction of a second.
    const plan = structuredClone(carePlan) as Record<string, unknown>;
    plan.category = [{ coding }];
    const started = performance.now();
    expect(errors(plan).length).toBeGreaterThanOrEqual(count);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('never throws, whatever is put where', () => {
    // Deterministic mutations of a valid CarePlan: every leaf replaced by odd values in turn.
    const odd: unknown[] = [null, [], {}, 0, -1.5, '', ' ', '<b>x</b>', true, [null], [[1]], { resourceType: 'Nope' }, { extension: 'x' }];
    const leaves: string[][] = [];
    const collect = (value: unknown, path: string[]): void => {
      if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) collect(v, [...path, k]);
      else leaves.push(path);
    };
    collect(carePlan, []);
    for (const leaf of leaves) {
      for (const value of odd) {
        const copy = structuredClone(carePlan) as Record<string, unknown>;
        let at: Record<string, unknown> = copy;
        for (const key of leaf.slice(0, -1)) at = at[key] as Record<string, unknown>;
        at[leaf.at(-1) as string] = value;
        expect(() => validateResource(copy)).not.toThrow();
      }
    }
  });
});

describe('validateResource: structure from Medplum, in Samplan form', () => {
  it('accepts a valid CarePlan with no issues', () => {
    expect(validateResource(carePlan)).toEqual([]);
  });

  it('passes cardinality errors through with expressions and the Samplan code', () => {
    const { status: _s, intent: _i, ...incomplete } = carePlan;
    const issues = errors(incomplete);
    expect(issues.map((i) => i.expression?.[0])).toEqual(['CarePlan.status', 'CarePlan.intent']);
    expect(issues[0]?.details).toMatchObject({ text: expect.stringContaining("Missing required element 'status'"), coding: [{ code: 'VALIDATION_ERROR' }] });
    expect(where({ resourceType: 'Patient', gender: ['male'] })).toEqual(['Patient.gender']);
  });

  it('passes invariant errors through (pat-1 on a backbone element, cpl-3 on CarePlan.activity)', () => {
    const issues = errors({ resourceType: 'Patient', contact: [{ gender: 'female' }] });
    expect(issues.map((i) => i.expression?.[0])).toEqual(['Patient.contact[0]']);
    expect(issues[0]?.details?.text).toMatch(/^Constraint failed: pat-1/);
    const both = { ...carePlan, activity: [{ reference: { reference: 'ServiceRequest/1' }, detail: { status: 'scheduled' } }] };
    expect(errors(both).map((i) => i.details?.text?.slice(0, 24))).toEqual(['Constraint failed: cpl-3']);
  });

  it('reports unknown properties and bad primitive formats, with choice elements by their JSON name', () => {
    expect(where({ resourceType: 'Patient', unknownElement: 1 })).toEqual(['Patient.unknownElement']);
    const issues = errors({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveDateTime: '12.03.2024', valueQuantity: { value: '5' } });
    expect(issues.map((i) => i.expression?.[0])).toEqual(['Observation.effectiveDateTime', 'Observation.valueQuantity.value']);
    expect(issues[0]?.details?.text).toContain('"12.03.2024"');
  });

  it('adds the data-type invariants Medplum leaves out (per-1, qty-3), passing absent values (ref-1)', () => {
    expect(where({ ...carePlan, period: { start: '2024-06-30', end: '2024-01-10' } })).toEqual(['CarePlan.period']);
    const quantity = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: { value: 5, code: 'mg' } };
    expect(where(quantity)).toEqual(['Observation.valueQuantity']);
    expect(errors({ ...carePlan, author: { display: 'Dr. Hansen' } })).toEqual([]);
    expect(where({ ...carePlan, author: { reference: '#nowhere' } })).toEqual(['CarePlan.author']);
  });

  it('does not warn about absolute references (Medplum misreads their type)', () => {
    expect(validateResource({ ...carePlan, subject: { reference: 'https://fhir.example.no/Patient/1' } })).toEqual([]);
    expect(validateResource({ ...carePlan, subject: { reference: 'Observation/1' } }).map((i) => i.severity)).toEqual(['warning']);
  });
});

describe('validateResource: ids and contained resources', () => {
  it('checks the id of the resource and of nested ones', () => {
    expect(where({ resourceType: 'Patient', id: 'bad_id' })).toEqual(['Patient.id']);
    expect(where({ resourceType: 'Patient', id: 'x'.repeat(65) })).toEqual(['Patient.id']);
    expect(errors({ resourceType: 'Patient', id: 'A-z.0'.repeat(12) })).toEqual([]);
    const bundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', id: 'a b' } }] };
    expect(where(bundle)).toEqual(['Bundle.entry[0].resource.id']);
  });

  const withContained = (contained: object, subject = '#p') => ({ ...carePlan, subject: { reference: subject }, contained: [contained] });

  it('validates contained resources by default and ignores them with validateContains IGNORE', () => {
    const bad = withContained({ resourceType: 'Patient', id: 'p'.repeat(65), gender: 'x' }, `#${'p'.repeat(65)}`);
    expect(where(bad).sort()).toEqual(['CarePlan.contained[0].gender', 'CarePlan.contained[0].id']);
    expect(where(bad, { validateContains: 'CHECK_VALID' })).toHaveLength(2);
    expect(validateResource(bad, { validateContains: 'IGNORE' })).toEqual([]);
  });

  it('requires a contained resource to be referenced, or to refer to its container (dom-3)', () => {
    expect(errors(withContained({ resourceType: 'Patient', id: 'p' }))).toEqual([]);
    const unreferenced = errors(withContained({ resourceType: 'Patient', id: 'q' }, 'Patient/1'));
    expect(unreferenced.map((i) => i.expression?.[0])).toEqual(['CarePlan.contained[0]']);
    expect(unreferenced[0]?.details?.text).toContain('dom-3');
    const goal = { resourceType: 'Goal', id: 'g', lifecycleStatus: 'active', description: { text: 'Gå 1 km' }, subject: { reference: '#' } };
    expect(errors(withContained(goal, 'Patient/1'))).toEqual([]);
  });

  it('applies resource-level invariants to contained resources (Medplum only does the root)', () => {
    const condition = { resourceType: 'Condition', id: 'c', subject: { reference: 'Patient/1' }, abatementString: 'borte' };
    const plan = { ...carePlan, addresses: [{ reference: '#c' }], contained: [condition] };
    expect(errors(plan).map((i) => i.details?.text?.slice(0, 24))).toEqual(['Constraint failed: con-4']);
  });
});

describe('profiles', () => {
  /** A Samplan-style profile on Patient: birthDate 1..1 and maritalStatus bound (required). */
  function patientProfile(url: string): StructureDefinition {
    const base = definitions().structureDefinitions.get('Patient') as StructureDefinition;
    const element = (e: ElementDefinition): ElementDefinition => {
      if (e.path === 'Patient.birthDate') return { ...e, min: 1 };
      if (e.path === 'Patient.maritalStatus') return { ...e, binding: { strength: 'required', valueSet: 'http://hl7.org/fhir/ValueSet/marital-status' } };
      return e;
    };
    return {
      ...structuredClone(base),
      id: 'samplan-patient',
      url,
      name: 'SamplanPatient',
      derivation: 'constraint',
      baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
      snapshot: { element: (base.snapshot?.element ?? []).map(element) },
    };
  }
  const url = 'https://samplan.test/fhir/StructureDefinition/samplan-patient';
  registerProfile(patientProfile(url));
  const married = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] };
  const foreignStatus = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'XX' }] };

  it('validates against a requested profile on top of the base type', () => {
    expect(errors({ resourceType: 'Patient', maritalStatus: married }, { profile: url }).map((i) => i.expression?.[0])).toEqual([
      'Patient.birthDate',
    ]);
    expect(errors({ resourceType: 'Patient', birthDate: '1948', maritalStatus: married }, { profile: url })).toEqual([]);
    // The profile's required binding (the base binding is extensible)
    expect(errors({ resourceType: 'Patient', birthDate: '1948', maritalStatus: foreignStatus })).toEqual([]);
    expect(where({ resourceType: 'Patient', birthDate: '1948', maritalStatus: foreignStatus }, { profile: url })).toEqual(['Patient.maritalStatus']);
  });

  it('applies registered profiles named in meta.profile, and only warns about unknown ones', () => {
    expect(where({ resourceType: 'Patient', meta: { profile: [url] } })).toEqual(['Patient.birthDate']);
    const unknown = validateResource({ resourceType: 'Patient', meta: { profile: ['https://example.org/StructureDefinition/unknown'] } });
    expect(unknown.map((i) => [i.severity, i.expression?.[0]])).toEqual([['warning', 'Patient.meta.profile[0]']]);
    expect(hasErrors(unknown)).toBe(false);
    expect(validateResource({ resourceType: 'Patient', meta: { profile: ['http://hl7.org/fhir/StructureDefinition/Patient'] } })).toEqual([]);
  });

  it('rejects an unknown requested profile or one for another type', () => {
    expect(where({ resourceType: 'Patient' }, { profile: 'https://example.org/nope' })).toEqual(['Patient']);
    expect(errors({ ...carePlan }, { profile: url })[0]?.details?.text).toContain('is for Patient');
  });

  it('refuses a non-extension profile without a snapshot', () => {
    const { snapshot: _s, ...differentialOnly } = patientProfile('https://samplan.test/fhir/StructureDefinition/other');
    expect(() => registerProfile(differentialOnly)).toThrow(/snapshot/);
  });
});

describe('hasErrors', () => {
  it('is true for error and fatal only', () => {
    expect(hasErrors([])).toBe(false);
    expect(hasErrors([{ severity: 'warning', code: 'invalid' }])).toBe(false);
    expect(hasErrors([{ severity: 'fatal', code: 'invalid' }])).toBe(true);
    expect(hasErrors([{ severity: 'information', code: 'invalid' }, { severity: 'error', code: 'invalid' }])).toBe(true);
  });
});
