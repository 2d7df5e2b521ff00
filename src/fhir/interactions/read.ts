/**
 * read and vread (https://hl7.org/fhir/R4/http.html#read): the stored JSON text is returned as is
 * — as the bytes the database sent, where the driver gives them — unless _summary/_elements ask
 * for less, with ETag and Last-Modified; If-None-Match and
 * If-Modified-Since give 304. A deleted resource gives 410 Gone.
 */
import { visibility } from '../access.js';
import { errors } from '../outcomes.js';
import type { Call, Services } from '../services.js';
import { subset } from '../subsetting.js';
import type { FhirResponse } from '../types.js';
import type { Summary } from '../../search/query.js';
import { parseETag } from '../writer.js';

function notModified(call: Call, version: number, lastUpdated: Date): boolean {
  const { ifNoneMatch, ifModifiedSince } = call.req;
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() === '*') return true;
    return ifNoneMatch.split(',').some((tag) => {
      try {
        return parseETag(tag) === version;
      } catch {
        return false;
      }
    });
  }
  if (ifModifiedSince !== undefined) {
    const since = Date.parse(ifModifiedSince);
    // HTTP dates have whole seconds.
    return !Number.isNaN(since) && Math.floor(lastUpdated.getTime() / 1000) * 1000 <= since;
  }
  return false;
}

function subsetParams(call: Call): { summary?: Summary; elements?: string[] } {
  const summary = call.req.query.find(([k]) => k === '_summary')?.[1];
  const elements = call.req.query.find(([k]) => k === '_elements')?.[1];
  if (summary && !['true', 'text', 'data', 'count', 'false'].includes(summary)) {
    throw errors.badRequest('_summary must be true, text, data, count or false');
  }
  return {
    ...(summary ? { summary: summary as Summary } : {}),
    ...(elements ? { elements: elements.split(',').map((e) => e.trim()).filter(Boolean) } : {}),
  };
}

export async function read(s: Services, call: Call, type: string, id: string): Promise<FhirResponse> {
  const row = await s.store.read(call.q, type, id, visibility(call.ctx.access), 'bytes');
  if (!row) throw errors.notFound(type, id);
  if (row.deleted || row.content === null) throw errors.gone(type, id);
  const headers = { versionId: String(row.version), lastModified: row.lastUpdated, touched: [{ type, id, version: row.version }] };
  if (notModified(call, row.version, row.lastUpdated)) return { status: 304, ...headers };
  const { summary, elements } = subsetParams(call);
  return { status: 200, body: subset(row.content, summary, elements), ...headers };
}

export async function vread(s: Services, call: Call, type: string, id: string, vid: string): Promise<FhirResponse> {
  if (!/^\d{1,9}$/.test(vid)) throw errors.notFound(type, id, vid);
  const visible = visibility(call.ctx.access);
  const row = await s.store.readVersion(call.q, type, id, Number(vid), visible);
  if (!row) {
    if (!(await s.store.read(call.q, type, id, visible))) throw errors.notFound(type, id);
    throw errors.notFound(type, id, vid);
  }
  if (row.content === null) throw errors.gone(type, id);
  const headers = { versionId: String(row.version), lastModified: row.lastUpdated, touched: [{ type, id, version: row.version }] };
  if (notModified(call, row.version, row.lastUpdated)) return { status: 304, ...headers };
  const { summary, elements } = subsetParams(call);
  return { status: 200, body: subset(row.content, summary, elements), ...headers };
}
