import { readFileSync } from 'node:fs';
import type { Parameters, ParametersParameter, Patient, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { FhirError } from '../../src/fhir/outcomes.js';
import { applyFhirPathPatch, isFhirPathPatch } from '../../src/fhir/patch/fhirpath-patch.js';

// ---------------------------------------------------------------------------------------------
// The official cases (FHIR/fhir-test-cases r4/patch/fhir-patch-tests.xml, as JSON: see SOURCE.md)

interface OfficialCase {
  name: string;
  mode: 'both' | 'forwards';
  input: Resource;
  patch: Parameters;
  output?: Resource;
  error?: string;
}

const officialCases = JSON.parse(
  readFileSync(new URL('../fixtures/fhir-patch/fhir-patch-tests.json', import.meta.url), 'utf8'),
) as OfficialCase[];

describe('official FHIRPath Patch test cases', () => {
  it('has all 33 cases', () => {
    expect(officialCases).toHaveLength(33);
  });

  // `mode` says whether the case also serves to test diff generation ("both"); every case applies.
  it.each(officialCases.filter((c) => c.output))('$name', ({ input, patch, output }) => {
    expect(applyFhirPathPatch(input, patch)).toEqual(output);
  });

  // The expected message is the Java reference implementation's; only the failure is compared.
  it.each(officialCases.filter((c) => c.error))('$name (fails)', ({ input, patch }) => {
    expect(() => applyFhirPathPatch(input, patch)).toThrow(FhirError);
  });
});

// ---------------------------------------------------------------------------------------------
// Helpers

type Part = ParametersParameter;
const op = (type: string, path: string, ...parts: Part[]): Part => ({
  name: 'operation',
  part: [
    { name: 'type', valueCode: type },
    { name: 'path', valueString: path },
    ...parts,
  ],
});
const name = (n: string): Part => ({ name: 'name', valueString: n });
const index = (n: number): Part => ({ name: 'index', valueInteger: n });
const value = (v: Omit<Part, 'name'>): Part => ({ name: 'value', ...v });
const patchOf = (...operations: Part[]): Parameters => ({ resourceType: 'Parameters', parameter: operations });

function patient(): Patient {
  return {
    resourceType: 'Patient',
    id: 'p1',
    identifier: [{ system: 'urn:mrn', value: '1' }],
    name: [
      { use: 'official', family: 'Chalmers', given: ['Peter', 'James'] },
      { use: 'usual', given: ['Jim'] },
    ],
    gender: 'male',
    birthDate: '1974-12-25',
    _birthDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1974-12-25T14:35:45-05:00' }] },
    deceasedBoolean: false,
  } as Patient;
}

function apply(resource: Resource, ...operations: Part[]): Patient {
  return applyFhirPathPatch(resource, patchOf(...operations)) as Patient;
}

/** The FhirError a patch fails with. */
function failure(resource: Resource, patch: Parameters): FhirError {
  try {
    applyFhirPathPatch(resource, patch);
  } catch (err) {
    if (err instanceof FhirError) return err;
    throw err;
  }
  throw new Error('the patch did not fail');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------

describe('operations on a Patient', () => {
  it('add appends an identifier to the list', () => {
    const result = apply(patient(), op('add', 'Patient', name('identifier'), value({ valueIdentifier: { system: 'urn:x', value: '2' } })));
    expect(result.identifier).toEqual([
      { system: 'urn:mrn', value: '1' },
      { system: 'urn:x', value: '2' },
    ]);
  });

  it('add sets an absent single element, and refuses one that is present', () => {
    const result = apply(patient(), op('add', 'Patient', name('active'), value({ valueBoolean: true })));
    expect(result.active).toBe(true);
    const error = failure(patient(), patchOf(op('add', 'Patient', name('gender'), value({ valueCode: 'female' }))));
    expect(error.message).toMatch(/already has a value/);
  });

  it('add of a choice element names the key by the value type, and refuses a second type', () => {
    const p = patient();
    delete p.deceasedBoolean;
    expect(apply(p, op('add', 'Patient', name('deceased'), value({ valueDateTime: '2020-01-01' }))).deceasedDateTime).toBe('2020-01-01');
    expect(failure(patient(), patchOf(op('add', 'Patient', name('deceased'), value({ valueDateTime: '2020' })))).message).toMatch(/already has a value/);
  });

  it('insert puts a name at index 0', () => {
    const result = apply(patient(), op('insert', 'Patient.name', index(0), value({ valueHumanName: { text: 'First' } })));
    expect(result.name?.map((n) => n.text ?? n.use)).toEqual(['First', 'official', 'usual']);
  });

  it('insert at the end (index = length) and into an absent list', () => {
    expect(apply(patient(), op('insert', 'Patient.name', index(2), value({ valueHumanName: { text: 'Last' } }))).name?.[2]).toEqual({ text: 'Last' });
    expect(apply(patient(), op('insert', 'Patient.telecom', index(0), value({ valueContactPoint: { system: 'phone', value: '1' } }))).telecom).toEqual([
      { system: 'phone', value: '1' },
    ]);
  });

  it('delete removes birthDate together with its _birthDate extensions', () => {
    const result = apply(patient(), op('delete', 'Patient.birthDate'));
    expect(result.birthDate).toBeUndefined();
    expect('_birthDate' in result).toBe(false);
  });

  it('delete of a path that matches nothing changes nothing', () => {
    expect(apply(patient(), op('delete', 'Patient.maritalStatus'))).toEqual(patient());
  });

  it('delete of the last list item removes the list', () => {
    const result = apply(patient(), op('delete', 'Patient.identifier[0]'));
    expect('identifier' in result).toBe(false);
  });

  it('replace changes gender', () => {
    expect(apply(patient(), op('replace', 'Patient.gender', value({ valueCode: 'female' }))).gender).toBe('female');
  });

  it('replace of a choice element with another type changes its key', () => {
    const result = apply(patient(), op('replace', 'Patient.deceased', value({ valueDateTime: '2020-02-02' })));
    expect(result.deceasedDateTime).toBe('2020-02-02');
    expect('deceasedBoolean' in result).toBe(false);
  });

  it('replace of a primitive replaces the whole element, its extensions too', () => {
    const result = apply(patient(), op('replace', 'Patient.birthDate', value({ valueDate: '1975-01-01' })));
    expect(result.birthDate).toBe('1975-01-01');
    expect('_birthDate' in result).toBe(false);
  });

  it('move reorders names', () => {
    const result = apply(patient(), op('move', 'Patient.name', { name: 'source', valueInteger: 1 }, { name: 'destination', valueInteger: 0 }));
    expect(result.name?.map((n) => n.use)).toEqual(['usual', 'official']);
  });

  it('operations run in order, each on the result of the one before', () => {
    const result = apply(
      patient(),
      op('add', 'Patient', name('identifier'), value({ valueIdentifier: { value: '2' } })),
      op('replace', 'Patient.identifier[1].value', value({ valueString: '3' })),
      op('delete', 'Patient.identifier[0]'),
    );
    expect(result.identifier).toEqual([{ value: '3' }]);
  });
});

describe('complex values given as parts', () => {
  it('add builds an Identifier from system and value parts', () => {
    const result = apply(
      patient(),
      op('add', 'Patient', name('identifier'), {
        name: 'value',
        part: [
          { name: 'system', valueUri: 'urn:x' },
          { name: 'value', valueString: '2' },
        ],
      }),
    );
    expect(result.identifier?.[1]).toEqual({ system: 'urn:x', value: '2' });
  });

  it('repeated parts of a list element make a list; nested parts make nested objects', () => {
    const result = apply(
      patient(),
      op('insert', 'Patient.contact', index(0), {
        name: 'value',
        part: [
          { name: 'name', part: [{ name: 'given', valueString: 'A' }, { name: 'given', valueString: 'B' }, { name: 'family', valueString: 'C' }] },
          { name: 'gender', valueCode: 'other' },
        ],
      }),
    );
    expect(result.contact).toEqual([{ name: { given: ['A', 'B'], family: 'C' }, gender: 'other' }]);
  });

  it('replace with parts takes the type of the replaced element', () => {
    const p = { ...patient(), contact: [{ gender: 'male' }] } as Patient;
    const result = apply(p, op('replace', 'Patient.contact[0]', { name: 'value', part: [{ name: 'gender', valueCode: 'female' }] }));
    expect(result.contact).toEqual([{ gender: 'female' }]);
  });

  it('a part that is not an element of the type is refused', () => {
    const error = failure(patient(), patchOf(op('add', 'Patient', name('identifier'), { name: 'value', part: [{ name: 'nonsense', valueString: 'x' }] })));
    expect(error.message).toMatch(/Identifier has no element "nonsense"/);
  });
});

describe('primitives and their _name companions', () => {
  const withGivenExtensions = (): Patient =>
    ({
      resourceType: 'Patient',
      name: [{ given: ['A', 'B', 'C'], _given: [null, { id: 'b' }, null] }],
    }) as unknown as Patient;

  it('delete of a list primitive keeps the companion list aligned', () => {
    const result = apply(withGivenExtensions(), op('delete', 'Patient.name[0].given[0]'));
    expect(result.name?.[0]).toEqual({ given: ['B', 'C'], _given: [{ id: 'b' }, null] });
    const again = apply(result, op('delete', 'Patient.name.given[0]'));
    expect(again.name?.[0]).toEqual({ given: ['C'] });
  });

  it('insert and move keep the companion list aligned', () => {
    const inserted = apply(withGivenExtensions(), op('insert', 'Patient.name[0].given', index(0), value({ valueString: 'Z' })));
    expect(inserted.name?.[0]).toEqual({ given: ['Z', 'A', 'B', 'C'], _given: [null, null, { id: 'b' }, null] });
    const moved = apply(withGivenExtensions(), op('move', 'Patient.name[0].given', { name: 'source', valueInteger: 1 }, { name: 'destination', valueInteger: 2 }));
    expect(moved.name?.[0]).toEqual({ given: ['A', 'C', 'B'], _given: [null, null, { id: 'b' }] });
  });

  it('a value with a _value[x] companion carries its extensions along', () => {
    const result = apply(
      withGivenExtensions(),
      op('add', 'Patient.name[0]', name('given'), { name: 'value', valueString: 'D', _valueString: { id: 'd' } } as Part),
    );
    expect(result.name?.[0]).toEqual({ given: ['A', 'B', 'C', 'D'], _given: [null, { id: 'b' }, null, { id: 'd' }] });
  });

  it('add of an extension to a primitive creates its companion', () => {
    const p = { resourceType: 'Patient', birthDate: '2000-01-01' } as Patient;
    const result = apply(p, op('add', 'Patient.birthDate', name('extension'), { name: 'value', part: [{ name: 'url', valueUri: 'urn:e' }, { name: 'value', valueString: 'x' }] }));
    expect(result).toEqual({ resourceType: 'Patient', birthDate: '2000-01-01', _birthDate: { extension: [{ url: 'urn:e', valueString: 'x' }] } });
  });

  it('delete of a primitive extension removes the emptied companion', () => {
    const result = apply(patient(), op('delete', 'Patient.birthDate.extension'));
    expect(result.birthDate).toBe('1974-12-25');
    expect('_birthDate' in result).toBe(false);
  });

  it('filters pick the exact item, even among equal values', () => {
    const p = { resourceType: 'Patient', name: [{ given: ['A', 'B', 'A'], _given: [{ id: 'first' }, null, { id: 'last' }] }] } as unknown as Patient;
    expect(apply(p, op('delete', 'Patient.name.given.last()')).name?.[0]).toEqual({ given: ['A', 'B'], _given: [{ id: 'first' }, null] });
    expect(apply(p, op('delete', 'Patient.name.given.first()')).name?.[0]).toEqual({ given: ['B', 'A'], _given: [null, { id: 'last' }] });
    expect(apply(p, op('replace', "Patient.name.given.where($this = 'B')", value({ valueString: 'Q' }))).name?.[0]?.given).toEqual(['A', 'Q', 'A']);
  });

  it('where() on a list of complex elements, then a primitive', () => {
    const result = apply(patient(), op('replace', "Patient.name.where(use = 'usual').given[0]", value({ valueString: 'Jimmy' })));
    expect(result.name?.[1]?.given).toEqual(['Jimmy']);
    expect(result.name?.[0]?.given).toEqual(['Peter', 'James']);
  });

  it('extension(url) selects an extension', () => {
    const p = {
      resourceType: 'Patient',
      extension: [
        { url: 'urn:a', valueString: 'a' },
        { url: 'urn:b', valueString: 'b' },
      ],
    } as Patient;
    expect(apply(p, op('replace', "Patient.extension('urn:b').value", value({ valueString: 'B' }))).extension?.[1]).toEqual({ url: 'urn:b', valueString: 'B' });
    expect(apply(p, op('delete', "Patient.extension('urn:a')")).extension).toEqual([{ url: 'urn:b', valueString: 'b' }]);
  });
});

describe('failures', () => {
  it('replace of a path that matches nothing', () => {
    const error = failure(patient(), patchOf(op('replace', 'Patient.maritalStatus', value({ valueCodeableConcept: { text: 'x' } }))));
    expect(error.status).toBe(400);
    expect(error.message).toBe('Patch operation 1 (replace Patient.maritalStatus): the path matches no element to replace');
    expect(error.outcome.issue[0]?.expression).toEqual(['Parameters.parameter[0]']);
  });

  it('replace of a path that matches several elements', () => {
    const error = failure(patient(), patchOf(op('replace', 'Patient.gender', value({ valueCode: 'female' })), op('replace', 'Patient.name.given', value({ valueString: 'X' }))));
    expect(error.message).toBe('Patch operation 2 (replace Patient.name.given): the path matches 3 elements; it must match exactly one');
  });

  it('delete of a path that matches several elements', () => {
    expect(failure(patient(), patchOf(op('delete', 'Patient.name'))).message).toMatch(/matches 2 elements/);
  });

  it('insert at an index past the end of the list', () => {
    const error = failure(patient(), patchOf(op('insert', 'Patient.name', index(3), value({ valueHumanName: { text: 'x' } }))));
    expect(error.message).toMatch(/index 3 is out of range \(the list has 2 items\)/);
  });

  it('move with a source or destination out of range', () => {
    const move = (source: number, destination: number): Parameters =>
      patchOf(op('move', 'Patient.name', { name: 'source', valueInteger: source }, { name: 'destination', valueInteger: destination }));
    expect(failure(patient(), move(2, 0)).message).toMatch(/source 2 is out of range/);
    expect(failure(patient(), move(0, 2)).message).toMatch(/destination 2 is out of range/);
  });

  it('insert into something that is not a list', () => {
    expect(failure(patient(), patchOf(op('insert', 'Patient.gender', index(0), value({ valueCode: 'male' })))).message).toMatch(/is not a list/);
  });

  it('add to a path that matches nothing (the spec example "Operation on missing element")', () => {
    expect(failure(patient(), patchOf(op('add', 'Patient.contact[0]', name('gender'), value({ valueCode: 'male' })))).message).toMatch(
      /the path matches no element to add to/,
    );
  });

  it('a value of the wrong type', () => {
    expect(failure(patient(), patchOf(op('replace', 'Patient.gender', value({ valueBoolean: true })))).message).toMatch(/a boolean value cannot go in Patient.gender/);
    expect(failure(patient(), patchOf(op('add', 'Patient', name('maritalStatus'), value({ valueString: 'married' })))).message).toMatch(
      /a string value cannot go in Patient.maritalStatus/,
    );
  });

  it('an element the type does not have', () => {
    expect(failure(patient(), patchOf(op('add', 'Patient', name('nickname'), value({ valueString: 'x' })))).message).toMatch(/Patient has no element "nickname"/);
  });

  it('changing the id', () => {
    expect(failure(patient(), patchOf(op('replace', 'Patient.id', value({ valueId: 'p2' })))).message).toMatch(/may not change the resource id/);
    expect(failure(patient(), patchOf(op('delete', 'Patient.id'))).message).toMatch(/may not change the resource id/);
  });

  it('deleting or replacing the resource itself', () => {
    expect(failure(patient(), patchOf(op('delete', 'Patient'))).message).toMatch(/cannot be deleted/);
  });

  it('resolve() in a path, and a path that is not FHIRPath', () => {
    const p = { ...patient(), managingOrganization: { reference: 'Organization/1' } } as Patient;
    expect(failure(p, patchOf(op('replace', 'Patient.managingOrganization.resolve().name', value({ valueString: 'x' })))).message).toMatch(/resolve\(\)/);
    expect(failure(p, patchOf(op('delete', 'Patient.name['))).message).toMatch(/not valid FHIRPath|cannot be evaluated/);
  });
});

describe('malformed patch documents', () => {
  const cases: Array<[string, Parameters, RegExp]> = [
    ['not a Parameters resource', { resourceType: 'Patient' } as unknown as Parameters, /must be a Parameters resource/],
    ['a parameter not named operation', { resourceType: 'Parameters', parameter: [{ name: 'op', part: [] }] }, /only "operation" parameters/],
    ['no type', patchOf({ name: 'operation', part: [{ name: 'path', valueString: 'Patient.gender' }] }), /the "type" part is missing/],
    ['an unknown type', patchOf(op('upsert', 'Patient.gender', value({ valueCode: 'male' }))), /unknown operation type "upsert"/],
    ['no path', patchOf({ name: 'operation', part: [{ name: 'type', valueCode: 'delete' }] }), /needs a "path" part/],
    ['no value for replace', patchOf(op('replace', 'Patient.gender')), /needs a "value" part/],
    ['no value for add', patchOf(op('add', 'Patient', name('gender'))), /needs a "value" part/],
    ['no name for add', patchOf(op('add', 'Patient', value({ valueCode: 'male' }))), /needs a "name" part/],
    ['no index for insert', patchOf(op('insert', 'Patient.name', value({ valueHumanName: { text: 'x' } }))), /needs a "index" part/],
    ['a negative index', patchOf(op('insert', 'Patient.name', index(-1), value({ valueHumanName: { text: 'x' } }))), /valueInteger of 0 or more/],
    ['no destination for move', patchOf(op('move', 'Patient.name', { name: 'source', valueInteger: 0 })), /needs a "destination" part/],
    ['a part the type does not take', patchOf(op('delete', 'Patient.gender', value({ valueCode: 'male' }))), /a delete operation has no "value" part/],
    ['a part given twice', patchOf(op('replace', 'Patient.gender', value({ valueCode: 'male' }), value({ valueCode: 'female' }))), /given twice/],
    ['a value with two values', patchOf(op('replace', 'Patient.gender', value({ valueCode: 'male', valueString: 'x' }))), /more than one value/],
  ];
  it.each(cases)('%s', (_label, patch, message) => {
    const error = failure(patient(), patch);
    expect(error.status).toBe(400);
    expect(error.message).toMatch(message);
  });

  it('a broken operation fails the whole patch before anything applies', () => {
    const error = failure(patient(), patchOf(op('replace', 'Patient.gender', value({ valueCode: 'female' })), op('explode', 'Patient')));
    expect(error.message).toMatch(/^Patch operation 2: unknown operation type/);
  });
});

describe('applyFhirPathPatch', () => {
  it('does not mutate its input (which may be frozen)', () => {
    const input = deepFreeze(patient());
    const before = structuredClone(input);
    const result = apply(
      input,
      op('add', 'Patient', name('identifier'), value({ valueIdentifier: { value: '2' } })),
      op('insert', 'Patient.name', index(0), value({ valueHumanName: { text: 'x' } })),
      op('delete', 'Patient.birthDate'),
      op('replace', 'Patient.gender', value({ valueCode: 'female' })),
      op('move', 'Patient.name', { name: 'source', valueInteger: 0 }, { name: 'destination', valueInteger: 2 }),
      op('replace', 'Patient.name[0].given[0]', value({ valueString: 'P' })),
    );
    expect(input).toEqual(before);
    expect(result).not.toEqual(before);
    expect(result.resourceType).toBe('Patient');
    expect(result.id).toBe('p1');
  });

  it('patches contained resources and adds new ones', () => {
    const p = { resourceType: 'Patient', contained: [{ resourceType: 'Organization', id: 'o', name: 'Old' }] } as Patient;
    const renamed = apply(p, op('replace', 'Patient.contained[0].name', value({ valueString: 'New' })));
    expect(renamed.contained).toEqual([{ resourceType: 'Organization', id: 'o', name: 'New' }]);
    const added = apply(p, op('add', 'Patient', name('contained'), { name: 'value', resource: { resourceType: 'Practitioner', id: 'pr' } }));
    expect(added.contained?.[1]).toEqual({ resourceType: 'Practitioner', id: 'pr' });
  });

  it('an empty patch returns an equal copy', () => {
    const input = patient();
    const result = applyFhirPathPatch(input, { resourceType: 'Parameters' });
    expect(result).toEqual(input);
    expect(result).not.toBe(input);
  });
});

describe('isFhirPathPatch', () => {
  it('accepts Parameters whose parameters are all operations', () => {
    expect(isFhirPathPatch(patchOf(op('delete', 'Patient.gender')))).toBe(true);
    expect(isFhirPathPatch({ resourceType: 'Parameters' })).toBe(true);
  });
  it('rejects anything else', () => {
    expect(isFhirPathPatch([{ op: 'remove', path: '/gender' }])).toBe(false);
    expect(isFhirPathPatch({ resourceType: 'Patient' })).toBe(false);
    expect(isFhirPathPatch({ resourceType: 'Parameters', parameter: [{ name: 'operation' }, { name: 'other' }] })).toBe(false);
    expect(isFhirPathPatch(null)).toBe(false);
  });
});
