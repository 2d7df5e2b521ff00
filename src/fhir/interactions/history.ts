/**
 * history (https://hl7.org/fhir/R4/http.html#history) of one resource, a type, or the whole
 * system: newest first, with `_since` and `_count`, paged by a keyset cursor. Deletions appear as
 * entries without a resource and with request.method DELETE.
 */
import type { HistoryCursor } from '../../store/resources.js';
import { DEFAULT_COUNT, MAX_COUNT } from '../../search/query.js';
import { dateRange } from '../../search/values.js';
import { bundleText, type BundleLink, fullUrl } from '../bundles.js';
import { visibility } from '../access.js';
import { errors } from '../outcomes.js';
import type { Call, Services } from '../services.js';
import type { FhirResponse } from '../types.js';

const STATUS: Record<string, string> = { POST: '201 Created', PUT: '200 OK', PATCH: '200 OK', DELETE: '204 No Content' };

function decodeCursor(raw: string): HistoryCursor {
  try {
    const c = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as HistoryCursor;
    if (typeof c.lastUpdated !== 'string' || typeof c.rid !== 'number' || typeof c.version !== 'number') throw new Error();
    return c;
  } catch {
    throw errors.badRequest('The history paging cursor is not valid; start again from the first page');
  }
}

export async function history(s: Services, call: Call, type?: string, id?: string): Promise<FhirResponse> {
  const { ctx, req } = call;
  let count = DEFAULT_COUNT;
  let since: string | undefined;
  let before: HistoryCursor | undefined;
  const used: Array<[string, string]> = [];
  for (const [name, value] of req.query) {
    if (name === '_count') {
      if (!/^\d+$/.test(value)) throw errors.badRequest('_count must be a non-negative integer');
      count = Math.min(Number(value), MAX_COUNT);
      used.push([name, value]);
    } else if (name === '_since') {
      const range = dateRange(value.replace(/ (\d{2}:\d{2})$/, '+$1'));
      if (!range || !/T/.test(value)) throw errors.badRequest('_since must be an instant, e.g. 2024-03-05T10:00:00Z');
      since = range.lo;
      used.push([name, value]);
    } else if (name === '_cursor') before = decodeCursor(value);
    else if (name !== '_format' && name !== '_pretty' && req.preferHandling === 'strict') {
      throw errors.badRequest(`Unknown history parameter "${name}" (Prefer: handling=strict)`);
    }
  }

  const visible = visibility(ctx.access);
  const rows =
    count === 0
      ? []
      : await s.store.history(call.q, type ? { type, ...(id ? { id } : {}) } : {}, {
          count: count + 1,
          visible,
          ...(since ? { since } : {}),
          ...(before ? { before } : {}),
        });
  // A resource's versions come only when it is there and visible; with none, say which it is.
  if (type && id && rows.length === 0 && !(await s.store.read(call.q, type, id, visible))) throw errors.notFound(type, id);
  const more = rows.length > count;
  const page = rows.slice(0, count);
  const path = [type, id, '_history'].filter(Boolean).join('/');
  const base = `${ctx.baseUrl}/${path}`;
  const link = (params: Array<[string, string]>) => {
    const qs = new URLSearchParams(params).toString();
    return qs ? `${base}?${qs}` : base;
  };
  const links: BundleLink[] = [{ relation: 'self', url: link(req.query.filter(([k]) => k === '_cursor' || used.some(([u]) => u === k)) as Array<[string, string]>) }];
  const last = page[page.length - 1];
  if (more && last) {
    const cursor: HistoryCursor = { lastUpdated: last.lastUpdated.toISOString(), rid: last.rid, version: last.version };
    links.push({ relation: 'next', url: link([...used, ['_cursor', Buffer.from(JSON.stringify(cursor)).toString('base64url')]]) });
  }
  const entries = page.map((v) => {
    const url = fullUrl(ctx.baseUrl, v.type, v.id);
    return {
      fullUrl: url,
      ...(v.content !== null ? { resource: v.content } : {}),
      extra: {
        request: { method: v.method, url: v.method === 'POST' ? v.type : `${v.type}/${v.id}` },
        response: {
          status: STATUS[v.method] ?? '200 OK',
          etag: `W/"${v.version}"`,
          lastModified: v.lastUpdated.toISOString(),
        },
      },
    };
  });
  const total = type && id && !since && !before && !more ? page.length : undefined;
  return {
    status: 200,
    touched: page.map((v) => ({ type: v.type, id: v.id, version: v.version })),
    body: bundleText('history', { ...(total !== undefined ? { total } : {}), link: links, entries }),
  };
}
