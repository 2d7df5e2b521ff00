/**
 * create, update, delete and their conditional forms (https://hl7.org/fhir/R4/http.html#create,
 * #update, #delete, #ccreate, #cond-update, #3.1.0.7.1). Each runs in one database transaction
 * (or joins the transaction of the Bundle it belongs to) through the write pipeline.
 */
import type { Resource } from '@medplum/fhirtypes';
import { inTransaction } from '../../store/db.js';
import { visibility } from '../access.js';
import { ErrorCode, errors, informational } from '../outcomes.js';
import { outcomeResponse, versionResponse } from '../respond.js';
import type { Call, Services } from '../services.js';
import type { FhirRequest, FhirResponse } from '../types.js';
import type { WrittenVersion } from '../writer.js';
import { findSingle, parseCriteria } from './conditional.js';

/** The body as a resource of `type`, or a 400 saying what is wrong with it. */
export function bodyResource(req: FhirRequest, type: string): Resource {
  const body = req.body;
  if (body === undefined) throw errors.badRequest(`The request needs a ${type} resource as its body`);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw errors.badRequest(`The body must be a JSON object (a ${type} resource)`);
  }
  const resourceType = (body as { resourceType?: unknown }).resourceType;
  if (typeof resourceType !== 'string') throw errors.badRequest('The resource has no resourceType', 'resourceType');
  if (resourceType !== type) {
    throw errors.badRequest(`The body is a ${resourceType.slice(0, 64)} resource, but the URL is for ${type}`, 'resourceType');
  }
  return body as Resource;
}

export async function create(s: Services, call: Call, type: string): Promise<FhirResponse> {
  const { req, ctx } = call;
  // The spec says a client-supplied id on create is ignored: the server assigns one.
  const { id: _ignored, ...resource } = bodyResource(req, type) as Resource & { id?: string };
  return inTransaction(call.q, async (tx) => {
    if (req.ifNoneExist !== undefined) {
      const existing = await findSingle(tx, ctx, type, parseCriteria(req.ifNoneExist), 'If-None-Exist');
      if (existing) {
        const row = await s.store.read(tx, type, existing.id, visibility(ctx.access));
        if (row?.content) {
          return versionResponse(200, { ...row, content: row.content }, req, ctx, {
            message: `${type}/${row.id} already matches the If-None-Exist criteria; nothing was created`,
          });
        }
      }
    }
    const result = await s.writer.create(tx, ctx, resource as Resource);
    return versionResponse(201, result.version, req, ctx, { location: true, message: `Created ${type}/${result.version.id}` });
  });
}

export async function update(s: Services, call: Call, type: string, id: string): Promise<FhirResponse> {
  const { req, ctx } = call;
  const resource = bodyResource(req, type);
  if (resource.id === undefined) throw errors.badRequest(`The ${type} in the body must have an id (it should be "${id}")`, 'id');
  if (resource.id !== id) throw errors.idMismatch(`The id in the body ("${String(resource.id).slice(0, 64)}") does not match the id in the URL ("${id}")`);
  return inTransaction(call.q, async (tx) => {
    const result = await s.writer.update(tx, ctx, type, id, resource, req.ifMatch !== undefined ? { ifMatch: req.ifMatch } : {});
    return versionResponse(result.created ? 201 : 200, result.version, req, ctx, {
      location: true,
      message: result.changed ? `Updated ${type}/${id}` : `${type}/${id} was not changed: the content is the same as the current version`,
      ...(result.changed ? {} : { code: ErrorCode.NoChanges }),
    });
  });
}

export async function conditionalUpdate(s: Services, call: Call, type: string): Promise<FhirResponse> {
  const { req, ctx } = call;
  const resource = bodyResource(req, type);
  return inTransaction(call.q, async (tx) => {
    const match = await findSingle(tx, ctx, type, req.query, 'Conditional update');
    if (match && resource.id !== undefined && resource.id !== match.id) {
      throw errors.idMismatch(`The id in the body ("${String(resource.id).slice(0, 64)}") is not the id of the matching ${type} ("${match.id}")`);
    }
    const id = match?.id ?? resource.id;
    const options = req.ifMatch !== undefined ? { ifMatch: req.ifMatch } : {};
    const result = id
      ? await s.writer.update(tx, ctx, type, id, { ...resource, id }, options)
      : await s.writer.create(tx, ctx, resource);
    return versionResponse(result.created ? 201 : 200, result.version, req, ctx, {
      location: true,
      ...(result.changed ? {} : { message: `${type}/${id} was not changed: the content is the same as the current version`, code: ErrorCode.NoChanges }),
    });
  });
}

export async function remove(s: Services, call: Call, type: string, id: string): Promise<FhirResponse> {
  const { req } = call;
  const deleted = await inTransaction(call.q, (tx) =>
    s.writer.delete(tx, call.ctx, type, id, req.ifMatch !== undefined ? { ifMatch: req.ifMatch } : {}),
  );
  return deleteResponse(req, deleted ? `Deleted ${type}/${id}` : `${type}/${id} did not exist or was already deleted`, deleted);
}

export async function conditionalDelete(s: Services, call: Call, type: string): Promise<FhirResponse> {
  const { req, ctx } = call;
  return inTransaction(call.q, async (tx) => {
    const match = await findSingle(tx, ctx, type, req.query, 'Conditional delete');
    if (!match) return deleteResponse(req, `No ${type} matched the criteria; nothing was deleted`);
    const deleted = await s.writer.delete(tx, ctx, type, match.id);
    return deleteResponse(req, `Deleted ${type}/${match.id}`, deleted);
  });
}

function deleteResponse(req: FhirRequest, message: string, deleted?: WrittenVersion): FhirResponse {
  const response =
    req.preferReturn === 'OperationOutcome' ? outcomeResponse(200, informational(message)) : ({ status: 204 } as FhirResponse);
  if (deleted) {
    response.versionId = String(deleted.version);
    response.touched = [{ type: deleted.type, id: deleted.id, version: deleted.version }];
  }
  return response;
}
