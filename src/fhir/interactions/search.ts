/**
 * search-type, search-system and compartment search (https://hl7.org/fhir/R4/search.html), by GET
 * or POST _search (form parameters are merged into the query by the HTTP layer). Answers a
 * searchset Bundle with match and include entries, total, and self/next/previous links.
 */
import { executeSearch } from '../../search/execute.js';
import { encodeCursor, parseSearch } from '../../search/parse.js';
import type { Cursor, SearchQuery } from '../../search/query.js';
import { visibility } from '../access.js';
import { bundleText, type BundleEntryText, type BundleLink, fullUrl, outcomeEntry, SEARCH_INCLUDE, SEARCH_MATCH } from '../bundles.js';
import { issue, outcome } from '../outcomes.js';
import type { Call, Services } from '../services.js';
import { subset } from '../subsetting.js';
import type { FhirResponse } from '../types.js';

function link(base: string, params: Array<[string, string]>): string {
  const qs = new URLSearchParams(params).toString();
  return qs ? `${base}?${qs}` : base;
}

export async function search(
  s: Services,
  call: Call,
  type: string | undefined,
  options: { compartment?: string } = {},
): Promise<FhirResponse> {
  const { ctx, req } = call;
  const page = req.query.find(([k]) => k === '_page')?.[1];
  const params = page ? s.pages.open(page) : req.query;
  const sealed = !!page || !!req.paramsInBody;
  const query: SearchQuery = parseSearch(type, params, {
    strict: req.preferHandling === 'strict',
    baseUrl: ctx.baseUrl,
    ...(options.compartment ? { compartment: options.compartment } : {}),
  });
  const result = await executeSearch(call.q, query, visibility(ctx.access), 'bytes');

  const path = options.compartment ? `${options.compartment}/${type}` : (type ?? '');
  const base = path ? `${ctx.baseUrl}/${path}` : ctx.baseUrl;
  // Parameters that came in a body stay out of URLs: their links carry a sealed _page token.
  const at = (cursor: Cursor | undefined): string => {
    const p: Array<[string, string]> = cursor ? [...query.used, ['_cursor', encodeCursor(cursor)]] : query.used;
    return sealed ? link(base, [['_page', s.pages.seal(p)]]) : link(base, p);
  };
  const links: BundleLink[] = [{ relation: 'self', url: at(query.cursor) }];
  if (result.next) links.push({ relation: 'next', url: at(result.next) });
  if (result.prev) links.push({ relation: 'previous', url: at(result.prev) });

  const entries: BundleEntryText[] = [
    ...result.matches.map((m) => ({
      fullUrl: fullUrl(ctx.baseUrl, m.type, m.id),
      resource: subset(m.content, query.summary, query.elements),
      extra: SEARCH_MATCH,
    })),
    ...result.included.map((m) => ({
      fullUrl: fullUrl(ctx.baseUrl, m.type, m.id),
      resource: m.content,
      extra: SEARCH_INCLUDE,
    })),
  ];
  if (query.ignored.length) {
    entries.push(
      outcomeEntry(
        outcome([
          issue({
            severity: 'warning',
            code: 'not-supported',
            message: `Unknown search parameters were ignored: ${query.ignored.join(', ')}`,
          }),
        ]),
      ),
    );
  }
  return {
    status: 200,
    touched: [...result.matches, ...result.included].map((r) => ({ type: r.type, id: r.id, version: r.version })),
    body: bundleText('searchset', { ...(result.total !== undefined ? { total: result.total } : {}), link: links, entries }),
  };
}
