import type { StructureDefinition } from '@medplum/fhirtypes';
import { afterEach, describe, expect, it } from 'vitest';
import { registerProfile, setAllowedExtensionDomains, validateResource } from '../../src/fhir/validation/validator.js';

const errors = (resource: unknown) => validateResource(resource).filter((i) => i.severity === 'error');
const where = (resource: unknown) => errors(resource).map((i) => i.expression?.[0]);

const HL7 = 'http://hl7.org/fhir/StructureDefinition/';
const patient = (extension: object[], more: object = {}) => ({ resourceType: 'Patient', extension, ...more });

afterEach(() => setAllowedExtensionDomains([]));

describe('extensions', () => {
  it('accepts a core extension in its context with an allowed value type', () => {
    expect(validateResource(patient([{ url: `${HL7}patient-interpreterRequired`, valueBoolean: true }]))).toEqual([]);
  });

  it('rejects an unknown extension (as the HL7 Java validator does)', () => {
    const issues = errors(patient([{ url: 'https://unknown.example.no/fhir/StructureDefinition/x', valueString: 'x' }]));
    expect(issues.map((i) => i.expression?.[0])).toEqual(['Patient.extension[0]']);
    expect(issues[0]?.details?.text).toContain('could not be found');
  });

  it('accepts unknown extensions under an allowed domain', () => {
    setAllowedExtensionDomains(['https://samplan.no/fhir/']);
    expect(errors(patient([{ url: 'https://samplan.no/fhir/StructureDefinition/anything', valueString: 'x' }]))).toEqual([]);
    expect(where(patient([{ url: 'https://samplan.nofhir/StructureDefinition/x', valueString: 'x' }]))).toEqual(['Patient.extension[0]']);
  });

  it('rejects a versioned extension url', () => {
    const issues = errors(patient([{ url: `${HL7}patient-congregation|4.0.0`, valueString: 'x' }]));
    expect(issues.map((i) => i.expression?.[0])).toEqual(['Patient.extension[0]']);
    expect(issues[0]?.details?.text).toContain('must not contain a version');
  });

  it('rejects an extension used outside its context (HumanName.family, not HumanName)', () => {
    const mothersFamily = { url: `${HL7}humanname-mothers-family`, valueString: 'Hansen' };
    expect(where({ resourceType: 'Patient', name: [{ family: 'Olsen', extension: [mothersFamily] }] })).toEqual([
      'Patient.name[0].extension[0]',
    ]);
    // On the primitive, through `_family`: allowed
    expect(errors({ resourceType: 'Patient', name: [{ family: 'Olsen', _family: { extension: [mothersFamily] } }] })).toEqual([]);
    // On a resource
    expect(where(patient([mothersFamily]))).toEqual(['Patient.extension[0]']);
  });

  it('checks extensions on primitives and in repeating primitives (`_given`)', () => {
    const dar = (code: string) => ({ url: `${HL7}data-absent-reason`, valueCode: code });
    expect(errors({ resourceType: 'Patient', _birthDate: { extension: [dar('unknown')] } })).toEqual([]);
    // data-absent-reason's value is bound (required) to its value set
    expect(where({ resourceType: 'Patient', _birthDate: { extension: [dar('whatever')] } })).toEqual([
      'Patient.birthDate.extension[0].valueCode',
    ]);
    const unknown = { url: 'http://example.org/x', valueString: 'x' };
    expect(where({ resourceType: 'Patient', name: [{ given: ['A', 'B'], _given: [null, { extension: [unknown] }] }] })).toEqual([
      'Patient.name[0].given[1].extension[0]',
    ]);
  });

  it('matches contexts on base types: a Quantity context accepts Age, Element accepts anything', () => {
    const ext = { url: `${HL7}iso21090-uncertainty`, valueDecimal: 0.5 }; // context: Quantity
    expect(errors({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: { value: 1, extension: [ext] } })).toEqual([]);
    const condition = { resourceType: 'Condition', subject: { reference: 'Patient/p1' }, onsetAge: { value: 50, system: 'http://unitsofmeasure.org', code: 'a', extension: [ext] } };
    expect(errors(condition)).toEqual([]);
    expect(where({ ...condition, onsetAge: undefined, onsetString: 'x', _onsetString: { extension: [ext] } })).toEqual([
      'Condition.onsetString.extension[0]',
    ]);
    const wg = { url: `${HL7}structuredefinition-wg`, valueCode: 'pc' }; // context: Element
    expect(errors(patient([wg]))).toEqual([]);
  });

  it('rejects a value type the definition does not allow', () => {
    const issues = errors(patient([{ url: `${HL7}patient-birthPlace`, valueString: 'Oslo' }]));
    expect(issues.map((i) => i.expression?.[0])).toEqual(['Patient.extension[0].valueString']);
    expect(issues[0]?.details?.text).toContain('Address');
  });

  it('requires modifier extensions in modifierExtension and others outside it', () => {
    expect(where({ resourceType: 'Patient', modifierExtension: [{ url: `${HL7}patient-interpreterRequired`, valueBoolean: true }] })).toEqual([
      'Patient.modifierExtension[0]',
    ]);
  });

  it('checks complex extensions against their sub-extension slices', () => {
    const nationality = (sub: object[]) => patient([{ url: `${HL7}patient-nationality`, extension: sub }]);
    expect(errors(nationality([{ url: 'code', valueCodeableConcept: { text: 'NO' } }]))).toEqual([]);
    expect(where(nationality([{ url: 'code', valueCodeableConcept: { text: 'NO' } }, { url: 'bogus', valueString: 'x' }]))).toEqual([
      'Patient.extension[0].extension[1]',
    ]);
    expect(where(nationality([{ url: 'period', valueString: '2020' }]))).toEqual(['Patient.extension[0].extension[0].valueString']);
    expect(where(nationality([{ url: 'code', valueCodeableConcept: { text: 'NO' } }, { url: 'code', valueCodeableConcept: { text: 'SE' } }]))).toEqual([
      'Patient.extension[0]',
    ]);
    // A complex extension has no value; a simple one has no sub-extensions
    expect(where(patient([{ url: `${HL7}patient-nationality`, valueString: 'NO' }]))).toEqual(['Patient.extension[0].valueString']);
    expect(where(patient([{ url: `${HL7}patient-congregation`, extension: [{ url: 'x', valueString: 'y' }] }]))).toContain('Patient.extension[0]');
  });

  it('leaves a missing url to the structural check (Extension.url is 1..1)', () => {
    const issues = errors(patient([{ valueString: 'x' }]));
    expect(issues.map((i) => i.expression?.[0])).toEqual(['Patient.extension[0].url']);
  });

  it('knows extension definitions registered at run time, with or without a snapshot', () => {
    const url = 'https://samplan.test/fhir/StructureDefinition/plan-priority';
    const definition: StructureDefinition = {
      resourceType: 'StructureDefinition',
      url,
      name: 'PlanPriority',
      status: 'active',
      kind: 'complex-type',
      abstract: false,
      type: 'Extension',
      baseDefinition: `${HL7}Extension`,
      derivation: 'constraint',
      context: [{ type: 'element', expression: 'CarePlan' }],
      differential: {
        element: [
          { id: 'Extension', path: 'Extension', max: '1' },
          { id: 'Extension.extension', path: 'Extension.extension', max: '0' },
          { id: 'Extension.url', path: 'Extension.url', fixedUri: url },
          { id: 'Extension.value[x]', path: 'Extension.value[x]', min: 1, type: [{ code: 'code' }] },
        ],
      },
    };
    const carePlan = (extension: object) => ({
      resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: 'Patient/p1' }, extension: [extension],
    });
    expect(where(carePlan({ url, valueCode: 'high' }))).toEqual(['CarePlan.extension[0]']); // not known yet
    registerProfile(definition);
    expect(errors(carePlan({ url, valueCode: 'high' }))).toEqual([]);
    expect(where(carePlan({ url, valueString: 'high' }))).toEqual(['CarePlan.extension[0].valueString']);
    expect(where(patient([{ url, valueCode: 'high' }]))).toEqual(['Patient.extension[0]']);
  });
});
