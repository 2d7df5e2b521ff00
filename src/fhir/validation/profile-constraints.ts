/**
 * What a registered profile states beyond the base R4 definition of its type — worked out once,
 * when the profile is registered, by comparing each element of its snapshot with the base
 * element — and the check of it during the one walk over the instance (walk.ts).
 *
 * Why not Medplum's validator with the profile: given a profile, `@medplum/core` (4.5) applies it
 * to the resource's own elements only. Its crawler types every nested value from the base type
 * map, so nothing a profile says inside a backbone element or a data type is applied
 * (cardinality, fixed and pattern values, invariants, reference targets). It never checks the type
 * of a choice element against the profile's narrowed type list (`valueQuantity` passes where the
 * profile allows only CodeableConcept); it reports a reference to a type the profile does not allow
 * as a warning, and only when every target is a core URL; it evaluates only error-level
 * invariants, and stops at the first failing one per element. And it parses the whole snapshot
 * again on every call, with no way to pass a parsed profile: 3.8 ms per write for
 * samplan-careplan, ten times the validation of a plain resource.
 *
 * So every difference from the base is checked here, at every depth: cardinality, the types of
 * choice elements, reference targets (errors for local references `Type/id`, conditional
 * references `Type?…` and RESTful absolute URLs of a resource type the profile does not allow),
 * fixed and pattern values, and the invariants the profile adds (error-level ones as errors,
 * warning-level ones as warnings). Required bindings are checked by bindings.ts. Medplum still
 * does what it does well and what this module does not: the base validation, FHIRPath, and the
 * slice cardinality of slices on the resource's own elements, for which it gets a definition
 * reduced to just that slicing (see `slicingDefinition`). Slices deeper down, type profiles
 * (`type.profile`), and maxLength/minValue/maxValue are not checked.
 *
 * Only the root resource is checked against its profiles; contained and other nested resources
 * are validated against their base types.
 */
import { capitalize, deepEquals, deepIncludes, evalFhirPathTyped, parseFhirPath, toTypedValue, UCUM, type TypedValue } from '@medplum/core';
import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';
import { definitions } from '../definitions.js';
import { validationIssue, type Issues } from './issues.js';
import { unversioned } from './schema.js';
import { isObject, type Node, type ResourceNode, type Visitor } from './walk.js';

type FhirPathAtom = ReturnType<typeof parseFhirPath>;

const HL7_SD = 'http://hl7.org/fhir/StructureDefinition/';
const ANY_RESOURCE = `${HL7_SD}Resource`;

/** A cardinality the profile narrows: checked on each instance of the parent element. */
interface Count {
  readonly name: string;
  /** ElementDefinition path, for messages (`CareTeam.participant.role`). */
  readonly definition: string;
  /** The JSON keys holding its values: the name, or for a choice element one key per type. */
  readonly keys: readonly string[];
  readonly choice: boolean;
  /** 0 when the profile does not raise the base minimum (the base validation checks that). */
  readonly min: number;
  /** Infinity when the profile does not lower the base maximum. */
  readonly max: number;
  /** The required slices the minimum comes from, when it is theirs rather than the element's own. */
  readonly slices?: readonly string[];
}

/** A choice element whose types the profile narrows: the JSON keys of the other types are refused. */
interface Choice {
  readonly definition: string;
  readonly allowed: readonly string[];
  readonly refused: ReadonlyArray<readonly [key: string, type: string]>;
}

interface ObjectRules {
  readonly counts: Count[];
  readonly choices: Choice[];
}

interface Invariant {
  readonly key: string;
  readonly severity: 'error' | 'warning';
  readonly human: string;
  /** Undefined when Medplum's FHIRPath parser cannot read the expression. */
  readonly atom: FhirPathAtom | undefined;
}

interface ValueRules {
  readonly definition: string;
  /** Canonical URLs (no version) of the allowed targets, when the profile narrows them. */
  readonly targets?: readonly string[];
  readonly fixed?: unknown;
  readonly pattern?: unknown;
  readonly invariants: Invariant[];
}

export interface ProfileConstraints {
  readonly url: string;
  /** Rules on the children of an object, by its definition path from the root without `[x]` (the resource type for the root). */
  readonly objects: ReadonlyMap<string, ObjectRules>;
  /** Rules on each value of an element, by the same kind of path. */
  readonly values: ReadonlyMap<string, ValueRules>;
  /** The profile reduced to the slicing of the resource's own elements, for Medplum; undefined when it slices none. */
  readonly slicing?: StructureDefinition;
}

// ---------------------------------------------------------------------------------------------
// Compiling a profile (once, at registration)

/** What `sd` (a profile with a snapshot, on a resource type) adds to the base definition. */
export function compileProfile(sd: StructureDefinition): ProfileConstraints {
  const url = unversioned(sd.url as string);
  const elements = sd.snapshot?.element ?? [];
  // The elements outside slices (a slice and its children: ids with ':', or, in snapshots
  // without ids, everything from a sliceName to the next element outside its path).
  const byPath = new Map<string, ElementDefinition>();
  /** Required slices by sliced element: however Medplum counts them, the element needs at least their sum. */
  const requiredSlices = new Map<string, { min: number; names: string[] }>();
  let slice: string | undefined;
  for (const e of elements) {
    if (!e.path) continue;
    if (slice && e.path !== slice && !e.path.startsWith(`${slice}.`)) slice = undefined;
    if (e.sliceName) {
      slice = e.path;
      const reslice = e.sliceName.includes('/') || (e.id?.split(':').length ?? 2) > 2;
      if ((e.min ?? 0) > 0 && !reslice) {
        const required = requiredSlices.get(e.path) ?? { min: 0, names: [] };
        requiredSlices.set(e.path, { min: required.min + (e.min ?? 0), names: [...required.names, e.sliceName] });
      }
    } else if (!e.id?.includes(':') && !(slice && e.id === undefined) && !byPath.has(e.path)) byPath.set(e.path, e);
  }
  const objects = new Map<string, ObjectRules>();
  const values = new Map<string, ValueRules>();
  const objectRules = (path: string): ObjectRules => {
    let rules = objects.get(path);
    if (!rules) objects.set(path, (rules = { counts: [], choices: [] }));
    return rules;
  };

  for (const e of byPath.values()) {
    const path = e.path as string;
    const base = baseElement(path, (prefix) => {
      const codes = byPath.get(prefix)?.type?.map((t) => t.code) ?? [];
      return codes.length === 1 ? codes[0] : undefined;
    });
    const rooted = path.replace(/\[x]/g, '');
    const value: { targets?: string[]; fixed?: unknown; pattern?: unknown; invariants: Invariant[] } = { invariants: addedInvariants(e, base) };

    const dot = path.lastIndexOf('.');
    if (dot > 0) {
      const parent = rooted.slice(0, rooted.lastIndexOf('.'));
      const choice = path.endsWith('[x]');
      const name = path.slice(dot + 1).replace('[x]', '');
      const profileTypes = (e.type ?? []).map((t) => t.code as string);
      const baseTypes = (base?.type ?? e.type ?? []).map((t) => t.code as string);
      const keys = choice ? baseTypes.map((t) => name + capitalize(t)) : [name];

      const slices = requiredSlices.get(path);
      const profileMin = Math.max(e.min ?? 0, slices?.min ?? 0);
      const min = profileMin > (base?.min ?? 0) ? profileMin : 0;
      const max = cardinality(e.max) < cardinality(base?.max) ? cardinality(e.max) : Infinity;
      if (min > 0 || max < Infinity) {
        const count: Count = { name, definition: path, keys, choice, min, max };
        objectRules(parent).counts.push(slices && slices.min > (e.min ?? 0) ? { ...count, slices: slices.names } : count);
      }

      if (choice && profileTypes.length && profileTypes.length < baseTypes.length) {
        const refused = baseTypes.filter((t) => !profileTypes.includes(t)).map((t) => [name + capitalize(t), t] as const);
        if (refused.length) objectRules(parent).choices.push({ definition: path, allowed: profileTypes, refused });
      }

      const targets = narrowedTargets(e, base);
      if (targets) value.targets = targets;
      const fixed = specified(e, 'fixed');
      if (fixed !== undefined && !deepEquals(fixed, specified(base, 'fixed'))) value.fixed = fixed;
      const pattern = specified(e, 'pattern');
      if (pattern !== undefined && !deepEquals(pattern, specified(base, 'pattern'))) value.pattern = pattern;
    }
    if (value.targets || value.fixed !== undefined || value.pattern !== undefined || value.invariants.length) {
      values.set(rooted, { definition: path, ...value });
    }
  }
  const slicing = slicingDefinition(sd, elements);
  return { url, objects, values, ...(slicing ? { slicing } : {}) };
}

function cardinality(max: string | undefined): number {
  return max === undefined || max === '*' ? Infinity : Number.parseInt(max, 10);
}

/** The value of `fixed[x]` or `pattern[x]` on an element definition, if any. */
function specified(e: ElementDefinition | undefined, prefix: 'fixed' | 'pattern'): unknown {
  if (!e) return undefined;
  for (const key in e) if (key.startsWith(prefix) && /^[A-Z]/.test(key.slice(prefix.length))) return (e as unknown as Record<string, unknown>)[key];
  return undefined;
}

/**
 * The invariants the profile (or a profile it derives from) adds: not on the base element, and
 * not sourced from a core definition (the base validation evaluates those, or skips them on
 * purpose, like ele-1).
 */
function addedInvariants(e: ElementDefinition, base: ElementDefinition | undefined): Invariant[] {
  const baseKeys = new Set((base?.constraint ?? []).map((c) => c.key));
  return (e.constraint ?? [])
    .filter((c) => c.key && c.expression && !baseKeys.has(c.key) && !c.source?.startsWith(HL7_SD))
    .map((c) => {
      let atom: FhirPathAtom | undefined;
      try {
        atom = parseFhirPath(c.expression as string);
      } catch {
        atom = undefined;
      }
      return { key: c.key as string, severity: c.severity === 'warning' ? 'warning' : 'error', human: c.human ?? '', atom } as const;
    });
}

/** The profile's Reference targets where they are narrower than the base's; undefined otherwise. */
function narrowedTargets(e: ElementDefinition, base: ElementDefinition | undefined): string[] | undefined {
  const targets = (e.type ?? []).find((t) => t.code === 'Reference')?.targetProfile?.map(unversioned);
  if (!targets?.length || targets.includes(ANY_RESOURCE)) return undefined;
  const baseTargets = (base?.type ?? []).find((t) => t.code === 'Reference')?.targetProfile?.map(unversioned) ?? [];
  const same = baseTargets.length === targets.length && baseTargets.every((t) => targets.includes(t));
  return same ? undefined : targets;
}

const baseIndexes = new Map<string, Map<string, ElementDefinition> | null>();

function baseIndex(type: string): Map<string, ElementDefinition> | undefined {
  let index = baseIndexes.get(type);
  if (index === undefined) {
    const sd = definitions().structureDefinitions.get(type);
    index = sd?.snapshot?.element ? new Map(sd.snapshot.element.filter((e) => e.path && !e.id?.includes(':')).map((e) => [e.path as string, e])) : null;
    baseIndexes.set(type, index);
  }
  return index ?? undefined;
}

/**
 * The base definition of a profile element: in the base type's snapshot, or — for elements a
 * profile snapshot expands below a content reference (`Questionnaire.item.item.linkId`) or into a
 * data type (`Observation.code.coding`) — in the definition they come from.
 * `typeOf` names the type a profile gives a choice element it narrows to one type.
 */
function baseElement(path: string, typeOf: (prefix: string) => string | undefined, depth = 0): ElementDefinition | undefined {
  const dot = path.indexOf('.');
  const index = baseIndex(dot < 0 ? path : path.slice(0, dot));
  if (!index || depth > 8) return undefined;
  const direct = index.get(path);
  if (direct) return direct;
  const segments = path.split('.');
  for (let i = segments.length - 1; i >= 1; i--) {
    const prefix = segments.slice(0, i).join('.');
    const element = index.get(prefix);
    if (!element) continue;
    const rest = segments.slice(i).join('.');
    if (element.contentReference) {
      const target = element.contentReference.slice(element.contentReference.indexOf('#') + 1);
      return baseElement(`${target}.${rest}`, () => undefined, depth + 1);
    }
    const codes = element.type?.map((t) => t.code) ?? [];
    const code = codes.length === 1 ? codes[0] : typeOf(prefix);
    if (!code || code === 'BackboneElement' || code === 'Element') return undefined;
    return baseElement(`${code}.${rest}`, () => undefined, depth + 1);
  }
  return undefined;
}

/**
 * The part of the profile Medplum's validator is still asked about: the root and the resource's
 * own sliced elements with their slices, each sliced element with the base cardinality and no
 * fixed value, pattern or invariant of the profile (checked here), and extension slices given the
 * `.url` child Medplum matches them by. Medplum then counts the values per slice; its other
 * findings on this reduced definition are dropped (medplum.ts).
 */
function slicingDefinition(sd: StructureDefinition, elements: ElementDefinition[]): StructureDefinition | undefined {
  const root = elements[0];
  if (!root?.path) return undefined;
  const sliced = new Set(
    elements
      .filter((e) => e.slicing && !e.id?.includes(':') && e.path?.split('.').length === 2)
      .filter((e) => elements.some((s) => s.sliceName && s.path === e.path))
      .map((e) => e.id ?? e.path),
  );
  if (!sliced.size) return undefined;
  const kept: ElementDefinition[] = [{ id: root.id ?? root.path, path: root.path }];
  for (const e of elements) {
    const id = e.id ?? e.path ?? '';
    if (sliced.has(id)) {
      const base = baseElement(e.path as string, () => undefined);
      kept.push({
        id,
        path: e.path as string,
        min: base?.min ?? 0,
        max: base?.max ?? '*',
        ...(e.base ? { base: e.base } : {}),
        ...(e.type ? { type: e.type } : {}),
        slicing: e.slicing,
      } as ElementDefinition);
    } else if ([...sliced].some((s) => id.startsWith(`${s}:`))) {
      kept.push(e);
      // An extension slice names its extension by type.profile (as SUSHI and the IG publisher
      // write it); Medplum matches the url discriminator only against a fixed `.url` child.
      const extension = e.sliceName && e.type?.length === 1 && e.type[0]?.code === 'Extension' ? e.type[0].profile?.[0] : undefined;
      if (extension && !elements.some((c) => c.id === `${id}.url`)) {
        kept.push({ id: `${id}.url`, path: `${e.path}.url`, min: 1, max: '1', type: [{ code: 'uri' }], fixedUri: unversioned(extension) } as ElementDefinition);
      }
    }
  }
  return { ...sd, name: sd.name ?? sd.id ?? 'Profile', snapshot: { element: kept } };
}

// ---------------------------------------------------------------------------------------------
// Checking an instance (on every write)

/** The resource type a profile is on, for targets that name profiles rather than core types. */
export type ProfileType = (canonical: string) => string | undefined;

/**
 * Checks the root resource against the compiled `profiles`. The paths of references found to be
 * of a type a profile does not allow go into `referenceErrors`, so that the base validation's
 * warning about the same reference can be dropped.
 */
export function profileVisitor(issues: Issues, profiles: readonly ProfileConstraints[], profileType: ProfileType, referenceErrors: Set<string>): Visitor {
  let root: ResourceNode | undefined;
  let rootValue: TypedValue | undefined;
  const ucum = toTypedValue(UCUM);

  const checkObject = (obj: Record<string, unknown>, path: string, rules: ObjectRules, url: string): void => {
    for (const count of rules.counts) {
      const found = countValues(obj, count.keys);
      if (found < count.min) {
        const at = `${path}.${count.name}${count.choice && !found ? '[x]' : ''}`;
        const why = count.slices ? ` (slice${count.slices.length > 1 ? 's' : ''} ${count.slices.map((n) => `'${n}'`).join(', ')})` : '';
        issues.push(
          found === 0
            ? validationIssue('error', 'required', `Missing element '${count.name}' at ${at}, which profile ${url} requires${count.min > 1 ? ` (at least ${count.min} values)` : ''}${why}`, at)
            : validationIssue('error', 'structure', `${at} has ${found} value${found === 1 ? '' : 's'}, but profile ${url} requires at least ${count.min}`, at),
        );
      } else if (found > count.max) {
        const key = count.keys.find((k) => obj[k] !== undefined || obj[`_${k}`] !== undefined) ?? count.name;
        const at = `${path}.${key}`;
        issues.push(
          count.max === 0
            ? validationIssue('error', 'structure', `${at} is not allowed by profile ${url} (${count.definition} is prohibited)`, at)
            : validationIssue('error', 'structure', `${at} has ${found} values, but profile ${url} allows at most ${count.max}`, at),
        );
      }
    }
    for (const choice of rules.choices) {
      for (const [key, type] of choice.refused) {
        if (obj[key] === undefined && obj[`_${key}`] === undefined) continue;
        const at = `${path}.${key}`;
        const allowed = choice.allowed.map((t) => `${t} (${choice.definition.slice(choice.definition.lastIndexOf('.') + 1).replace('[x]', capitalize(t))})`);
        issues.push(validationIssue('error', 'structure', `${at}: profile ${url} allows ${choice.definition} only as ${orList(allowed)}, not as ${type}`, at));
      }
    }
  };

  const checkValue = (node: Node, rules: ValueRules, url: string): void => {
    const { value, path } = node;
    if (rules.targets && node.type === 'Reference' && isObject(value)) checkReference(value, path, rules.targets, url);
    if (rules.fixed !== undefined && !deepEquals(value, rules.fixed)) {
      issues.push(validationIssue('error', 'value', `${path} must be exactly ${shown(rules.fixed)}, as profile ${url} fixes ${rules.definition}`, path));
    }
    if (rules.pattern !== undefined && !matchesPattern(value, rules.pattern)) {
      issues.push(validationIssue('error', 'value', `${path} must match ${shown(rules.pattern)}, as profile ${url} requires for ${rules.definition}`, path));
    }
    for (const invariant of rules.invariants) checkInvariant(node, invariant, url);
  };

  const checkReference = (reference: Record<string, unknown>, path: string, targets: readonly string[], url: string): void => {
    const literal = typeof reference.reference === 'string' ? referencedType(reference.reference) : undefined;
    const stated = typeof reference.type === 'string' ? statedType(reference.type) : undefined;
    const found = literal ?? stated;
    if (!found) return;
    const allowed: string[] = [];
    for (const target of targets) {
      const type = target.startsWith(HL7_SD) ? target.slice(HL7_SD.length) : profileType(target);
      if (!type) return; // a target profile not known here: its type cannot be judged
      if (type === 'Resource' || type === found) return;
      if (!allowed.includes(type)) allowed.push(type);
    }
    referenceErrors.add(path);
    const what = literal ? `refers to ${article(found)}` : `has type ${found}`;
    issues.push(validationIssue('error', 'structure', `The reference at ${path} ${what}, but profile ${url} allows only ${orList(allowed.map(article))} there`, path));
  };

  const checkInvariant = (node: Node, invariant: Invariant, url: string): void => {
    const label = `${invariant.key} at ${node.path}: ${invariant.human} (profile ${url})`;
    if (!invariant.atom) {
      issues.push(validationIssue(invariant.severity, 'processing', `Constraint ${label} could not be evaluated: its expression cannot be parsed`, node.path));
      return;
    }
    const context: TypedValue = node === root ? (rootValue as TypedValue) : { type: node.type, value: node.value };
    let result: TypedValue[];
    try {
      result = evalFhirPathTyped(invariant.atom, [context], {
        '%context': context,
        '%ucum': ucum,
        '%resource': rootValue as TypedValue,
        '%rootResource': rootValue as TypedValue,
      });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      issues.push(validationIssue(invariant.severity, 'processing', `Constraint ${label} could not be evaluated: ${reason}`, node.path));
      return;
    }
    // As Medplum and the HL7 validator evaluate invariants: anything but a single true fails.
    if (result.length !== 1 || result[0]?.value !== true) {
      issues.push(validationIssue(invariant.severity, 'invariant', `Constraint failed: ${label}`, node.path));
    }
  };

  return {
    resource(node: ResourceNode): void {
      if (node.parent) return; // contained and nested resources: their base type only
      root = node;
      rootValue = { type: node.type, value: node.value };
      for (const p of profiles) {
        const objectRules = p.objects.get(node.type);
        if (objectRules) checkObject(node.value as Record<string, unknown>, node.path, objectRules, p.url);
        const valueRules = p.values.get(node.type);
        if (valueRules) for (const invariant of valueRules.invariants) checkInvariant(node, invariant, p.url);
      }
    },
    value(node: Node): void {
      if (node.resource !== root) return;
      for (const p of profiles) {
        const valueRules = p.values.get(node.rootedPath);
        if (valueRules) checkValue(node, valueRules, p.url);
        if (isObject(node.value)) {
          const objectRules = p.objects.get(node.rootedPath);
          if (objectRules) checkObject(node.value, node.path, objectRules, p.url);
        }
      }
    },
  };
}

/** How many values the keys hold (an element and its `_element` are one value). */
function countValues(obj: Record<string, unknown>, keys: readonly string[]): number {
  let n = 0;
  for (const key of keys) {
    const value = obj[key] ?? obj[`_${key}`];
    if (value === undefined || value === null) continue;
    n += Array.isArray(value) ? value.length : 1;
  }
  return n;
}

/** A pattern is met when every value it states is present (arrays: each pattern item matches some value). */
function matchesPattern(value: unknown, pattern: unknown): boolean {
  if (isObject(pattern) || Array.isArray(pattern)) return deepIncludes(value, pattern) && value !== undefined && value !== null;
  return value === pattern;
}

const ID = /^[A-Za-z0-9\-.]{1,64}$/;

/**
 * The resource type a literal reference names, where it is certain: `Type/id`,
 * `Type/id/_history/v`, a conditional reference `Type?…`, or an http(s) URL ending in
 * `/Type/id` (optionally with `/_history/v`). Contained (`#id`), `urn:uuid:`/`urn:oid:` and other
 * references give undefined: they are resolved (transactions rewrite `urn:uuid:`s before
 * validation) or judged elsewhere.
 */
export function referencedType(reference: string): string | undefined {
  const isResourceType = definitions().isResourceType;
  const absolute = /^[a-z][a-z0-9+.-]*:/i.test(reference);
  if (absolute && !/^https?:\/\//i.test(reference)) return undefined;
  if (!absolute) {
    const query = reference.indexOf('?');
    if (query > 0) {
      const type = reference.slice(0, query);
      return isResourceType(type) ? type : undefined;
    }
  }
  const parts = (absolute ? reference.replace(/[?#].*$/, '') : reference).split('/');
  const history = parts.length >= 4 && parts[parts.length - 2] === '_history';
  if (!absolute && parts.length !== (history ? 4 : 2)) return undefined;
  const at = parts.length - (history ? 4 : 2);
  const [type, id] = [parts[at], parts[at + 1]];
  return at >= 0 && type && id && ID.test(id) && isResourceType(type) ? type : undefined;
}

/** The resource type `Reference.type` states (`Patient` or its core StructureDefinition URL). */
function statedType(type: string): string | undefined {
  const name = type.startsWith(HL7_SD) ? type.slice(HL7_SD.length) : type;
  return definitions().isResourceType(name) ? name : undefined;
}

function article(type: string): string {
  return `${/^[AEIOU]/.test(type) ? 'an' : 'a'} ${type}`;
}

function orList(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

function shown(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
