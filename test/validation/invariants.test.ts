/**
 * The shortcuts for the commonest invariants (ext-1, ref-1, dom-2/4/5; src/fhir/validation/
 * invariants.ts) answer without FHIRPath. Each must only ever say "holds" where Medplum's FHIRPath
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

const seeds: Array<{ name: string; type: string; key: string; element?: string; roots: Json[]; pick: (root: Json) => unknown }> = [
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
];

describe('the invariant shortcuts against FHIRPath', () => {
  beforeAll(() => definitions());

  for (const seed of seeds) {
    it(`${seed.name}: says "holds" only where FHIRPath says true, over 3,000 mutations`, () => {
      const inv = invariant(seed.type, seed.key, seed.element);
      const holdsFor = inv.holdsFor as (value: unknown) => boolean;
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
        if (!fhirPathHolds(inv, seed.type, value, root)) wrong.push(JSON.stringify(value));
      }
      expect(wrong).toEqual([]);
      expect(shortcut).toBeGreaterThan(300);
    });
  }
});
