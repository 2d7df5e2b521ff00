/** Building FhirResponses for resources and outcomes, honouring `Prefer: return=`. */
import type { OperationOutcome } from '@medplum/fhirtypes';
import { type ErrorCode, informational } from './outcomes.js';
import type { FhirRequest, FhirResponse, RequestContext } from './types.js';
import type { WrittenVersion } from './writer.js';

export function outcomeResponse(status: number, outcome: OperationOutcome): FhirResponse {
  return { status, body: JSON.stringify(outcome) };
}

/** The answer to a write or read of one version: ETag, Last-Modified, Location and the body the client prefers. */
export function versionResponse(
  status: number,
  version: WrittenVersion,
  req: FhirRequest,
  ctx: RequestContext,
  options: { location?: boolean; message?: string; code?: ErrorCode } = {},
): FhirResponse {
  const response: FhirResponse = {
    status,
    versionId: String(version.version),
    lastModified: version.lastUpdated,
    touched: [{ type: version.type, id: version.id, version: version.version }],
  };
  if (options.location) response.location = `${ctx.baseUrl}/${version.type}/${version.id}/_history/${version.version}`;
  const prefer = req.preferReturn ?? 'representation';
  if (prefer === 'representation' && version.content !== null) response.body = version.content;
  else if (prefer === 'OperationOutcome') {
    response.body = JSON.stringify(informational(options.message ?? `${version.type}/${version.id} is at version ${version.version}`, options.code));
  }
  return response;
}
