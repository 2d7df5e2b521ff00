/**
 * FHIRPath Patch (https://hl7.org/fhir/R4/fhirpatch.html): a Parameters resource whose `operation`
 * parameters add, insert, delete, replace or move elements that FHIRPath expressions point at.
 *
 * Medplum evaluates the paths, but its answers say what matched, not where it lives, and primitive
 * values come back as copies. So every path is split at its last step, `P.name` plus optional filters
 * (`[n]`, `first()`, `where(...)`, `extension(url)`, ...): `P` is evaluated, the `name` items of each
 * match of `P` are listed as slots (parent object, property, list index), and the filters are applied
 * to that list. That finds primitives exactly, and knows each parent's type, which the element
 * definitions (list or single, allowed types, choice `[x]` names) come from. A path of another
 * shape still works when it points at complex elements: those are found by object identity.
 *
 * Operations run in order on one copy of the resource; the first failure throws a 400 and the copy
 * is dropped, so a patch applies whole or not at all.
 */
import type { Atom, InternalSchemaElement, TypedValue } from '@medplum/core';
import {
  DotAtom,
  evalFhirPathTyped,
  FhirPathAtom,
  FunctionAtom,
  IndexerAtom,
  isPrimitiveType,
  parseFhirPath,
  SymbolAtom,
  toTypedValue,
  tryGetDataType,
} from '@medplum/core';
import type { Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { definitions } from '../definitions.js';
import { errors } from '../outcomes.js';
import type { FhirError } from '../outcomes.js';

type Json = Record<string, unknown>;

const OPERATION_TYPES = ['add', 'insert', 'delete', 'replace', 'move'] as const;
type OperationType = (typeof OPERATION_TYPES)[number];

/** The parts each operation type takes (the spec's table); any other part is an error. */
const PARTS: Record<OperationType, readonly string[]> = {
  add: ['type', 'path', 'name', 'value'],
  insert: ['type', 'path', 'index', 'value'],
  delete: ['type', 'path'],
  replace: ['type', 'path', 'value'],
  move: ['type', 'path', 'source', 'destination'],
};

/**
 * A value from the patch: typed (`value[x]`, or `resource`), or an object given as `part`s whose
 * type is only known once we know where it goes. `element` is a primitive's `_value[x]` companion
 * (its id and extensions).
 */
type PatchValue =
  | { kind: 'typed'; type: string; json: unknown; element: unknown }
  | { kind: 'parts'; parts: ParametersParameter[] };

interface Operation {
  type: OperationType;
  path: string;
  name?: string;
  value?: PatchValue;
  index?: number;
  source?: number;
  destination?: number;
  /** "Patch operation 2 (replace Patient.birthDate)": the start of every error message about it. */
  label: string;
  /** Where it is in the patch document, for OperationOutcome.issue.expression. */
  expression: string;
}

/** Where an element lives: `parent[key]`, or `parent[key][index]` when the property is a list. */
interface Slot {
  parent: Json;
  /** The FHIR type of `parent`, when known; element definitions are looked up on it. */
  parentType: string | undefined;
  key: string;
  index: number | undefined;
}

/** One matched element; `slot` is undefined for the resource itself. */
interface Match {
  tv: TypedValue;
  slot: Slot | undefined;
}

/** An element definition looked up by property name, with the JSON key the value goes under. */
interface ElementInfo {
  key: string;
  def: InternalSchemaElement | undefined;
  isList: boolean | undefined;
  /** For a choice element (`deceased[x]`), its base name (`deceased`). */
  choiceBase?: string;
}

export function isFhirPathPatch(body: unknown): body is Parameters {
  if (!isObject(body) || body.resourceType !== 'Parameters') return false;
  const parameters = body.parameter;
  if (parameters === undefined) return true;
  return Array.isArray(parameters) && parameters.every((p) => isObject(p) && p.name === 'operation');
}

/**
 * Applies a FHIRPath Patch to a copy of `resource` and returns the copy; `resource` is not changed.
 * Throws a 400 FhirError for a malformed patch or an operation that cannot apply.
 */
export function applyFhirPathPatch(resource: Resource, patch: Parameters): Resource {
  if (!isObject(patch) || patch.resourceType !== 'Parameters') {
    throw errors.badRequest('A FHIRPath Patch must be a Parameters resource');
  }
  if (patch.parameter !== undefined && !Array.isArray(patch.parameter)) {
    throw errors.badRequest('Parameters.parameter must be a list', 'Parameters.parameter');
  }
  // Medplum's typed FHIRPath and element lookups need the R4 definitions indexed.
  definitions();
  // Check the whole document before changing anything.
  const operations = (patch.parameter ?? []).map(parseOperation);
  const result = structuredClone(resource) as Resource & Json;
  for (const op of operations) applyOperation(new PatchContext(result, op));
  prune(result);
  if (result.resourceType !== resource.resourceType) {
    throw errors.badRequest('A patch may not change the resourceType', 'Parameters');
  }
  if (result.id !== resource.id) {
    throw errors.badRequest('A patch may not change the resource id', 'Parameters');
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Reading the patch document

function parseOperation(param: ParametersParameter, i: number): Operation {
  const expression = `Parameters.parameter[${i}]`;
  let label = `Patch operation ${i + 1}`;
  const fail = (message: string): FhirError => errors.badRequest(`${label}: ${message}`, expression);

  if (!isObject(param)) throw fail('the parameter is not an object');
  if (param.name !== 'operation') {
    throw fail(`the parameter is named "${String(param.name)}"; a FHIRPath Patch has only "operation" parameters`);
  }
  const parts = new Map<string, ParametersParameter>();
  for (const part of param.part ?? []) {
    if (!isObject(part) || typeof part.name !== 'string') throw fail('a part has no name');
    if (parts.has(part.name)) throw fail(`the part "${part.name}" is given twice`);
    parts.set(part.name, part);
  }
  const stringPart = (name: string): string | undefined => {
    const part = parts.get(name);
    if (!part) return undefined;
    const value = readValue(part, fail);
    if (value?.kind !== 'typed' || typeof value.json !== 'string' || value.json === '') {
      throw fail(`the part "${name}" must have a non-empty valueString or valueCode`);
    }
    return value.json;
  };
  const integerPart = (name: string): number => {
    const part = parts.get(name);
    if (!part) throw fail(`a ${type} operation needs a "${name}" part`);
    const value = readValue(part, fail);
    if (value?.kind !== 'typed' || !Number.isInteger(value.json) || (value.json as number) < 0) {
      throw fail(`the part "${name}" must be a valueInteger of 0 or more`);
    }
    return value.json as number;
  };

  const type = stringPart('type');
  if (type === undefined) throw fail('the "type" part is missing');
  if (!(OPERATION_TYPES as readonly string[]).includes(type)) {
    throw fail(`unknown operation type "${type}" (expected ${OPERATION_TYPES.join(', ')})`);
  }
  const opType = type as OperationType;
  const path = stringPart('path');
  if (path === undefined) throw fail(`a ${opType} operation needs a "path" part`);
  label = `Patch operation ${i + 1} (${opType} ${path})`;
  for (const name of parts.keys()) {
    if (!PARTS[opType].includes(name)) throw fail(`a ${opType} operation has no "${name}" part`);
  }

  const op: Operation = { type: opType, path, label, expression };
  if (opType === 'add') {
    op.name = stringPart('name');
    if (op.name === undefined) throw fail('an add operation needs a "name" part');
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(op.name)) throw fail(`"${op.name}" is not an element name`);
  }
  if (opType === 'add' || opType === 'insert' || opType === 'replace') {
    const part = parts.get('value');
    op.value = part ? readValue(part, fail) : undefined;
    if (!op.value) throw fail(`a ${opType} operation needs a "value" part with a value[x] or parts`);
  }
  if (opType === 'insert') op.index = integerPart('index');
  if (opType === 'move') {
    op.source = integerPart('source');
    op.destination = integerPart('destination');
  }
  return op;
}

/** A part's value: its one `value[x]`, `resource` or list of `part`s; undefined if it has none. */
function readValue(part: ParametersParameter, fail: (message: string) => FhirError): PatchValue | undefined {
  const record = part as unknown as Json;
  const valueKeys = Object.keys(record).filter((k) => /^value[A-Z]/.test(k));
  const given = valueKeys.length + (part.resource === undefined ? 0 : 1) + (part.part === undefined ? 0 : 1);
  if (given === 0) return undefined;
  if (given > 1) throw fail(`the part "${part.name}" has more than one value (value[x], resource or part)`);
  const valueKey = valueKeys[0];
  if (valueKey !== undefined) {
    // valueString -> string, valueHumanName -> HumanName: primitive type names start in lower case.
    const suffix = valueKey.slice('value'.length);
    const lower = suffix.charAt(0).toLowerCase() + suffix.slice(1);
    const type = isPrimitiveType(lower) ? lower : suffix;
    return { kind: 'typed', type, json: record[valueKey], element: record[`_${valueKey}`] };
  }
  if (part.resource !== undefined) {
    if (!isObject(part.resource) || typeof part.resource.resourceType !== 'string') {
      throw fail(`the part "${part.name}" has a resource without a resourceType`);
    }
    return { kind: 'typed', type: part.resource.resourceType, json: part.resource, element: undefined };
  }
  if (!Array.isArray(part.part) || part.part.length === 0) throw fail(`the part "${part.name}" has no parts`);
  return { kind: 'parts', parts: part.part };
}

// ---------------------------------------------------------------------------------------------
// Evaluating and locating paths

/** One operation being applied: the resource, and errors worded for that operation. */
class PatchContext {
  readonly rootTv: TypedValue;
  private readonly variables: Record<string, TypedValue>;

  constructor(
    readonly root: Resource & Json,
    readonly op: Operation,
  ) {
    this.rootTv = toTypedValue(root);
    this.variables = { '%resource': this.rootTv, '%rootResource': this.rootTv, '%context': this.rootTv };
  }

  fail(message: string): FhirError {
    return errors.badRequest(`${this.op.label}: ${message}`, this.op.expression);
  }

  parse(): FhirPathAtom {
    // resolve() would reach other resources (Medplum answers it with a stand-in object), which a
    // patch may not change; the spec allows it only for contained resources, which paths reach directly.
    if (/\bresolve\s*\(/.test(this.op.path)) throw this.fail('resolve() is not supported in patch paths');
    try {
      return parseFhirPath(this.op.path);
    } catch (err) {
      throw this.fail(`the path is not valid FHIRPath: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Evaluates an expression (by default on the resource). */
  eval(atom: Atom, input: TypedValue[] = [this.rootTv]): TypedValue[] {
    const expr = atom instanceof FhirPathAtom ? atom : new FhirPathAtom(atom.toString(), atom);
    try {
      return evalFhirPathTyped(expr, input, this.variables);
    } catch (err) {
      throw this.fail(`the path cannot be evaluated: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** True if `obj` is part of the resource (and not, say, a copy Medplum made). */
  contains(obj: object): boolean {
    return obj === this.root || findByIdentity(this.root, obj) !== undefined;
  }
}

/** A path split at its last step: `parent.name` then `filters` (innermost first). */
interface LastStep {
  parent: Atom | undefined; // undefined: the resource
  name: string;
  filters: Atom[];
}

/** Functions that keep or drop each item on its own, so they can run item by item. */
const ITEM_FILTERS = new Set(['where', 'ofType', 'as']);
/** Functions that pick items by position, applied here to the slot list. */
const POSITION_FILTERS = new Set(['first', 'last', 'tail', 'skip', 'take', 'single']);

/** Splits a path at its last element name; 'root' if it is the resource type alone (`Patient`). */
function splitLastStep(atom: Atom, resourceType: string): LastStep | 'root' | undefined {
  const filters: Atom[] = [];
  let current = atom instanceof FhirPathAtom ? atom.child : atom;
  for (;;) {
    if (current instanceof IndexerAtom) {
      filters.unshift(current);
      current = current.left;
    } else if (current instanceof DotAtom && current.right instanceof FunctionAtom) {
      const fn = current.right;
      // extension(url) names the `extension` property and filters it, in one step.
      if (fn.name === 'extension') return { parent: current.left, name: 'extension', filters: [fn, ...filters] };
      if (!ITEM_FILTERS.has(fn.name) && !POSITION_FILTERS.has(fn.name)) return undefined;
      filters.unshift(fn);
      current = current.left;
    } else if (current instanceof DotAtom && current.right instanceof SymbolAtom) {
      return { parent: current.left, name: current.right.name, filters };
    } else if (current instanceof SymbolAtom) {
      if (current.name === resourceType) return filters.length === 0 ? 'root' : undefined;
      if (/^[%$]/.test(current.name)) return undefined; // a variable such as %resource
      return { parent: undefined, name: current.name, filters };
    } else {
      return undefined;
    }
  }
}

/**
 * Finds where each of `results` (Medplum's answer for `atom`) lives. Throws if one cannot be found.
 */
function locate(ctx: PatchContext, atom: FhirPathAtom, results: TypedValue[]): Match[] {
  const step = splitLastStep(atom, ctx.root.resourceType);
  if (step === 'root') return results.map((tv) => ({ tv, slot: undefined }));
  if (step) {
    const items = itemsOf(ctx, step.parent, step.name);
    const matches = items && applyFilters(ctx, items, step.filters);
    // Our reading of the path must agree with Medplum's; if not, fall back to identity.
    if (matches && matches.length === results.length && matches.every((m, i) => sameValue(m.tv, results[i]))) {
      return matches;
    }
  }
  return results.map((tv) => {
    if (tv.value === ctx.root) return { tv, slot: undefined };
    const slot = isPrimitive(tv) ? undefined : findByIdentity(ctx.root, tv.value as object);
    if (!slot) throw ctx.fail('cannot tell where in the resource the element the path matched is');
    return { tv, slot };
  });
}

function sameValue(a: TypedValue, b: TypedValue | undefined): boolean {
  if (!b) return false;
  if (isPrimitive(a) && isPrimitive(b)) return a.value === b.value || JSON.stringify(a.value) === JSON.stringify(b.value);
  return a.value === b.value;
}

/** Every `name` item of every match of `parent`, in FHIRPath order, with its slot. */
function itemsOf(ctx: PatchContext, parent: Atom | undefined, name: string): Match[] | undefined {
  const parents = parent ? ctx.eval(parent) : [ctx.rootTv];
  // A primitive's own properties (id, extension) live in its `_name` companion object, which is
  // found from the primitive's slot.
  const parentMatches = parent && parents.some(isPrimitive) ? locate(ctx, wrap(parent), parents) : undefined;
  const out: Match[] = [];
  for (const [i, pv] of parents.entries()) {
    const holder = isPrimitive(pv)
      ? companionOf(parentMatches?.[i]?.slot, false)
      : isObject(pv.value) && ctx.contains(pv.value)
        ? pv.value
        : undefined;
    const items = ctx.eval(new SymbolAtom(name), [pv]);
    if (!holder) {
      if (items.length > 0) return undefined;
      continue;
    }
    const holderType = isPrimitive(pv) ? 'Element' : pv.type;
    const slots = slotsOf(holder, holderType, name);
    if (slots.length !== items.length) return undefined;
    items.forEach((tv, k) => out.push({ tv, slot: slots[k] }));
  }
  return out;
}

/** The slots of the present `name` items of `obj` (a choice name finds its typed key). */
function slotsOf(obj: Json, type: string, name: string): Slot[] {
  const key = name in obj || `_${name}` in obj ? name : choiceKeyIn(obj, type, name);
  if (key === undefined) return [];
  const value = obj[key];
  const companion = obj[`_${key}`];
  if (Array.isArray(value) || Array.isArray(companion)) {
    const length = Math.max(Array.isArray(value) ? value.length : 0, Array.isArray(companion) ? companion.length : 0);
    const slots: Slot[] = [];
    for (let index = 0; index < length; index++) {
      // An item is present if it has a value or (a primitive) only an id or extensions.
      const present = (Array.isArray(value) && value[index] != null) || (Array.isArray(companion) && companion[index] != null);
      if (present) slots.push({ parent: obj, parentType: type, key, index });
    }
    return slots;
  }
  return value !== undefined || companion !== undefined ? [{ parent: obj, parentType: type, key, index: undefined }] : [];
}

/** The key in `obj` that holds the choice element `name[x]`, e.g. `deceasedBoolean` for `deceased`. */
function choiceKeyIn(obj: Json, type: string, name: string): string | undefined {
  const def = tryGetDataType(type)?.elements[`${name}[x]`];
  const keys = def
    ? def.type.map((t) => name + upperFirst(t.code))
    : Object.keys(obj).filter((k) => k.length > name.length && k.startsWith(name) && /^[A-Z]/.test(k.slice(name.length)));
  return keys.find((k) => k in obj || `_${k}` in obj);
}

/** Applies `[n]`, first(), where(...), extension(url), ... to a list of matches. */
function applyFilters(ctx: PatchContext, items: Match[], filters: Atom[]): Match[] {
  let current = items;
  for (const filter of filters) {
    if (filter instanceof IndexerAtom) {
      const item = current[evalInteger(ctx, filter.expr)];
      current = item ? [item] : [];
      continue;
    }
    const fn = filter as FunctionAtom;
    const arg = (): number => (fn.args[0] ? evalInteger(ctx, fn.args[0]) : 0);
    if (fn.name === 'first') current = current.slice(0, 1);
    else if (fn.name === 'last') current = current.slice(-1);
    else if (fn.name === 'tail') current = current.slice(1);
    else if (fn.name === 'skip') current = current.slice(arg());
    else if (fn.name === 'take') current = current.slice(0, arg());
    else if (fn.name === 'single') current = current.length > 1 ? [] : current;
    else if (fn.name === 'extension') {
      const url = fn.args[0] ? ctx.eval(fn.args[0])[0]?.value : undefined;
      current = current.filter((m) => isObject(m.tv.value) && m.tv.value.url === url);
    } else {
      // where(), ofType(), as(): run the function on each item alone; it keeps it or not.
      const atom = wrap(fn);
      current = current.filter((m) => ctx.eval(atom, [m.tv]).length > 0);
    }
  }
  return current;
}

function evalInteger(ctx: PatchContext, atom: Atom): number {
  const result = ctx.eval(atom);
  const value = result[0]?.value as unknown;
  if (result.length !== 1 || !Number.isInteger(value)) throw ctx.fail(`"${atom.toString()}" is not an integer`);
  return value as number;
}

function wrap(atom: Atom): FhirPathAtom {
  return atom instanceof FhirPathAtom ? atom : new FhirPathAtom(atom.toString(), atom);
}

/** Depth-first search for the property or list entry that holds `target`. */
function findByIdentity(node: unknown, target: object): Slot | undefined {
  if (!isObject(node)) return undefined;
  for (const [key, value] of Object.entries(node)) {
    if (Array.isArray(value)) {
      for (const [index, item] of value.entries()) {
        if (item === target) return { parent: node, parentType: undefined, key, index };
        const found = findByIdentity(item, target);
        if (found) return found;
      }
    } else if (value === target) {
      return { parent: node, parentType: undefined, key, index: undefined };
    } else {
      const found = findByIdentity(value, target);
      if (found) return found;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Element definitions and values

/** Looks up the property `name` of `type`: a plain element, a choice base (`deceased`) or a typed choice (`deceasedBoolean`). */
function elementOf(ctx: PatchContext, type: string | undefined, name: string, valueType: string | undefined): ElementInfo {
  const schema = type ? tryGetDataType(type) : undefined;
  // Without a schema (an unknown type) nothing can be checked; the property is used as named.
  if (!schema) return { key: name, def: undefined, isList: undefined };
  const direct = schema.elements[name];
  if (direct) return { key: name, def: direct, isList: isList(direct) };
  const choice = schema.elements[`${name}[x]`];
  if (choice) {
    if (valueType === undefined) throw ctx.fail(`"${name}" has several types; give the value as a value[x] to choose one`);
    const code = choice.type.find((t) => t.code === valueType)?.code;
    if (!code) throw ctx.fail(`${type}.${name}[x] cannot be a ${valueType} (allowed: ${typeCodes(choice).join(', ')})`);
    return { key: name + upperFirst(code), def: choice, isList: false, choiceBase: name };
  }
  const typed = elementOfKey(type as string, name);
  if (typed) return typed;
  throw ctx.fail(`${type} has no element "${name}"`);
}

/** The element definition behind an existing JSON key (`deceasedBoolean` finds `deceased[x]`). */
function elementOfKey(type: string, key: string): ElementInfo | undefined {
  const schema = tryGetDataType(type);
  if (!schema) return undefined;
  const direct = schema.elements[key];
  if (direct) return { key, def: direct, isList: isList(direct) };
  for (const [name, def] of Object.entries(schema.elements)) {
    if (!name.endsWith('[x]')) continue;
    const base = name.slice(0, -3);
    if (def.type.some((t) => key === base + upperFirst(t.code))) return { key, def, isList: false, choiceBase: base };
  }
  return undefined;
}

function isList(def: InternalSchemaElement): boolean {
  return def.isArray === true || def.max > 1;
}

function typeCodes(def: InternalSchemaElement): string[] {
  return def.type.map((t) => t.code);
}

/** Turns a patch value into JSON for an element of one of `types`: parts become an object of that type. */
function materialise(ctx: PatchContext, value: PatchValue, types: string[] | undefined): { json: unknown; type: string | undefined; element: unknown } {
  if (value.kind === 'typed') return value;
  if (types && types.length > 1) throw ctx.fail(`the element has several types (${types.join(', ')}); give the value as a value[x]`);
  const type = types?.[0];
  if (type && isPrimitiveType(type)) throw ctx.fail(`a ${type} value must be given as a value[x], not as parts`);
  const obj: Json = {};
  for (const part of value.parts) {
    const sub = readValue(part, (message) => ctx.fail(`in the value, ${message}`));
    if (!sub) throw ctx.fail(`the value's part "${part.name}" has no value`);
    const info = elementOf(ctx, type, part.name, sub.kind === 'typed' ? sub.type : undefined);
    const item = materialise(ctx, sub, info.def ? typeCodes(info.def) : undefined);
    checkType(ctx, info, item, `${type ?? 'the value'}.${part.name}`);
    const existing = obj[info.key];
    if (info.isList === true || (info.isList === undefined && existing !== undefined)) {
      // A repeating element: each part with its name adds an item (without a schema, a repeated name makes a list).
      const list = Array.isArray(existing) || existing === undefined ? ((existing as unknown[] | undefined) ?? []) : [existing];
      obj[info.key] = list;
      insertItem(obj, info.key, list.length, item);
    } else {
      if (existing !== undefined) throw ctx.fail(`the value gives "${part.name}" twice, but it is not a list`);
      setSingle(obj, info.key, item);
    }
  }
  return { json: obj, type, element: undefined };
}

const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Count', 'Distance', 'Duration', 'MoneyQuantity', 'SimpleQuantity']);

/**
 * The spec requires an error when a value's type is wrong for its place. Primitives are checked
 * loosely, by JSON kind (a valueString may fill a code), since many clients send every string as
 * valueString; complex types must match.
 */
function checkType(ctx: PatchContext, info: ElementInfo, value: { json: unknown; type: string | undefined }, where: string): void {
  if (!info.def || value.type === undefined) return;
  const allowed = typeCodes(info.def);
  const type = value.type;
  if (allowed.includes(type)) return;
  if (isPrimitiveType(type) && allowed.some((code) => isPrimitiveType(code) && typeof value.json === jsonKind(code))) return;
  if (QUANTITY_TYPES.has(type) && allowed.some((code) => QUANTITY_TYPES.has(code))) return;
  if (allowed.includes('Resource') && isObject(value.json) && typeof value.json.resourceType === 'string') return;
  throw ctx.fail(`a ${type} value cannot go in ${where} (allowed: ${allowed.join(', ')})`);
}

/** The JSON type a primitive FHIR type is written as. */
function jsonKind(code: string): string {
  if (/boolean$/i.test(code)) return 'boolean';
  if (/(integer|decimal|int)$/i.test(code)) return 'number';
  return 'string';
}

// ---------------------------------------------------------------------------------------------
// The operations

function applyOperation(ctx: PatchContext): void {
  switch (ctx.op.type) {
    case 'add':
      return add(ctx);
    case 'insert':
      return insert(ctx);
    case 'delete':
      return remove(ctx);
    case 'replace':
      return replace(ctx);
    case 'move':
      return move(ctx);
  }
}

/** Evaluates the path, which must match exactly one element. */
function single(ctx: PatchContext, atom: FhirPathAtom, purpose: string): TypedValue {
  const results = ctx.eval(atom);
  if (results.length === 0) throw ctx.fail(`the path matches no element ${purpose}`);
  if (results.length > 1) throw ctx.fail(`the path matches ${results.length} elements; it must match exactly one`);
  return results[0] as TypedValue;
}

/** The object whose properties `tv` holds: a complex element itself, or a primitive's `_name` companion. */
function containerOf(ctx: PatchContext, atom: FhirPathAtom, tv: TypedValue): { obj: Json; type: string } {
  if (!isPrimitive(tv)) {
    if (!isObject(tv.value) || !ctx.contains(tv.value)) throw ctx.fail('the path does not point at an element of the resource');
    return { obj: tv.value, type: tv.type };
  }
  const [match] = locate(ctx, atom, [tv]);
  const obj = companionOf(match?.slot, true);
  if (!obj) throw ctx.fail('cannot tell where in the resource the element the path matched is');
  return { obj, type: 'Element' };
}

/** add: put `value` in the property `name` of the one element the path matches (appended, for a list). */
function add(ctx: PatchContext): void {
  const { op } = ctx;
  const atom = ctx.parse();
  const tv = single(ctx, atom, 'to add to');
  const container = containerOf(ctx, atom, tv);
  const value = op.value as PatchValue;
  const info = elementOf(ctx, container.type, op.name as string, value.kind === 'typed' ? value.type : undefined);
  const item = materialise(ctx, value, info.def ? typeCodes(info.def) : undefined);
  checkType(ctx, info, item, `${container.type}.${op.name}`);
  const { obj } = container;
  if (info.isList === true || Array.isArray(obj[info.key])) {
    if (obj[info.key] === undefined) obj[info.key] = [];
    insertItem(obj, info.key, (obj[info.key] as unknown[]).length, item);
    return;
  }
  // "Add can be used for non-repeating elements as long as they do not already exist."
  const existingKey = info.choiceBase ? choiceKeyIn(obj, container.type, info.choiceBase) : info.key;
  if (existingKey !== undefined && obj[existingKey] !== undefined) {
    throw ctx.fail(`${container.type}.${op.name} already has a value (use replace to change it)`);
  }
  setSingle(obj, info.key, item);
}

/** The list property a path names (insert and move): the one parent object and its key. */
function listOf(ctx: PatchContext, valueType: string | undefined): { obj: Json; key: string; info: ElementInfo; list: unknown[] } {
  const atom = ctx.parse();
  const step = splitLastStep(atom, ctx.root.resourceType);
  if (!step || step === 'root' || step.filters.length > 0) {
    throw ctx.fail('the path must name a list element, e.g. Patient.identifier');
  }
  const parentAtom = step.parent ? wrap(step.parent) : undefined;
  const parent = parentAtom ? single(ctx, parentAtom, 'that holds the list') : ctx.rootTv;
  const container = parentAtom ? containerOf(ctx, parentAtom, parent) : { obj: ctx.root, type: ctx.root.resourceType };
  const info = elementOf(ctx, container.type, step.name, valueType);
  const current = container.obj[info.key];
  if (info.isList === false || (current !== undefined && !Array.isArray(current))) {
    throw ctx.fail(`${container.type}.${step.name} is not a list`);
  }
  return { obj: container.obj, key: info.key, info, list: (current as unknown[] | undefined) ?? [] };
}

/** insert: put `value` at `index` (0 to the list's length) in the list the path names. */
function insert(ctx: PatchContext): void {
  const value = ctx.op.value as PatchValue;
  const { obj, key, info, list } = listOf(ctx, value.kind === 'typed' ? value.type : undefined);
  const index = ctx.op.index as number;
  if (index > list.length) throw ctx.fail(`index ${index} is out of range (the list has ${list.length} items)`);
  const item = materialise(ctx, value, info.def ? typeCodes(info.def) : undefined);
  checkType(ctx, info, item, key);
  obj[key] = list;
  insertItem(obj, key, index, item);
}

/** move: take the item at `source` out of the list the path names and put it back at `destination`. */
function move(ctx: PatchContext): void {
  const { obj, key, list } = listOf(ctx, undefined);
  const { source, destination } = ctx.op as { source: number; destination: number };
  for (const [what, index] of [['source', source], ['destination', destination]] as const) {
    if (index >= list.length) throw ctx.fail(`${what} ${index} is out of range (the list has ${list.length} items)`);
  }
  const moveIn = (items: unknown[]): void => {
    const [item] = items.splice(source, 1);
    items.splice(destination, 0, item ?? null);
  };
  moveIn(list);
  const companion = obj[`_${key}`];
  if (Array.isArray(companion)) {
    padTo(companion, list.length);
    moveIn(companion);
  }
}

/** delete: remove the element the path matches; a path that matches nothing is not an error. */
function remove(ctx: PatchContext): void {
  const atom = ctx.parse();
  const results = ctx.eval(atom);
  if (results.length === 0) return;
  if (results.length > 1) throw ctx.fail(`the path matches ${results.length} elements; only one element can be deleted`);
  const [match] = locate(ctx, atom, results);
  const slot = match?.slot;
  if (!slot) throw ctx.fail('the resource itself cannot be deleted');
  const { parent, key, index } = slot;
  if (index === undefined) {
    delete parent[key];
    delete parent[`_${key}`];
    return;
  }
  for (const k of [key, `_${key}`]) {
    const list = parent[k];
    if (Array.isArray(list)) list.splice(index, 1);
  }
  // An emptied list (and a companion left with only nulls) goes in prune().
}

/** replace: put `value` in place of the one element the path matches. */
function replace(ctx: PatchContext): void {
  const atom = ctx.parse();
  const tv = single(ctx, atom, 'to replace');
  const [match] = locate(ctx, atom, [tv]);
  const slot = match?.slot;
  if (!slot) throw ctx.fail('the resource itself cannot be replaced');
  const value = ctx.op.value as PatchValue;
  const info = slot.parentType ? elementOfKey(slot.parentType, slot.key) : undefined;
  // Parts take the type of the element they replace.
  const item = materialise(ctx, value, value.kind === 'parts' && !isPrimitive(tv) ? [tv.type] : info?.def ? typeCodes(info.def) : undefined);
  if (info) checkType(ctx, info, item, `${slot.parentType}.${slot.key}`);
  const { parent, key, index } = slot;
  if (index !== undefined) {
    (parent[key] as unknown[])[index] = item.json;
    setCompanionItem(parent, key, index, item.element);
    return;
  }
  // A choice element may change type: deceasedBoolean replaced by a dateTime becomes deceasedDateTime.
  const newKey = info?.choiceBase && item.type ? info.choiceBase + upperFirst(item.type) : key;
  if (newKey !== key && info?.def?.type.some((t) => t.code === item.type)) {
    delete parent[key];
    delete parent[`_${key}`];
    setSingle(parent, newKey, item);
    return;
  }
  delete parent[`_${key}`];
  setSingle(parent, key, item);
}

// ---------------------------------------------------------------------------------------------
// JSON helpers: primitives and their `_name` companions

/** The `_key` companion object of the primitive in `slot` (created when `create`). */
function companionOf(slot: Slot | undefined, create: boolean): Json | undefined {
  if (!slot) return undefined;
  const { parent, key, index } = slot;
  const companionKey = `_${key}`;
  if (index === undefined) {
    const existing = parent[companionKey];
    if (isObject(existing)) return existing;
    if (!create) return undefined;
    const made: Json = {};
    parent[companionKey] = made;
    return made;
  }
  let list = parent[companionKey];
  if (!Array.isArray(list)) {
    if (!create) return undefined;
    list = [];
    parent[companionKey] = list;
  }
  const companions = list as unknown[];
  padTo(companions, index + 1);
  const existing = companions[index];
  if (isObject(existing)) return existing;
  if (!create) return undefined;
  const made: Json = {};
  companions[index] = made;
  return made;
}

function setSingle(obj: Json, key: string, item: { json: unknown; element: unknown }): void {
  obj[key] = item.json;
  if (item.element !== undefined) obj[`_${key}`] = item.element;
}

/** Inserts into the list `obj[key]`, keeping a `_key` companion list aligned. */
function insertItem(obj: Json, key: string, index: number, item: { json: unknown; element: unknown }): void {
  const list = obj[key] as unknown[];
  const companionKey = `_${key}`;
  const companion = obj[companionKey];
  if (Array.isArray(companion)) {
    padTo(companion, list.length);
    companion.splice(index, 0, item.element ?? null);
  } else if (item.element !== undefined) {
    obj[companionKey] = list.map(() => null);
    (obj[companionKey] as unknown[]).splice(index, 0, item.element);
  }
  list.splice(index, 0, item.json);
}

function setCompanionItem(obj: Json, key: string, index: number, element: unknown): void {
  const companion = obj[`_${key}`];
  if (Array.isArray(companion)) {
    padTo(companion, index + 1);
    companion[index] = element ?? null;
  } else if (element !== undefined) {
    const list = (obj[key] as unknown[]).map(() => null as unknown);
    list[index] = element;
    obj[`_${key}`] = list;
  }
}

function padTo(list: unknown[], length: number): void {
  while (list.length < length) list.push(null);
}

/**
 * Removes what FHIR JSON cannot hold and a patch can leave behind: empty objects and lists, list
 * entries with neither a value nor a companion, and `_name` companions that hold only nulls.
 * Returns false when `obj` is left empty.
 */
function prune(obj: Json): boolean {
  const names = new Set(Object.keys(obj).map((k) => (k.startsWith('_') ? k.slice(1) : k)));
  for (const name of names) {
    const companionKey = `_${name}`;
    const value = obj[name];
    const companion = obj[companionKey];
    if (Array.isArray(value) || (value === undefined && Array.isArray(companion))) {
      const values = Array.isArray(value) ? value : [];
      const companions = Array.isArray(companion) ? companion : [];
      const keptValues: unknown[] = [];
      const keptCompanions: unknown[] = [];
      for (let i = 0; i < Math.max(values.length, companions.length); i++) {
        const v = pruneItem(values[i]);
        const c = pruneItem(companions[i]);
        if (v === null && c === null) continue;
        keptValues.push(v);
        keptCompanions.push(c);
      }
      if (keptValues.length === 0) delete obj[name];
      else obj[name] = keptValues;
      if (keptCompanions.every((c) => c === null)) delete obj[companionKey];
      else obj[companionKey] = keptCompanions;
      continue;
    }
    if (value === null || (isObject(value) && !prune(value))) delete obj[name];
    if (companion === null || (isObject(companion) && !prune(companion))) delete obj[companionKey];
  }
  return Object.keys(obj).length > 0;
}

/** A list entry after pruning: null when it is missing, null or an empty object. */
function pruneItem(item: unknown): unknown {
  if (item === undefined || item === null) return null;
  if (isObject(item) && !prune(item)) return null;
  return item;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Medplum types a primitive with only an id or extensions as its companion object; the type tells. */
function isPrimitive(tv: TypedValue): boolean {
  return isPrimitiveType(tv.type) || typeof tv.value !== 'object' || tv.value === null;
}

function upperFirst(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
