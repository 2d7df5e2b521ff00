/**
 * The FHIR engine: resolves a plain FhirRequest to the interaction that handles it, lets the
 * caller's access rules refuse it before any data is touched, runs it, and records it in the audit
 * trail — writes in their own database transaction, reads before their data is returned. It knows
 * nothing of HTTP, so the same engine serves the HTTP adapter, each entry of a batch or
 * transaction, and in-process callers (seeding, tests).
 */
import type { AuditWriter } from '../security/audit.js';
import { DatabaseUnavailableError, forReading, isRetryable, type Queryable, textOf, type Transaction } from '../store/db.js';
import type { Interaction } from './access.js';
import { definitions } from './definitions.js';
import { auditLogRead, auditLogSearch } from './interactions/audit-log.js';
import { processBundle } from './interactions/bundle.js';
import { capabilityStatement, type ServerInfo } from './interactions/capabilities.js';
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

/** What a request resolved to: the interaction (as the FHIR restful-interaction code) and how to run it. */
interface Resolved {
  /** restful-interaction code, for the audit record: read, search-type, transaction, … */
  code: string;
  /** The interaction class access rules are written for. */
  interaction: Interaction;
  type: string | undefined;
  /** False when the request shows no patient data and is left out of the audit trail. */
  audited?: boolean;
  /** The operation run, for the audit record. */
  operation?: { name: string; definition: string };
  run(call: Call): Promise<FhirResponse>;
}

const CHECKED_AS: Record<string, Interaction> = {
  read: 'read',
  vread: 'read',
  'search-type': 'search',
  'search-system': 'search',
  'history-instance': 'history',
  'history-type': 'history',
  'history-system': 'history',
  create: 'create',
  update: 'update',
  patch: 'patch',
  delete: 'delete',
  capabilities: 'capabilities',
  status: 'status',
  operation: 'operation',
  transaction: 'operation',
  batch: 'operation',
};

/** Interactions that only read resources: outside a transaction they may run on a read replica. */
const READ_ONLY = new Set(['read', 'vread', 'search-type', 'search-system', 'history-instance', 'history-type', 'history-system']);

export class FhirEngine {
  private readonly operations = new Map<string, Operation[]>();

  constructor(
    readonly services: Services,
    operations: Operation[],
    private readonly log: EngineLogger,
    private readonly server: ServerInfo,
    private readonly audit?: AuditWriter,
  ) {
    for (const op of operations) this.operations.set(op.name, [...(this.operations.get(op.name) ?? []), op]);
  }

  /** The registered operations: what the CapabilityStatement lists and the OperationDefinitions describe. */
  registeredOperations(): Operation[] {
    return [...this.operations.values()].flat();
  }

  /** Handles one request; never throws: failures become OperationOutcome responses. */
  async handle(req: FhirRequest, ctx: RequestContext, q: Queryable = this.services.db): Promise<FhirResponse> {
    let resolved: Resolved | undefined;
    // A deadlock between concurrent writers aborts one of them: run it again, a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        resolved = this.resolve(req);
        ctx.access.checkInteraction(resolved.interaction, resolved.type);
        return await this.execute(resolved, { req, ctx, q });
      } catch (err) {
        if (attempt < 3 && isRetryable(err) && !(q as Partial<Transaction>).inTransaction) continue;
        const failure = this.failure(err, ctx);
        if (resolved && this.audited(resolved, ctx)) {
          try {
            await this.audit?.record({
              ctx,
              interaction: resolved.code,
              ...(resolved.operation ? { operation: resolved.operation } : {}),
              outcome: failure.status < 500 ? 'refused' : 'failed',
              outcomeText: failureText(failure),
              entities: [],
              queryParams: req.query.map(([k]) => k),
            });
          } catch (auditError) {
            return this.failure(this.auditFailure(auditError, ctx), ctx);
          }
        }
        return failure;
      }
    }
  }

  /** Runs a resolved request: writes in one transaction with their audit record, reads with theirs stored first. */
  private async execute(resolved: Resolved, call: Call): Promise<FhirResponse> {
    const { ctx, req } = call;
    // Reads (also POST _search) outside a transaction may be served by a caught-up replica (src/store/replica.ts).
    const readOnly = READ_ONLY.has(resolved.code);
    if (readOnly) call = { ...call, q: forReading(call.q) };
    if (!this.audited(resolved, ctx)) return resolved.run(call);
    const record = (res: FhirResponse) => ({
      ctx,
      interaction: resolved.code,
      ...(resolved.operation ? { operation: resolved.operation } : {}),
      outcome: 'success' as const,
      entities: res.touched ?? [],
      ...(resolved.interaction === 'search' ? { queryParams: req.query.map(([k]) => k) } : {}),
    });
    const stored = (q: Transaction, res: FhirResponse) => {
      this.audit?.recordIn(q, record(res), (err) => this.auditFailure(err, ctx));
      return res;
    };
    // Called inside the caller's transaction (seeding, in-process callers): the record joins it.
    if ((call.q as Partial<Transaction>).inTransaction) return stored(call.q as Transaction, await resolved.run(call));
    if (req.method !== 'GET' && req.method !== 'HEAD' && !readOnly) {
      return this.services.db.transaction(async (tx) => stored(tx, await resolved.run({ ...call, q: tx })));
    }
    const res = await resolved.run(call);
    try {
      await this.audit?.record(record(res));
    } catch (err) {
      throw this.auditFailure(err, ctx);
    }
    return res;
  }

  /**
   * Requests by a person about patient data are recorded. The status check, the metadata, the
   * access log itself and a batch as such (each entry is recorded on its own) are not.
   */
  private audited(resolved: Resolved, ctx: RequestContext): boolean {
    const p = ctx.principal;
    if (!this.audit || !p || p.kind === 'machine' || resolved.audited === false) return false;
    return !['capabilities', 'batch', 'status'].includes(resolved.code) && resolved.type !== 'AuditEvent';
  }

  private auditFailure(err: unknown, ctx: Pick<RequestContext, 'requestId'>): FhirError {
    if (err instanceof FhirError) return err;
    // Refused all the same, but the database is down: 503 (try again), like the request itself.
    if (err instanceof DatabaseUnavailableError) return errors.unavailable();
    this.log.error({ err, requestId: ctx.requestId }, 'the audit record could not be stored; the request was refused');
    return errors.auditFailed();
  }

  /** The response for a failure: its own OperationOutcome, 503 for an unreachable database, else a logged 500. */
  failure(err: unknown, ctx: Pick<RequestContext, 'requestId'>): FhirResponse {
    const error = this.asFhirError(err, ctx);
    return { ...outcomeResponse(error.status, error.outcome), headers: error.headers };
  }

  asFhirError(err: unknown, ctx: Pick<RequestContext, 'requestId'>): FhirError {
    if (err instanceof FhirError) return err;
    if (err instanceof DatabaseUnavailableError) return errors.unavailable();
    this.log.error({ err, requestId: ctx.requestId }, 'unexpected error in the FHIR engine');
    return errors.internal();
  }

  /**
   * Resolves, checks and runs a request without catching or auditing: for the entries of a
   * transaction, which roll back together on the first failure and are audited as one.
   */
  async route(call: Call): Promise<FhirResponse> {
    const resolved = this.resolve(call.req);
    call.ctx.access.checkInteraction(resolved.interaction, resolved.type);
    return resolved.run(call);
  }

  private resolve(req: FhirRequest): Resolved {
    const s = this.services;
    const segments = req.path === '' ? [] : req.path.split('/');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const [first, second, third, fourth, ...rest] = segments;
    const to = (code: string, type: string | undefined, run: (call: Call) => Promise<FhirResponse>): Resolved => ({
      code,
      interaction: CHECKED_AS[code] as Interaction,
      type,
      run,
    });
    if (rest.length) throw errors.unknownRoute(`There is no FHIR endpoint at /${req.path.slice(0, 200)}`);

    if (first === undefined) {
      if (method === 'GET') return to('search-system', undefined, (c) => search(s, c, undefined));
      if (method === 'POST') {
        const kind = (req.body as { type?: unknown } | undefined)?.type === 'batch' ? 'batch' : 'transaction';
        return to(kind, undefined, (c) => processBundle(this, c));
      }
      throw errors.methodNotAllowed(req.method, 'the FHIR base URL');
    }
    if (first === 'metadata' && second === undefined) {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, 'metadata');
      return to('capabilities', undefined, async (c) => ({
        status: 200,
        body: capabilityStatement(c.ctx, this.registeredOperations(), this.server),
      }));
    }
    if (first === '_history' && second === undefined) {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, '_history');
      return to('history-system', undefined, (c) => history(s, c));
    }
    if (first === '_search' && second === undefined) {
      if (method !== 'POST') throw errors.methodNotAllowed(req.method, '_search');
      return to('search-system', undefined, (c) => search(s, c, undefined));
    }
    if (first.startsWith('$') && second === undefined) return this.operation(req, first, {});

    const type = first;
    if (!definitions().isResourceType(type)) throw errors.unknownType(type.slice(0, 64));
    if (type === 'AuditEvent') return this.auditLog(req, second, third);
    if (second === undefined) {
      switch (method) {
        case 'GET':
          return to('search-type', type, (c) => search(s, c, type));
        case 'POST':
          return to('create', type, (c) => create(s, c, type));
        case 'PUT':
          return to('update', type, (c) => conditionalUpdate(s, c, type));
        case 'DELETE':
          return to('delete', type, (c) => conditionalDelete(s, c, type));
        case 'PATCH':
          return to('patch', type, (c) => conditionalPatch(s, c, type));
      }
    }
    if (second === '_search' && third === undefined) {
      if (method !== 'POST') throw errors.methodNotAllowed(req.method, `${type}/_search`);
      return to('search-type', type, (c) => search(s, c, type));
    }
    if (second === '_history' && third === undefined) {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, `${type}/_history`);
      return to('history-type', type, (c) => history(s, c, type));
    }
    if (second?.startsWith('$') && third === undefined) return this.operation(req, second, { type });

    const id = second as string;
    if (!ID_RE.test(id)) throw errors.badRequest(`"${id.slice(0, 80)}" is not a valid resource id (1–64 of A–Z, a–z, 0–9, '-' and '.')`);
    if (third === undefined) {
      switch (method) {
        case 'GET':
          return to('read', type, (c) => read(s, c, type, id));
        case 'PUT':
          return to('update', type, (c) => update(s, c, type, id));
        case 'PATCH':
          return to('patch', type, (c) => patch(s, c, type, id));
        case 'DELETE':
          return to('delete', type, (c) => remove(s, c, type, id));
        default:
          throw errors.methodNotAllowed(req.method, `${type}/${id}`);
      }
    }
    if (third === '_history') {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, `${type}/${id}/_history`);
      return fourth === undefined
        ? to('history-instance', type, (c) => history(s, c, type, id))
        : to('vread', type, (c) => vread(s, c, type, id, fourth));
    }
    if (third.startsWith('$') && fourth === undefined) return this.operation(req, third, { type, id });
    if (type === 'Patient' && definitions().isResourceType(third) && fourth === undefined) {
      if (method !== 'GET') throw errors.methodNotAllowed(req.method, 'a compartment search');
      return to('search-type', third, (c) => search(s, c, third, { compartment: `Patient/${id}` }));
    }
    throw errors.unknownRoute(`There is no FHIR endpoint at /${req.path.slice(0, 200)}`);
  }

  /** The patient's access log: AuditEvents are read-only and served from the audit trail. */
  private auditLog(req: FhirRequest, id: string | undefined, extra: string | undefined): Resolved {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const readOnly = () => errors.readOnly('Audit records cannot be created, changed or deleted through the API');
    if (extra !== undefined) throw errors.unknownRoute('There is no such AuditEvent endpoint');
    if (id === undefined || id === '_search') {
      if (method !== 'GET' && !(method === 'POST' && id === '_search')) throw readOnly();
      return { code: 'search-type', interaction: 'search', type: 'AuditEvent', run: (c) => auditLogSearch(this.services, c) };
    }
    if (method !== 'GET') throw readOnly();
    return { code: 'read', interaction: 'read', type: 'AuditEvent', run: (c) => auditLogRead(this.services, c, id) };
  }

  private operation(req: FhirRequest, segment: string, target: { type?: string; id?: string }): Resolved {
    const name = segment.slice(1);
    const level = target.id ? 'instance' : target.type ? 'typeLevel' : 'system';
    const op = this.operations
      .get(name)
      ?.find((o) => o[level] && (o.type === undefined || o.type === target.type));
    if (!op) throw errors.unknownRoute(`The operation $${name.slice(0, 64)} is not supported here`);
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (method !== 'POST' && !(method === 'GET' && op.get) && !(method === 'DELETE' && op.delete)) throw errors.methodNotAllowed(req.method, `$${name}`);
    const interaction = op.interaction ?? 'operation';
    return {
      code: interaction === 'status' ? 'status' : 'operation',
      interaction,
      type: target.type,
      audited: op.audited?.(req) ?? true,
      operation: { name: op.name, definition: op.definition },
      run: (c) => op.handler(this.services, c, target),
    };
  }
}

function failureText(res: FhirResponse): string | undefined {
  try {
    return (JSON.parse(textOf(res.body ?? '{}')) as { issue?: Array<{ details?: { text?: string } }> }).issue?.[0]?.details?.text;
  } catch {
    return undefined;
  }
}
