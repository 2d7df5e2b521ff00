/**
 * Search statements by shape. Two searches that differ only in their values (another patient's
 * identifier, another date) have the same SQL text; only the bound parameters differ. Building a
 * plan Bundle's statement with Kysely and compiling it was about a tenth of the request's CPU, so
 * it is built once per shape and caller's rule, and later searches of that shape only bind values.
 *
 * `splitQuery` takes a query apart into its shape — the query with each value replaced by a Slot
 * (store/sql.ts) — and the values. sql.ts builds the statement from the shape exactly as from a
 * query: a Slot goes into the statement as a bound parameter, and a parameter computed from values
 * (a prefix's upper bound, a LIKE pattern, `count + 1`) is made with `derive`, which defers the
 * computation to binding time. `bind` puts the request's values into the compiled parameters.
 *
 * What the builder branches on stays in the shape: types, parameters, modifiers, prefixes, sort
 * keys, includes, whether a value is absent, null or empty (the builder tests `value.system`,
 * `v.code !== undefined`). Only non-empty strings, non-zero numbers and the id list become slots.
 */
import { BoundedMap, numbering } from '../bounded-map.js';
import type { ReadRule } from '../store/resources.js';
import { bind, type CompiledQuery, kept, Slot } from '../store/sql.js';
import type { CompositePart, Cursor, Filter, SearchQuery, TokenValue, Value } from './query.js';
import type { DateRange, NumberValue } from './values.js';

interface Split {
  key: string;
  shape: SearchQuery;
  values: unknown[];
}

/** Takes `query` apart into the shape pageQuery builds from, its values, and the shape's key. */
export function splitQuery(query: SearchQuery): Split {
  const values: unknown[] = [];
  // Typed as the value: the builder passes a Slot on to Kysely like the value it stands for.
  const slot = <T extends string | number | string[] | null | undefined>(value: T): T => {
    if (value === undefined || value === null || value === '' || value === 0) return value;
    values.push(value);
    return new Slot(values.length - 1) as unknown as T;
  };
  const range = (r: DateRange): DateRange => ({ lo: slot(r.lo), hi: slot(r.hi) });
  const number = (n: NumberValue): NumberValue => ({ value: slot(n.value), lo: slot(n.lo), hi: slot(n.hi) });
  const token = (t: TokenValue): TokenValue => ({ system: slot(t.system), code: slot(t.code) });
  const part = (p: CompositePart): CompositePart => ({ system: slot(p.system), code: slot(p.code) });
  const value = (v: Value): Value => {
    switch (v.type) {
      case 'token':
        return { type: v.type, token: token(v.token) };
      case 'text':
      case 'string':
        return { type: v.type, text: slot(v.text) };
      case 'date':
        return { type: v.type, prefix: v.prefix, range: range(v.range) };
      case 'number':
        return { type: v.type, prefix: v.prefix, number: number(v.number) };
      case 'quantity':
        return { type: v.type, prefix: v.prefix, number: number(v.number), system: slot(v.system), code: slot(v.code) };
      case 'reference':
        return { type: v.type, targetType: slot(v.targetType), id: slot(v.id), url: slot(v.url), version: slot(v.version) };
      case 'uri':
        return { type: v.type, uri: slot(v.uri) };
      case 'composite':
        return { type: v.type, first: part(v.first), ...(v.second ? { second: part(v.second) } : {}), ...(v.last ? { last: value(v.last) } : {}) };
      case 'missing':
        return v;
    }
  };
  const filter = (f: Filter): Filter => {
    switch (f.kind) {
      case 'id':
        return { kind: f.kind, ids: slot(f.ids), ...(f.not ? { not: true } : {}) };
      case 'lastUpdated':
        return { kind: f.kind, values: f.values.map((v) => ({ prefix: v.prefix, range: range(v.range) })) };
      case 'perType':
        return { kind: f.kind, byType: f.byType.map((t) => ({ type: t.type, filter: filter(t.filter) })) };
      case 'chain':
        return { kind: f.kind, param: f.param, targetTypes: f.targetTypes, inner: filter(f.inner) };
      case 'has':
        return { kind: f.kind, sourceType: f.sourceType, param: f.param, inner: filter(f.inner) };
      case 'param':
        return { kind: f.kind, param: f.param, ...(f.modifier ? { modifier: f.modifier } : {}), values: f.values.map(value) };
    }
  };
  const cursor = (c: Cursor): Cursor => ({ keys: c.keys.map((k) => slot(k)), rid: slot(c.rid), direction: c.direction });
  const shape: SearchQuery = {
    types: query.types,
    filters: query.filters.map(filter),
    sort: query.sort,
    count: slot(query.count),
    ...(query.cursor ? { cursor: cursor(query.cursor) } : {}),
    ...(query.compartment !== undefined ? { compartment: slot(query.compartment) } : {}),
    includes: query.includes,
    // Not part of the page's statement.
    revincludes: [],
    total: 'none',
    used: [],
    ignored: [],
  };
  // A parameter is known by its index key (unique, registry.ts); a Slot is "$".
  const key = JSON.stringify(shape, (name, v: unknown) => (name === 'param' ? (v as { sp: number }).sp : v));
  return { key, shape, values };
}

/** Statements kept: one per shape and caller's rule (the rule's own values are in its SQL). */
const MAX_STATEMENTS = 2000;
const statements = new BoundedMap<string, CompiledQuery>(MAX_STATEMENTS);
const ruleNumber = numbering<ReadRule>();

/**
 * The statement `build` makes for `query`, built from its shape once per shape and rule. `build`
 * must depend on nothing but the query it is given and `visible`.
 */
export function shaped(query: SearchQuery, visible: ReadRule | undefined, build: (shape: SearchQuery) => CompiledQuery): CompiledQuery {
  const { key, shape, values } = splitQuery(query);
  const cacheKey = `${visible ? ruleNumber(visible) : 0} ${key}`;
  let statement = statements.get(cacheKey);
  if (!statement) {
    statement = kept(build(shape));
    statements.set(cacheKey, statement);
  }
  return { sql: statement.sql, parameters: bind(statement.parameters, values) };
}
