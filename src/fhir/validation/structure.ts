/**
 * Whether Medplum's structural validator would find anything in a resource, decided in the one
 * typed pass the Samplan checks already make (walk.ts) — so that for the usual, valid write its
 * run can be skipped. Medplum's validator visits every element of every type's definition at
 * every level, present or not, wrapping each value with its path; on a write that was two thirds
 * of validation and a third of a whole-plan transaction's CPU. Here only the instance's own
 * properties are visited, against per-type tables, with Medplum's own regular expressions,
 * FHIRPath engine and parsed definitions.
 *
 * The check only says "nothing to find" or "look": anything it is not sure of — an unknown or
 * empty property, a wrong cardinality or JSON type, a primitive's extensions (`_birthDate`), a
 * fixed or sliced element, a reference of a type the element does not list, an invariant that
 * does not hold — sends the resource to Medplum, which finds and words the problems as before.
 * So a wrong "nothing to find" would let invalid data through: `test/validation/structure.test.ts`
 * holds it against Medplum over a corpus and thousands of mutations of it.
 */
import { fhirTypeToJsType, HTTP_HL7_ORG, type InternalSchemaElement, type TypedValue, validationRegexes } from '@medplum/core';
import { isAbsoluteReference } from './medplum.js';
import { compileInvariants, type Invariant, InvariantScope, typeInvariants, verdict } from './invariants.js';
import { typeIndex, type PropertyInfo, type TypeIndex } from './schema.js';
import { isAbsent, isObject, type Node, type ResourceNode, type Visitor } from './walk.js';

export interface StructureCheck extends Visitor {
  /** After the walk: true when Medplum's validator would report nothing, errors or warnings. */
  readonly clean: boolean;
}

const JS_TYPES: Readonly<Record<string, string>> = fhirTypeToJsType;
const INTEGERS = new Set(['integer', 'positiveInt', 'unsignedInt']);
const MAX_STRING = 1024 * 1024;
const HL7_SD = `${HTTP_HL7_ORG}/fhir/StructureDefinition/`;
const MEDPLUM_SD = 'https://medplum.com/fhir/StructureDefinition/';

const elementInvariants = new WeakMap<InternalSchemaElement, readonly Invariant[]>();

function invariantsOf(element: InternalSchemaElement): readonly Invariant[] {
  let result = elementInvariants.get(element);
  if (!result) {
    result = compileInvariants(element.constraints);
    elementInvariants.set(element, result);
  }
  return result;
}

export function structureCheck(): StructureCheck {
  const scope = new InvariantScope();
  const check = {
    clean: true,
    resource(node: ResourceNode): void {
      if (!check.clean) return;
      // Medplum evaluates a type's own invariants only on the root resource (invariants.ts does the rest).
      if (!node.parent && !holds(typeInvariants(node.type), node, node)) check.clean = false;
      else if (!cleanObject(node.value as Record<string, unknown>, typeIndex(node.type), true)) check.clean = false;
    },
    value(node: Node): void {
      if (!check.clean) return;
      const property = node.property as PropertyInfo;
      // The invariants of the element the value sits in; for a nested resource, in its container.
      const resource = node.resource === node ? (node.parent as Node).resource : node.resource;
      if (!holds(invariantsOf(property.element), node, resource)) check.clean = false;
      else if (property.isPrimitive) check.clean = cleanPrimitive(node.value, node.type);
      else if (property.type === 'Reference' && !listedTarget(node.value, property.element)) check.clean = false;
      else if (property.type !== 'Resource' && !cleanObject(node.value as Record<string, unknown>, typeIndex(node.type), false)) check.clean = false;
    },
  };

  function holds(invariants: readonly Invariant[], node: Node, resource: ResourceNode): boolean {
    if (!invariants.length) return true;
    const context: TypedValue = { type: node.type, value: node.value };
    const variables = scope.variables(context, resource);
    // As Medplum: anything but a single true fails.
    return invariants.every((invariant) => verdict(invariant, context, variables) === true);
  }

  return check;
}

/**
 * The object's own properties: each known, of the right shape and count, none empty; the required
 * ones there. (An empty object is caught where it sits, as a property's value.)
 */
function cleanObject(obj: Record<string, unknown>, index: TypeIndex | undefined, isResource: boolean): boolean {
  if (!index) return false;
  let choices: Set<string> | undefined;
  for (const key in obj) {
    if (isResource && key === 'resourceType') continue;
    const property = index.properties.get(key);
    // `_field` (a primitive's id and extensions) is left to Medplum, as is everything unknown and
    // a key Medplum could also take for a choice element's.
    if (!property || key.charCodeAt(0) === 95 || index.choiceLike.has(key)) return false;
    const { element } = property;
    if (element.fixed !== undefined || element.pattern !== undefined || element.slicing) return false;
    const value = obj[key];
    if (Array.isArray(value)) {
      if (!property.isArray || value.length === 0 || value.length < element.min || value.length > element.max) return false;
      for (const item of value) if (isAbsent(item)) return false;
    } else if (property.isArray || isAbsent(value) || element.min > 1) {
      return false;
    }
    if (property.name !== key) {
      // A choice element (`value[x]`) given twice, as `valueString` and `valueQuantity`.
      choices ??= new Set();
      if (choices.has(property.name)) return false;
      choices.add(property.name);
    }
  }
  for (const keys of index.required) {
    if (!keys.some((k) => obj[k] !== undefined)) return false;
  }
  return true;
}

/** Medplum's checks of a primitive value, with its regular expressions. */
function cleanPrimitive(value: unknown, type: string): boolean {
  const expected = JS_TYPES[type];
  if (!expected || typeof value !== expected) return false;
  if (typeof value === 'string') {
    const regex = validationRegexes[type];
    return value.length <= MAX_STRING && value.trim() !== '' && (!regex || regex.test(value));
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return false;
    if (INTEGERS.has(type) && !Number.isInteger(value)) return false;
    return !(type === 'positiveInt' && value <= 0) && !(type === 'unsignedInt' && value < 0);
  }
  return true;
}

/**
 * A literal reference names a type the element lists, or the element lists a profile Medplum
 * cannot judge (Medplum warns otherwise). A reference without a literal, or to a contained
 * resource, is not judged by Medplum either; an absolute one (`urn:uuid:`, `https:`) is, wrongly,
 * and medplum.ts drops that warning.
 */
function listedTarget(value: unknown, element: InternalSchemaElement): boolean {
  if (!isObject(value) || typeof value.reference !== 'string') return true;
  const reference = value.reference;
  if (reference.startsWith('#') || isAbsoluteReference(reference)) return true;
  const type = (reference.includes('?') ? reference.split('?')[0] : reference.split('/')[0]) ?? '';
  const targets = element.type.find((t) => t.code === 'Reference')?.targetProfile;
  if (!type || !targets) return true;
  return targets.some(
    (t) => t === `${HL7_SD}Resource` || t === HL7_SD + type || t === MEDPLUM_SD + type || (!t.startsWith(HL7_SD) && !t.startsWith(MEDPLUM_SD)),
  );
}
