/**
 * $validate (https://hl7.org/fhir/R4/resource-operation-validate.html) at type and instance level:
 * the body is the resource, or a Parameters with `resource`, `mode` and `profile`. Answers 200
 * with an OperationOutcome that lists every issue, or says all is well.
 */
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { visibility } from '../access.js';
import { errors, informational, outcome } from '../outcomes.js';
import type { Operation } from '../operations.js';
import { outcomeResponse } from '../respond.js';
import type { Call, Services } from '../services.js';
import type { FhirResponse, ResourceRef } from '../types.js';
import { validateResource } from '../validation/validator.js';
import { bodyResource } from './write.js';

function fromParameters(body: Parameters): { resource?: Resource; mode?: string; profile?: string } {
  const find = (name: string) => body.parameter?.find((p) => p.name === name);
  const resource = find('resource')?.resource;
  const mode = find('mode')?.valueCode;
  const profile = find('profile')?.valueUri ?? find('profile')?.valueCanonical;
  return { ...(resource ? { resource } : {}), ...(mode ? { mode } : {}), ...(profile ? { profile } : {}) };
}

async function handler(s: Services, call: Call, target: { type?: string; id?: string }): Promise<FhirResponse> {
  const type = target.type as string;
  const body = call.req.body as { resourceType?: string } | undefined;
  let { resource, mode, profile } =
    body?.resourceType === 'Parameters' && type !== 'Parameters' ? fromParameters(body as Parameters) : { resource: undefined, mode: undefined, profile: undefined };
  if (!resource && body !== undefined && body?.resourceType !== 'Parameters') resource = bodyResource(call.req, type);
  profile ??= call.req.query.find(([k]) => k === 'profile')?.[1];
  mode ??= call.req.query.find(([k]) => k === 'mode')?.[1];
  if (mode && !['create', 'update', 'delete'].includes(mode)) throw errors.badRequest('mode must be create, update or delete');
  const touched: ResourceRef[] = [];
  if (target.id) {
    const stored = await s.store.read(call.q, type, target.id, visibility(call.ctx.access));
    if (mode === 'delete' || !resource) {
      if (!stored || stored.deleted || !stored.content) throw errors.notFound(type, target.id);
      if (mode === 'delete') return outcomeResponse(200, informational(`${type}/${target.id} can be deleted`));
      resource = JSON.parse(stored.content) as Resource;
      touched.push({ type, id: target.id, version: stored.version });
    }
  }
  if (!resource) throw errors.badRequest(`$validate needs a ${type} resource in the body`);
  if (resource.resourceType !== type) throw errors.badRequest(`The resource is a ${resource.resourceType}, not a ${type}`, 'resourceType');
  if (mode === 'update' && target.id && resource.id !== target.id) {
    throw errors.idMismatch(`The id in the resource does not match ${type}/${target.id}`);
  }
  const issues = validateResource(resource, profile ? { profile } : {});
  return { ...outcomeResponse(200, issues.length ? outcome(issues) : informational('Validation passed: no issues found')), touched };
}

export const validateOperation: Operation = {
  name: 'validate',
  definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
  system: false,
  typeLevel: true,
  instance: true,
  get: false,
  handler,
};
