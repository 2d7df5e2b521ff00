/**
 * _include and _revinclude: follow reference index rows from (or to) the page's matches — the
 * first round of _include within the page's own statement where it can (includedWithPage), the
 * rest once the page is known. `:iterate` repeats on what was just included, a bounded number of
 * rounds. Included resources are read with the same "not deleted" and access rules as matches.
 */
import { sql } from 'kysely';
import type { Queryable, QueryOptions, StoredText } from '../store/db.js';
import { type ReadRule, servedColumns } from '../store/resources.js';
import type { IncludeSpec, SearchQuery } from './query.js';
import { searchRegistry } from './registry.js';
import { compile, type Fragment } from '../store/sql.js';

export interface IncludedRow<Text extends StoredText = string> {
  rid: number;
  type: string;
  id: string;
  version: number;
  content: Text;
}

/** Rows as read here: their text as the caller asked for it (QueryOptions.bytes). */
type Row = IncludedRow<StoredText>;

/** Rounds of `:iterate` after the first, and the most resources a page may include. */
const MAX_ITERATIONS = 4;
export const MAX_INCLUDED = 1000;

/** The reference parameters followed from `type`: the one named, or all of them for `*`. */
function referenceSps(type: string, spec: IncludeSpec): number[] {
  if (spec.param) return [spec.param.sp];
  return searchRegistry()
    .forType(type)
    .filter((p) => p.type === 'reference')
    .map((p) => p.sp);
}

/** What a forward include follows: reference parameters, and the one target type if it names one. */
interface Followed {
  sps: number[];
  targetType?: string;
}

/** The resources referenced, by any of `followed`, from the resources whose rid meets `sources` (a condition on `x.rid`). */
function referencedBy(sources: Fragment, followed: Followed[], visible: ReadRule | undefined): Fragment {
  const rule = visible?.filter('t');
  const which = followed.map((f) => (f.targetType ? sql`(x.sp = ANY(${f.sps}::int[]) AND x.target_type = ${f.targetType})` : sql`x.sp = ANY(${f.sps}::int[])`));
  return sql`SELECT t.rid, t.type, t.id, ${servedColumns(visible, 't')}
    FROM resources AS t
    WHERE (t.type, t.id) IN (SELECT x.target_type, x.target_id FROM idx_reference AS x WHERE ${sources} AND (${sql.join(which, sql` OR `)}))
    AND NOT t.deleted ${rule ? sql`AND ${rule}` : sql``}`;
}

/** Whether `spec` follows references from resources of `type` (`CarePlan:goal` only from CarePlans). */
const startsFrom = (spec: IncludeSpec, type: string): boolean => spec.sourceType === '*' || spec.sourceType === type;

/** What `spec` follows from resources of `types`, or undefined for nothing. */
function following(spec: IncludeSpec, types: readonly string[]): Followed | undefined {
  const sps = types.filter((t) => startsFrom(spec, t)).flatMap((t) => referenceSps(t, spec));
  if (!sps.length) return undefined;
  return spec.targetType ? { sps, targetType: spec.targetType } : { sps };
}

async function forward(q: Queryable, spec: IncludeSpec, from: Row[], visible: ReadRule | undefined, options: QueryOptions | undefined): Promise<Row[]> {
  const followed = following(spec, [...new Set(from.map((row) => row.type))]);
  if (!followed) return [];
  const sources = from.filter((row) => startsFrom(spec, row.type));
  const compiled = compile(referencedBy(sql`x.rid = ANY(${sources.map((s) => s.rid)}::bigint[])`, [followed], visible));
  return q.query<Row>(compiled.sql, compiled.parameters, options);
}

/**
 * The first round of `_include` as part of the page's own statement (one round trip instead of
 * two for a plan Bundle), given the page's rids as a subquery. Only when it can be written before
 * the page is known: a search of one type, so the reference parameters followed are known.
 */
export function includedWithPage(query: SearchQuery, visible: ReadRule | undefined): ((pageRids: Fragment) => Fragment) | undefined {
  if (query.types.length !== 1) return undefined;
  const followed = query.includes.map((spec) => following(spec, query.types)).filter((f): f is Followed => f !== undefined);
  if (!followed.length) return undefined;
  return (pageRids) => referencedBy(sql`x.rid IN (${pageRids})`, followed, visible);
}

async function reverse(q: Queryable, spec: IncludeSpec, to: Row[], visible: ReadRule | undefined, options: QueryOptions | undefined): Promise<Row[]> {
  const rule = visible?.filter('s');
  const byType = new Map<string, string[]>();
  for (const row of to) byType.set(row.type, [...(byType.get(row.type) ?? []), row.id]);
  const results: Row[] = [];
  for (const [type, ids] of byType) {
    if (spec.param && spec.param.targets.length && !spec.param.targets.includes(type)) continue;
    const compiled = compile(sql`SELECT DISTINCT s.rid, s.type, s.id, ${servedColumns(visible, 's')}
      FROM idx_reference AS x JOIN resources AS s ON s.rid = x.rid
      WHERE x.target_type = ${type} AND x.target_id = ANY(${ids}::text[]) AND NOT s.deleted
      ${spec.param ? sql`AND x.sp = ${spec.param.sp}` : sql``}
      ${spec.sourceType !== '*' ? sql`AND s.type = ${spec.sourceType}` : sql``} ${rule ? sql`AND ${rule}` : sql``}`);
    results.push(...(await q.query<Row>(compiled.sql, compiled.parameters, options)));
  }
  return results;
}

/**
 * Resources the page's matches include, without the matches themselves and without duplicates.
 * `withPage`: the first round of `_include`, when the page's statement read it (includedWithPage).
 */
export async function findIncludes(
  q: Queryable,
  includes: IncludeSpec[],
  revincludes: IncludeSpec[],
  matches: Row[],
  visible: ReadRule | undefined,
  withPage: Row[] | undefined,
  options: QueryOptions | undefined,
): Promise<Row[]> {
  if (!includes.length && !revincludes.length) return [];
  const seen = new Set(matches.map((m) => m.rid));
  const included: Row[] = [];
  let frontier = matches;
  for (let round = 0; round <= MAX_ITERATIONS && frontier.length; round++) {
    const active = (specs: IncludeSpec[]) => (round === 0 ? specs : specs.filter((s) => s.iterate));
    const found: Row[] = [];
    if (round === 0 && withPage) found.push(...withPage);
    else for (const spec of active(includes)) found.push(...(await forward(q, spec, frontier, visible, options)));
    for (const spec of active(revincludes)) found.push(...(await reverse(q, spec, frontier, visible, options)));
    const fresh: Row[] = [];
    for (const row of found) {
      if (seen.has(row.rid)) continue;
      seen.add(row.rid);
      fresh.push(row);
      if (included.length + fresh.length >= MAX_INCLUDED) break;
    }
    included.push(...fresh);
    if (included.length >= MAX_INCLUDED) break;
    frontier = fresh;
  }
  return included;
}
