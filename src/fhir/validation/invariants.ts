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
  /** For the commonest invariants: true where the value (of the type named) certainly meets it, without FHIRPath. */
  readonly holdsFor?: (value: unknown, type: string) => boolean;
}

/** `system|code` of each coding, where every one plainly has both; undefined otherwise. */
function codings(list: unknown): string[] | undefined {
  if (!Array.isArray(list) || !list.length) return undefined;
  const keys: string[] = [];
  for (const c of list) {
    if (!isObject(c) || typeof c.system !== 'string' || typeof c.code !== 'string' || '_system' in c || '_code' in c) return undefined;
    keys.push(`${c.system}|${c.code}`);
  }
  return keys;
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
  // drt-1: a Duration with a code is in UCUM and has a value.
  'code.exists() implies ((system = %ucum) and value.exists())': (value) =>
    isObject(value) && typeof value.code === 'string' && value.system === UCUM && typeof value.value === 'number' && !Object.keys(value).some((k) => k.charCodeAt(0) === 95),
  // obs-7: no component has the observation's own code (a check-in: a zone as its value, measurements as components).
  'value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()': (value) => {
    if (!isObject(value) || !Array.isArray(value.component)) return false;
    const own = codings(isObject(value.code) ? value.code.coding : undefined);
    if (!own) return false;
    return value.component.every((c) => {
      const theirs = isObject(c) && isObject(c.code) ? codings(c.code.coding) : undefined;
      return !!theirs && theirs.every((k) => !own.includes(k));
    });
  },
  // con-5: a condition entered in error has no clinical status.
  "verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-ver-status' and code='entered-in-error').empty() or clinicalStatus.empty()": (value) => {
    if (!isObject(value) || !isObject(value.verificationStatus)) return false;
    const keys = codings(value.verificationStatus.coding);
    return !!keys && !keys.includes('http://terminology.hl7.org/CodeSystem/condition-ver-status|entered-in-error');
  },
  'contained.contained.empty()': noContained,
  'contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()': noContained,
  'contained.meta.security.empty()': noContained,
};

/** Calls `at` with each position of `text` outside string literals and the parenthesis depth after it, until `at` says stop. */
function scan(text: string, at: (i: number, depth: number) => boolean | void): void {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === "'") quoted = false;
      continue;
    }
    if (c === "'") quoted = true;
    else if (at(i, c === '(' ? ++depth : c === ')' ? --depth : depth)) return;
  }
}

/** `expression` cut where `separator` stands outside parentheses and string literals. */
function topLevel(expression: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  scan(expression, (i, depth) => {
    if (depth === 0 && i >= start && expression.startsWith(separator, i)) {
      parts.push(expression.slice(start, i));
      start = i + separator.length;
    }
  });
  parts.push(expression.slice(start));
  return parts.map((p) => p.trim());
}

/** The length of the parenthesised group `text` starts with; 0 if it is not closed. */
function groupLength(text: string): number {
  let length = 0;
  scan(text, (i, depth) => {
    if (depth === 0) length = i + 1;
    return depth === 0;
  });
  return length;
}

/**
 * The JSON object's plain elements, by element name: undefined where that is unsure — a key
 * unknown to the type, or a primitive's `_x` (its id and extensions, which FHIRPath sees as
 * the element; left to FHIRPath however it is given).
 */
function plainElements(value: Record<string, unknown>, type: string): Map<string, unknown> | undefined {
  const properties = typeIndex(type)?.properties;
  if (!properties) return undefined;
  const elements = new Map<string, unknown>();
  for (const key in value) {
    if (key === 'resourceType') continue;
    const property = key.charCodeAt(0) === 95 ? undefined : properties.get(key);
    if (!property) return undefined;
    elements.set(property.name, value[key]);
  }
  return elements;
}

/** A value FHIRPath certainly sees as there: not null or empty, nor an array with such an item. */
const plainlyThere = (v: unknown): boolean => !isAbsent(v) && (!Array.isArray(v) || !v.some(isAbsent));

type Term = (elements: Map<string, unknown>) => boolean;

/** An element's name as an expression names it (`periodUnit`); not a type (`Period`), variable or function. */
const NAME = '[a-z][A-Za-z0-9]*';
const LEADING_NAME = new RegExp(`^${NAME}`);
const NAME_STEP = new RegExp(`^\\.${NAME}(?![A-Za-z0-9(])`);
const EXISTS = new RegExp(`^(${NAME})\\.exists\\(\\)$`);

/**
 * A term about one of the context's own elements, x, that its JSON answers: `x.exists()` (x is
 * there), `x >= 0` (a number not below 0), and — true where x is not there — `x.empty()`,
 * `x.hasValue().not()`, `x.exists().not()` and paths from x that only navigate and filter
 * (`x.coding.where(…).empty()`: nothing comes of nothing).
 */
function plainTerm(term: string): Term | undefined {
  const name = LEADING_NAME.exec(term)?.[0];
  if (!name) return undefined;
  const absent: Term = (elements) => !elements.has(name);
  let rest = term.slice(name.length);
  if (rest === '.exists()') return (elements) => plainlyThere(elements.get(name));
  if (rest === '.hasValue().not()' || rest === '.exists().not()') return absent;
  if (rest === ' >= 0') {
    return (elements) => {
      const v = elements.get(name);
      return typeof v === 'number' && v >= 0;
    };
  }
  for (;;) {
    if (rest === '.empty()') return absent;
    const filter = /^\.(?:where|select)(?=\()/.exec(rest)?.[0];
    const step = filter ?? NAME_STEP.exec(rest)?.[0];
    if (!step) return undefined;
    const group = filter ? groupLength(rest.slice(step.length)) : 0;
    if (filter && !group) return undefined;
    rest = rest.slice(step.length + group);
  }
}

/** `terms` as one test of a value: true where its JSON plainly meets one of them. */
function anyTerm(terms: readonly Term[]): (value: unknown, type: string) => boolean {
  return (value, type) => {
    const elements = isObject(value) ? plainElements(value, type) : undefined;
    return !!elements && terms.some((term) => term(elements));
  };
}

/**
 * Most invariants of the data types are `a.empty() or b.exists()` (qty-3, tim-1…10, obs-6, cpl-3)
 * or `a.exists() implies …` (drt-1, tim-4): true where one such term plainly holds, read off the
 * JSON. FHIRPath's `or` is true when either side is, whatever the other; `implies` is true when
 * its left side is false. Undefined for any other shape (`xor`, `and` at the top, …).
 */
function plainShortcut(expression: string): ((value: unknown, type: string) => boolean) | undefined {
  const implication = topLevel(expression, ' implies ');
  if (implication.length === 2) {
    // `x.exists() implies y`: true where x is not there, or where y plainly holds.
    const [left, right] = implication as [string, string];
    const name = EXISTS.exec(left)?.[1];
    const then = plainTerm(right);
    return name ? anyTerm([(elements) => !elements.has(name), ...(then ? [then] : [])]) : undefined;
  }
  if (implication.length > 1 || topLevel(expression, ' xor ').length > 1) return undefined;
  const terms = topLevel(expression, ' or ').flatMap((t) => plainTerm(t) ?? []);
  return terms.length ? anyTerm(terms) : undefined;
}

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
      ...shortcut(c.expression),
    }));
}

/** The shortcuts that answer an invariant's expression: its own, the generic one, or either. */
function shortcut(expression: string | undefined): Pick<Invariant, 'holdsFor'> {
  if (!expression) return {};
  const own = SHORTCUTS[expression];
  const plain = plainShortcut(expression);
  if (own && plain) return { holdsFor: (value, type) => own(value) || plain(value, type) };
  const holdsFor = own ?? plain;
  return holdsFor ? { holdsFor } : {};
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
  if (invariant.holdsFor?.(context.value, context.type)) return true;
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
