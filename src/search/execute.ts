/** Runs a parsed search: one page of matches, the included resources, the total, paging cursors. */
import type { Queryable, StoredText } from '../store/db.js';
import { asked, type ReadRule, type TextAs } from '../store/resources.js';
import { findIncludes, type IncludedRow, includedWithPage } from './include.js';
import type { Cursor, SearchQuery } from './query.js';
import { countQuery, pageQuery, type PageRow } from './sql.js';

export interface SearchResult<Text extends StoredText = string> {
  matches: Array<IncludedRow<Text>>;
  included: Array<IncludedRow<Text>>;
  total?: number;
  next?: Cursor;
  prev?: Cursor;
}

interface RawPageRow extends Omit<PageRow, 'keys'> {
  [key: `k${number}`]: string | null;
  /** With the first round of includes in the statement: the row's place in the page, null for an included row. */
  n?: number | null;
}

function cursorAt(query: SearchQuery, row: RawPageRow, direction: Cursor['direction']): Cursor {
  return { keys: query.sort.map((_, i) => row[`k${i}`] ?? null), rid: row.rid, direction };
}

/** Runs `query` showing only rows `visible` allows (the caller's access rule); the resources' text as asked. */
export async function executeSearch(q: Queryable, query: SearchQuery, visible: ReadRule | undefined): Promise<SearchResult>;
export async function executeSearch(q: Queryable, query: SearchQuery, visible: ReadRule | undefined, as: TextAs): Promise<SearchResult<StoredText>>;
export async function executeSearch(q: Queryable, query: SearchQuery, visible: ReadRule | undefined, as: TextAs = 'string'): Promise<SearchResult<StoredText>> {
  const count = async () => {
    const c = countQuery(query, visible);
    return (await q.query<{ total: number }>(c.sql, c.parameters))[0]?.total ?? 0;
  };
  if (query.summary === 'count' || query.count === 0) {
    return { matches: [], included: [], ...(query.total !== 'none' ? { total: await count() } : {}) };
  }
  const included = includedWithPage(query, visible);
  const compiled = pageQuery(query, visible, included);
  const options = asked(as);
  const read = await q.query<RawPageRow>(compiled.sql, compiled.parameters, options);
  let rows = included ? read.filter((r) => r.n != null).sort((a, b) => (a.n as number) - (b.n as number)) : read;
  const withPage = included ? read.filter((r) => r.n == null) : undefined;
  const more = rows.length > query.count;
  if (more) rows = rows.slice(0, query.count);
  const backwards = query.cursor?.direction === 'prev';
  if (backwards) rows.reverse();
  const first = rows[0];
  const last = rows[rows.length - 1];
  const result: SearchResult<StoredText> = { matches: rows, included: [] };
  // Going forward, a cursor means pages lie behind us; going back, we came from a later page.
  if (last && (backwards || more)) result.next = cursorAt(query, last, 'next');
  if (first && (backwards ? more : !!query.cursor)) result.prev = cursorAt(query, first, 'prev');
  if (query.total !== 'none') result.total = !query.cursor && !more ? rows.length : await count();
  result.included = await findIncludes(q, query.includes, query.revincludes, rows, visible, withPage, options);
  return result;
}
