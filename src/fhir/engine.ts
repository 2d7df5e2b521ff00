/**
 * The FHIR engine: routes a plain FhirRequest to the interaction that handles it and turns every
 * failure into an OperationOutcome response. It knows nothing of HTTP, so the same engine serves
 * the HTTP adapter, each entry of a batch or transaction, and in-process callers (seeding, tests).
 */
import { DatabaseUnavailableError, isRetryable, type Queryable, type Transaction } from '../store/db.js';
import { definitions } from './definitions.js';
import { processBundle } from './interactions/bundle.js';
import { capabilityStatement } from './interactions/capabilities.js';
import { history } from './interactions/history.js';
import { conditionalPatch, patch } from './interactions/patch.js';
import { read, vread } from './interactions/read.js';
import { search } from './interactions/search.js';
import { conditionalDelete, conditionalUpdate, create, remove, update } from './interactions/write.js';
import type { Operation } from './operations.js';
import { errors, FhirError } from './outcomes.js';
import { ID_RE } from './references.js';
import { outcomeResponse } from './respond.js';
import type { Call, Services } from './services.js';
import type { FhirRequest, FhirResponse, RequestContext } from './types.js';

export interface EngineLogger {
  error(details: Record<string, unknown>, message: string): void;
}

export class FhirEngine {
  private readonly operations = new Map<string, Operation[]>();

  constructor(
    readonly services: Services,
    operations: Operation[],
    private readonly log: EngineLogger,
    private readonly software: { name: string; version: string },
  ) {
    for (const op of operations) this.operations.set(op.name, [...(this.operations.get(op.name) ?? []), op]);
  }

  /** Handles one request; never throws: failures become OperationOutcome responses. */
  async handle(req: FhirRequest, ctx: RequestContext, q: Queryable = this.services.db): Promise<FhirResponse> {
    // A deadlock between concurrent writers aborts one of them: run it again, a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.route({ req, ctx, q });
      } catch (err) {
        if (attempt < 3 && isRetryable(err) && !(q as Partial<Transaction>).inTransaction) continue;
        return this.failure(err, ctx);
      }
    }
  }

  /** The response for a failure: its own OperationOutcome, 503 for an unreachable database, else a logged 500. */
  failure(err: unknown, ctx: RequestContext): FhirResponse {
    const error = this.asFhirError(err, ctx);
    return { ...outcomeResponse(error.status, error.outcome), headers: error.headers };
  }

  asFhirError(err: unknown, ctx: RequestContext): FhirError {
    if (err instanceof FhirError) return err;
    if (err instanceof DatabaseUnavailableError) return errors.unavailable();
    this.log.error({ err, requestId: ctx.requestId }, 'unexpected error in the FHIR engine');
    return errors.internal();
  }

  /** Routes without catching, so a transaction can roll back on the first failing entry. */
  async route(call: Call): Promise<FhirResponse> {
    const { req } = call;
    const s = this.services;
    const segments = req.path === '' ? [] : req.path.split('/');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const [first, second, third, fourth, ...rest] = segments;
    if (rest.length) throw errors.unknownRoute(`There is no FHIR endpoint at /${req.path.slice(0, 200)}`);

    if (first === undefined) {
      if (method === 'GET') return search(s, call, undefined);
      if (method === 'POST') return processBundle(this, call);
      throw errors.methodNotAllowed(req.method, 'the FHIR base URL');
    }
    if (first === 'metadata' && second === undefined) {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, 'metadata');
      return { status: 200, body: capabilityStatement(call.ctx, [...this.operations.values()].flat(), this.software) };
    }
    if (first === '_history' && second === undefined) {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, '_history');
      return history(s, call);
    }
    if (first === '_search' && second === undefined) {
      if (method !== 'POST') throw errors.methodNotAllowed(req.method, '_search');
      return search(s, call, undefined);
    }
    if (first.startsWith('$') && second === undefined) return this.operation(call, first, {});

    const type = first;
    if (!definitions().isResourceType(type)) throw errors.unknownType(type.slice(0, 64));
    if (second === undefined) {
      switch (method) {
        case 'GET':
          return search(s, call, type);
        case 'POST':
          return create(s, call, type);
        case 'PUT':
          return conditionalUpdate(s, call, type);
        case 'DELETE':
          return conditionalDelete(s, call, type);
        case 'PATCH':
          return conditionalPatch(s, call, type);
      }
    }
    if (second === '_search' && third === undefined) {
      if (method !== 'POST') throw errors.methodNotAllowed(req.method, `${type}/_search`);
      return search(s, call, type);
    }
    if (second === '_history' && third === undefined) {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, `${type}/_history`);
      return history(s, call, type);
    }
    if (second?.startsWith('$') && third === undefined) return this.operation(call, second, { type });

    const id = second as string;
    if (!ID_RE.test(id)) throw errors.badRequest(`"${id.slice(0, 80)}" is not a valid resource id (1–64 of A–Z, a–z, 0–9, '-' and '.')`);
    if (third === undefined) {
      switch (method) {
        case 'GET':
          return read(s, call, type, id);
        case 'PUT':
          return update(s, call, type, id);
        case 'PATCH':
          return patch(s, call, type, id);
        case 'DELETE':
          return remove(s, call, type, id);
        default:
          throw errors.methodNotAllowed(req.method, `${type}/${id}`);
      }
    }
    if (third === '_history') {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, `${type}/${id}/_history`);
      return fourth === undefined ? history(s, call, type, id) : vread(s, call, type, id, fourth);
    }
    if (third.startsWith('$') && fourth === undefined) return this.operation(call, third, { type, id });
    if (type === 'Patient' && definitions().isResourceType(third) && fourth === undefined) {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, `a compartment search`);
      return search(s, call, third, { compartment: `Patient/${id}` });
    }
    throw errors.unknownRoute(`There is no FHIR endpoint at /${req.path.slice(0, 200)}`);
  }

  private operation(call: Call, segment: string, target: { type?: string; id?: string }): Promise<FhirResponse> {
    const name = segment.slice(1);
    const level = target.id ? 'instance' : target.type ? 'typeLevel' : 'system';
    const op = this.operations
      .get(name)
      ?.find((o) => o[level] && (o.type === undefined || o.type === target.type));
    if (!op) throw errors.unknownRoute(`The operation $${name.slice(0, 64)} is not supported here`);
    const method = call.req.method === 'HEAD' ? 'GET' : call.req.method;
    if (method !== 'POST' && !(method === 'GET' && op.get)) throw errors.methodNotAllowed(call.req.method, `$${name}`);
    return op.handler(this.services, call, target);
  }
}
