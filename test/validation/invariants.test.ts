/**
 * The shortcuts for the commonest invariants (ext-1, ref-1, dom-2/4/5, and the generic one for
 * `a.empty() or b.exists()` and `a.exists() implies …`: tim-*, qty-3, drt-1, obs-6/7, con-5,
 * cpl-3, prr-1, per-1; src/fhir/validation/invariants.ts) answer without FHIRPath. Each must only ever say "holds" where Medplum's FHIRPath
 * engine evaluates the expression to exactly true — held against it over the extensions,
 * references and resources of valid data and thousands of mutations of them — and must say it
 * for the usual valid values, or validation gains nothing.
 */
import { evalFhirPathTyped, toTypedValue, tryGetDataType, UCUM, type TypedValue } from '@medplum/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { definitions } from '../../src/fhir/definitions.js';
import { compileInvariants, type Invariant } from '../../src/fhir/validation/invariants.js';
import { mutate, random } from '../support/mutations.js';

type Json = Record<string, unknown>;

function invariant(type: string, key: string, element?: string): Invariant {
  const schema = tryGetDataType(type);
  const constraints = element ? schema?.elements[element]?.constraints : schema?.constraints;
  const [compiled] = compileInvariants(constraints?.filter((c) => c.key === key));
  if (!compiled?.holdsFor || !compiled.atom) throw new Error(`no shortcut for ${key} on ${type}${element ? `.${element}` : ''}`);
  return compiled;
}

/** What Medplum's FHIRPath engine makes of the invariant on `value`, inside `root`. */
function fhirPathHolds(inv: Invariant, type: string, value: unknown, root: Json): boolean {
  const context: TypedValue = { type, value };
  const rootValue = toTypedValue(root);
  try {
    const result = evalFhirPathTyped(inv.atom as NonNullable<Invariant['atom']>, [context], { '%context': context, '%ucum': toTypedValue(UCUM), '%resource': rootValue, '%rootResource': rootValue });
    return result.length === 1 && result[0]?.value === true;
  } catch {
    return false;
  }
}

const extension = (e: Json): Json => ({ resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: 'Patient/p' }, extension: [e] });
const reference = (r: Json, contained?: Json[]): Json => ({ resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'x' }, subject: r, ...(contained ? { contained } : {}) });

const UCUM_SYSTEM = 'http://unitsofmeasure.org';
const request = (timing: Json): Json => ({ resourceType: 'ServiceRequest', status: 'active', intent: 'order', code: { text: 'Mål oksygenmetning' }, subject: { reference: 'Patient/p' }, occurrenceTiming: timing });
const repeats: Json[] = [
  { frequency: 2, period: 1, periodUnit: 'd' },
  { duration: 30, durationUnit: 'min', frequency: 1, period: 1, periodUnit: 'wk' },
  { count: 10, countMax: 12, timeOfDay: ['08:00:00'] },
  { when: ['ACM'], offset: 30, boundsDuration: { value: 3, unit: 'd', system: UCUM_SYSTEM, code: 'd' } },
  { frequency: 1, period: 1, periodMax: 2, periodUnit: 'd', boundsPeriod: { start: '2026-11-01', end: '2026-12-01' } },
];
const checkIn = (extra: Json = {}): Json => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'https://samplan.no/fhir/CodeSystem/observation', code: 'check-in' }] },
  subject: { reference: 'Patient/p' },
  effectiveDateTime: '2026-11-27T08:00:00Z',
  component: [{ code: { coding: [{ system: 'http://loinc.org', code: '59408-5' }] }, valueQuantity: { value: 93, unit: '%', system: UCUM_SYSTEM, code: '%' } }],
  ...extra,
});

const condition: Json = {
  resourceType: 'Condition',
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
  code: { text: 'KOLS' },
  subject: { reference: 'Patient/p' },
};

const seeds: Array<{ name: string; type: string; key: string; element?: string; context?: string; roots: Json[]; pick: (root: Json) => unknown }> = [
  {
    name: 'ext-1 on an extension', type: 'Extension', key: 'ext-1', element: 'extension',
    roots: [
      extension({ url: 'https://example.org/zone', valueCode: 'red' }),
      extension({ url: 'https://example.org/zone', extension: [{ url: 'level', valueCode: 'red' }, { url: 'text', valueString: 'Ring 113' }] }),
      extension({ url: 'https://example.org/q', valueQuantity: { value: 1, unit: 'l' } }),
      extension({ url: 'https://example.org/b', valueBoolean: false, id: 'e1' }),
    ],
    pick: (root) => (root.extension as unknown[] | undefined)?.[0],
  },
  {
    name: 'ref-1 on a reference', type: 'Reference', key: 'ref-1',
    roots: [reference({ reference: 'Patient/p' }), reference({ reference: 'urn:uuid:0b7c8c5e-2c2a-4a5e-9d1e-5b8a3f0e1a11', display: 'Kari' }), reference({ reference: '#x' }, [{ resourceType: 'Patient', id: 'x' }]), reference({ display: 'only a name' })],
    pick: (root) => root.subject,
  },
  ...['dom-2', 'dom-4', 'dom-5'].map((key) => ({
    name: `${key} on a resource`, type: 'Goal', key,
    roots: [reference({ reference: 'Patient/p' }), reference({ reference: '#x' }, [{ resourceType: 'Patient', id: 'x', meta: { versionId: '1', security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] } }])],
    pick: (root: Json) => root,
  })),
  // The generic shortcut (`a.empty() or b.exists()`, `a.exists() implies …`) on the invariants a plan's writes meet most.
  ...['tim-1', 'tim-2', 'tim-4', 'tim-5', 'tim-6', 'tim-7', 'tim-8', 'tim-9', 'tim-10'].map((key) => ({
    name: `${key} on a timing`, type: 'Timing', element: 'repeat', context: 'TimingRepeat', key,
    roots: repeats.map((repeat) => request({ repeat })),
    pick: (root: Json) => (root.occurrenceTiming as Json | undefined)?.repeat,
  })),
  ...['qty-3', 'drt-1'].map((key) => ({
    name: `${key} on a duration`, type: 'Duration', key,
    roots: [request({ repeat: { boundsDuration: { value: 3, unit: 'd', system: UCUM_SYSTEM, code: 'd' } } }), request({ repeat: { boundsDuration: { value: 3, unit: 'dager' } } })],
    pick: (root: Json) => ((root.occurrenceTiming as Json | undefined)?.repeat as Json | undefined)?.boundsDuration,
  })),
  {
    name: 'qty-3 on a quantity', type: 'Quantity', key: 'qty-3',
    roots: [checkIn({ component: undefined, valueQuantity: { value: 93, unit: '%', system: UCUM_SYSTEM, code: '%' } }), checkIn({ component: undefined, valueQuantity: { value: 2, unit: 'tabletter' } })],
    pick: (root) => root.valueQuantity,
  },
  ...['obs-6', 'obs-7'].map((key) => ({
    name: `${key} on an observation`, type: 'Observation', key,
    roots: [
      checkIn({ valueCodeableConcept: { coding: [{ system: 'https://samplan.no/fhir/CodeSystem/zone', code: 'yellow' }] } }),
      checkIn(),
      checkIn({ component: undefined, valueQuantity: { value: 93, unit: '%' } }),
      checkIn({ dataAbsentReason: { text: 'Målte ikke' } }),
      // Fails obs-7: a component with the observation's own code.
      checkIn({ valueString: 'gul', code: { coding: [{ system: 'http://loinc.org', code: '59408-5' }] } }),
    ],
    pick: (root: Json) => root,
  })),
  {
    name: 'con-5 on a condition', type: 'Condition', key: 'con-5',
    roots: [
      { ...condition, verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] } },
      { ...condition, verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'entered-in-error' }] } },
      condition,
    ],
    pick: (root) => root,
  },
  {
    name: 'cpl-3 on a plan activity', type: 'CarePlan', element: 'activity', context: 'CarePlanActivity', key: 'cpl-3',
    roots: [
      { resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: 'Patient/p' }, activity: [{ reference: { reference: 'ServiceRequest/s' } }] },
      { resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: 'Patient/p' }, activity: [{ detail: { status: 'scheduled', description: 'Gå tur' } }] },
    ],
    pick: (root) => (root.activity as unknown[] | undefined)?.[0],
  },
  {
    name: 'prr-1 on a request', type: 'ServiceRequest', key: 'prr-1',
    roots: [request({ repeat: repeats[0] }), { ...request({ repeat: repeats[0] }), orderDetail: [{ text: 'Før frokost' }] }],
    pick: (root) => root,
  },
  {
    name: 'per-1 on a period', type: 'Period', key: 'per-1',
    roots: [request({ repeat: { boundsPeriod: { start: '2026-11-01' } } }), request({ repeat: { boundsPeriod: { end: '2026-12-01' } } })],
    pick: (root) => ((root.occurrenceTiming as Json | undefined)?.repeat as Json | undefined)?.boundsPeriod,
  },
];

describe('the invariant shortcuts against FHIRPath', () => {
  beforeAll(() => definitions());

  for (const seed of seeds) {
    it(`${seed.name}: says "holds" only where FHIRPath says true, over 3,000 mutations`, () => {
      const inv = invariant(seed.type, seed.key, seed.element);
      const context = seed.context ?? seed.type;
      const holdsFor = (value: unknown) => (inv.holdsFor as NonNullable<Invariant['holdsFor']>)(value, context);
      // The usual valid value is answered without FHIRPath.
      expect(holdsFor(seed.pick(seed.roots[0] as Json))).toBe(true);
      const rnd = random(27_11_2026);
      let shortcut = 0;
      const wrong: string[] = [];
      for (let i = 0; i < 3000; i++) {
        const root = i < seed.roots.length ? (seed.roots[i] as Json) : mutate(seed.roots[i % seed.roots.length] as Json, rnd);
        const value = seed.pick(root);
        if (!holdsFor(value)) continue;
        shortcut++;
        if (!fhirPathHolds(inv, context, value, root)) wrong.push(JSON.stringify(value));
      }
      expect(wrong).toEqual([]);
      expect(shortcut).toBeGreaterThan(300);
    });
  }
});

describe('the generic shortcut', () => {
  beforeAll(() => definitions());
  const compiled = (expression: string) => compileInvariants([{ key: 'x-1', severity: 'error', expression, description: 'made up' }])[0] as Invariant;

  const made = [
    'code.empty() or system.exists()',
    'comparator.empty()',
    'unit.hasValue().not() or value >= 0',
    "system.where($this = 'http://unitsofmeasure.org').empty() or code.exists()",
    'system.coding.select(code).empty() or unit.exists()',
    'code.exists() implies system.exists()',
    'value.exists() implies value >= 0',
    "comparator.exists().not() or (value > 0 and unit = 'mg')",
    "code.where($this = 'a) or (').empty() or unit.exists()",
    "code.where($this = ')' or unit.exists()).empty()",
  ];
  const notMade = [
    'code.count().empty()',
    'code.union(system).empty()',
    'code.where(system.exists()).exists().empty()',
    'code.empty() xor system.exists()',
    'code.empty() and system.exists()',
    'code.exists() implies system.exists() implies unit.exists()',
    'Quantity.code.empty()',
    '%resource.code.empty()',
  ];

  it('is made for terms that give nothing when their element is not there, and for no others', () => {
    expect(made.filter((e) => !compiled(e).holdsFor)).toEqual([]);
    expect(notMade.filter((e) => compiled(e).holdsFor)).toEqual([]);
  });

  it('says "holds" only where FHIRPath says true, over 3,000 mutations of quantities', () => {
    const roots: Json[] = [
      { value: 2, unit: 'mg', system: UCUM_SYSTEM, code: 'mg' },
      { value: 1 },
      { unit: 'tabletter' },
      { comparator: '<', value: 5, unit: 'mg' },
      { value: -1, code: 'mg' },
    ].map((q) => ({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: q }));
    const rnd = random(27_11_2026);
    const wrong: string[] = [];
    let shortcut = 0;
    for (const expression of made) {
      const inv = compiled(expression);
      for (let i = 0; i < 3000; i++) {
        const root = i < roots.length ? (roots[i] as Json) : mutate(roots[i % roots.length] as Json, rnd);
        if (!inv.holdsFor?.(root.valueQuantity, 'Quantity')) continue;
        shortcut++;
        if (!fhirPathHolds(inv, 'Quantity', root.valueQuantity, root)) wrong.push(`${expression}: ${JSON.stringify(root.valueQuantity)}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(shortcut).toBeGreaterThan(made.length * 300);
  });
});
