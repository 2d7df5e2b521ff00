/**
 * Parses FHIR search parameters (query string or POST _search form) into a SearchQuery:
 * modifiers, prefixes, OR (commas) and AND (repeats), chains, _has, and the result parameters
 * (_sort, _count, _total, _summary, _elements, _include, _revinclude). Unknown parameters are
 * ignored under `Prefer: handling=lenient` (the default) and refused under `strict`; a known
 * parameter with a malformed value is always refused, so a typo never silently widens a search.
 */
import { definitions } from '../fhir/definitions.js';
import { errors } from '../fhir/outcomes.js';
import type { QueryParams } from '../fhir/types.js';
import {
  type CompositePart,
  type Cursor,
  DEFAULT_COUNT,
  type Filter,
  type IncludeSpec,
  MAX_COUNT,
  type Modifier,
  type Prefix,
  type SearchQuery,
  type SortKey,
  type Summary,
  type TokenValue,
  type Value,
} from './query.js';
import { type ParamDef, searchRegistry } from './registry.js';
import { type DateRange, dateRange, normalizeString, parseNumber } from './values.js';

/** Parameters that control the result rather than filter it. */
const RESULT_PARAMS = new Set([
  '_sort',
  '_count',
  '_total',
  '_summary',
  '_elements',
  '_include',
  '_revinclude',
  '_cursor',
  '_page',
  '_format',
  '_pretty',
  '_type',
]);

const PREFIXES = new Set<Prefix>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);
const MODIFIERS = new Set<string>(['exact', 'contains', 'missing', 'not', 'text', 'identifier', 'above', 'below']);

/** Which modifiers each parameter type accepts (`missing` is accepted by all). */
const ALLOWED_MODIFIERS: Record<string, ReadonlySet<string>> = {
  string: new Set(['exact', 'contains', 'missing']),
  token: new Set(['missing', 'not', 'text']),
  reference: new Set(['missing', 'identifier', 'type']),
  date: new Set(['missing']),
  number: new Set(['missing']),
  quantity: new Set(['missing']),
  uri: new Set(['missing', 'above', 'below']),
  composite: new Set(['missing']),
};

/** Splits at unescaped `sep`; the escape of `sep` itself is removed, other escapes are kept. */
export function splitEscaped(value: string, sep: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '\\' && i + 1 < value.length) {
      const n = value[i + 1] as string;
      current += n === sep ? n : c + n;
      i++;
    } else if (c === sep) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

/** Escapes a value's `\` `,` `|` `$` for a search parameter (its reverse is unescape). */
export function escapeSearchValue(value: string): string {
  return value.replace(/[\\,|$]/g, '\\$&');
}

/** Removes the remaining FHIR escapes (`\,` `\|` `\$` `\\`). */
function unescape(value: string): string {
  return value.replace(/\\([\\,|$])/g, '$1');
}

function prefixed(raw: string): { prefix: Prefix; rest: string } {
  const p = raw.slice(0, 2) as Prefix;
  if (PREFIXES.has(p) && raw.length > 2 && /[0-9-]/.test(raw[2] as string)) return { prefix: p, rest: raw.slice(2) };
  return { prefix: 'eq', rest: raw };
}

function bad(name: string, value: string, why: string): never {
  throw errors.invalidSearch(`Invalid value ${JSON.stringify(value.slice(0, 100))} for search parameter "${name}": ${why}`);
}

function parseToken(raw: string): TokenValue {
  const parts = splitEscaped(raw, '|');
  if (parts.length === 1) return { code: unescape(parts[0] as string) };
  const [system, code] = [unescape(parts[0] as string), unescape(parts.slice(1).join('|'))];
  return { system: system === '' ? null : system, ...(code !== '' ? { code } : {}) };
}

function parseDateValue(name: string, raw: string): { prefix: Prefix; range: DateRange } {
  const { prefix, rest } = prefixed(raw);
  // A '+' of a time zone arrives as a space when the client did not encode the query string.
  const range = dateRange(rest.replace(/ (\d{2}:\d{2})$/, '+$1'));
  if (!range) bad(name, raw, 'expected a date like 2024, 2024-03, 2024-03-05 or 2024-03-05T10:00:00Z, optionally with a prefix such as ge');
  return { prefix, range };
}

function parseNumberValue(name: string, raw: string): { prefix: Prefix; number: NonNullable<ReturnType<typeof parseNumber>> } {
  const { prefix, rest } = prefixed(raw);
  const number = parseNumber(rest);
  if (!number) bad(name, raw, 'expected a number, optionally with a prefix such as gt');
  return { prefix, number };
}

function parseQuantity(name: string, raw: string): Extract<Value, { type: 'quantity' }> {
  const parts = splitEscaped(raw, '|');
  const { prefix, number } = parseNumberValue(name, parts[0] as string);
  const system = parts[1] ? unescape(parts[1]) : undefined;
  const code = parts[2] !== undefined ? unescape(parts.slice(2).join('|')) : undefined;
  return { type: 'quantity', prefix, number, ...(system ? { system } : {}), ...(code ? { code } : {}) };
}

function parseReference(name: string, raw: string, typeModifier: string | undefined, baseUrl: string): Value {
  let value = unescape(raw);
  if (value === '') bad(name, raw, 'empty reference');
  if (value.startsWith(`${baseUrl}/`)) value = value.slice(baseUrl.length + 1);
  const local = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/.exec(value);
  if (local) {
    if (typeModifier && typeModifier !== local[1]) bad(name, raw, `the reference is to ${local[1]}, not ${typeModifier}`);
    if (!definitions().isResourceType(local[1] as string)) bad(name, raw, `${local[1]} is not a resource type`);
    // Type/id/_history/n finds references to that version only; Type/id finds references to any.
    return { type: 'reference', targetType: local[1] as string, id: local[2] as string, ...(local[3] ? { version: local[3] } : {}) };
  }
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(value)) {
    return { type: 'reference', id: value, ...(typeModifier ? { targetType: typeModifier } : {}) };
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(value)) {
    const bar = value.indexOf('|');
    return bar >= 0 ? { type: 'reference', url: value.slice(0, bar), version: value.slice(bar + 1) } : { type: 'reference', url: value };
  }
  return bad(name, raw, 'expected an id, Type/id, or an absolute URL');
}

function parseComposite(name: string, param: ParamDef, raw: string, baseUrl: string): Value {
  const components = param.components ?? [];
  const parts = splitEscaped(raw, '$');
  if (parts.length !== components.length) bad(name, raw, `expected ${components.length} parts separated by $`);
  /** A discrete component's part: a token, a reference or a uri. */
  const discrete = (type: string, part: string): CompositePart => {
    if (type === 'token') {
      const t = parseToken(part);
      if (t.code === undefined && !t.system) bad(name, raw, 'each token part needs a code or a system');
      return { ...(t.code !== undefined ? { code: t.code } : {}), ...(t.system !== undefined ? { system: t.system } : {}) };
    }
    if (type === 'reference') {
      const r = parseReference(name, part, undefined, baseUrl);
      if (r.type !== 'reference') return bad(name, raw, 'expected a reference');
      return r.targetType && r.id ? { code: r.id, system: r.targetType } : { code: r.id ?? r.url ?? '' };
    }
    return { code: unescape(part) };
  };
  const [first, second] = components.map((c) => c.param.type);
  const value: Value & { type: 'composite' } = { type: 'composite', first: discrete(first as string, parts[0] as string) };
  const part = parts[1] as string;
  if (second === 'token' || second === 'reference' || second === 'uri') value.second = discrete(second, part);
  else if (second === 'date') {
    const d = parseDateValue(name, part);
    value.last = { type: 'date', prefix: d.prefix, range: d.range };
  } else if (second === 'string') value.last = { type: 'string', text: normalizeString(unescape(part)) };
  else if (second === 'number') {
    const n = parseNumberValue(name, part);
    value.second = { code: '' };
    value.last = { type: 'number', prefix: n.prefix, number: n.number };
  } else if (second === 'quantity') {
    const q = parseQuantity(name, part);
    // Names the unit the way extract.ts indexed it (see unitVariants there).
    value.second = { code: q.system && q.code ? `${q.system}|${q.code}` : (q.code ?? '') };
    value.last = { type: 'number', prefix: q.prefix, number: q.number };
  }
  return value;
}

function parseValue(name: string, param: ParamDef, modifier: Modifier | undefined, typeModifier: string | undefined, raw: string, baseUrl: string): Value {
  if (modifier === 'missing') {
    if (raw !== 'true' && raw !== 'false') bad(name, raw, ':missing takes true or false');
    return { type: 'missing', missing: raw === 'true' };
  }
  if (raw === '') bad(name, raw, 'empty value');
  switch (param.type) {
    case 'string':
      return { type: 'string', text: modifier === 'exact' ? unescape(raw) : normalizeString(unescape(raw)) };
    case 'token':
      if (modifier === 'text') return { type: 'text', text: normalizeString(unescape(raw)) };
      return { type: 'token', token: parseToken(raw) };
    case 'date': {
      const d = parseDateValue(name, raw);
      return { type: 'date', prefix: d.prefix, range: d.range };
    }
    case 'number': {
      const n = parseNumberValue(name, raw);
      return { type: 'number', prefix: n.prefix, number: n.number };
    }
    case 'quantity':
      return parseQuantity(name, raw);
    case 'reference':
      if (modifier === 'identifier') return { type: 'token', token: parseToken(raw) };
      return parseReference(name, raw, typeModifier, baseUrl);
    case 'uri':
      return { type: 'uri', uri: unescape(raw) };
    case 'composite':
      return parseComposite(name, param, raw, baseUrl);
  }
}

interface ParseContext {
  strict: boolean;
  baseUrl: string;
  ignored: string[];
}

/**
 * One filter from `name` (which may carry a modifier, a chain or _has) and its raw value.
 * Returns undefined for an unknown parameter under lenient handling.
 */
function parseFilter(types: string[], name: string, raw: string, ctx: ParseContext): Filter | undefined {
  const registry = searchRegistry();
  if (name.startsWith('_has:')) return parseHas(types, name, raw, ctx);
  const dot = name.indexOf('.');
  const head = dot >= 0 ? name.slice(0, dot) : name;
  const [code, modifierRaw, ...extra] = head.split(':');
  if (extra.length || code === undefined) throw errors.invalidSearch(`Malformed search parameter name "${name}"`);

  if (code === '_id' || code === '_lastUpdated') {
    if (dot >= 0) throw errors.invalidSearch(`"${code}" cannot be chained`);
    const values = splitEscaped(raw, ',');
    if (code === '_id') {
      if (modifierRaw && modifierRaw !== 'not') throw errors.invalidSearch(`Modifier ":${modifierRaw}" is not supported on _id`);
      return { kind: 'id', ids: values.map(unescape), ...(modifierRaw === 'not' ? { not: true } : {}) };
    }
    if (modifierRaw) throw errors.invalidSearch(`Modifier ":${modifierRaw}" is not supported on _lastUpdated`);
    return { kind: 'lastUpdated', values: values.map((v) => parseDateValue(name, v)) };
  }

  if (types.length > 1) return parsePerType(types, name, raw, ctx);
  const param = registry.get(types[0] ?? 'Resource', code);
  if (!param) {
    if (ctx.strict) {
      throw errors.invalidSearch(
        `Unknown search parameter "${code}" for ${types[0] ?? 'a system-level search'} (Prefer: handling=strict)`,
      );
    }
    ctx.ignored.push(name);
    return undefined;
  }

  let modifier: Modifier | undefined;
  let typeModifier: string | undefined;
  if (modifierRaw !== undefined) {
    if (param.type === 'reference' && definitions().isResourceType(modifierRaw)) {
      if (param.targets.length && !param.targets.includes(modifierRaw)) {
        throw errors.invalidSearch(`"${code}" cannot refer to ${modifierRaw}; allowed: ${param.targets.join(', ')}`);
      }
      typeModifier = modifierRaw;
      modifier = 'type';
    } else if (MODIFIERS.has(modifierRaw) && ALLOWED_MODIFIERS[param.type]?.has(modifierRaw)) {
      modifier = modifierRaw as Modifier;
    } else {
      throw errors.invalidSearch(`Modifier ":${modifierRaw}" is not supported on ${param.type} parameter "${code}"`);
    }
  }

  if (dot >= 0) {
    if (param.type !== 'reference') throw errors.invalidSearch(`"${code}" is not a reference parameter, so it cannot be chained`);
    if (modifier && modifier !== 'type') throw errors.invalidSearch(`Modifier ":${modifier}" cannot be used in a chain`);
    const rest = name.slice(dot + 1);
    const restCode = rest.split(/[.:]/)[0] as string;
    const candidates = typeModifier ? [typeModifier] : param.targets.length ? [...param.targets] : definitions().resourceTypes.slice();
    const targetTypes = candidates.filter((t) => restCode === '_id' || restCode === '_lastUpdated' || registry.get(t, restCode));
    if (!targetTypes.length) {
      throw errors.invalidSearch(`Cannot chain "${name}": no target type of "${code}" has a parameter "${restCode}"`);
    }
    const inner = parseFilter(targetTypes, rest, raw, { ...ctx, strict: true });
    if (!inner) return undefined;
    return { kind: 'chain', param, targetTypes, inner };
  }

  const values = splitEscaped(raw, ',').map((v) => parseValue(name, param, modifier, typeModifier, v, ctx.baseUrl));
  if (modifier === 'missing' && values.length !== 1) throw errors.invalidSearch(`":missing" takes one value`);
  return { kind: 'param', param, ...(modifier ? { modifier } : {}), values };
}

/** A parameter on several types: one filter when they share the definition, else one per type. */
function parsePerType(types: string[], name: string, raw: string, ctx: ParseContext): Filter | undefined {
  const code = name.split(/[.:]/)[0] as string;
  const missing = types.filter((t) => !searchRegistry().get(t, code));
  if (missing.length) {
    if (ctx.strict) throw errors.invalidSearch(`Unknown search parameter "${code}" for ${missing.join(', ')} (Prefer: handling=strict)`);
    ctx.ignored.push(name);
    return undefined;
  }
  const byType: Array<{ type: string; filter: Filter }> = [];
  for (const type of types) {
    const filter = parseFilter([type], name, raw, { ...ctx, strict: true, ignored: [] });
    if (filter) byType.push({ type, filter });
  }
  const first = byType[0]?.filter;
  if (first && (first.kind === 'id' || first.kind === 'lastUpdated' || (first.kind === 'param' && first.param.base === 'Resource'))) {
    return first;
  }
  return { kind: 'perType', byType };
}

function parseHas(types: string[], name: string, raw: string, ctx: ParseContext): Filter {
  // _has:<SourceType>:<reference param on SourceType>:<param on SourceType, possibly another _has>
  const m = /^_has:([A-Za-z]+):([^:]+):(.+)$/.exec(name);
  if (!m) throw errors.invalidSearch(`Malformed _has parameter "${name}"; expected _has:Type:reference:parameter`);
  const [, sourceType, refCode, rest] = m as unknown as [string, string, string, string];
  if (!definitions().isResourceType(sourceType)) throw errors.invalidSearch(`_has: "${sourceType}" is not a resource type`);
  const param = searchRegistry().get(sourceType, refCode);
  if (!param || param.type !== 'reference') {
    throw errors.invalidSearch(`_has: "${refCode}" is not a reference parameter of ${sourceType}`);
  }
  if (types.length && param.targets.length && !types.some((t) => param.targets.includes(t))) {
    throw errors.invalidSearch(`_has: ${sourceType}.${refCode} cannot refer to ${types.join(', ')}`);
  }
  const inner = parseFilter([sourceType], rest, raw, { ...ctx, strict: true });
  if (!inner) throw errors.invalidSearch(`_has: unknown parameter in "${name}"`);
  return { kind: 'has', sourceType, param, inner };
}

function parseSort(types: string[], raw: string): SortKey[] {
  return raw.split(',').map((part) => {
    const descending = part.startsWith('-');
    const code = descending ? part.slice(1) : part;
    if (code === '_id') return { kind: 'column', column: 'id', descending };
    if (code === '_lastUpdated') return { kind: 'column', column: 'last_updated', descending };
    const param = types.length === 1 ? searchRegistry().get(types[0] as string, code) : searchRegistry().get('Resource', code);
    if (!param || param.type === 'composite') throw errors.invalidSearch(`Cannot sort by "${code}"`);
    return { kind: 'param', param, descending };
  });
}

function parseInclude(raw: string, iterate: boolean, rev: boolean, types: string[]): IncludeSpec[] {
  if (raw === '*') return [{ sourceType: '*', iterate }];
  const [sourceType, code, targetType, ...extra] = raw.split(':');
  if (!sourceType || !code || extra.length) {
    throw errors.invalidSearch(`Malformed ${rev ? '_revinclude' : '_include'} "${raw}"; expected Type:parameter[:targetType]`);
  }
  if (!definitions().isResourceType(sourceType)) throw errors.invalidSearch(`"${sourceType}" is not a resource type`);
  if (!rev && !iterate && types.length && !types.includes(sourceType)) {
    throw errors.invalidSearch(`_include "${raw}" does not start from the searched type (${types.join(', ')})`);
  }
  if (targetType && !definitions().isResourceType(targetType)) throw errors.invalidSearch(`"${targetType}" is not a resource type`);
  if (code === '*') return [{ sourceType, iterate, ...(targetType ? { targetType } : {}) }];
  const param = searchRegistry().get(sourceType, code);
  if (!param || param.type !== 'reference') throw errors.invalidSearch(`"${code}" is not a reference parameter of ${sourceType}`);
  return [{ sourceType, param, iterate, ...(targetType ? { targetType } : {}) }];
}

function decodeCursor(raw: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Cursor;
    // The cursor is the client's to alter: only the shape it is made with passes on to SQL.
    if (!Array.isArray(c.keys) || !c.keys.every((k) => k === null || typeof k === 'string' || Number.isFinite(k)) || !Number.isSafeInteger(c.rid) || (c.direction !== 'next' && c.direction !== 'prev')) {
      throw new Error();
    }
    return c;
  } catch {
    throw errors.invalidSearch('The paging cursor is not valid; start the search again');
  }
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

export interface ParseOptions {
  strict: boolean;
  baseUrl: string;
  compartment?: string;
}

/** Parses the parameters of a search on `type` (undefined: a system-level search). */
export function parseSearch(type: string | undefined, params: QueryParams, options: ParseOptions): SearchQuery {
  const types = type ? [type] : [];
  if (!type) {
    const typeParam = params.find(([k]) => k === '_type');
    if (typeParam) {
      for (const t of typeParam[1].split(',')) {
        if (!definitions().isResourceType(t)) throw errors.invalidSearch(`_type: "${t}" is not a resource type`);
        types.push(t);
      }
    }
  }
  const query: SearchQuery = {
    types,
    filters: [],
    sort: [],
    count: DEFAULT_COUNT,
    total: 'accurate',
    includes: [],
    revincludes: [],
    used: [],
    ignored: [],
    ...(options.compartment ? { compartment: options.compartment } : {}),
  };
  const ctx: ParseContext = { strict: options.strict, baseUrl: options.baseUrl, ignored: query.ignored };
  for (const [name, value] of params) {
    // No stored text holds a NUL, and PostgreSQL refuses one in a query parameter (it was a 500).
    if (name.includes('\0') || value.includes('\0')) throw errors.invalidSearch('A search parameter may not contain a NUL character (%00)');
    const [base, mod] = name.split(':');
    if (RESULT_PARAMS.has(base as string)) {
      applyResultParam(query, base as string, mod, value, types);
      if (base !== '_cursor' && base !== '_page' && base !== '_format' && base !== '_pretty') query.used.push([name, value]);
      continue;
    }
    const filter = parseFilter(types, name, value, ctx);
    if (filter) {
      query.filters.push(filter);
      query.used.push([name, value]);
    }
  }
  return query;
}

function applyResultParam(query: SearchQuery, name: string, mod: string | undefined, value: string, types: string[]): void {
  switch (name) {
    case '_count': {
      const n = Number(value);
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw errors.invalidSearch(`_count must be a non-negative integer, got "${value.slice(0, 20)}"`);
      query.count = Math.min(n, MAX_COUNT);
      return;
    }
    case '_sort':
      query.sort = parseSort(types, value);
      return;
    case '_total':
      if (value !== 'none' && value !== 'estimate' && value !== 'accurate') throw errors.invalidSearch('_total must be none, estimate or accurate');
      query.total = value;
      return;
    case '_summary':
      if (!['true', 'text', 'data', 'count', 'false'].includes(value)) throw errors.invalidSearch('_summary must be true, text, data, count or false');
      query.summary = value as Summary;
      return;
    case '_elements':
      query.elements = value.split(',').map((e) => e.trim()).filter(Boolean);
      return;
    case '_include':
    case '_revinclude': {
      if (mod !== undefined && mod !== 'iterate' && mod !== 'recurse') throw errors.invalidSearch(`Unknown modifier ${name}:${mod}`);
      const specs = parseInclude(value, mod !== undefined, name === '_revinclude', types);
      (name === '_include' ? query.includes : query.revincludes).push(...specs);
      return;
    }
    case '_cursor':
      query.cursor = decodeCursor(value);
      return;
    case '_format':
      return;
    default:
      return;
  }
}
