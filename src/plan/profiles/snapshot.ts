/**
 * Builds the snapshot of a profile from its base definition and its differential, for the simple
 * constraints Samplan's profiles make: cardinality, types and target profiles, fixed and pattern
 * values, bindings, invariants, must-support and texts. (No slicing: zones are an extension
 * validated by its own definition, and checked by invariants on the profile.) The validator works
 * from snapshots, and publishing them lets any FHIR tool use the profiles.
 */
import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';
import { definitions } from '../../fhir/definitions.js';

export function withSnapshot(profile: StructureDefinition): StructureDefinition {
  const baseType = profile.type as string;
  const base = definitions().structureDefinitions.get(baseType);
  if (!base?.snapshot?.element) throw new Error(`No base definition for ${baseType}`);
  const diff = new Map((profile.differential?.element ?? []).map((e) => [e.path as string, e]));
  for (const path of diff.keys()) {
    if (!base.snapshot.element.some((e) => e.path === path)) throw new Error(`${profile.url}: ${path} is not an element of ${baseType}`);
  }
  const element = base.snapshot.element.map(withoutTypeExtensions).map((b): ElementDefinition => {
    const d = diff.get(b.path as string);
    if (!d) return { ...b };
    const { constraint, ...rest } = d;
    return {
      ...b,
      ...rest,
      id: b.id,
      path: b.path,
      ...(constraint ? { constraint: [...(b.constraint ?? []), ...constraint.map((c) => ({ ...c, source: profile.url }))] } : {}),
    } as ElementDefinition;
  });
  return { ...profile, snapshot: { element } };
}

/**
 * The R4 definitions mark some types with structuredefinition-fhir-type on ElementDefinition.type,
 * outside that extension's own declared context (.type.code); a snapshot we publish should pass
 * our own validator, and the marker adds nothing for these profiles.
 */
function withoutTypeExtensions(e: ElementDefinition): ElementDefinition {
  if (!e.type?.some((t) => t.extension)) return e;
  return { ...e, type: e.type.map(({ extension: _extension, ...t }) => t) };
}
