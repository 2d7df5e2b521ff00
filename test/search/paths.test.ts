import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { getDataType, parseFhirPath, toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { definitions } from '../../src/fhir/definitions.js';
import { extractIndex } from '../../src/search/extract.js';
import { compilePlainPath, unwrapParentheses } from '../../src/search/paths.js';
import { type ParamDef, searchRegistry, splitUnion } from '../../src/search/registry.js';

// The plain-path walker must select exactly what FHIRPath selects. Instances of every resource
// type are generated from the schema, filling the elements the search expressions name (with
// every type of a choice element, several at once, empty values and primitive extensions).

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be reproduced. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PRIMITIVES: Record<string, unknown[]> = {
  boolean: [true, false],
  integer: [0, 3, -2],
  positiveInt: [1, 7],
  unsignedInt: [0, 9],
  decimal: [1.5, 120, 0.001],
  string: ['Gå en tur', 'abc', 'x'],
  markdown: ['*tekst*'],
  code: ['active', 'final', 'male'],
  id: ['abc-1'],
  uri: ['http://example.org/fhir/x', 'urn:oid:2.16.578.1.12.4.1.4.1'],
  url: ['https://example.org/x'],
  canonical: ['http://example.org/Questionnaire/q|1', 'Questionnaire/q1'],
  oid: ['urn:oid:1.2.3'],
  uuid: ['urn:uuid:1f0e3dad-9990-4d6c-9c3c-3f6a2e2b6f4a'],
  date: ['2024-05-01', '2024'],
  dateTime: ['2024-05-01T10:00:00Z', '2024-05-01', '2024-05'],
  instant: ['2024-05-01T10:00:00.000Z'],
  time: ['10:00:00'],
  base64Binary: ['aGVp'],
  xhtml: ['<div xmlns="http://www.w3.org/1999/xhtml">x</div>'],
};

const REFERENCES = ['Patient/p1', 'Practitioner/d1', 'Organization/o1', 'http://other.example/fhir/Patient/9', '#c1', 'urn:uuid:1f0e3dad-9990-4d6c-9c3c-3f6a2e2b6f4a'];

class Generator {
  constructor(
    private readonly next: () => number,
    /** Property names the search expressions of the type name: filled more often than others. */
    private readonly wanted: ReadonlySet<string>,
  ) {}

  private pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.next() * list.length)] as T;
  }

  /** Which instance is being made: picks the type of choice elements. */
  instance = 0;

  resource(type: string, depth = 0): Record<string, unknown> {
    return { resourceType: type, id: `r${Math.floor(this.next() * 1000)}`, ...this.object(type, depth) };
  }

  private object(type: string, depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (depth > 4) return out;
    for (const [name, element] of Object.entries(getDataType(type).elements)) {
      const bare = name.replace('[x]', '');
      if (['extension', 'modifierExtension', 'id', 'resourceType', 'text'].includes(bare)) continue;
      if (this.next() > (this.wanted.has(bare) ? 0.85 : 0.1)) continue;
      const types = element.type.map((t) => t.code as string);
      // A choice element gets each of its types in turn, one per instance, and sometimes a second
      // at once (FHIRPath takes the first in schema order).
      const chosen = name.endsWith('[x]') ? [types[this.instance % types.length] as string, ...(this.next() < 0.2 ? [this.pick(types)] : [])] : [types[0] as string];
      for (const t of chosen) {
        const key = name.endsWith('[x]') ? bare + t.charAt(0).toUpperCase() + t.slice(1) : name;
        const many = element.isArray || element.max > 1;
        const values = Array.from({ length: many ? 1 + Math.floor(this.next() * 3) : 1 }, () => this.value(t, depth + 1));
        out[key] = this.next() < 0.05 ? (many ? [] : t in PRIMITIVES ? '' : {}) : many ? values : values[0];
        if (t in PRIMITIVES && this.next() < 0.1) {
          const extension = { extension: [{ url: 'http://example.org/ext', valueString: 'e' }] };
          out[`_${key}`] = many ? values.map(() => extension) : extension;
          if (this.next() < 0.5) delete out[key];
        }
      }
    }
    return out;
  }

  private value(type: string, depth: number): unknown {
    const primitive = PRIMITIVES[type];
    if (primitive) return this.pick(primitive);
    if (type === 'Resource') return this.resource(this.pick(['Patient', 'Observation', 'Condition']), depth + 2);
    if (type === 'Reference') {
      const ref: Record<string, unknown> = { reference: this.pick(REFERENCES) };
      if (this.next() < 0.3) ref.identifier = { system: 'urn:oid:2.16.578.1.12.4.1.4.1', value: '13116900216' };
      if (this.next() < 0.2) ref.type = this.pick(['Patient', 'Practitioner']);
      if (this.next() < 0.2) delete ref.reference;
      return ref;
    }
    return this.object(type, depth);
  }
}

const json = (values: TypedValue[]) => [...new Set(values.map((v) => JSON.stringify(v)))].sort();

/**
 * What FHIRPath selects, branch by branch (its `|` also drops values it deems equivalent, such as
 * two Quantities of one value in different units; the index keeps both), `path.as(T)` read as the
 * specification says (@medplum/core does not filter), with a primitive that has
 * extensions as its plain value, and one that has only extensions, or is empty, left out (nothing
 * to index; FHIRPath keeps an empty one only when it has extensions).
 */
function fhirPathValues(expression: string, input: TypedValue, root: TypedValue): TypedValue[] {
  return splitUnion(unwrapParentheses(expression))
    .flatMap((branch) => {
      try {
        const spec = branch.replace(/^(.*)\.as\((\w+)\)$/, (_, path: string, type: string) => `(${path} as ${type === 'DateTime' ? 'dateTime' : type})`);
        return parseFhirPath(spec).eval({ variables: { '%resource': root, '%rootResource': root } }, [input]);
      } catch {
        return [];
      }
    })
    .map((tv) => (tv.value instanceof String || tv.value instanceof Number || tv.value instanceof Boolean ? { type: tv.type, value: tv.value.valueOf() } : tv))
    .filter((tv) => tv.value !== '' && !(/^[a-z]/.test(tv.type) && tv.value !== null && typeof tv.value === 'object'));
}

/** Compares the walker with FHIRPath on `resource`: how many parameters it walked, and how many had a primitive with extensions. */
function compare(resource: Record<string, unknown>, mismatches: string[]): { walked: number; extended: number } {
  const type = resource.resourceType as string;
  const root = toTypedValue(resource);
  let walked = 0;
  let extended = 0;
  for (const param of searchRegistry().indexed(type)) {
    const walker = compilePlainPath(param.expression, type);
    if (!walker) continue;
    walked++;
    const values = walker(root);
    if (param.atom.eval({ variables: {} }, [root]).some((tv) => tv.value instanceof String)) extended++;
    const expected = json(fhirPathValues(param.expression, root, root));
    const actual = values ? json(values) : 'no answer';
    if (JSON.stringify(actual) !== JSON.stringify(expected)) mismatches.push(`${type}.${param.code} (${param.expression}): ${JSON.stringify(actual)} ≠ ${JSON.stringify(expected)}`);
    // A composite's components, on each of its values.
    for (const component of param.components ?? []) {
      const componentWalker = compilePlainPath(component.expression, type);
      if (!componentWalker) continue;
      for (const element of values ?? []) {
        walked++;
        const got = json(componentWalker(element) ?? []);
        const want = json(fhirPathValues(component.expression, element, root));
        if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(`${type}.${param.code} component ${component.expression}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
      }
    }
  }
  return { walked, extended };
}

describe('plain-path search expressions', () => {
  it('selects what FHIRPath selects, for every resource type (generated instances)', () => {
    const next = random(20261126);
    const mismatches: string[] = [];
    let walked = 0;
    let extended = 0;
    let withValues = 0;
    for (const type of definitions().resourceTypes) {
      const names = new Set(searchRegistry().indexed(type).flatMap((p) => p.expression.match(/[a-z][A-Za-z0-9]*/g) ?? []));
      const generator = new Generator(next, names);
      for (let i = 0; i < 12; i++) {
        generator.instance = i;
        const resource = generator.resource(type);
        const counts = compare(resource, mismatches);
        walked += counts.walked;
        extended += counts.extended;
        withValues += searchRegistry()
          .indexed(type)
          .filter((p) => (compilePlainPath(p.expression, type)?.(toTypedValue(resource))?.length ?? 0) > 0).length;
      }
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    // The instances reach deep: many walked parameters found values, some of them primitives with extensions.
    expect(walked).toBeGreaterThan(20_000);
    expect(withValues).toBeGreaterThan(walked / 3);
    expect(extended).toBeGreaterThan(100);
  });

  it('selects what FHIRPath selects on the official FHIRPath and validator examples', () => {
    const dirs = ['fhirpath-tests/input-json', 'validator-cases'].map((d) => path.join(import.meta.dirname, '../fixtures', d));
    const mismatches: string[] = [];
    let walked = 0;
    for (const dir of dirs) {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
        let resource: unknown;
        try {
          resource = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
        } catch {
          continue;
        }
        const type = (resource as { resourceType?: unknown }).resourceType;
        if (typeof type !== 'string' || !definitions().resourceTypes.includes(type)) continue;
        walked += compare(resource as Record<string, unknown>, mismatches).walked;
      }
    }
    expect(mismatches).toEqual([]);
    expect(walked).toBeGreaterThan(100);
  });

  it('is used for plain paths, casts and unions; FHIRPath keeps the rest', () => {
    expect(compilePlainPath('Goal.lifecycleStatus', 'Goal')).toBeTypeOf('function');
    expect(compilePlainPath('(Observation.value as Quantity) | (Observation.value as SampledData)', 'Observation')).toBeTypeOf('function');
    expect(compilePlainPath('meta.tag', 'Goal')).toBeTypeOf('function');
    expect(compilePlainPath('Observation.subject.where(resolve() is Patient)', 'Observation')).toBeTypeOf('function');
    expect(compilePlainPath('Condition.onset.as(dateTime) | Condition.onset.as(Period)', 'Condition')).toBeTypeOf('function');
    expect(compilePlainPath("Patient.telecom.where(system='phone')", 'Patient')).toBeUndefined();
    expect(compilePlainPath('(Observation.value as CodeableConcept).text', 'Observation')).toBeTypeOf('function');
    expect(compilePlainPath('(Observation.component.value as CodeableConcept)', 'Observation')).toBeTypeOf('function');
    expect(compilePlainPath('(Observation.value as string) | (Observation.value as CodeableConcept).text', 'Observation')).toBeTypeOf('function');
    expect(compilePlainPath('(Observation.value as CodeableConcept).text.where(true)', 'Observation')).toBeUndefined();
    // A path written for another type selects nothing in FHIRPath: left to it.
    expect(compilePlainPath('Patient.name', 'Goal')).toBeUndefined();
  });

  it('indexes a primitive that has extensions (FHIRPath wraps it in an object the index skipped)', () => {
    const extension = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1948-03-02T07:15:00+01:00' }] };
    const patient = { resourceType: 'Patient', id: 'p1', birthDate: '1948-03-02', _birthDate: extension, name: [{ given: ['Kari', 'Anne'], _given: [null, { extension: [] }] }] } as unknown as Resource;
    const birthdate = searchRegistry().get('Patient', 'birthdate') as ParamDef;
    const given = searchRegistry().get('Patient', 'given') as ParamDef;
    const rows = extractIndex(patient, 'http://localhost/fhir').rows;
    expect(rows.date.filter(([sp]) => sp === birthdate.sp)).toEqual([[birthdate.sp, '1948-03-02T00:00:00.000Z', '1948-03-03T00:00:00.000Z']]);
    expect(rows.string.filter(([sp]) => sp === given.sp).map(([, norm]) => norm)).toEqual(['kari', 'anne']);
    // By the walk of a cast: `(Observation.value as string) | (Observation.value as CodeableConcept).text`.
    const observation = { resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'x' }, valueString: 'Tungpust', _valueString: extension } as Resource;
    const valueString = searchRegistry().get('Observation', 'value-string') as ParamDef;
    expect(extractIndex(observation, 'http://localhost/fhir').rows.string.filter(([sp]) => sp === valueString.sp).map(([, norm]) => norm)).toEqual(['tungpust']);
    // By FHIRPath too: `relatedArtifact.where(type='depends-on').resource` is not a plain path.
    const definition = { resourceType: 'PlanDefinition', id: 'd1', status: 'active', relatedArtifact: [{ type: 'depends-on', resource: 'http://example.org/Library/kols', _resource: extension }] } as unknown as Resource;
    const dependsOn = searchRegistry().get('PlanDefinition', 'depends-on') as ParamDef;
    expect(compilePlainPath(dependsOn.expression, 'PlanDefinition')).toBeUndefined();
    expect(extractIndex(definition, 'http://localhost/fhir').rows.reference.filter(([sp]) => sp === dependsOn.sp).map(([, , , url]) => url)).toEqual(['http://example.org/Library/kols']);
  });

  // Stored before the validator refused `"coding": {}` (a 500 on create, found by the fuzzer):
  // a reindex must still get through such a resource, indexing what it can.
  it('indexes a CodeableConcept whose coding is an object, not an array, by its text', () => {
    const condition = { resourceType: 'Condition', id: 'c1', subject: { reference: 'Patient/p1' }, code: { coding: {}, text: 'KOLS' } } as unknown as Resource;
    const code = searchRegistry().get('Condition', 'code') as ParamDef;
    expect(extractIndex(condition, 'http://localhost/fhir').rows.token.filter(([sp]) => sp === code.sp)).toEqual([[code.sp, null, null, 'kols']]);
  });
});
