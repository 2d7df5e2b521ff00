/**
 * batch and transaction (https://hl7.org/fhir/R4/http.html#transaction). A transaction is one
 * database transaction: entries run in the spec's order (DELETE, POST, PUT/PATCH, GET), urn:uuid
 * fullUrls and conditional references are resolved first, and the first failing entry rolls
 * everything back. A batch runs each entry on its own and reports each outcome.
 */
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { inTransaction, textOf } from '../../store/db.js';
import { bundleText, type BundleEntryText } from '../bundles.js';
import type { FhirEngine } from '../engine.js';
import { errors, FhirError, issue } from '../outcomes.js';
import { versionResponse } from '../respond.js';
import type { Call } from '../services.js';
import type { FhirMethod, FhirRequest, FhirResponse, RequestContext } from '../types.js';
import { findSingle, parseCriteria } from './conditional.js';

/** Most entries one Bundle may carry: larger loads belong in several Bundles (or $import). */
export const MAX_BUNDLE_ENTRIES = 5000;

const METHODS = new Set<FhirMethod>(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);
const ORDER: Record<FhirMethod, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };
const REASONS: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  304: 'Not Modified',
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition Failed',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

interface ParsedEntry {
  index: number;
  entry: BundleEntry;
  req: FhirRequest;
  /** Resource type and id (or criteria) the entry's URL names. */
  type?: string;
  id?: string;
  criteria?: string;
}

function describe(e: ParsedEntry): string {
  return `entry ${e.index} (${e.req.method} ${(e.entry.request?.url ?? '').slice(0, 100)})`;
}

/** Turns a Bundle entry into an engine request, or throws a 400 naming the entry. */
function parseEntry(entry: BundleEntry, index: number, outer: FhirRequest, ctx: RequestContext): ParsedEntry {
  const fail = (why: string): never => {
    throw errors.badRequest(`Bundle entry ${index}: ${why}`, `Bundle.entry[${index}]`);
  };
  if (!entry || typeof entry !== 'object') fail('is not an object');
  const request = entry.request;
  if (!request || typeof request !== 'object') fail('has no request (method and url)');
  const method = request?.method as FhirMethod;
  if (!METHODS.has(method)) fail(`request.method must be one of ${[...METHODS].join(', ')}`);
  let url = typeof request?.url === 'string' ? request.url : fail('request.url is missing');
  if (url.startsWith(`${ctx.baseUrl}/`)) url = url.slice(ctx.baseUrl.length + 1);
  if (/^[a-z]+:\/\//i.test(url)) fail('request.url must be relative to this server');
  url = url.replace(/^\/+/, '');
  const q = url.indexOf('?');
  const path = (q >= 0 ? url.slice(0, q) : url).replace(/\/+$/, '');
  const query = q >= 0 ? parseCriteria(url.slice(q + 1)) : [];
  if (path === '' && method === 'POST') fail('a Bundle cannot contain another batch or transaction');
  let body: unknown = entry.resource;
  let bodyKind: FhirRequest['bodyKind'] = 'resource';
  if (method === 'PATCH' && entry.resource?.resourceType === 'Binary') {
    // JSON Patch travels in a Binary inside Bundles.
    const binary = entry.resource as { contentType?: string; data?: string };
    if (binary.contentType !== 'application/json-patch+json' || !binary.data) fail('a Binary PATCH must carry application/json-patch+json data');
    try {
      body = JSON.parse(Buffer.from(binary.data as string, 'base64').toString('utf8'));
    } catch {
      fail('the JSON Patch in the Binary is not valid JSON');
    }
    bodyKind = 'json-patch';
  }
  const req: FhirRequest = {
    method,
    path,
    query,
    ...(body !== undefined ? { body, bodyKind } : {}),
    ...(request?.ifMatch ? { ifMatch: request.ifMatch } : {}),
    ...(request?.ifNoneMatch ? { ifNoneMatch: request.ifNoneMatch } : {}),
    ...(request?.ifModifiedSince ? { ifModifiedSince: request.ifModifiedSince } : {}),
    ...(request?.ifNoneExist ? { ifNoneExist: request.ifNoneExist } : {}),
    ...(outer.preferReturn ? { preferReturn: outer.preferReturn } : {}),
    ...(outer.preferHandling ? { preferHandling: outer.preferHandling } : {}),
  };
  const [type, id] = path.split('/');
  return {
    index,
    entry,
    req,
    ...(type ? { type } : {}),
    ...(id && !id.startsWith('$') && !id.startsWith('_') ? { id } : {}),
    ...(q >= 0 && !id ? { criteria: url.slice(q + 1) } : {}),
  };
}

function responseEntry(res: FhirResponse): BundleEntryText {
  const response: Record<string, unknown> = { status: `${res.status} ${REASONS[res.status] ?? ''}`.trim() };
  if (res.location) response.location = res.location;
  if (res.versionId) response.etag = `W/"${res.versionId}"`;
  if (res.lastModified) response.lastModified = res.lastModified.toISOString();
  if (res.body === undefined) return { extra: { response } };
  if (res.status < 400) return { resource: res.body, extra: { response } };
  response.outcome = JSON.parse(textOf(res.body));
  return { extra: { response } };
}

function checkBundle(body: unknown): Bundle {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest('POST to the base URL takes a Bundle of type batch or transaction');
  const bundle = body as Bundle;
  if (bundle.resourceType !== 'Bundle') {
    throw errors.badRequest(`POST to the base URL takes a Bundle, not ${String(bundle.resourceType).slice(0, 64)}`, 'resourceType');
  }
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    throw errors.badRequest(`Bundle.type must be batch or transaction, not ${String(bundle.type).slice(0, 32)}`, 'Bundle.type');
  }
  if (bundle.entry !== undefined && !Array.isArray(bundle.entry)) throw errors.badRequest('Bundle.entry must be an array', 'Bundle.entry');
  if ((bundle.entry?.length ?? 0) > MAX_BUNDLE_ENTRIES) {
    throw errors.payloadTooLarge(`A Bundle may carry at most ${MAX_BUNDLE_ENTRIES} entries; split it`);
  }
  return bundle;
}

export async function processBundle(engine: FhirEngine, call: Call): Promise<FhirResponse> {
  const bundle = checkBundle(call.req.body);
  const entries = bundle.entry ?? [];
  if (bundle.type === 'batch') return batch(engine, call, entries);
  return transaction(engine, call, entries);
}

async function batch(engine: FhirEngine, call: Call, entries: BundleEntry[]): Promise<FhirResponse> {
  const results: BundleEntryText[] = [];
  for (const [index, entry] of entries.entries()) {
    let res: FhirResponse;
    try {
      const parsed = parseEntry(entry, index, call.req, call.ctx);
      res = await engine.handle(parsed.req, call.ctx, call.q);
    } catch (err) {
      res = engine.failure(err, call.ctx);
    }
    results.push(responseEntry(res));
  }
  return { status: 200, body: bundleText('batch-response', { entries: results }) };
}

/** Replaces references (and other string values) that name a resolved fullUrl, everywhere in `value`. */
function rewrite(value: unknown, map: Map<string, string>): unknown {
  if (typeof value === 'string') return map.get(value) ?? value;
  if (Array.isArray(value)) return value.map((v) => rewrite(v, map));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = rewrite(v, map);
    return out;
  }
  return value;
}

/** Conditional references ("Patient?identifier=x") anywhere in `value`, resolved to Type/id. */
async function resolveConditionalReferences(value: unknown, resolve: (ref: string) => Promise<string>): Promise<void> {
  if (Array.isArray(value)) {
    for (const v of value) await resolveConditionalReferences(v, resolve);
    return;
  }
  if (!value || typeof value !== 'object') return;
  const obj = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'reference' && typeof v === 'string' && /^[A-Z][A-Za-z]+\?/.test(v)) obj[k] = await resolve(v);
    else await resolveConditionalReferences(v, resolve);
  }
}

async function transaction(engine: FhirEngine, call: Call, entries: BundleEntry[]): Promise<FhirResponse> {
  const { ctx } = call;
  const parsed = entries.map((e, i) => parseEntry(e, i, call.req, ctx));
  const seen = new Set<string>();
  for (const p of parsed) {
    if (p.id && p.req.method !== 'GET' && p.req.method !== 'HEAD') {
      const key = `${p.type}/${p.id}`;
      if (seen.has(key)) throw errors.badRequest(`The transaction changes ${key} more than once (${describe(p)})`);
      seen.add(key);
    }
  }
  const responses = new Array<FhirResponse>(parsed.length);
  await inTransaction(call.q, async (tx) => {
      const sub = (p: ParsedEntry, req: FhirRequest = p.req) => engine.route({ req, ctx, q: tx });
      const ordered = [...parsed].sort((a, b) => ORDER[a.req.method] - ORDER[b.req.method] || a.index - b.index);

      // 1. Decide every id the transaction will write, so references can be rewritten first.
      const fullUrls = new Map<string, string>();
      const assigned = new Map<number, { id: string; existing: boolean }>();
      for (const p of ordered) {
        if (p.req.method === 'POST' && p.type && !p.id) {
          const existing = p.req.ifNoneExist !== undefined ? await findSingle(tx, ctx, p.type, parseCriteria(p.req.ifNoneExist), `${describe(p)} If-None-Exist`) : undefined;
          assigned.set(p.index, { id: existing?.id ?? crypto.randomUUID(), existing: !!existing });
        } else if (p.req.method === 'PUT' && p.type && p.criteria !== undefined) {
          const match = await findSingle(tx, ctx, p.type, p.req.query, describe(p));
          const bodyId = (p.req.body as { id?: unknown } | undefined)?.id;
          assigned.set(p.index, { id: match?.id ?? (typeof bodyId === 'string' ? bodyId : crypto.randomUUID()), existing: !!match });
        }
        const id = assigned.get(p.index)?.id ?? p.id;
        if (p.entry.fullUrl && p.type && id) fullUrls.set(p.entry.fullUrl, `${p.type}/${id}`);
      }

      // 2. Rewrite urn:uuid references and resolve conditional references in every body.
      for (const p of parsed) {
        if (p.req.body === undefined || p.req.bodyKind !== 'resource') continue;
        const body = rewrite(p.req.body, fullUrls);
        await resolveConditionalReferences(body, async (ref) => {
          const [refType, criteria] = [ref.slice(0, ref.indexOf('?')), ref.slice(ref.indexOf('?') + 1)];
          const match = await findSingle(tx, ctx, refType, parseCriteria(criteria), `the conditional reference ${ref.slice(0, 100)}`);
          if (!match) throw errors.referenceNotFound(`${describe(p)}: no ${refType} matches the conditional reference "${ref.slice(0, 100)}"`);
          return `${refType}/${match.id}`;
        });
        p.req = { ...p.req, body };
      }

      // 3. Run the entries in the spec's order; the first failure rolls everything back.
      for (const p of ordered) {
        try {
          const a = assigned.get(p.index);
          if (p.req.method === 'POST' && a && p.type) {
            if (a.existing) {
              responses[p.index] = await sub(p, { ...p.req, method: 'GET', path: `${p.type}/${a.id}`, query: [] });
              continue;
            }
            const result = await engine.services.writer.create(tx, ctx, p.req.body as Resource, a.id);
            responses[p.index] = versionResponse(201, result.version, p.req, ctx, { location: true });
          } else if (p.req.method === 'PUT' && a && p.type) {
            const body = { ...(p.req.body as Resource), id: a.id };
            responses[p.index] = await sub(p, { ...p.req, path: `${p.type}/${a.id}`, query: [], body });
          } else {
            responses[p.index] = await sub(p);
          }
        } catch (err) {
          throw annotate(engine, err, p, ctx);
        }
      }
  });
  return {
    status: 200,
    touched: responses.flatMap((r) => r.touched ?? []),
    body: bundleText('transaction-response', { entries: responses.map((r) => responseEntry(r)) }),
  };
}

/** Adds which entry failed to the error's OperationOutcome, keeping its status. */
function annotate(engine: FhirEngine, err: unknown, p: ParsedEntry, ctx: RequestContext): FhirError {
  const e = engine.asFhirError(err, ctx);
  return new FhirError(
    e.status,
    [
      ...(e.outcome.issue ?? []),
      issue({ severity: 'information', code: 'informational', message: `The transaction was rolled back because ${describe(p)} failed` }),
    ],
    e.headers,
  );
}
