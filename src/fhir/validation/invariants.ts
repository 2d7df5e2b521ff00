/**
 * FHIRPath invariants that Medplum's validator leaves out. It evaluates the invariants stated on
 * elements and on the root resource, but not those stated on a data type itself (per-1 "Period
 * start SHALL be before end", qty-3, ref-1, att-1, ...) nor the resource-level ones of contained
 * and other nested resources. Expressions are parsed once per type.
 */
import { evalFhirPathTyped, parseFhirPath, toTypedValue, tryGetDataType, UCUM, type TypedValue } from '@medplum/core';
import { validationIssue, type Issues } from './issues.js';
import type { Node, ResourceNode, Visitor } from './walk.js';

type FhirPathAtom = ReturnType<typeof parseFhirPath>;

interface Invariant {
  readonly key: string;
  readonly human: string;
  readonly atom: FhirPathAtom;
}

/**
 * Not evaluated here: ele-1 (structure, Medplum checks emptiness), dom-3 (contained.ts), and the
 * ones Medplum also skips because its FHIRPath engine cannot evaluate them.
 */
const SKIPPED = new Set(['ele-1', 'dom-3', 'org-1', 'sdf-19']);

const invariantsByType = new Map<string, readonly Invariant[]>();

function typeInvariants(type: string): readonly Invariant[] {
  let result = invariantsByType.get(type);
  if (!result) {
    result = (tryGetDataType(type)?.constraints ?? [])
      .filter((c) => c.severity === 'error' && !SKIPPED.has(c.key) && c.expression)
      .map((c) => ({ key: c.key, human: c.description, atom: parseFhirPath(c.expression) }));
    invariantsByType.set(type, result);
  }
  return result;
}

export function invariantsVisitor(issues: Issues): Visitor {
  const ucum = toTypedValue(UCUM);
  let root: TypedValue | undefined;
  const check = (node: Node, skip: ReadonlySet<string>): void => {
    const invariants = typeInvariants(node.type);
    if (!invariants.length) return;
    const context: TypedValue = { type: node.type, value: node.value };
    const variables: Record<string, TypedValue> = {
      '%context': context,
      '%ucum': ucum,
      '%resource': toTypedValue(node.resource.value),
      '%rootResource': (root ??= toTypedValue(rootOf(node.resource).value)),
    };
    for (const invariant of invariants) {
      if (skip.has(invariant.key)) continue;
      let result: TypedValue[];
      try {
        result = evalFhirPathTyped(invariant.atom, [context], variables);
      } catch {
        continue; // an expression the engine cannot evaluate does not reject data
      }
      // Only an explicit false fails: for absent values Medplum's engine yields empty where the
      // HL7 Java engine yields a boolean (ref-1 on a display-only Reference passes there).
      if (result.length === 1 && result[0]?.value === false) {
        issues.push(validationIssue('error', 'invariant', `Constraint failed: ${invariant.key} at ${node.path}: ${invariant.human}`, node.path));
      }
    }
  };
  return {
    value(node: Node): void {
      // Resources are handled in resource(); primitives have no type-level invariants in R4.
      if (node.property && !node.property.isPrimitive && node.property.type !== 'Resource') check(node, node.property.constraintKeys);
    },
    resource(node: ResourceNode): void {
      if (node.parent) check(node, node.property?.constraintKeys ?? new Set()); // the root: Medplum evaluates these
    },
  };
}

function rootOf(resource: ResourceNode): ResourceNode {
  let r = resource;
  while (r.parent) r = r.parent.resource;
  return r;
}
