/**
 * _include and _revinclude: after the page of matches is known, follow reference index rows from
 * (or to) those resources. `:iterate` repeats on what was just included, a bounded number of
 * rounds. Included resources are read with the same "not deleted" rule as matches.
 */
import { sql } from 'kysely';
import type { Queryable } from '../store/db.js';
import { type ReadRule, servedColumns } from '../store/resources.js';
import type { IncludeSpec } from './query.js';
import { searchRegistry } from './registry.js';
import { compile } from '../store/sql.js';

export interface IncludedRow {
  rid: number;
  type: string;
  id: string;
  version: number;
  content: string;
}

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

async function forward(q: Queryable, spec: IncludeSpec, from: IncludedRow[], visible: ReadRule | undefined): Promise<IncludedRow[]> {
  const sources = spec.sourceType === '*' ? from : from.filter((row) => row.type === spec.sourceType);
  if (!sources.length) return [];
  const sps = [...new Set(sources.map((s) => s.type))].flatMap((t) => referenceSps(t, spec));
  if (!sps.length) return [];
  const rule = visible?.filter('t');
  const compiled = compile(sql`SELECT DISTINCT t.rid, t.type, t.id, ${servedColumns(visible, 't')}
    FROM idx_reference AS x JOIN resources AS t ON t.type = x.target_type AND t.id = x.target_id
    WHERE x.rid = ANY(${sources.map((s) => s.rid)}::bigint[]) AND x.sp = ANY(${sps}::int[]) AND NOT t.deleted
    ${spec.targetType ? sql`AND t.type = ${spec.targetType}` : sql``} ${rule ? sql`AND ${rule}` : sql``}`);
  return q.query<IncludedRow>(compiled.sql, compiled.parameters);
}

async function reverse(q: Queryable, spec: IncludeSpec, to: IncludedRow[], visible: ReadRule | undefined): Promise<IncludedRow[]> {
  const rule = visible?.filter('s');
  const byType = new Map<string, string[]>();
  for (const row of to) byType.set(row.type, [...(byType.get(row.type) ?? []), row.id]);
  const results: IncludedRow[] = [];
  for (const [type, ids] of byType) {
    if (spec.param && spec.param.targets.length && !spec.param.targets.includes(type)) continue;
    const compiled = compile(sql`SELECT DISTINCT s.rid, s.type, s.id, ${servedColumns(visible, 's')}
      FROM idx_reference AS x JOIN resources AS s ON s.rid = x.rid
      WHERE x.target_type = ${type} AND x.target_id = ANY(${ids}::text[]) AND NOT s.deleted
      ${spec.param ? sql`AND x.sp = ${spec.param.sp}` : sql``}
      ${spec.sourceType !== '*' ? sql`AND s.type = ${spec.sourceType}` : sql``} ${rule ? sql`AND ${rule}` : sql``}`);
    results.push(...(await q.query<IncludedRow>(compiled.sql, compiled.parameters)));
  }
  return results;
}

/** Resources the page's matches include, without the matches themselves and without duplicates. */
export async function findIncludes(
  q: Queryable,
  includes: IncludeSpec[],
  revincludes: IncludeSpec[],
  matches: IncludedRow[],
  visible: ReadRule | undefined,
): Promise<IncludedRow[]> {
  if (!includes.length && !revincludes.length) return [];
  const seen = new Set(matches.map((m) => m.rid));
  const included: IncludedRow[] = [];
  let frontier = matches;
  for (let round = 0; round <= MAX_ITERATIONS && frontier.length; round++) {
    const active = (specs: IncludeSpec[]) => (round === 0 ? specs : specs.filter((s) => s.iterate));
    const found: IncludedRow[] = [];
    for (const spec of active(includes)) found.push(...(await forward(q, spec, frontier, visible)));
    for (const spec of active(revincludes)) found.push(...(await reverse(q, spec, frontier, visible)));
    const fresh: IncludedRow[] = [];
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
