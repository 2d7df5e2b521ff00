/**
 * Finding the resources a conditional interaction (If-None-Exist, PUT/PATCH/DELETE Type?query,
 * conditional references in transactions) refers to. A transaction-scoped advisory lock on the
 * criteria serialises concurrent conditional writes with the same criteria, so two concurrent
 * "create if none exists" requests cannot both create.
 */
import { executeSearch } from '../../search/execute.js';
import { parseSearch } from '../../search/parse.js';
import type { IncludedRow } from '../../search/include.js';
import type { Queryable } from '../../store/db.js';
import { visibility } from '../access.js';
import { errors } from '../outcomes.js';
import type { QueryParams, RequestContext } from '../types.js';

export function parseCriteria(criteria: string): QueryParams {
  const text = criteria.startsWith('?') ? criteria.slice(1) : criteria;
  return [...new URLSearchParams(text).entries()];
}

/** Up to two current resources of `type` matching `criteria`, under a lock on the criteria. */
export async function findMatches(
  q: Queryable,
  ctx: RequestContext,
  type: string,
  criteria: QueryParams,
): Promise<IncludedRow[]> {
  if (!criteria.length) throw errors.badRequest('A conditional request needs search criteria');
  const query = parseSearch(type, criteria, { strict: true, baseUrl: ctx.baseUrl });
  if (!query.filters.length) throw errors.badRequest('A conditional request needs at least one search parameter that filters');
  const key = `${type}?${[...criteria].map(([k, v]) => `${k}=${v}`).sort().join('&')}`;
  await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [key]);
  const result = await executeSearch(q, { ...query, count: 2, total: 'none', includes: [], revincludes: [], sort: [] }, visibility(ctx.access));
  return result.matches;
}

/** The single match, none, or a 412 for several. */
export async function findSingle(
  q: Queryable,
  ctx: RequestContext,
  type: string,
  criteria: QueryParams,
  what: string,
): Promise<IncludedRow | undefined> {
  const matches = await findMatches(q, ctx, type, criteria);
  if (matches.length > 1) throw errors.multipleMatches(`${what}: the criteria match more than one ${type}; make them more specific`);
  return matches[0];
}
