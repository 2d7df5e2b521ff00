/**
 * patch (https://hl7.org/fhir/R4/http.html#patch): JSON Patch (RFC 6902, applied with
 * fast-json-patch) or FHIRPath Patch (a Parameters body). The patch is applied to the current
 * version while its row is locked, then the result goes through the write pipeline like any
 * update (validation, If-Match, no new version when nothing changes).
 */
import type { Resource } from '@medplum/fhirtypes';
import jsonPatch from 'fast-json-patch';
import { inTransaction } from '../../store/db.js';
import { ErrorCode, errors } from '../outcomes.js';
import { applyFhirPathPatch, isFhirPathPatch } from '../patch/fhirpath-patch.js';
import { versionResponse } from '../respond.js';
import type { Call, Services } from '../services.js';
import type { FhirResponse } from '../types.js';
import { findSingle } from './conditional.js';

function applyJsonPatch(current: Resource, operations: unknown): Resource {
  if (!Array.isArray(operations)) throw errors.badRequest('A JSON Patch body must be an array of operations');
  let problem: jsonPatch.JsonPatchError | undefined;
  try {
    problem = jsonPatch.validate(operations as jsonPatch.Operation[], current);
  } catch {
    // fast-json-patch throws (a TypeError), rather than reports, a path through the prototype.
    throw errors.badRequest('A JSON Patch path or from may not go through __proto__ or constructor/prototype');
  }
  if (problem) {
    throw errors.badRequest(`JSON Patch operation ${problem.index ?? '?'} cannot be applied: ${problem.message.split('\n')[0]}`);
  }
  try {
    return jsonPatch.applyPatch(current, operations as jsonPatch.Operation[], false, false).newDocument;
  } catch (err) {
    throw errors.badRequest(`JSON Patch cannot be applied: ${(err as Error).message.split('\n')[0]}`);
  }
}

function patcher(call: Call, type: string, id: string): (current: Resource | undefined) => Resource {
  const body = call.req.body;
  return (current) => {
    if (!current) throw errors.notFound(type, id);
    let patched: Resource;
    if (call.req.bodyKind === 'json-patch') patched = applyJsonPatch(current, body);
    else if (isFhirPathPatch(body)) patched = applyFhirPathPatch(current, body);
    else throw errors.unsupportedMediaType('PATCH takes a JSON Patch (application/json-patch+json) or a FHIRPath Patch Parameters resource (application/fhir+json)');
    if (patched?.resourceType !== type) throw errors.badRequest('A patch may not change the resourceType', 'resourceType');
    if (patched.id !== id) throw errors.badRequest('A patch may not change the id', 'id');
    return patched;
  };
}

export async function patch(s: Services, call: Call, type: string, id: string): Promise<FhirResponse> {
  const { req, ctx } = call;
  return inTransaction(call.q, async (tx) => {
    const result = await s.writer.update(tx, ctx, type, id, patcher(call, type, id), {
      method: 'PATCH',
      ...(req.ifMatch !== undefined ? { ifMatch: req.ifMatch } : {}),
    });
    return versionResponse(200, result.version, req, ctx, {
      location: true,
      ...(result.changed ? {} : { message: `${type}/${id} was not changed: the patch gives the current content`, code: ErrorCode.NoChanges }),
    });
  });
}

export async function conditionalPatch(s: Services, call: Call, type: string): Promise<FhirResponse> {
  return inTransaction(call.q, async (tx) => {
    const match = await findSingle(tx, call.ctx, type, call.req.query, 'Conditional patch');
    if (!match) throw errors.noMatch(`No ${type} matches the conditional patch criteria`);
    return patch(s, { ...call, q: tx }, type, match.id);
  });
}
