/**
 * The engine's plain request and response. HTTP (or a Bundle entry, or an in-process caller)
 * builds a FhirRequest; the engine answers with a FhirResponse whose body is already JSON text,
 * so stored resources are served byte for byte without being parsed and re-serialised.
 */
import type { Principal } from '../security/principal.js';
import type { Access } from './access.js';
import type { StoredText } from '../store/db.js';

export type FhirMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Search and control parameters in the order given, as [name, value] pairs. */
export type QueryParams = ReadonlyArray<readonly [string, string]>;

export type PreferReturn = 'minimal' | 'representation' | 'OperationOutcome';

export interface FhirRequest {
  method: FhirMethod;
  /** Path below the FHIR base without leading slash, e.g. `Patient/123/_history/2`; '' for the base. */
  path: string;
  query: QueryParams;
  /** Parsed JSON body (a resource, a JSON Patch array, or a Bundle). */
  body?: unknown;
  /** What the body is: a FHIR resource or a JSON Patch document. */
  bodyKind?: 'resource' | 'json-patch';
  /** Search parameters came in a POST body: they must not end up in paging links (URLs). */
  paramsInBody?: boolean;
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifNoneExist?: string;
  preferReturn?: PreferReturn;
  preferHandling?: 'strict' | 'lenient';
  /** `Prefer: respond-async`: the client accepts a 202 and polls (bulk export). */
  preferAsync?: boolean;
}

/** A resource version a request read or wrote (for the audit record). */
export interface ResourceRef {
  type: string;
  id: string;
  version?: number;
}

export interface FhirResponse {
  status: number;
  /** JSON text of the resource or Bundle or OperationOutcome, if any: as bytes when served from stored bytes. */
  body?: StoredText;
  location?: string;
  versionId?: string;
  lastModified?: Date;
  headers?: Record<string, string>;
  /** The resources the request read or wrote, for the audit record; never sent to the client. */
  touched?: ResourceRef[];
}

/**
 * Who is asking and why, made once per request by the security layer and passed explicitly to
 * every layer: the engine checks interactions and the data layer filters every read with it.
 */
export interface RequestContext {
  /** Correlates log lines, audit records and error answers for one request (nhn-event-id when given). */
  readonly requestId: string;
  /** Public base URL of the FHIR endpoint, without trailing slash. */
  readonly baseUrl: string;
  /** The caller; undefined for the server's own work. */
  readonly principal?: Principal;
  /** The access rules compiled for this caller and patient. */
  readonly access: Access;
  /** The Patient resource ids the request is about (for the audit record). */
  readonly patientIds?: readonly string[];
  /** Why the change is made, in the user's words (from the X-Provenance header): recorded in Provenance. */
  readonly comment?: string;
}
