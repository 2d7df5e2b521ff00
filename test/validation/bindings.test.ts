import { describe, expect, it } from 'vitest';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { checkCodedValue } from '../../src/fhir/validation/bindings.js';
import { validateResource } from '../../src/fhir/validation/validator.js';
import { expandValueSet, expansionHas } from '../../src/fhir/validation/valuesets.js';

const errors = (resource: unknown) => validateResource(resource).filter((i) => i.severity === 'error');

const carePlan = { resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: 'Patient/p1' } };

describe('ValueSet expansion', () => {
  it('expands a whole code system', () => {
    const gender = expandValueSet('http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1');
    expect(gender && [...(gender.get('http://hl7.org/fhir/administrative-gender') ?? [])].sort()).toEqual(['female', 'male', 'other', 'unknown']);
  });

  it('follows is-a filters through the code system hierarchy', () => {
    // v3 ActEncounterCode: is-a _ActEncounterCode, whose children include AMB and IMP
    const encounterClass = expandValueSet('http://terminology.hl7.org/ValueSet/v3-ActEncounterCode');
    expect(encounterClass).toBeDefined();
    const system = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
    expect(expansionHas(encounterClass!, system, 'AMB')).toBe(true);
    expect(expansionHas(encounterClass!, system, 'IMP')).toBe(true);
    expect(expansionHas(encounterClass!, system, 'XYZ')).toBe(false);
  });

  it('gives up (undefined) where the codes live outside the shipped definitions', () => {
    expect(expandValueSet('http://hl7.org/fhir/ValueSet/mimetypes')).toBeUndefined(); // urn:ietf:bcp:13
    expect(expandValueSet('http://hl7.org/fhir/ValueSet/all-languages')).toBeUndefined(); // BCP-47
    expect(expandValueSet('http://hl7.org/fhir/ValueSet/ucum-units')).toBeUndefined();
    expect(expandValueSet('http://example.org/no-such-valueset')).toBeUndefined();
  });

  it('caches expansions', () => {
    expect(expandValueSet('http://hl7.org/fhir/ValueSet/request-status')).toBe(expandValueSet('http://hl7.org/fhir/ValueSet/request-status'));
  });
});

describe('required bindings', () => {
  it('rejects a code outside the value set, naming element, value and value set', () => {
    const [issue, ...rest] = errors({ resourceType: 'Patient', gender: 'mann' });
    expect(rest).toEqual([]);
    expect(issue?.expression).toEqual(['Patient.gender']);
    expect(issue?.code).toBe('code-invalid');
    expect(issue?.details?.text).toContain('"mann"');
    expect(issue?.details?.text).toContain('http://hl7.org/fhir/ValueSet/administrative-gender');
    expect(issue?.details?.coding?.[0]?.code).toBe('VALIDATION_ERROR');
  });

  it('accepts a valid CarePlan and rejects status "bogus"', () => {
    expect(validateResource(carePlan)).toEqual([]);
    const issues = errors({ ...carePlan, status: 'bogus' });
    expect(issues.map((i) => i.expression?.[0])).toEqual(['CarePlan.status']);
    expect(issues[0]?.details?.text).toContain('request-status');
  });

  it('checks codes in nested data types and backbone elements', () => {
    expect(errors({ resourceType: 'Patient', name: [{ use: 'nickname', family: 'x' }] })).toEqual([]);
    expect(errors({ resourceType: 'Patient', name: [{ use: 'kallenavn', family: 'x' }] }).map((i) => i.expression?.[0])).toEqual([
      'Patient.name[0].use',
    ]);
    const detail = { ...carePlan, activity: [{ detail: { status: 'later' } }] };
    expect(errors(detail).map((i) => i.expression?.[0])).toEqual(['CarePlan.activity[0].detail.status']);
  });

  it('checks the code of a bound Quantity element (comparator is a bound code inside Quantity)', () => {
    const observation = { resourceType: 'Observation', status: 'final', code: { text: 'SpO2' }, valueQuantity: { value: 92, comparator: '<<' } };
    expect(errors(observation).map((i) => i.expression?.[0])).toEqual(['Observation.valueQuantity.comparator']);
  });

  it('checks a Coding: in the value set, not in it, or from a system the value set does not use', () => {
    // R4 has no required binding on a Coding element; profiles and extensions do, so test the check directly.
    const vs = 'http://hl7.org/fhir/ValueSet/administrative-gender';
    const system = 'http://hl7.org/fhir/administrative-gender';
    const check = (coding: object) => {
      const issues: OperationOutcomeIssue[] = [];
      checkCodedValue(coding, 'Coding', vs, 'Patient.extension[0].valueCoding', issues);
      return issues;
    };
    expect(check({ system, code: 'female' })).toEqual([]);
    expect(check({ code: 'female' })).toEqual([]);
    const bad = check({ system, code: 'kvinne' });
    expect(bad.map((i) => [i.severity, i.expression?.[0]])).toEqual([['error', 'Patient.extension[0].valueCoding.code']]);
    expect(check({ system: 'http://example.org/gender', code: 'k' }).map((i) => i.severity)).toEqual(['warning']);
  });

  it('checks a CodeableConcept: at least one coding of the value set', () => {
    const allergy = (codes: Array<[string, string]>) => ({
      resourceType: 'AllergyIntolerance',
      patient: { reference: 'Patient/p1' },
      clinicalStatus: { coding: codes.map(([s, c]) => ({ system: s, code: c })) },
    });
    const clinical = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';
    expect(errors(allergy([['http://example.org/local', 'x'], [clinical, 'active']]))).toEqual([]);
    const bad = errors(allergy([[clinical, 'aktiv']]));
    expect(bad.map((i) => i.expression?.[0])).toEqual(['AllergyIntolerance.clinicalStatus']);
    expect(bad[0]?.details?.text).toContain('aktiv');
    // Only codings from systems the value set does not use: flagged, not rejected
    const foreign = validateResource(allergy([['http://example.org/local', 'x']]));
    expect(foreign.map((i) => [i.severity, i.expression?.[0]])).toEqual([['warning', 'AllergyIntolerance.clinicalStatus']]);
    // Text only: nothing to check
    expect(validateResource({ ...allergy([]), clinicalStatus: { text: 'active' } })).toEqual([]);
  });

  it('skips bindings whose value set cannot be expanded locally (BCP-47, MIME types)', () => {
    expect(errors({ resourceType: 'Patient', language: 'nb-NO', photo: [{ contentType: 'image/x-anything' }] })).toEqual([]);
  });

  it('checks contained resources and Bundle entries too', () => {
    const withContained = { ...carePlan, subject: { reference: '#p' }, contained: [{ resourceType: 'Patient', id: 'p', gender: 'x' }] };
    expect(errors(withContained).map((i) => i.expression?.[0])).toEqual(['CarePlan.contained[0].gender']);
    const bundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', gender: 'x' } }] };
    expect(errors(bundle).map((i) => i.expression?.[0])).toEqual(['Bundle.entry[0].resource.gender']);
  });
});
