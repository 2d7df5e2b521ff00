/**
 * Plain-path search expressions without FHIRPath. Nine in ten R4 search parameters are member
 * paths (`Goal.lifecycleStatus`, `Observation.effective`, `meta.tag`), such a path cast to one
 * type (`(Observation.value as Quantity)`), or references to one type (`patient`:
 * `Goal.subject.where(resolve() is Patient)`). For those, the index extractor walks the resource
 * directly: each step's JSON keys and result types are looked up once per (type, property) in the
 * schema, instead of Medplum's evaluator doing it for every value (for a choice element it tries
 * each of up to fifty types by string replacement).
 *
 * The walk gives what @medplum/core's FHIRPath gives for these expressions
 * (test/search/paths.test.ts compares them on generated instances of every resource type), with
 * differences that only drop wrong values or add right ones: a primitive that has extensions is
 * its plain value (FHIRPath wraps it in an object with them; extract.ts unwraps those too); a
 * union keeps values FHIRPath's `|` drops as equivalent (two Quantities of one value in different
 * units); and `path.as(Type)`, which @medplum/core passes through unfiltered, filters as the
 * FHIRPath specification says. Where FHIRPath would fail on a value, or a type has no schema, the
 * walk answers `undefined` and the caller evaluates the FHIRPath.
 */
import { capitalize, getElementDefinition, isEmpty, isResource, type TypedValue } from '@medplum/core';
import { splitUnion } from './registry.js';

/** The values a plain path selects from a resource, or undefined where FHIRPath must decide. */
export type PlainPath = (root: TypedValue) => TypedValue[] | undefined;

interface Branch {
  /** Member names after the root (the root's own type name, if written, is dropped). */
  steps: readonly Step[];
  /** `path.where(resolve() is Type)`: only references to this type. */
  resolvesTo?: string;
}

/** A property of a type: each JSON key it may take (one per type of a choice element), in schema order. */
type Candidates = ReadonlyArray<readonly [key: string, type: string]>;

/** One member name, with the candidates of the type last seen at this step (nearly always the only one). */
interface Step {
  readonly name: string;
  /** `(path as Type)`, `path as Type` or `path.as(Type)` ending at this step: only values of this type go on. */
  readonly as?: string;
  seenType?: string;
  seen?: Candidates;
}

const NAME = '[A-Za-z][A-Za-z0-9]*';
const PATH = new RegExp(`^${NAME}(?:\\.${NAME})*$`);
// A cast in parentheses may be followed by more steps: `(Observation.value as CodeableConcept).text`.
// Without them it is what unwrapParentheses leaves of `(path as Type)` (`as` binds tighter than `|`).
const CAST = new RegExp(`^\\(\\s*(${NAME}(?:\\.${NAME})*)\\s+as\\s+(${NAME})\\s*\\)((?:\\.${NAME})*)$`);
const BARE_CAST = new RegExp(`^(${NAME}(?:\\.${NAME})*)\\s+as\\s+(${NAME})$`);
const CAST_CALL = new RegExp(`^(${NAME}(?:\\.${NAME})*)\\.as\\((${NAME})\\)$`);
const RESOLVES = new RegExp(`^(${NAME}(?:\\.${NAME})*)\\.where\\(resolve\\(\\) is (${NAME})\\)$`);

function parseBranch(branch: string, resourceType: string): Branch | undefined {
  const cast = CAST.exec(branch) ?? BARE_CAST.exec(branch) ?? CAST_CALL.exec(branch);
  const resolves = RESOLVES.exec(branch);
  const path = cast?.[1] ?? resolves?.[1] ?? branch;
  if (!PATH.test(path)) return undefined;
  const names = /^[A-Z]/.test(path) ? topSteps(path, resourceType) : path.split('.');
  // `as(DateTime)` names the FHIRPath system type of a FHIR `dateTime`.
  const as = cast ? (cast[2] as string).replace(/^DateTime$/, 'dateTime') : undefined;
  if (!names || (as && !names.length)) return undefined;
  const after = cast?.[3] ? cast[3].slice(1).split('.') : [];
  return {
    steps: [...names.map((name, i): Step => (as && i === names.length - 1 ? { name, as } : { name })), ...after.map((name): Step => ({ name }))],
    ...(resolves ? { resolvesTo: resolves[2] as string } : {}),
  };
}

/** The member names of a path that starts with a type name: FHIRPath takes the resource itself only when it is that type. */
function topSteps(path: string, resourceType: string): string[] | undefined {
  const [first, ...rest] = path.split('.') as [string, ...string[]];
  return first === resourceType ? rest : undefined;
}

/** `(a | b)` → `a | b`, when the parentheses enclose the whole expression. */
export function unwrapParentheses(expression: string): string {
  const text = expression.trim();
  if (!text.startsWith('(') || !text.endsWith(')')) return text;
  let depth = 0;
  for (let i = 0; i < text.length - 1; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth--;
    if (depth === 0) return text;
  }
  return unwrapParentheses(text.slice(1, -1));
}

/** Compiles `expression` for resources of `resourceType`, or undefined when it is not plain paths. */
export function compilePlainPath(expression: string, resourceType: string): PlainPath | undefined {
  const branches: Branch[] = [];
  for (const text of splitUnion(unwrapParentheses(expression))) {
    const branch = parseBranch(text, resourceType);
    if (!branch) return undefined;
    branches.push(branch);
  }
  if (branches.length === 1) {
    const only = branches[0] as Branch;
    return (root) => walk(only, root);
  }
  return (root) => {
    const out: TypedValue[] = [];
    for (const branch of branches) {
      const values = walk(branch, root);
      if (!values) return undefined;
      out.push(...values);
    }
    return out;
  };
}

function walk(branch: Branch, root: TypedValue): TypedValue[] | undefined {
  let current: TypedValue[] = [root];
  for (const s of branch.steps) {
    const next: TypedValue[] = [];
    for (const tv of current) if (!step(tv, s, next)) return undefined;
    current = s.as ? next.filter((tv) => tv.type === s.as) : next;
  }
  if (branch.resolvesTo) {
    const kept: TypedValue[] = [];
    for (const tv of current) {
      const type = referencedType(tv.value);
      if (type === null) return undefined;
      if (type === branch.resolvesTo) kept.push(tv);
    }
    return kept;
  }
  return current;
}

/**
 * The type FHIRPath's `resolve()` gives a reference without fetching it: the resource it contains,
 * else the part of `reference` before the first `?` or `/` (so an absolute URL resolves to no
 * type), else `type` for a logical reference by identifier. Null where FHIRPath fails on the value.
 */
function referencedType(value: unknown): string | undefined | null {
  let reference: unknown = value;
  if (value === null) return null;
  if (typeof value === 'object') {
    const ref = value as { resource?: unknown; reference?: unknown; type?: unknown; identifier?: unknown };
    if (ref.resource) return typeof ref.resource === 'object' ? ((ref.resource as { resourceType?: string }).resourceType ?? undefined) : undefined;
    reference = ref.reference || (ref.type && ref.identifier ? `${String(ref.type)}?` : undefined);
  } else if (typeof value !== 'string') return undefined;
  if (!reference) return undefined;
  if (typeof reference !== 'string') return null;
  const end = reference.includes('?') ? reference.indexOf('?') : reference.indexOf('/');
  return end >= 0 ? reference.slice(0, end) : undefined;
}

/** Appends the values of the step's property of `tv` to `out`; false where FHIRPath must decide. */
function step(tv: TypedValue, s: Step, out: TypedValue[]): boolean {
  const object = tv.value as Record<string, unknown> | null | undefined;
  if (!object || typeof object !== 'object') return true;
  if (s.seenType !== tv.type) {
    s.seen = candidatesOf(tv.type, s.name);
    s.seenType = tv.type;
  }
  const candidates = s.seen;
  if (!candidates) return false;
  for (const [key, type] of candidates) {
    const value = object[key];
    // As in FHIRPath, a choice element's type is the first one present, by value or by extension
    // (`_valueString`); a primitive's extensions hold nothing a search parameter indexes.
    if (value === undefined) {
      if (object[`_${key}`] === undefined) continue;
      return true;
    }
    if (isEmpty(value)) return true;
    if (Array.isArray(value)) {
      for (const item of value) if (item !== undefined) out.push(typed(item, type));
    } else out.push(typed(value, type));
    return true;
  }
  return true;
}

function typed(value: unknown, type: string): TypedValue {
  return { type: type === 'Resource' && isResource(value) ? value.resourceType : type, value };
}

const candidateCache = new Map<string, Candidates | null>();

function candidatesOf(type: string, name: string): Candidates | undefined {
  const cacheKey = `${type}.${name}`;
  let candidates = candidateCache.get(cacheKey);
  if (candidates === undefined) {
    const element = getElementDefinition(type, name);
    const types = element?.type ?? [];
    const last = element?.path.slice(element.path.lastIndexOf('.') + 1) ?? '';
    const first = types[0]?.code as string;
    candidates = types.length
      ? types.map((t) => [last.replace('[x]', capitalize(t.code as string)), t.code === 'Element' || t.code === 'BackboneElement' ? first : (t.code as string)] as const)
      : null;
    candidateCache.set(cacheKey, candidates);
  }
  return candidates ?? undefined;
}
