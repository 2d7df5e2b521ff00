/**
 * Required terminology bindings. Medplum's validator does not check bindings, yet a required
 * binding is part of the element's meaning (`CarePlan.status = "bogus"` is not a CarePlan).
 * Which elements are bound is precomputed per type (schema.ts) and expansions are cached
 * (valuesets.ts), so a check costs a few map lookups per coded value.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { validationIssue, type Issues } from './issues.js';
import { expandValueSet, expansionHas, type Expansion } from './valuesets.js';
import { isObject, type Node, type Visitor } from './walk.js';

/**
 * @param profileBindings - required bindings added by profiles, by definition path from the
 *   resource root (`Patient.maritalStatus`); they apply to the root resource only.
 */
export function bindingsVisitor(issues: Issues, profileBindings: ReadonlyMap<string, string> = new Map()): Visitor {
  return {
    value(node: Node): void {
      const base = node.property?.requiredValueSet;
      if (base) checkCodedValue(node.value, node.type, base, node.path, issues);
      if (profileBindings.size && node.resource.parent === undefined) {
        const extra = profileBindings.get(node.rootedPath);
        if (extra && extra !== base) checkCodedValue(node.value, node.type, extra, node.path, issues);
      }
    },
  };
}

/** Checks one value of type code, Coding, CodeableConcept or Quantity against a required ValueSet. */
export function checkCodedValue(value: unknown, type: string, valueSet: string, path: string, issues: Issues): void {
  const expansion = expandValueSet(valueSet);
  if (!expansion) return; // not expandable locally (external or partial terminology): do not reject
  switch (type) {
    case 'code':
      if (typeof value === 'string' && !expansionHas(expansion, undefined, value)) {
        issues.push(notInValueSet(`The value "${value}"`, valueSet, path));
      }
      return;
    case 'Coding':
    case 'Quantity':
      if (isObject(value)) checkCoding(value, expansion, valueSet, path, issues);
      return;
    case 'CodeableConcept':
      if (isObject(value) && Array.isArray(value.coding)) checkConcept(value.coding, expansion, valueSet, path, issues);
      return;
  }
}

function checkCoding(coding: Record<string, unknown>, expansion: Expansion, valueSet: string, path: string, issues: Issues): void {
  const { system, code } = coding;
  if (typeof code !== 'string') return;
  if (typeof system === 'string' && !expansion.has(system)) {
    issues.push(foreignSystem(`The code system "${system}"`, valueSet, path));
  } else if (!expansionHas(expansion, typeof system === 'string' ? system : undefined, code)) {
    issues.push(notInValueSet(`The code "${typeof system === 'string' ? `${system}#` : ''}${code}"`, valueSet, `${path}.code`));
  }
}

/** At least one coding must be in the value set; codings of systems the value set does not use are not judged. */
function checkConcept(codings: unknown[], expansion: Expansion, valueSet: string, path: string, issues: Issues): void {
  const coded = codings.filter(isObject).filter((c) => typeof c.code === 'string');
  if (!coded.length) return;
  const judged = coded.filter((c) => typeof c.system !== 'string' || expansion.has(c.system));
  if (!judged.length) {
    issues.push(foreignSystem('None of the codings', valueSet, path));
    return;
  }
  const inSet = judged.some((c) => expansionHas(expansion, typeof c.system === 'string' ? c.system : undefined, c.code as string));
  if (!inSet) {
    const shown = judged.map((c) => `${typeof c.system === 'string' ? `${c.system}#` : ''}${String(c.code)}`).join(', ');
    issues.push(notInValueSet(`None of the codes (${shown})`, valueSet, path));
  }
}

function notInValueSet(what: string, valueSet: string, path: string): OperationOutcomeIssue {
  return validationIssue('error', 'code-invalid', `${what} at ${path} is not in the required value set ${valueSet}`, path);
}

/** Required, but the codes come from systems the value set does not draw on: flagged, not rejected. */
function foreignSystem(what: string, valueSet: string, path: string): OperationOutcomeIssue {
  return validationIssue('warning', 'code-invalid', `${what} at ${path} is from a code system not used by the required value set ${valueSet}, so it could not be checked`, path);
}
