/**
 * Samplan's condition templates (maler): KOLS, astma, hjertesvikt and diabetes type 2, each a
 * PlanDefinition with its ActivityDefinitions, installed into the database at start-up so that
 * clinicians can find them (`GET PlanDefinition?topic=…`) and apply them (`$apply`, ../apply.ts).
 */
import type { ActivityDefinition, PlanDefinition } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS } from '../../fhir/access.js';
import type { FhirEngine } from '../../fhir/engine.js';
import { registerSamplanProfiles } from '../profiles/index.js';
import { astma } from './astma.js';
import type { Template } from './build.js';
import { diabetesType2 } from './diabetes-type-2.js';
import { hjertesvikt } from './hjertesvikt.js';
import { kols } from './kols.js';

export { TEMPLATE_VERSION, type Template } from './build.js';

export const TEMPLATES: readonly Template[] = [kols, astma, hjertesvikt, diabetesType2];

/** Every resource of every template: the ActivityDefinitions first, then the PlanDefinitions. */
export function templateResources(): Array<PlanDefinition | ActivityDefinition> {
  return [...TEMPLATES.flatMap((t) => t.activityDefinitions), ...TEMPLATES.map((t) => t.planDefinition)];
}

/**
 * Stores the templates by id (PUT through the engine, as the server's own system context), so
 * each is validated by the one write pipeline like any other write. Idempotent: an unchanged
 * template makes no new version; a changed one makes one. Throws if any template is refused,
 * since a server without its templates should not start silently.
 *
 * A template's id belongs to Samplan: a local variant of a template must be stored under its own
 * id and url, or it is overwritten at the next start.
 */
export async function installTemplates(engine: FhirEngine, baseUrl: string): Promise<void> {
  // The templates carry the zone extension; the validator must know its definition.
  registerSamplanProfiles();
  const ctx = { requestId: 'install-templates', baseUrl, access: SYSTEM_ACCESS };
  for (const resource of templateResources()) {
    // A JSON round trip, so the body compares equal to what is stored when nothing changed.
    const body = JSON.parse(JSON.stringify(resource)) as PlanDefinition | ActivityDefinition;
    const res = await engine.handle({ method: 'PUT', path: `${resource.resourceType}/${resource.id}`, query: [], body, bodyKind: 'resource' }, ctx);
    if (res.status !== 200 && res.status !== 201) {
      throw new Error(`Installing the template ${resource.resourceType}/${resource.id} failed (${res.status}): ${res.body ?? ''}`);
    }
  }
}
