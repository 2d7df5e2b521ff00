/** Makes Samplan's profiles and terminology known to the validator. */
import type { CodeSystem, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { definitions } from '../../fhir/definitions.js';
import { registerProfile } from '../../fhir/validation/validator.js';
import { conformanceResources } from './definitions.js';

let registered = false;

export function registerSamplanProfiles(): void {
  if (registered) return;
  registered = true;
  for (const r of conformanceResources) {
    if (r.resourceType === 'StructureDefinition') registerProfile(r as StructureDefinition);
    else definitions().addTerminology(r as ValueSet | CodeSystem);
  }
}

export { conformanceResources };
