/**
 * The engine's plain request and response. HTTP (or a Bundle entry, or an in-process caller)
 * builds a FhirRequest; the engine answers with a FhirResponse whose body is already JSON text,
 * so stored resources are served byte for byte without being parsed and re-serialised.
 */
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
  /** What the body is: a FHIR resource, a JSON Patch document, or form-encoded search parameters. */
  bodyKind?: 'resource' | 'json-patch';
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifNoneExist?: string;
  preferReturn?: PreferReturn;
  preferHandling?: 'strict' | 'lenient';
}

export interface FhirResponse {
  status: number;
  /** JSON text of the resource or Bundle or OperationOutcome, if any. */
  body?: string;
  location?: string;
  versionId?: string;
  lastModified?: Date;
  headers?: Record<string, string>;
}

/**
 * Who is asking and why, made once per request and passed explicitly to every layer (the
 * security layer fills in the principal and access basis; the data layer enforces rules from it).
 */
export interface RequestContext {
  /** Correlates log lines, audit records and error answers for one request. */
  readonly requestId: string;
  /** Public base URL of the FHIR endpoint, without trailing slash. */
  readonly baseUrl: string;
}
