/**
 * Turns a SearchQuery into SQL, with Kysely's `sql` template so every value is a bound parameter.
 * Each filter is an EXISTS over one idx_* table keyed by (sp, value), so a search is answered from
 * B-tree (or trigram) indexes, never by scanning resources. Paging is by keyset on the sort keys
 * and rid: a page boundary does not move when rows are added or removed before it.
 */
import { sql } from 'kysely';
import { errors } from '../fhir/outcomes.js';
import { inCompartments } from '../store/compartments.js';
import { column, type CompiledQuery, compile, derive, type Fragment } from '../store/sql.js';
import { identifierSp } from './extract.js';
import type { CompositePart, Cursor, Filter, ParamFilter, Prefix, SearchQuery, SortKey, TokenValue, Value } from './query.js';
import { type ReadRule, servedColumns } from '../store/resources.js';
import type { StoredText } from '../store/db.js';
import { type ParamDef, rowKeys } from './registry.js';
import { shaped } from './shapes.js';
import { escapeLike, type DateRange, type NumberValue } from './values.js';

export type { CompiledQuery };

const TRUE = sql`TRUE`;
const FALSE = sql`FALSE`;

function and(parts: Fragment[]): Fragment {
  if (!parts.length) return TRUE;
  return parts.length === 1 ? (parts[0] as Fragment) : sql`(${sql.join(parts, sql` AND `)})`;
}

function or(parts: Fragment[]): Fragment {
  if (!parts.length) return FALSE;
  return parts.length === 1 ? (parts[0] as Fragment) : sql`(${sql.join(parts, sql` OR `)})`;
}

/** The smallest string greater than every string starting with `prefix` (C collation order). */
function prefixUpperBound(prefix: string): string {
  return `${prefix}\u{10FFFF}`;
}

/** `column` starts with `prefix`, as a range so a B-tree serves it even in a generic plan. */
function startsWith(column: Fragment, prefix: string): Fragment {
  return sql`(${column} >= ${prefix} AND ${column} < ${derive(prefixUpperBound, prefix)})`;
}

function tokenCondition(x: string, v: TokenValue): Fragment {
  const parts: Fragment[] = [];
  if (v.code !== undefined) parts.push(sql`${column(x, 'code')} = ${v.code}`);
  if (v.system === null) parts.push(sql`${column(x, 'system')} IS NULL`);
  else if (v.system !== undefined) parts.push(sql`${column(x, 'system')} = ${v.system}`);
  return and(parts);
}

// What `derive` is given is defined here, not inline: a kept statement keeps these functions,
// and an inline one would keep its whole building scope (the caller's rule among it) alive.

/** Approximately (`ap`): within 10 % of the distance between the value and now, at least a day. */
const approximateGap = (lo: string): number => Math.max(Math.abs(Date.now() - Date.parse(lo)) * 0.1, 86_400_000);
const approximatelyFrom = (lo: string): string => new Date(Date.parse(lo) - approximateGap(lo)).toISOString();
const approximatelyTo = (lo: string, hi: string): string => new Date(Date.parse(hi) + approximateGap(lo)).toISOString();
const plusOne = (n: number): number => n + 1;

/** Range comparison for dates: stored [lo, hi) against the search value's range. */
function dateCondition(lo: Fragment, hi: Fragment, prefix: Prefix, s: DateRange): Fragment {
  const sLo = sql`${s.lo}::timestamptz`;
  const sHi = sql`${s.hi}::timestamptz`;
  switch (prefix) {
    case 'eq':
      return sql`(${lo} >= ${sLo} AND ${hi} <= ${sHi})`;
    case 'ne':
      return sql`NOT (${lo} >= ${sLo} AND ${hi} <= ${sHi})`;
    case 'gt':
      return sql`${hi} > ${sHi}`;
    case 'ge':
      return sql`${hi} > ${sLo}`;
    case 'lt':
      return sql`${lo} < ${sLo}`;
    case 'le':
      return sql`${lo} < ${sHi}`;
    case 'sa':
      return sql`${lo} >= ${sHi}`;
    case 'eb':
      return sql`${hi} <= ${sLo}`;
    case 'ap':
      return sql`(${lo} < ${derive(approximatelyTo, s.lo, s.hi)}::timestamptz AND ${hi} > ${derive(approximatelyFrom, s.lo)}::timestamptz)`;
  }
}

/** Comparison for numbers and quantities: stored values are points or ranges [lo, hi]. */
function numberCondition(lo: Fragment, hi: Fragment, prefix: Prefix, n: NumberValue): Fragment {
  const v = sql`${n.value}::numeric`;
  switch (prefix) {
    case 'eq':
      return sql`(${lo} >= ${n.lo}::numeric AND ${hi} < ${n.hi}::numeric)`;
    case 'ne':
      return sql`NOT (${lo} >= ${n.lo}::numeric AND ${hi} < ${n.hi}::numeric)`;
    case 'gt':
      return sql`${hi} > ${v}`;
    case 'ge':
      return sql`${hi} >= ${v}`;
    case 'lt':
      return sql`${lo} < ${v}`;
    case 'le':
      return sql`${lo} <= ${v}`;
    case 'sa':
      return sql`${lo} > ${v}`;
    case 'eb':
      return sql`${hi} < ${v}`;
    case 'ap':
      return sql`(${lo} <= ${v} + abs(${v}) * 0.1 AND ${hi} >= ${v} - abs(${v}) * 0.1)`;
  }
}

const TABLE: Record<ParamDef['type'], string> = {
  token: 'idx_token',
  string: 'idx_string',
  date: 'idx_date',
  number: 'idx_number',
  quantity: 'idx_quantity',
  reference: 'idx_reference',
  uri: 'idx_uri',
  composite: 'idx_composite',
};

/** The condition one value puts on an index row aliased `x`. */
function valueCondition(f: ParamFilter, value: Value, x: string): Fragment {
  switch (value.type) {
    case 'token':
      return tokenCondition(x, value.token);
    case 'text':
      return startsWith(column(x, 'display'), value.text);
    case 'string':
      if (f.modifier === 'exact') return sql`${column(x, 'exact')} = ${value.text}`;
      if (f.modifier === 'contains') return sql`${column(x, 'norm')} LIKE ${derive(containsPattern, value.text)}`;
      return startsWith(column(x, 'norm'), value.text);
    case 'date':
      return dateCondition(column(x, 'lo'), column(x, 'hi'), value.prefix, value.range);
    case 'number':
      return numberCondition(column(x, 'lo'), column(x, 'hi'), value.prefix, value.number);
    case 'quantity': {
      const parts = [numberCondition(column(x, 'lo'), column(x, 'hi'), value.prefix, value.number)];
      if (value.system) parts.push(sql`${column(x, 'system')} = ${value.system}`);
      if (value.code) {
        parts.push(value.system ? sql`${column(x, 'code')} = ${value.code}` : sql`(${column(x, 'code')} = ${value.code} OR ${column(x, 'unit')} = ${value.code})`);
      }
      return and(parts);
    }
    case 'reference': {
      if (value.url !== undefined) {
        const parts = [sql`${column(x, 'url')} = ${value.url}`];
        if (value.version !== undefined) parts.push(sql`${column(x, 'version')} = ${value.version}`);
        return and(parts);
      }
      const parts = [sql`${column(x, 'target_id')} = ${value.id}`];
      if (value.targetType) parts.push(sql`${column(x, 'target_type')} = ${value.targetType}`);
      if (value.version !== undefined) parts.push(sql`${column(x, 'version')} = ${value.version}`);
      return and(parts);
    }
    case 'uri':
      if (f.modifier === 'below') return startsWith(column(x, 'value'), value.uri);
      if (f.modifier === 'above') return sql`${column(x, 'value')} = ANY(${derive(uriAncestors, value.uri)}::text[])`;
      return sql`${column(x, 'value')} = ${value.uri}`;
    case 'composite': {
      const parts = [...compositePart(x, 'c1', 's1', value.first), ...(value.second ? compositePart(x, 'c2', 's2', value.second) : [])];
      const last = value.last;
      if (last?.type === 'date') parts.push(dateCondition(column(x, 'dlo'), column(x, 'dhi'), last.prefix, last.range));
      else if (last?.type === 'number') parts.push(numberCondition(column(x, 'lo'), column(x, 'hi'), last.prefix, last.number));
      else if (last?.type === 'string') parts.push(startsWith(column(x, 'str'), last.text));
      return and(parts);
    }
    case 'missing':
      return TRUE;
  }
}

/** The conditions on a discrete composite component's columns: its code, and its system if named. */
function compositePart(x: string, code: string, system: string, part: CompositePart): Fragment[] {
  return [
    ...(part.code !== undefined ? [sql`${column(x, code)} = ${part.code}`] : []),
    ...(part.system === null ? [sql`${column(x, system)} IS NULL`] : part.system !== undefined ? [sql`${column(x, system)} = ${part.system}`] : []),
  ];
}

const containsPattern = (text: string): string => `%${escapeLike(text)}%`;

/** "http://a/b/c" → ["http://a/b/c", "http://a/b", "http://a"]: the URIs `uri` is below. */
function uriAncestors(uri: string): string[] {
  const result = [uri];
  let current = uri;
  while (true) {
    const slash = current.lastIndexOf('/');
    if (slash <= current.indexOf('//') + 1 || slash < 0) break;
    current = current.slice(0, slash);
    result.push(current);
  }
  return result;
}

class FilterCompiler {
  private n = 0;

  constructor(private readonly visible: ReadRule | undefined) {}

  /** The access rule on a joined resource row: chains and _has may not look into rows the caller cannot see. */
  private visibleRow(alias: string, types: readonly string[]): Fragment {
    return this.visible?.filter(alias, types) ?? TRUE;
  }

  private alias(prefix: string): string {
    return `${prefix}${++this.n}`;
  }

  /**
   * The SQL condition `f` puts on the resource row aliased `r`. `perRow`: checked on each row the
   * rest of the statement finds, never used to find rows — an EXISTS with OFFSET 0 is not turned
   * into a join (PostgreSQL keeps it as a fence), so the planner cannot start from it (whereClause).
   */
  filter(f: Filter, r: string, perRow = false): Fragment {
    const fence = perRow ? sql` OFFSET 0` : sql``;
    switch (f.kind) {
      case 'id':
        return f.not ? sql`NOT (${column(r, 'id')} = ANY(${f.ids}::text[]))` : sql`${column(r, 'id')} = ANY(${f.ids}::text[])`;
      case 'lastUpdated':
        return and(
          f.values.map((v) => {
            // last_updated is an instant: the range [t, t + 1 ms).
            const lu = column(r, 'last_updated');
            return dateCondition(lu, sql`(${lu} + interval '1 millisecond')`, v.prefix, v.range);
          }),
        );
      case 'perType':
        return or(f.byType.map(({ type, filter }) => sql`(${column(r, 'type')} = ${type} AND ${this.filter(filter, r, perRow)})`));
      case 'chain': {
        const x = this.alias('x');
        const t = this.alias('r');
        return sql`EXISTS (SELECT 1 FROM idx_reference AS ${sql.id(x)} JOIN resources AS ${sql.id(t)}
          ON ${column(t, 'type')} = ${column(x, 'target_type')} AND ${column(t, 'id')} = ${column(x, 'target_id')}
          WHERE ${column(x, 'rid')} = ${column(r, 'rid')} AND ${column(x, 'sp')} = ${f.param.sp}
          AND ${column(t, 'type')} = ANY(${f.targetTypes}::text[]) AND NOT ${column(t, 'deleted')} AND ${this.visibleRow(t, f.targetTypes)} AND ${this.filter(f.inner, t)}${fence})`;
      }
      case 'has': {
        const x = this.alias('x');
        const s = this.alias('r');
        return sql`EXISTS (SELECT 1 FROM idx_reference AS ${sql.id(x)} JOIN resources AS ${sql.id(s)} ON ${column(s, 'rid')} = ${column(x, 'rid')}
          WHERE ${column(x, 'sp')} = ${f.param.sp} AND ${column(x, 'target_type')} = ${column(r, 'type')} AND ${column(x, 'target_id')} = ${column(r, 'id')}
          AND ${column(s, 'type')} = ${f.sourceType} AND NOT ${column(s, 'deleted')} AND ${this.visibleRow(s, [f.sourceType])} AND ${this.filter(f.inner, s)}${fence})`;
      }
      case 'param':
        return this.param(f, r, fence);
    }
  }

  private param(f: ParamFilter, r: string, fence: Fragment): Fragment {
    const x = this.alias('x');
    const identifier = f.modifier === 'identifier';
    const table = identifier ? 'idx_token' : TABLE[f.param.type];
    const rowsOf = identifier ? sql`${column(x, 'sp')} = ${identifierSp(f.param)}` : keyOf(x, f.param);
    const exists = (condition: Fragment): Fragment =>
      sql`EXISTS (SELECT 1 FROM ${sql.table(table)} AS ${sql.id(x)} WHERE ${column(x, 'rid')} = ${column(r, 'rid')} AND ${rowsOf} AND ${condition}${fence})`;
    const first = f.values[0];
    if (first?.type === 'missing') return first.missing ? sql`NOT ${exists(TRUE)}` : exists(TRUE);
    const condition = or(f.values.map((v) => valueCondition(f, v, x)));
    return f.modifier === 'not' ? sql`NOT ${exists(condition)}` : exists(condition);
  }
}

/** SQL type of a sort key, for casting cursor values back. */
function sortKeyCast(key: SortKey): string {
  if (key.kind === 'column') return key.column === 'id' ? 'text' : 'timestamptz';
  switch (key.param.type) {
    case 'date':
      return 'timestamptz';
    case 'number':
    case 'quantity':
      return 'numeric';
    default:
      return 'text';
  }
}

/** The value a resource sorts by: a column, or the lowest (ascending) / highest (descending) index value. */
function sortKeyExpression(key: SortKey, r: string): Fragment {
  if (key.kind === 'column') return column(r, key.column);
  const p = key.param;
  const agg = key.descending ? sql`max` : sql`min`;
  const value: Record<ParamDef['type'], Fragment> = {
    string: sql`norm`,
    token: sql`code`,
    date: key.descending ? sql`hi` : sql`lo`,
    number: key.descending ? sql`hi` : sql`lo`,
    quantity: key.descending ? sql`hi` : sql`lo`,
    reference: sql`coalesce(target_type || '/' || target_id, url)`,
    uri: sql`value`,
    composite: sql`key`,
  };
  return sql`(SELECT ${agg}(${value[p.type]}) FROM ${sql.table(TABLE[p.type])} WHERE rid = ${column(r, 'rid')} AND ${keyOf(undefined, p)})`;
}

/** The condition that an index row (aliased `x`, else unqualified) is one of `param`'s (a union's: one of its parts'). */
function keyOf(x: string | undefined, param: ParamDef): Fragment {
  const sp = x ? column(x, 'sp') : sql`sp`;
  const keys = rowKeys(param);
  return keys.length === 1 ? sql`${sp} = ${keys[0]}` : sql`${sp} = ANY(${keys}::int[])`;
}

/**
 * The WHERE conditions of a search (types, compartment, access rule, filters), on resources aliased
 * `r`. When the caller's rule confines the searched types to a few patients' compartments, the
 * search is driven by it and the filters are checked row by row: every statement has one plan for
 * any values (SESSION_SETTINGS), and that plan cannot know that `status=active` matches every
 * patient's plan and not a handful, so it would start from the filter and read the population's
 * rows — 370 ms for a GP's `CarePlan?status=active` at 30,000 patients. Row by row, the cost is
 * bounded by the patient's own resources.
 */
export function whereClause(query: SearchQuery, visible: ReadRule | undefined, r = 'r'): Fragment {
  const parts: Fragment[] = [sql`NOT ${column(r, 'deleted')}`];
  const rule = visible?.filter(r, query.types);
  if (rule) parts.push(rule);
  if (query.types.length === 1) parts.push(sql`${column(r, 'type')} = ${query.types[0]}`);
  else if (query.types.length > 1) parts.push(sql`${column(r, 'type')} = ANY(${query.types}::text[])`);
  if (query.compartment) parts.push(inCompartments(sql, column(r, 'compartments'), sql`ARRAY[${query.compartment}]::text[]`));
  const confined = visible?.confines;
  const perRow = !!confined && query.types.length > 0 && query.types.every((type) => confined.has(type));
  const filters = new FilterCompiler(visible);
  for (const f of query.filters) parts.push(filters.filter(f, r, perRow));
  return and(parts);
}

export interface PageRow {
  rid: number;
  type: string;
  id: string;
  version: number;
  content: StoredText;
  /** Sort key values as text, for the paging cursor. */
  keys: Array<string | null>;
}

/**
 * The query for one page: `count + 1` rows after (or before) the cursor, so the caller can tell
 * whether another page follows. With `included` (the resources the page's rids include), those
 * rows follow in the same statement; the page's own rows are numbered in order in `n`, from 1.
 * Built once per shape of query and caller's rule (shapes.ts); `included` must follow from the
 * query's types and includes.
 */
export function pageQuery(query: SearchQuery, visible?: ReadRule, included?: (pageRids: Fragment) => Fragment): CompiledQuery {
  checkCursor(query);
  return shaped(query, visible, (shape) => buildPageQuery(shape, visible, included));
}

/** The page's statement built from `query` itself, as pageQuery builds it from a shape (exported for the test that compares them). */
export function buildPageQuery(query: SearchQuery, visible: ReadRule | undefined, included: ((pageRids: Fragment) => Fragment) | undefined): CompiledQuery {
  const keys = query.sort;
  const keyColumns = keys.map((k, i) => sql`${sortKeyExpression(k, 'r')}::text AS ${sql.id(`k${i}`)}`);
  const inner = sql`SELECT r.rid, r.type, r.id, ${servedColumns(visible, 'r')}${keyColumns.length ? sql`, ${sql.join(keyColumns)}` : sql``}
    FROM resources AS r WHERE ${whereClause(query, visible)}`;
  const cursor = query.cursor;
  const backwards = cursor?.direction === 'prev';
  const orderBy = [
    ...keys.map((k, i) => {
      const descending = k.descending !== backwards;
      const typed = sql`${column('q', `k${i}`)}::${sql.raw(sortKeyCast(k))}`;
      return descending ? sql`${typed} DESC NULLS ${sql.raw(backwards ? 'FIRST' : 'LAST')}` : sql`${typed} ASC NULLS ${sql.raw(backwards ? 'FIRST' : 'LAST')}`;
    }),
    backwards ? sql`q.rid DESC` : sql`q.rid ASC`,
  ];
  const keyset = cursor ? keysetCondition(keys, cursor) : TRUE;
  const page = sql`SELECT q.* FROM (${inner}) AS q WHERE ${keyset} ORDER BY ${sql.join(orderBy)} LIMIT ${derive(plusOne, query.count)}`;
  if (!included) return compile(page);
  const noKeys = keys.map((_, i) => sql`, NULL::text AS ${sql.id(`k${i}`)}`);
  return compile(sql`WITH page AS MATERIALIZED (SELECT p.*, row_number() OVER () AS n FROM (${page}) AS p)
    SELECT * FROM page
    UNION ALL SELECT i.*${sql.join(noKeys, sql``)}, NULL::bigint AS n FROM (${included(sql`SELECT rid FROM page WHERE n <= ${query.count}`)}) AS i`);
}

const TIMESTAMP_TEXT = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?(?:Z|[+-](\d{2})(?::?\d{2})?)?$/;

/**
 * Whether a cursor's sort key casts to its SQL type. Cursors come back from clients, and a value
 * the cast refuses (`2026-11-25 07:49:20+0p`, `1e999999`) failed the whole query with a 500.
 */
function castable(value: string, cast: string): boolean {
  if (cast === 'numeric') return /^[+-]?\d{1,1000}(?:\.\d{1,1000})?(?:e[+-]?\d{1,3})?$/i.test(value);
  if (cast !== 'timestamptz') return true;
  const m = TIMESTAMP_TEXT.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day && hour < 24 && minute < 60 && second < 60 && Number(m[7] ?? 0) <= 15;
}

/** Refuses a cursor whose sort keys do not cast to their SQL types. */
function checkCursor(query: SearchQuery): void {
  query.cursor?.keys.forEach((value, i) => {
    const key = query.sort[i];
    if (key && value !== null && !castable(String(value), sortKeyCast(key))) throw errors.invalidSearch('The paging cursor is not valid; start the search again');
  });
}

/** Rows strictly after (next) or before (prev) the cursor row in the sort order, NULLs last. */
function keysetCondition(keys: SortKey[], cursor: Cursor): Fragment {
  const forward = cursor.direction === 'next';
  const alternatives: Fragment[] = [];
  const equalSoFar: Fragment[] = [];
  keys.forEach((k, i) => {
    const value = cursor.keys[i] ?? null;
    const cast = sql.raw(sortKeyCast(k));
    const key = sql`${column('q', `k${i}`)}::${cast}`;
    const param = sql`${value}::${cast}`;
    let beyond: Fragment;
    if (value === null) beyond = forward ? FALSE : sql`${key} IS NOT NULL`;
    else {
      const greater = k.descending ? !forward : forward;
      const cmp = greater ? sql`${key} > ${param}` : sql`${key} < ${param}`;
      beyond = forward ? sql`(${cmp} OR ${key} IS NULL)` : cmp;
    }
    alternatives.push(and([...equalSoFar, beyond]));
    equalSoFar.push(sql`${key} IS NOT DISTINCT FROM ${param}`);
  });
  alternatives.push(and([...equalSoFar, forward ? sql`q.rid > ${cursor.rid}` : sql`q.rid < ${cursor.rid}`]));
  return or(alternatives);
}

export function countQuery(query: SearchQuery, visible?: ReadRule): CompiledQuery {
  return compile(sql`SELECT count(*)::int AS total FROM resources AS r WHERE ${whereClause(query, visible)}`);
}
