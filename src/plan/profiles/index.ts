/** Makes Samplan's profiles and terminology known to the validator, and installs everything Samplan publishes. */
import type { CodeSystem, NamingSystem, OperationDefinition, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS } from '../../fhir/access.js';
import { definitions } from '../../fhir/definitions.js';
import type { FhirEngine } from '../../fhir/engine.js';
import type { Operation } from '../../fhir/operations.js';
import { registerProfile } from '../../fhir/validation/validator.js';
import { conformanceResources } from './definitions.js';
import { operationDefinitions } from './operations.js';
import { namingSystems } from './terminology.js';

let registered = false;

export function registerSamplanProfiles(): void {
  if (registered) return;
  registered = true;
  for (const r of conformanceResources) {
    if (r.resourceType === 'StructureDefinition') registerProfile(r);
    else definitions().addTerminology(r);
  }
}

export { conformanceResources, namingSystems, operationDefinitions };

export type PublishedResource = StructureDefinition | CodeSystem | ValueSet | NamingSystem | OperationDefinition;

/**
 * Everything Samplan publishes: the profiles, extensions, code systems and value sets, the
 * naming system, and the OperationDefinitions of its own operations among `operations` (the
 * engine's).
 */
export function publishedResources(operations: readonly Operation[]): PublishedResource[] {
  return [...conformanceResources, ...namingSystems, ...operationDefinitions(operations)];
}

/**
 * Stores what Samplan publishes, so the server serves it (StructureDefinition?url=…,
 * OperationDefinition?url=…, NamingSystem?value=…); no new version when unchanged.
 */
export async function installConformance(engine: FhirEngine, baseUrl: string): Promise<void> {
  for (const r of publishedResources(engine.registeredOperations())) {
    // A JSON round trip, so the body compares equal to what is stored when nothing changed.
    const body = JSON.parse(JSON.stringify(r)) as PublishedResource;
    const res = await engine.handle(
      { method: 'PUT', path: `${r.resourceType}/${r.id}`, query: [], body, bodyKind: 'resource', preferReturn: 'minimal' },
      { requestId: 'install-conformance', baseUrl, access: SYSTEM_ACCESS },
    );
    if (res.status >= 300) throw new Error(`Could not install ${r.resourceType}/${r.id}: ${res.body}`);
  }
}
