/** Norwegian and international code systems Samplan uses (HL7 Norway no-basis conventions). */
export const CODE_SYSTEM = {
  /** Volven 9060: categories of health personnel (LE = lege, SP = sykepleier, FT = fysioterapeut …). */
  personnelCategory: 'urn:oid:2.16.578.1.12.4.1.1.9060',
  icd10: 'urn:oid:2.16.578.1.12.4.1.1.7110',
  icpc2: 'http://hl7.org/fhir/sid/icpc-2',
  snomed: 'http://snomed.info/sct',
} as const;
