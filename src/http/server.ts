/**
 * The HTTP adapter: Fastify routes that turn HTTP into FhirRequests for the engine and
 * FhirResponses back into HTTP (status, ETag, Last-Modified, Location, content type). It owns
 * content negotiation, body limits and parsing, request ids, and error answers for anything that
 * fails before the engine is reached. Logs carry method, path and status — never query strings or
 * bodies, which may hold personal data.
 */
import { hash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import cors from '@fastify/cors';
import helmet from 'helmet';
import rateLimit from '@fastify/rate-limit';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { requestLogger } from '../log.js';
import type { Access } from '../fhir/access.js';
import type { FhirEngine } from '../fhir/engine.js';
import { parseJsonBody } from '../fhir/json.js';
import { reasonProblem } from '../fhir/validation/security.js';
import { isValidNin } from '../no/identifiers.js';
import { ErrorCode, errors, FhirError } from '../fhir/outcomes.js';
import type { FhirMethod, FhirRequest, FhirResponse, RequestContext } from '../fhir/types.js';
import type { AuthRequest } from '../security/authenticate.js';
import type { Principal } from '../security/principal.js';
import { CONSISTENCY_HEADER, withConsistency } from '../store/replica.js';
import { textOf } from '../store/db.js';
import { registerHealth } from './health.js';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const JSON_TYPES = ['application/fhir+json', 'application/json', 'application/json-patch+json'];
const ACCEPTABLE = /(^|,)\s*(application\/(fhir\+)?json|\*\/\*|application\/\*)\s*(;|,|$)/i;
/** A JWT's signature: base64url, at least as long as a SHA-256. */
const SIGNATURE = /^[\w-]{43,}$/;

function parsePrefer(header: string | undefined): Pick<FhirRequest, 'preferReturn' | 'preferHandling' | 'preferAsync'> {
  const result: Pick<FhirRequest, 'preferReturn' | 'preferHandling' | 'preferAsync'> = {};
  for (const part of (header ?? '').split(/[,;]/)) {
    const [k, v] = part.split('=').map((s) => s.trim().replace(/^"|"$/g, ''));
    if (k?.toLowerCase() === 'respond-async') result.preferAsync = true;
    if (k === 'return' && (v === 'minimal' || v === 'representation' || v === 'OperationOutcome')) result.preferReturn = v;
    if (k === 'handling' && (v === 'strict' || v === 'lenient')) result.preferHandling = v;
  }
  return result;
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Refuses formats other than JSON, by `_format` or the Accept header. */
function checkFormat(req: FastifyRequest, query: URLSearchParams): void {
  const format = query.get('_format');
  if (format !== null) {
    if (!/^(json|application\/(fhir\+)?json|fhir\+json)$/i.test(format.trim())) {
      throw errors.notAcceptable(`_format=${format.slice(0, 40)} is not supported; Samplan speaks FHIR JSON only`);
    }
    return;
  }
  const accept = header(req, 'accept');
  if (accept && !ACCEPTABLE.test(accept) && !/json/i.test(accept)) {
    throw errors.notAcceptable('Samplan answers in FHIR JSON only (application/fhir+json); the Accept header asks for something else');
  }
}

/**
 * URLs end up in logs (ours, proxies', EHRs'), so a national identity number must never be in one:
 * the request is refused and the client told to send it in a POST body instead.
 */
function refuseNinInUrl(path: string, query: URLSearchParams): void {
  const texts = [path, ...[...query.entries()].flat()];
  if (texts.some((t) => (t.match(/\d{11}/g) ?? []).some(isValidNin))) throw errors.ninInUrl();
}

/**
 * The reason for a change, from an `X-Provenance` header: a Provenance resource (JSON) sent with a
 * write, as the FHIR spec describes; its `reason` text is recorded in Samplan's Provenance.
 */
function changeComment(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let provenance: { resourceType?: unknown; reason?: Array<{ text?: unknown; coding?: Array<{ display?: unknown }> }> };
  try {
    provenance = JSON.parse(raw) as typeof provenance;
  } catch {
    throw errors.header(ErrorCode.InvalidHeader, 'The X-Provenance header must be a Provenance resource in JSON');
  }
  if (provenance?.resourceType !== 'Provenance') throw errors.header(ErrorCode.InvalidHeader, 'The X-Provenance header must be a Provenance resource in JSON');
  // The client's JSON, unvalidated: a reason that is not a list of objects is refused, not read.
  const reasons = provenance.reason ?? [];
  if (!Array.isArray(reasons) || !reasons.every((r) => typeof r === 'object' && r !== null)) {
    throw errors.header(ErrorCode.InvalidHeader, 'The reason in X-Provenance must be a list of CodeableConcepts');
  }
  const texts = reasons.map((r) => r.text ?? (Array.isArray(r.coding) ? r.coding[0]?.display : undefined)).filter((t): t is string => typeof t === 'string' && t.trim() !== '');
  const text = texts.join('; ').trim();
  const problem = reasonProblem(text);
  if (problem) throw errors.header(ErrorCode.InvalidHeader, `The reason in X-Provenance ${problem}`);
  return text || undefined;
}

function send(reply: FastifyReply, res: FhirResponse, head: boolean, pretty: boolean): FastifyReply {
  reply.code(res.status);
  if (res.versionId) reply.header('etag', `W/"${res.versionId}"`);
  if (res.lastModified) reply.header('last-modified', res.lastModified.toUTCString());
  if (res.location) reply.header('location', res.location);
  for (const [k, v] of Object.entries(res.headers ?? {})) reply.header(k, v);
  if (res.body === undefined || head || res.status === 304 || res.status === 204) return reply.send();
  // A response may be something other than FHIR JSON (an export's NDJSON file) and say so.
  if (res.headers?.['content-type']) return reply.send(res.body);
  reply.header('content-type', FHIR_JSON);
  return reply.send(pretty ? JSON.stringify(JSON.parse(textOf(res.body)), null, 2) : res.body);
}

/** Request logs with method, path (no query string: it may hold personal data), status and time. */
class PrivacyLogController extends LogController {
  override incomingRequest(): void {}
  override routeNotFound(): void {}
  override requestCompleted(error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    const details = { method: req.method, path: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
    if (error) reply.log.error({ ...details, err: error }, 'request failed');
    else reply.log.info(details, 'request');
  }
}

/** What the security layer establishes about a request to the FHIR API. */
export interface RequestAuth {
  principal?: Principal;
  access: Access;
  patientIds?: readonly string[];
}

export interface ServerOptions {
  config: Config;
  engine: FhirEngine;
  logger: Logger;
  /** Establishes who is calling (401/400/403 as FhirError when refused). */
  authenticate: (req: AuthRequest) => Promise<RequestAuth>;
  /** Access for requests that need no credentials (the CapabilityStatement). */
  anonymous: Access;
  /** Registers further routes (the embedded identity provider, the web apps) on the server. */
  plugins?: Array<(app: FastifyInstance) => Promise<void>>;
  /** Readiness: false while starting or shutting down, or when the database does not answer. */
  ready: () => Promise<boolean>;
}

/**
 * Security headers: an API answer is data, never a page to render or frame. Helmet decides them;
 * they depend on nothing in the request, so its middleware runs once, here, and every answer gets
 * the result (run per request, its chain of middlewares was ~5 % of a read's CPU).
 */
function securityHeaders(): Record<string, string> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader: (name: string, value: unknown) => void (headers[name.toLowerCase()] = String(value)),
    removeHeader: (name: string) => void delete headers[name.toLowerCase()],
  };
  helmet({
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    hsts: { maxAge: 31_536_000, includeSubDomains: true },
  })({} as IncomingMessage, recorder as unknown as ServerResponse, (err) => {
    if (err) throw err;
  });
  return headers;
}

export function buildServer(options: ServerOptions): FastifyInstance {
  const { config, engine } = options;
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    logController: new PrivacyLogController(),
    childLoggerFactory: requestLogger,
    // The EHR's nhn-event-id (or X-Request-Id) correlates our logs, errors and audit records with theirs.
    genReqId: (req) => {
      for (const name of ['nhn-event-id', 'x-request-id']) {
        const given = req.headers[name];
        if (typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given)) return given;
      }
      return crypto.randomUUID();
    },
    // Our own parsing of the raw query string keeps repeated parameters and their order.
    routerOptions: { querystringParser: () => ({}) },
    return503OnClosing: true,
    // What Node's HTTP parser refuses (a broken request line or header, headers too large) never
    // reaches Fastify: answered here, on the socket, with an OperationOutcome like every error.
    clientErrorHandler: (error, socket) => {
      if (!socket.writable) return void socket.destroy();
      const overflow = (error as { code?: string }).code === 'HPE_HEADER_OVERFLOW';
      const fhir = errors.badRequest(overflow ? 'The request headers are too large' : 'The request is not valid HTTP/1.1');
      const body = JSON.stringify(fhir.outcome);
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: ${FHIR_JSON}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    },
    // Errors Fastify raises before routing (e.g. a malformed URL) get an OperationOutcome too.
    frameworkErrors: (error, _req, reply: FastifyReply) => {
      const fhir =
        error.code === 'FST_ERR_BAD_URL'
          ? errors.badRequest('The URL is not validly percent-encoded')
          : errors.badRequest(`The request could not be understood: ${error.message}`);
      void reply.code(fhir.status).header('content-type', FHIR_JSON).send(JSON.stringify(fhir.outcome));
    },
  });

  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id);
    done(null, payload);
  });

  // On the raw response: routes that answer on it themselves (the identity provider) get them too.
  const headers = Object.entries(securityHeaders());
  app.addHook('onRequest', (_req, reply, done) => {
    for (const [name, value] of headers) reply.raw.setHeader(name, value);
    done();
  });
  // Without an allowed origin there is nothing for CORS to say: no answer would carry an allowed
  // origin, so a browser refuses it either way, and the plugin's per-request work (3 % of a read)
  // and its headers are skipped. EHRs call from servers, which send no Origin.
  if (config.security.corsOrigins.length) {
    void app.register(cors, {
      origin: config.security.corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: [
        'authorization', 'dpop', 'content-type', 'accept', 'prefer', 'if-match', 'if-none-match', 'if-none-exist', 'if-modified-since',
        'x-request-id', 'x-provenance', 'nhn-user-role', 'nhn-source-system', 'nhn-patient-nin', 'nhn-event-id', 'nhn-access-basis', 'nhn-access-reason',
      ],
      exposedHeaders: ['etag', 'location', 'content-location', 'last-modified', 'expires', 'dpop-nonce', 'www-authenticate', 'x-request-id', 'retry-after', 'x-progress', CONSISTENCY_HEADER],
      maxAge: 600,
    });
  }
  // Per client: the same token is the same client session; without one, the address. A signed
  // token (a JWT) is named by its signature, unique to it and short; anything else by a hash (a
  // SHA-256 of every token was 1.4 % of a read's profile; finding the signature takes a fifth of it).
  void app.register(rateLimit, {
    max: config.security.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: (req) => {
      const auth = header(req, 'authorization');
      if (!auth) return `ip:${req.ip}`;
      const signature = auth.slice(auth.lastIndexOf('.') + 1);
      return signature.length < auth.length && SIGNATURE.test(signature) ? `jwt:${signature}` : `token:${hash('sha256', auth, 'base64url')}`;
    },
    allowList: (req) => req.url === '/healthz' || req.url === '/readyz',
    errorResponseBuilder: (_req, context) => {
      const err = errors.rateLimited(`Too many requests: at most ${context.max} a minute; try again in ${Math.ceil(context.ttl / 1000)} s`);
      return Object.assign(err, { statusCode: 429 });
    },
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string' }, (req, body, done) => {
    try {
      const contentType = header(req, 'content-type') ?? '';
      const version = /fhirVersion=([\d.]+)/i.exec(contentType)?.[1];
      if (version && !version.startsWith('4.0')) {
        throw errors.unsupportedMediaType(`fhirVersion=${version} is not supported; this server speaks FHIR R4 (4.0)`);
      }
      done(null, parseJsonBody(body as string, config.maxJsonDepth));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, new URLSearchParams(body as string));
  });

  app.setErrorHandler((error: FastifyError | FhirError, req, reply) => {
    let fhir: FhirError;
    if (error instanceof FhirError) fhir = error;
    else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') fhir = errors.payloadTooLarge(`The request body is larger than ${config.bodyLimit} bytes`);
    else if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || error.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') {
      fhir = errors.unsupportedMediaType(
        `Content-Type ${JSON.stringify((header(req, 'content-type') ?? '(none)').slice(0, 60))} is not supported; send application/fhir+json (or application/json-patch+json for PATCH)`,
      );
    } else if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') fhir = errors.invalidJson('The request body is empty');
    else if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) fhir = errors.badRequest(error.message);
    else fhir = engine.asFhirError(error, { requestId: req.id });
    const res: FhirResponse = { status: fhir.status, body: JSON.stringify(fhir.outcome), headers: fhir.headers };
    return send(reply, res, req.method === 'HEAD', false);
  });

  app.setNotFoundHandler((req, reply) => {
    const res = engine.failure(errors.unknownRoute(`Nothing is served at ${req.url.split('?')[0]?.slice(0, 200)}; the FHIR API is at /fhir`), {
      requestId: req.id,
    });
    return send(reply, res, req.method === 'HEAD', false);
  });

  const fhirHandler = async (req: FastifyRequest, reply: FastifyReply) => {
    const [rawPath, rawQuery = ''] = req.url.split('?', 2) as [string, string?];
    const query = new URLSearchParams(rawQuery);
    checkFormat(req, query);
    let path: string;
    try {
      path = decodeURIComponent(rawPath.replace(/^\/fhir\/?/, '').replace(/\/+$/, ''));
    } catch {
      throw errors.badRequest('The URL is not validly percent-encoded');
    }
    refuseNinInUrl(path, query);
    const pairs: Array<[string, string]> = [...query.entries()];
    let body = req.body;
    let paramsInBody = false;
    if (body instanceof URLSearchParams) {
      // POST _search: form parameters count as search parameters.
      pairs.push(...body.entries());
      paramsInBody = true;
      body = undefined;
    }
    const contentType = header(req, 'content-type') ?? '';
    const fhirReq: FhirRequest = {
      method: req.method as FhirMethod,
      path,
      query: pairs,
      ...(body !== undefined ? { body, bodyKind: /json-patch/i.test(contentType) ? 'json-patch' : 'resource' } : {}),
      ...parsePrefer(header(req, 'prefer')),
      ...(paramsInBody ? { paramsInBody } : {}),
    };
    const ifMatch = header(req, 'if-match');
    const ifNoneMatch = header(req, 'if-none-match');
    const ifModifiedSince = header(req, 'if-modified-since');
    const ifNoneExist = header(req, 'if-none-exist');
    if (ifMatch !== undefined) fhirReq.ifMatch = ifMatch;
    if (ifNoneMatch !== undefined) fhirReq.ifNoneMatch = ifNoneMatch;
    if (ifModifiedSince !== undefined) fhirReq.ifModifiedSince = ifModifiedSince;
    if (ifNoneExist !== undefined) fhirReq.ifNoneExist = ifNoneExist;
    const get = (name: string) => header(req, name);
    // The CapabilityStatement is public; everything else needs credentials.
    const auth: RequestAuth =
      path === 'metadata' && fhirReq.method !== 'POST'
        ? { access: options.anonymous }
        : await options.authenticate({ method: req.method, url: `${config.baseUrl}${rawPath.replace(/^\/fhir/, '')}`, header: get });
    const comment = changeComment(header(req, 'x-provenance'));
    const ctx: RequestContext = {
      requestId: req.id,
      baseUrl: config.baseUrl,
      access: auth.access,
      ...(comment ? { comment } : {}),
      ...(auth.principal ? { principal: auth.principal } : {}),
      ...(auth.patientIds ? { patientIds: auth.patientIds } : {}),
    };
    // With a read replica: the client's consistency token in, a new one out after a write (src/store/replica.ts).
    const { result: res, token } = await withConsistency(header(req, CONSISTENCY_HEADER), () => engine.handle(fhirReq, ctx));
    if (token) reply.header(CONSISTENCY_HEADER, token);
    return send(reply, res, req.method === 'HEAD', query.get('_pretty') === 'true');
  };

  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
  // Registered as a plugin so it loads after the hardening plugins and gets their route hooks.
  void app.register(async (api) => {
    api.route({ method: [...methods], url: '/fhir', handler: fhirHandler, exposeHeadRoute: false });
    api.route({ method: [...methods], url: '/fhir/*', handler: fhirHandler, exposeHeadRoute: false });
    registerHealth(api, options.ready);
  });
  for (const plugin of options.plugins ?? []) void app.register(plugin);
  return app;
}
