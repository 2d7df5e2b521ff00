/**
 * Index rows for a resource: every search parameter of its type is evaluated (a plain path walked
 * directly, see paths.ts; any other expression by FHIRPath, via @medplum/core) and its values written in the normalised form the idx_* tables hold. Runs in the
 * write pipeline; the rows are stored in the same transaction as the version they describe.
 */
import { getSearchParameterDetails, toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource, SearchParameter } from '@medplum/fhirtypes';
import { definitions } from '../fhir/definitions.js';
import { parseLocalReference } from '../fhir/references.js';
import { compilePlainPath, type PlainPath } from './paths.js';
import { type CompositeComponent, type ParamDef, searchRegistry, spHash } from './registry.js';
import { dateRange, normalizeString, parseNumber, type DateRange } from './values.js';

export type TokenRow = [sp: number, system: string | null, code: string | null, display: string | null];
export type StringRow = [sp: number, norm: string, exact: string];
export type DateRow = [sp: number, lo: string, hi: string];
export type NumberRow = [sp: number, lo: string, hi: string];
export type QuantityRow = [sp: number, system: string | null, code: string | null, unit: string | null, lo: string, hi: string];
export type ReferenceRow = [sp: number, targetType: string | null, targetId: string | null, url: string | null, version: string | null];
export type UriRow = [sp: number, value: string];
export type CompositeRow = [
  sp: number,
  c1: string,
  s1: string | null,
  c2: string,
  s2: string | null,
  lo: string | null,
  hi: string | null,
  dlo: string | null,
  dhi: string | null,
  str: string | null,
];

export interface IndexRows {
  token: TokenRow[];
  string: StringRow[];
  date: DateRow[];
  number: NumberRow[];
  quantity: QuantityRow[];
  reference: ReferenceRow[];
  uri: UriRow[];
  composite: CompositeRow[];
}

export interface Indexed {
  rows: IndexRows;
  /** Compartments the resource belongs to, e.g. "Patient/123" (from the Patient CompartmentDefinition). */
  compartments: string[];
}

/** Longest exact string kept (B-tree entries are limited to about 2.7 kB). */
const MAX_EXACT = 512;

/** Key of the token rows behind `param:identifier` (Reference.identifier) for a reference param. */
export function identifierSp(param: ParamDef): number {
  return spHash(`${param.base}.${param.code}:identifier`);
}

function emptyRows(): IndexRows {
  return { token: [], string: [], date: [], number: [], quantity: [], reference: [], uri: [], composite: [] };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The code system implied by a required binding, for token params on plain `code` elements. */
const implicitSystems = new Map<ParamDef, string | null>();
function implicitSystem(param: ParamDef, resourceType: string): string | null {
  let system = implicitSystems.get(param);
  if (system !== undefined) return system;
  system = null;
  try {
    const details = getSearchParameterDetails(resourceType, {
      resourceType: 'SearchParameter',
      code: param.code,
      base: [resourceType],
      type: 'token',
      expression: param.expression,
    } as SearchParameter);
    const valueSetUrl = details.elementDefinitions?.[0]?.binding?.valueSet?.split('|')[0];
    const includes = valueSetUrl ? definitions().valueSets.get(valueSetUrl)?.compose?.include : undefined;
    const systems = new Set((includes ?? []).map((i) => i.system).filter((s): s is string => !!s));
    if (systems.size === 1) system = [...systems][0] as string;
  } catch {
    system = null;
  }
  implicitSystems.set(param, system);
  return system;
}

export function tokenValues(tv: TypedValue, param: ParamDef, resourceType: string): TokenRow[] {
  const v = tv.value as Record<string, unknown>;
  const sp = param.sp;
  switch (tv.type) {
    case 'Coding':
      return str(v.code) || str(v.display) ? [[sp, str(v.system) ?? null, str(v.code) ?? null, displayOf(v.display)]] : [];
    case 'CodeableConcept': {
      const rows: TokenRow[] = [];
      // An array by the validator; text stored before it refused `"coding": {}` may hold one.
      for (const c of Array.isArray(v.coding) ? (v.coding as Record<string, unknown>[]) : []) {
        if (str(c.code) || str(c.display)) rows.push([sp, str(c.system) ?? null, str(c.code) ?? null, displayOf(c.display)]);
      }
      if (str(v.text)) rows.push([sp, null, null, displayOf(v.text)]);
      return rows;
    }
    case 'Identifier': {
      const typeText = (v.type as Record<string, unknown> | undefined)?.text;
      return str(v.value) ? [[sp, str(v.system) ?? null, v.value as string, displayOf(typeText)]] : [];
    }
    case 'ContactPoint':
      return str(v.value) ? [[sp, str(v.system) ?? null, v.value as string, null]] : [];
    case 'Reference': {
      const id = v.identifier as Record<string, unknown> | undefined;
      return id && str(id.value) ? [[sp, str(id.system) ?? null, id.value as string, null]] : [];
    }
    case 'boolean':
      return typeof tv.value === 'boolean' ? [[sp, null, String(tv.value), null]] : [];
    case 'code':
      return typeof tv.value === 'string' ? [[sp, implicitSystem(param, resourceType), tv.value, null]] : [];
    default:
      return typeof tv.value === 'string' || typeof tv.value === 'number' ? [[sp, null, String(tv.value), null]] : [];
  }
}

function displayOf(text: unknown): string | null {
  return typeof text === 'string' && text ? normalizeString(text) : null;
}

function stringValues(tv: TypedValue): string[] {
  const v = tv.value;
  if (typeof v === 'string') return [v];
  if (!v || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  const parts = (...keys: string[]) =>
    keys.flatMap((k) => (Array.isArray(o[k]) ? (o[k] as unknown[]) : [o[k]])).filter((x): x is string => typeof x === 'string');
  switch (tv.type) {
    case 'HumanName':
      return parts('text', 'family', 'given', 'prefix', 'suffix');
    case 'Address':
      return parts('text', 'line', 'city', 'district', 'state', 'postalCode', 'country');
    default:
      return parts('text', 'display', 'value');
  }
}

function dateValues(tv: TypedValue): DateRange[] {
  const v = tv.value;
  if (typeof v === 'string') {
    const r = dateRange(v);
    return r ? [r] : [];
  }
  if (!v || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  if (tv.type === 'Period') {
    const start = typeof o.start === 'string' ? dateRange(o.start) : undefined;
    const end = typeof o.end === 'string' ? dateRange(o.end) : undefined;
    if (!start && !end) return [];
    return [{ lo: start?.lo ?? '-infinity', hi: end?.hi ?? 'infinity' }];
  }
  if (tv.type === 'Timing') {
    const ranges = ((o.event as unknown[]) ?? []).flatMap((e) => (typeof e === 'string' ? dateValues({ type: 'dateTime', value: e }) : []));
    const bounds = (o.repeat as Record<string, unknown> | undefined)?.boundsPeriod;
    if (bounds) ranges.push(...dateValues({ type: 'Period', value: bounds }));
    return ranges;
  }
  return [];
}

interface QuantityValue {
  system: string | null;
  code: string | null;
  unit: string | null;
  lo: string;
  hi: string;
}

function quantityValues(tv: TypedValue): QuantityValue[] {
  const v = tv.value;
  if (typeof v === 'number') {
    const n = parseNumber(String(v));
    return n ? [{ system: null, code: null, unit: null, lo: n.value, hi: n.value }] : [];
  }
  if (!v || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  if (tv.type === 'Range') {
    const low = o.low as Record<string, unknown> | undefined;
    const high = o.high as Record<string, unknown> | undefined;
    const lo = typeof low?.value === 'number' ? parseNumber(String(low.value))?.value : undefined;
    const hi = typeof high?.value === 'number' ? parseNumber(String(high.value))?.value : undefined;
    if (lo === undefined && hi === undefined) return [];
    const q = low ?? high ?? {};
    return [{ system: str(q.system) ?? null, code: str(q.code) ?? null, unit: str(q.unit) ?? null, lo: lo ?? '-1e100', hi: hi ?? '1e100' }];
  }
  if (typeof o.value !== 'number') return [];
  const n = parseNumber(String(o.value));
  if (!n) return [];
  return [{ system: str(o.system) ?? null, code: str(o.code) ?? str(o.currency) ?? null, unit: str(o.unit) ?? null, lo: n.value, hi: n.value }];
}

function referenceValues(tv: TypedValue, param: ParamDef, baseUrl: string): ReferenceRow[] {
  const sp = param.sp;
  const v = tv.value;
  const fromString = (ref: string): ReferenceRow | undefined => {
    if (ref.startsWith('#')) return undefined;
    const local = parseLocalReference(ref, baseUrl);
    if (local) return [sp, local.type, local.id, null, local.version ?? null];
    const bar = ref.indexOf('|');
    return bar >= 0 ? [sp, null, null, ref.slice(0, bar), ref.slice(bar + 1)] : [sp, null, null, ref, null];
  };
  if (typeof v === 'string') {
    const row = fromString(v);
    return row ? [row] : [];
  }
  if (v && typeof v === 'object' && typeof (v as { reference?: unknown }).reference === 'string') {
    const row = fromString((v as { reference: string }).reference);
    return row ? [row] : [];
  }
  return [];
}

/**
 * A discrete composite component's values (token, reference, uri) as [code, system]: a token's
 * code and system, a local reference's id and type (else its URL), a uri.
 */
function compositeParts(tv: TypedValue, param: ParamDef, resourceType: string, baseUrl: string): Array<[code: string, system: string | null]> {
  switch (param.type) {
    case 'token':
      return tokenValues(tv, param, resourceType).flatMap(([, system, code]): Array<[string, string | null]> => (code ? [[code, system]] : []));
    case 'reference':
      return referenceValues(tv, param, baseUrl).flatMap(([, type, id, url]): Array<[string, string | null]> => (type && id ? [[id, type]] : url ? [[url, null]] : []));
    case 'uri':
      return typeof tv.value === 'string' ? [[tv.value, null]] : [];
    default:
      return [];
  }
}

/**
 * FHIRPath gives a primitive that has extensions (`"_birthDate": {...}`) as a String, Number or
 * Boolean object carrying them; the index wants its value.
 */
function plainValues(values: TypedValue[]): TypedValue[] {
  return values.map((tv) => (tv.value instanceof String || tv.value instanceof Number || tv.value instanceof Boolean ? { type: tv.type, value: tv.value.valueOf() } : tv));
}

/** Each expression's plain-path walker per resource type (null: it needs FHIRPath). */
const plainPaths = new Map<ParamDef | CompositeComponent, Map<string, PlainPath | null>>();

/**
 * The values `of` (a parameter, or a composite's component) selects from `input` (the resource, or
 * one of the composite's values): by its plain path where it has one, else by FHIRPath.
 */
function evaluate(of: ParamDef | CompositeComponent, input: TypedValue, root: TypedValue, resourceType: string): TypedValue[] {
  let byType = plainPaths.get(of);
  if (!byType) plainPaths.set(of, (byType = new Map()));
  let walker = byType.get(resourceType);
  if (walker === undefined) byType.set(resourceType, (walker = compilePlainPath(of.expression, resourceType) ?? null));
  const walked = walker?.(input);
  if (walked) return walked;
  try {
    return plainValues(of.atom.eval({ variables: { '%resource': root, '%rootResource': root } }, [input]));
  } catch {
    // An expression that cannot be evaluated on this instance contributes no index values.
    return [];
  }
}

/**
 * One row per pair of values the two components take on the same element (the registry admits
 * only that shape): the first's code and system, then the second's — or, for a range, how its
 * unit may be named (a quantity: each of unitVariants; otherwise '') and its range.
 */
function compositeRows(param: ParamDef, root: TypedValue, resourceType: string, baseUrl: string): CompositeRow[] {
  const [first, second] = param.components ?? [];
  if (!first || !second) return [];
  const rows: CompositeRow[] = [];
  const sp = param.sp;
  for (const element of evaluate(param, root, root, resourceType)) {
    const heads = evaluate(first, element, root, resourceType).flatMap((v) => compositeParts(v, first.param, resourceType, baseUrl));
    if (!heads.length) continue;
    const tails = evaluate(second, element, root, resourceType).flatMap((v) => compositeTail(v, second.param, resourceType, baseUrl));
    for (const [c1, s1] of heads) for (const tail of tails) rows.push([sp, c1, s1, ...tail]);
  }
  return rows;
}

/** A composite's second component's columns for one of its values: c2, s2, lo, hi, dlo, dhi, str. */
type CompositeTail = CompositeRow extends [number, string, string | null, ...infer Rest] ? Rest : never;

function compositeTail(v: TypedValue, param: ParamDef, resourceType: string, baseUrl: string): CompositeTail[] {
  switch (param.type) {
    case 'date':
      return dateValues(v).map((r) => ['', null, null, null, r.lo, r.hi, null]);
    case 'string':
      return stringValues(v).map((text) => ['', null, null, null, null, null, normalizeString(text)]);
    case 'quantity':
    case 'number':
      return quantityValues(v).flatMap((q) => (param.type === 'number' ? [''] : unitVariants(q)).map((unit): CompositeTail => [unit, null, q.lo, q.hi, null, null, null]));
    default:
      return compositeParts(v, param, resourceType, baseUrl).map(([c2, s2]) => [c2, s2, null, null, null, null, null]);
  }
}

/** How a quantity's unit may be named in a search: not at all, by code or unit, or system|code. */
export function unitVariants(q: { system: string | null; code: string | null; unit: string | null }): string[] {
  const variants = new Set<string>(['']);
  if (q.code) variants.add(q.code);
  if (q.unit) variants.add(q.unit);
  if (q.system && q.code) variants.add(`${q.system}|${q.code}`);
  return [...variants];
}

/** Computes every index row and the compartments of `resource`. */
export function extractIndex(resource: Resource, baseUrl: string): Indexed {
  const rows = emptyRows();
  const type = resource.resourceType;
  const root = toTypedValue(resource);
  const registry = searchRegistry();
  for (const param of registry.indexed(type)) {
    if (param.type === 'composite') {
      rows.composite.push(...compositeRows(param, root, type, baseUrl));
      continue;
    }
    for (const tv of evaluate(param, root, root, type)) {
      switch (param.type) {
        case 'token':
          rows.token.push(...tokenValues(tv, param, type));
          break;
        case 'string':
          for (const s of stringValues(tv)) rows.string.push([param.sp, normalizeString(s), s.slice(0, MAX_EXACT)]);
          break;
        case 'date':
          for (const r of dateValues(tv)) rows.date.push([param.sp, r.lo, r.hi]);
          break;
        case 'number':
        case 'quantity':
          for (const q of quantityValues(tv)) {
            if (param.type === 'number') rows.number.push([param.sp, q.lo, q.hi]);
            else rows.quantity.push([param.sp, q.system, q.code, q.unit, q.lo, q.hi]);
          }
          break;
        case 'reference': {
          rows.reference.push(...referenceValues(tv, param, baseUrl));
          if (tv.type === 'Reference') rows.token.push(...tokenValues(tv, { ...param, sp: identifierSp(param) }, type));
          break;
        }
        case 'uri':
          if (typeof tv.value === 'string') rows.uri.push([param.sp, tv.value]);
          break;
      }
    }
  }
  dedupe(rows);
  return { rows, compartments: compartmentsOf(resource, rows.reference) };
}

function dedupe(rows: IndexRows): void {
  for (const key of Object.keys(rows) as (keyof IndexRows)[]) {
    const seen = new Set<string>();
    (rows[key] as unknown[][]) = (rows[key] as unknown[][]).filter((row) => {
      const k = rowKey(row);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }
}

/** An unambiguous key of a row of numbers, strings and nulls: each string prefixed by its length. */
function rowKey(row: unknown[]): string {
  let key = '';
  for (const v of row) key += v === null ? '-' : typeof v === 'string' ? `${v.length}:${v}` : `#${String(v)};`;
  return key;
}

let compartmentParams: Map<string, Set<number>> | undefined;

/** Patient compartment membership, from the reference params the CompartmentDefinition names. */
function compartmentsOf(resource: Resource, references: ReferenceRow[]): string[] {
  if (!compartmentParams) {
    compartmentParams = new Map();
    const registry = searchRegistry();
    for (const entry of definitions().patientCompartment.resource ?? []) {
      const sps = new Set<number>();
      for (const code of entry.param ?? []) {
        const p = registry.get(entry.code as string, code);
        if (p) sps.add(p.sp);
      }
      compartmentParams.set(entry.code as string, sps);
    }
  }
  const result = new Set<string>();
  if (resource.resourceType === 'Patient' && resource.id) result.add(`Patient/${resource.id}`);
  const sps = compartmentParams.get(resource.resourceType);
  if (sps?.size) {
    for (const [sp, targetType, targetId] of references) {
      if (targetType === 'Patient' && targetId && sps.has(sp)) result.add(`Patient/${targetId}`);
    }
  }
  return [...result];
}
