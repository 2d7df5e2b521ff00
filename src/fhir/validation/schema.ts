/**
 * Per-type lookup tables derived once from the R4 definitions (as indexed by `@medplum/core`), so
 * that validating a resource is a walk over the instance with O(1) lookups and never a walk over
 * StructureDefinitions.
 */
import { capitalize, type InternalSchemaElement, isPrimitiveType, tryGetDataType } from '@medplum/core';
import { definitions } from '../definitions.js';

/** What the walker needs to know about one JSON property of a type. */
export interface PropertyInfo {
  /** Element name without `[x]`, e.g. `value` for `valueQuantity`. */
  readonly name: string;
  /** FHIR type code of values under this JSON key (choice elements have one key per type). */
  readonly type: string;
  /** ElementDefinition path, e.g. `HumanName.family` or `Observation.value[x]`. */
  readonly elementPath: string;
  readonly isPrimitive: boolean;
  readonly isArray: boolean;
  /** Canonical URL (no version) of the ValueSet when the binding is `required` on a coded type. */
  readonly requiredValueSet?: string;
  /** Keys of the invariants stated on the element itself (Medplum evaluates those). */
  readonly constraintKeys: ReadonlySet<string>;
  /** The element as Medplum indexes it (cardinality, invariants, reference targets, fixed values). */
  readonly element: InternalSchemaElement;
}

export interface TypeIndex {
  readonly type: string;
  /** ElementDefinition path of the type itself (`Questionnaire.item` for `QuestionnaireItem`). */
  readonly path: string;
  /** JSON key (without a leading `_`) → property. */
  readonly properties: ReadonlyMap<string, PropertyInfo>;
  /** The elements an instance must have (min > 0), each by every JSON key it may take. */
  readonly required: ReadonlyArray<readonly string[]>;
  /**
   * Keys Medplum's validator also reads as a choice element's, splitting them at capitals: beside
   * `amount[x]`, `amountType` is taken for one (and given with `amountQuantity`, draws a warning).
   */
  readonly choiceLike: ReadonlySet<string>;
}

const CODED_TYPES = new Set(['code', 'Coding', 'CodeableConcept', 'Quantity']);

/** Strips a `|version` suffix from a canonical URL. */
export function unversioned(canonical: string): string {
  const bar = canonical.indexOf('|');
  return bar < 0 ? canonical : canonical.slice(0, bar);
}

const typeIndexes = new Map<string, TypeIndex | null>();

/** The property table of a (data, resource or backbone) type, or undefined for unknown types. */
export function typeIndex(type: string): TypeIndex | undefined {
  let index = typeIndexes.get(type);
  if (index === undefined) {
    index = buildTypeIndex(type);
    typeIndexes.set(type, index);
  }
  return index ?? undefined;
}

function buildTypeIndex(type: string): TypeIndex | null {
  const schema = tryGetDataType(type);
  if (!schema) return null;
  const properties = new Map<string, PropertyInfo>();
  const required: string[][] = [];
  for (const [key, element] of Object.entries(schema.elements)) {
    const binding = element.binding;
    const valueSet =
      binding?.strength === 'required' && binding.valueSet ? unversioned(binding.valueSet) : undefined;
    const choice = key.endsWith('[x]');
    const name = choice ? key.slice(0, -3) : key;
    const constraintKeys = new Set((element.constraints ?? []).map((c) => c.key));
    const keys = element.type.map((t) => (choice ? name + capitalize(t.code) : name));
    if (element.min > 0) required.push(keys);
    for (const t of element.type) {
      const info: PropertyInfo = {
        name,
        type: t.code,
        elementPath: element.path,
        isPrimitive: isPrimitiveType(t.code),
        isArray: element.isArray === true,
        constraintKeys,
        element,
        ...(valueSet && CODED_TYPES.has(t.code) ? { requiredValueSet: valueSet } : {}),
      };
      properties.set(choice ? name + capitalize(t.code) : name, info);
    }
  }
  return { type, path: schema.path, properties, required, choiceLike: choiceLikeKeys(Object.keys(schema.elements)) };
}

/** The non-choice element names that start with a choice element's name followed by a capital. */
function choiceLikeKeys(elements: readonly string[]): ReadonlySet<string> {
  const choices = new Set(elements.filter((k) => k.endsWith('[x]')).map((k) => k.slice(0, -3)));
  const result = new Set<string>();
  for (const key of elements) {
    if (key.endsWith('[x]')) continue;
    const parts = key.split(/(?=[A-Z])/);
    for (let n = 1; n < parts.length; n++) if (choices.has(parts.slice(0, n).join(''))) result.add(key);
  }
  return result;
}

const ancestries = new Map<string, readonly string[]>();

/**
 * The type and its base types (`Age` → Age, Quantity, Element; `Patient` → Patient,
 * DomainResource, Resource), for matching extension contexts stated on a base type.
 */
export function typeAncestry(type: string): readonly string[] {
  let result = ancestries.get(type);
  if (result) return result;
  const sds = definitions().structureDefinitions;
  const chain: string[] = [type];
  let sd = sds.get(type);
  if (!sd && typeIndex(type)) chain.push('BackboneElement', 'Element'); // a backbone (inner) type
  while (sd?.baseDefinition) {
    const base = sd.baseDefinition.slice(sd.baseDefinition.lastIndexOf('/') + 1);
    if (chain.includes(base)) break;
    chain.push(base);
    sd = sds.get(base);
  }
  result = chain;
  ancestries.set(type, result);
  return result;
}
