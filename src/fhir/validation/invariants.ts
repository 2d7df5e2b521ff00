/**
 * FHIRPath invariants that Medplum's validator leaves out. It evaluates the invariants stated on
 * elements and on the root resource, but not those stated on a data type itself (per-1 "Period
 * start SHALL be before end", qty-3, ref-1, att-1, ...) nor the resource-level ones of contained
 * and other nested resources. Expressions are parsed once per type. Also how invariants are
 * compiled and evaluated for the structure check (structure.ts), which evaluates the ones Medplum
 * does, and the shortcuts that spare FHIRPath for the commonest.
 */
import { type Constraint, evalFhirPathTyped, parseFhirPath, toTypedValue, tryGetDataType, UCUM, type TypedValue } from '@medplum/core';
import { validationIssue, type Issues } from './issues.js';
import { typeIndex } from './schema.js';
import { isAbsent, isObject, type Node, type ResourceNode, type Visitor } from './walk.js';

type FhirPathAtom = ReturnType<typeof parseFhirPath>;

export interface Invariant {
  readonly key: string;
  readonly human: string;
  /** Undefined for an invariant without an expression: Medplum reports those as failed. */
  readonly atom: FhirPathAtom | undefined;
  /** For the commonest invariants: true where the value certainly meets it, without FHIRPath. */
  readonly holdsFor?: (value: unknown) => boolean;
}

const noContained = (value: unknown): boolean => isObject(value) && !('contained' in value) && !('_contained' in value);

/**
 * The invariants every write evaluates many times (ext-1 for each extension, ref-1 for each
 * reference, dom-2/4/5 for each resource: half of validation's time), by their expressions.
 * Each answers true only where the expression's value is plainly true; anything else (a
 * primitive's extensions, an unknown key, a contained resource) is left to FHIRPath.
 */
const SHORTCUTS: Readonly<Record<string, (value: unknown) => boolean>> = {
  // ext-1: extensions or a value, not both; `value` is any one of Extension's value[x] keys.
  'extension.exists() != value.exists()': (value) => {
    if (!isObject(value)) return false;
    const keys = typeIndex('Extension')?.properties;
    let values = 0;
    for (const key in value) {
      if (key.charCodeAt(0) === 95) return false;
      if (key === 'id' || key === 'url' || key === 'extension') continue;
      const v = value[key];
      if (keys?.get(key)?.name !== 'value' || isAbsent(v) || Array.isArray(v)) return false;
      values++;
    }
    const extensions = value.extension;
    if (extensions === undefined) return values === 1;
    return values === 0 && Array.isArray(extensions) && extensions.length > 0 && extensions.every((e) => isObject(e) && !isAbsent(e));
  },
  // ref-1: a reference that does not start with '#' needs no contained resource.
  "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))": (value) =>
    isObject(value) && typeof value.reference === 'string' && value.reference !== '' && !value.reference.startsWith('#') && !('_reference' in value),
  'contained.contained.empty()': noContained,
  'contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()': noContained,
  'contained.meta.security.empty()': noContained,
};

/**
 * Not evaluated here: ele-1 (structure, Medplum checks emptiness), dom-3 (contained.ts), and the
 * ones Medplum also skips because its FHIRPath engine cannot evaluate them.
 */
const SKIPPED = new Set(['ele-1', 'dom-3', 'org-1', 'sdf-19']);

/** The invariants of a definition that Medplum's validator evaluates: errors, less the skipped ones. */
export function compileInvariants(constraints: readonly Constraint[] | undefined): readonly Invariant[] {
  return (constraints ?? [])
    .filter((c) => c.severity === 'error' && !SKIPPED.has(c.key))
    .map((c) => ({
      key: c.key,
      human: c.description,
      atom: c.expression ? parseFhirPath(c.expression) : undefined,
      ...(c.expression && SHORTCUTS[c.expression] ? { holdsFor: SHORTCUTS[c.expression] } : {}),
    }));
}

const invariantsByType = new Map<string, readonly Invariant[]>();

/** The invariants stated on a type itself (`Period`: per-1; `Goal`: dom-2, dom-4, dom-5). */
export function typeInvariants(type: string): readonly Invariant[] {
  let result = invariantsByType.get(type);
  if (!result) {
    result = compileInvariants(tryGetDataType(type)?.constraints);
    invariantsByType.set(type, result);
  }
  return result;
}

/** The FHIRPath variables of one walk, as Medplum's validator sets them; `%rootResource` made once. */
export class InvariantScope {
  private readonly ucum = toTypedValue(UCUM);
  private root: TypedValue | undefined;

  variables(context: TypedValue, resource: ResourceNode): Record<string, TypedValue> {
    return {
      '%context': context,
      '%ucum': this.ucum,
      '%resource': toTypedValue(resource.value),
      '%rootResource': (this.root ??= toTypedValue(rootOf(resource).value)),
    };
  }
}

/**
 * What `invariant` makes of `context`: true or false where the expression gives exactly that
 * (the shortcut answering first where it can), undefined for anything else — empty, several
 * values, no expression, or one the engine cannot evaluate.
 */
export function verdict(invariant: Invariant, context: TypedValue, variables: Record<string, TypedValue>): boolean | undefined {
  if (invariant.holdsFor?.(context.value)) return true;
  if (!invariant.atom) return undefined;
  try {
    const result = evalFhirPathTyped(invariant.atom, [context], variables);
    const value = result.length === 1 ? result[0]?.value : undefined;
    return typeof value === 'boolean' ? value : undefined;
  } catch {
    return undefined;
  }
}

export function invariantsVisitor(issues: Issues): Visitor {
  const scope = new InvariantScope();
  const check = (node: Node, skip: ReadonlySet<string>): void => {
    const invariants = typeInvariants(node.type);
    if (!invariants.length) return;
    const context: TypedValue = { type: node.type, value: node.value };
    const variables = scope.variables(context, node.resource);
    for (const invariant of invariants) {
      // Only an explicit false fails: for absent values Medplum's engine yields empty where the
      // HL7 Java engine yields a boolean (ref-1 on a display-only Reference passes there); an
      // expression the engine cannot evaluate does not reject data.
      if (!skip.has(invariant.key) && verdict(invariant, context, variables) === false) {
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
