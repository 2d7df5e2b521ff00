/** Makes Samplan's profiles and terminology known to the validator. */
import type { CodeSystem, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS } from '../../fhir/access.js';
import { definitions } from '../../fhir/definitions.js';
import type { FhirEngine } from '../../fhir/engine.js';
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

/** Stores the conformance resources so the server serves them (StructureDefinition?url=…); no new version when unchanged. */
export async function installConformance(engine: FhirEngine, baseUrl: string): Promise<void> {
  for (const r of conformanceResources) {
    const res = await engine.handle(
      { method: 'PUT', path: `${r.resourceType}/${r.id}`, query: [], body: r, bodyKind: 'resource', preferReturn: 'minimal' },
      { requestId: 'install-conformance', baseUrl, access: SYSTEM_ACCESS },
    );
    if (res.status >= 300) throw new Error(`Could not install ${r.resourceType}/${r.id}: ${res.body}`);
  }
}
