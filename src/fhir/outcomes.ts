/**
 * OperationOutcome values and the one error type the engine throws. Every non-2xx answer the
 * server gives is built here, with an HTTP status, an issue type from the FHIR value set, a human
 * message, where it applies the element (`expression`), and a stable Samplan error code in
 * `details.coding` that clients can program against (catalogue: docs/errors.md).
 */
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { isValidNin } from '../no/identifiers.js';

export const ERROR_CODE_SYSTEM = 'https://samplan.no/fhir/CodeSystem/error-code';

/** Stable, documented machine-readable error codes. Never rename one that has shipped. */
export const ErrorCode = {
  InvalidRequest: 'INVALID_REQUEST',
  InvalidJson: 'INVALID_JSON',
  UnsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
  NotAcceptable: 'NOT_ACCEPTABLE',
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  UnknownResourceType: 'UNKNOWN_RESOURCE_TYPE',
  UnknownRoute: 'UNKNOWN_ROUTE',
  MethodNotAllowed: 'METHOD_NOT_ALLOWED',
  ValidationError: 'VALIDATION_ERROR',
  InvalidSearch: 'INVALID_SEARCH',
  NotFound: 'NOT_FOUND',
  Gone: 'GONE',
  VersionConflict: 'VERSION_CONFLICT',
  MultipleMatches: 'MULTIPLE_MATCHES',
  IdMismatch: 'ID_MISMATCH',
  ReferenceNotFound: 'REFERENCE_NOT_FOUND',
  TransactionFailed: 'TRANSACTION_FAILED',
  NotSupported: 'NOT_SUPPORTED',
  Conflict: 'CONFLICT',
  Unavailable: 'SERVICE_UNAVAILABLE',
  InternalError: 'INTERNAL_ERROR',
  // Security (docs/security.md)
  Unauthenticated: 'UNAUTHENTICATED',
  InvalidToken: 'INVALID_TOKEN',
  InvalidDpopProof: 'INVALID_DPOP_PROOF',
  DpopNonceRequired: 'DPOP_NONCE_REQUIRED',
  MissingHeader: 'MISSING_HEADER',
  InvalidHeader: 'INVALID_HEADER',
  NoAccess: 'NO_ACCESS',
  InsufficientScope: 'INSUFFICIENT_SCOPE',
  MachineTokenNotAllowed: 'MACHINE_TOKEN_NOT_ALLOWED',
  RoleNotAllowed: 'ROLE_NOT_ALLOWED',
  ConsentMissing: 'CONSENT_MISSING',
  Blocked: 'BLOCKED',
  OptedOut: 'OPTED_OUT',
  Restricted: 'RESTRICTED',
  ElevatedBasisUnnecessary: 'ELEVATED_BASIS_UNNECESSARY',
  EmergencyReasonRequired: 'EMERGENCY_REASON_REQUIRED',
  PatientMismatch: 'PATIENT_MISMATCH',
  RepresentationNotAllowed: 'REPRESENTATION_NOT_ALLOWED',
  ReadOnly: 'READ_ONLY',
  RateLimited: 'RATE_LIMITED',
  AuditFailed: 'AUDIT_FAILED',
  // Plan rules (docs/errors.md)
  InvalidIdentifier: 'INVALID_IDENTIFIER',
  ActivePlanExists: 'ACTIVE_PLAN_EXISTS',
  InvalidTransition: 'INVALID_TRANSITION',
  DuplicateIdentifier: 'DUPLICATE_IDENTIFIER',
  NoChanges: 'NO_CHANGES',
  NinInUrl: 'NIN_IN_URL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * What each code means, in one line: the definitions of the published error-code CodeSystem
 * (https://samplan.no/fhir/CodeSystem/error-code, generated from this table). docs/errors.md is
 * the long form: when each happens and what to do.
 */
export const ERROR_CODE_DEFINITIONS: Readonly<Record<ErrorCode, string>> = {
  INVALID_REQUEST: 'The request is malformed: a parameter, header or body is missing or not as the interaction needs.',
  INVALID_JSON: 'The body is not valid JSON (or nested too deep).',
  UNSUPPORTED_MEDIA_TYPE: 'The body is not JSON, or not FHIR R4 JSON.',
  NOT_ACCEPTABLE: 'The client asked for a format other than JSON.',
  PAYLOAD_TOO_LARGE: 'The body, or a Bundle, is too large.',
  UNKNOWN_RESOURCE_TYPE: 'The path names something that is not a FHIR R4 resource type.',
  UNKNOWN_ROUTE: 'Nothing is served at this path (or the operation is not supported at this level).',
  METHOD_NOT_ALLOWED: 'The HTTP method is not allowed at this path.',
  VALIDATION_ERROR: 'The resource is not valid FHIR R4, or breaks a Samplan profile.',
  INVALID_SEARCH: 'A search parameter is malformed, or unknown under Prefer: handling=strict.',
  NOT_FOUND: 'No such resource, version or job (or not one this caller may see).',
  GONE: 'The resource has been deleted.',
  VERSION_CONFLICT: 'If-Match names another version than the current one.',
  MULTIPLE_MATCHES: 'The criteria of a conditional interaction match more than one resource.',
  ID_MISMATCH: 'The id in the body is not the id in the URL.',
  REFERENCE_NOT_FOUND: 'A referenced resource does not exist.',
  TRANSACTION_FAILED: 'Reserved: a transaction failed as a whole (not given by this version).',
  NOT_SUPPORTED: 'The request asks for something Samplan does not do (e.g. a template element it cannot apply).',
  CONFLICT: 'A concurrent request changed the same data first; try again.',
  SERVICE_UNAVAILABLE: 'The database cannot be reached; retry after the time Retry-After gives.',
  INTERNAL_ERROR: 'An unexpected failure; quote the request id.',
  UNAUTHENTICATED: 'No access token was sent.',
  INVALID_TOKEN: 'The access token is refused (signature, issuer, audience, expiry or claims).',
  INVALID_DPOP_PROOF: 'The DPoP proof is missing, or refused.',
  DPOP_NONCE_REQUIRED: "The DPoP proof must carry the server's current nonce (DPoP-Nonce header).",
  MISSING_HEADER: 'A required NHN header is missing (nhn-user-role, nhn-source-system, nhn-access-basis, nhn-patient-nin).',
  INVALID_HEADER: 'A header is malformed.',
  NO_ACCESS: 'This caller may not do this.',
  INSUFFICIENT_SCOPE: 'The token lacks the scope this request needs.',
  MACHINE_TOKEN_NOT_ALLOWED: 'A token without a person asked for plan content.',
  ROLE_NOT_ALLOWED: "The health personnel's role may not do this.",
  CONSENT_MISSING: 'The patient has not consented to a shared plan.',
  BLOCKED: 'The patient has blocked this clinician.',
  OPTED_OUT: 'The patient has opted out (reservasjon): no plan is stored or shown.',
  RESTRICTED: 'The patient has restricted access: an elevated access basis is needed.',
  ELEVATED_BASIS_UNNECESSARY: 'An elevated access basis was given for a patient who has not restricted access.',
  EMERGENCY_REASON_REQUIRED: 'Emergency access needs a reason (nhn-access-reason).',
  PATIENT_MISMATCH: 'The data is about another patient than the one the request names.',
  REPRESENTATION_NOT_ALLOWED: "The citizen's representation (parent, power of attorney, guardian) does not allow this.",
  READ_ONLY: 'Audit records cannot be written, changed or deleted.',
  RATE_LIMITED: 'Too many requests; retry later.',
  AUDIT_FAILED: 'The access could not be recorded in the audit trail, so it was not done.',
  INVALID_IDENTIFIER: 'A Norwegian identifier (fødselsnummer, D-nummer, HPR number, organisation number) is not valid.',
  ACTIVE_PLAN_EXISTS: 'The patient already has an active plan.',
  INVALID_TRANSITION: "The plan's status cannot change this way (or a draft cannot be published).",
  DUPLICATE_IDENTIFIER: 'Another resource of this type has the same business identifier.',
  NO_CHANGES: 'Information: the update changed nothing, so no new version was made.',
  NIN_IN_URL: 'A national identity number is in the URL; send it in a POST body or header.',
};

export type IssueType = NonNullable<OperationOutcomeIssue['code']>;
export type IssueSeverity = NonNullable<OperationOutcomeIssue['severity']>;

export interface IssueInput {
  severity?: IssueSeverity;
  code: IssueType;
  message: string;
  expression?: string | string[];
  errorCode?: ErrorCode;
}

/**
 * The message with any national identity number masked: error texts are shown, logged by clients
 * and kept in audit records, and some repeat what the client sent (a search value, an identifier).
 */
export function withoutNin(message: string): string {
  return message.replace(/(?<!\d)\d{11}(?!\d)/g, (digits) => (isValidNin(digits) ? '***********' : digits));
}

export function issue(input: IssueInput): OperationOutcomeIssue {
  const text = withoutNin(input.message);
  const result: OperationOutcomeIssue = {
    severity: input.severity ?? 'error',
    code: input.code,
    details: input.errorCode ? { coding: [{ system: ERROR_CODE_SYSTEM, code: input.errorCode }], text } : { text },
  };
  if (input.expression !== undefined) {
    result.expression = Array.isArray(input.expression) ? input.expression : [input.expression];
  }
  return result;
}

export function outcome(issues: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

/**
 * An informational outcome, e.g. for `Prefer: return=OperationOutcome` and 2xx deletes; with a
 * code when the client may want to act on it (`NO_CHANGES`: an update that changed nothing).
 */
export function informational(message: string, errorCode?: ErrorCode): OperationOutcome {
  return outcome([issue({ severity: 'information', code: 'informational', message, ...(errorCode ? { errorCode } : {}) })]);
}

/** The engine's error: an HTTP status and the OperationOutcome that explains it. */
export class FhirError extends Error {
  readonly status: number;
  readonly outcome: OperationOutcome;
  readonly headers: Record<string, string>;

  constructor(status: number, issues: OperationOutcomeIssue | OperationOutcomeIssue[], headers: Record<string, string> = {}) {
    const list = Array.isArray(issues) ? issues : [issues];
    super(list[0]?.details?.text ?? 'FHIR error');
    this.name = 'FhirError';
    this.status = status;
    this.outcome = outcome(list);
    this.headers = headers;
  }
}

const fail = (status: number, code: IssueType, errorCode: ErrorCode, message: string, expression?: string | string[]) =>
  new FhirError(status, issue({ code, errorCode, message, ...(expression !== undefined ? { expression } : {}) }));

/** Constructors for the errors the engine raises; each names its status, issue type and code. */
export const errors = {
  badRequest: (message: string, expression?: string | string[]) =>
    fail(400, 'invalid', ErrorCode.InvalidRequest, message, expression),
  invalidJson: (message: string) => fail(400, 'structure', ErrorCode.InvalidJson, message),
  invalidSearch: (message: string) => fail(400, 'invalid', ErrorCode.InvalidSearch, message),
  unknownType: (type: string) =>
    fail(404, 'not-supported', ErrorCode.UnknownResourceType, `"${type}" is not a FHIR R4 resource type`),
  unknownRoute: (message: string) => fail(404, 'not-supported', ErrorCode.UnknownRoute, message),
  notFound: (type: string, id: string, version?: string) =>
    fail(
      404,
      'not-found',
      ErrorCode.NotFound,
      version ? `${type}/${id} has no version ${version}` : `${type}/${id} was not found`,
    ),
  noMatch: (message: string) => fail(404, 'not-found', ErrorCode.NotFound, message),
  gone: (type: string, id: string) => fail(410, 'deleted', ErrorCode.Gone, `${type}/${id} has been deleted`),
  methodNotAllowed: (method: string, what: string) =>
    fail(405, 'not-supported', ErrorCode.MethodNotAllowed, `${method} is not allowed on ${what}`),
  versionConflict: (message: string) => fail(412, 'conflict', ErrorCode.VersionConflict, message),
  multipleMatches: (message: string) => fail(412, 'multiple-matches', ErrorCode.MultipleMatches, message),
  idMismatch: (message: string) => fail(400, 'invalid', ErrorCode.IdMismatch, message, 'id'),
  conflict: (message: string) => fail(409, 'conflict', ErrorCode.Conflict, message),
  notSupported: (message: string) => fail(400, 'not-supported', ErrorCode.NotSupported, message),
  unsupportedMediaType: (message: string) => fail(415, 'not-supported', ErrorCode.UnsupportedMediaType, message),
  notAcceptable: (message: string) => fail(406, 'not-supported', ErrorCode.NotAcceptable, message),
  payloadTooLarge: (message: string) => fail(413, 'too-long', ErrorCode.PayloadTooLarge, message),
  referenceNotFound: (message: string, expression?: string) =>
    fail(422, 'not-found', ErrorCode.ReferenceNotFound, message, expression),
  unavailable: () =>
    new FhirError(
      503,
      issue({ code: 'transient', errorCode: ErrorCode.Unavailable, message: 'The service is temporarily unavailable; try again shortly' }),
      { 'retry-after': '5' },
    ),
  internal: () =>
    fail(500, 'exception', ErrorCode.InternalError, 'An unexpected error occurred; it has been logged'),
  /** 401, with the WWW-Authenticate challenge RFC 6750 / RFC 9449 ask for. */
  unauthorized: (errorCode: ErrorCode, message: string, challenge: string) =>
    new FhirError(401, issue({ code: errorCode === ErrorCode.Unauthenticated ? 'login' : 'security', errorCode, message }), {
      'www-authenticate': challenge,
    }),
  /** 403: the caller is known but may not do this. */
  forbidden: (errorCode: ErrorCode, message: string) => fail(403, 'forbidden', errorCode, message),
  header: (errorCode: ErrorCode, message: string) => fail(400, errorCode === ErrorCode.MissingHeader ? 'required' : 'value', errorCode, message),
  readOnly: (message: string) => fail(405, 'not-supported', ErrorCode.ReadOnly, message),
  ninInUrl: () =>
    fail(
      400,
      'security',
      ErrorCode.NinInUrl,
      'A national identity number is in the URL. URLs are logged, so it must not be there: send search parameters in the body of POST /fhir/<Type>/_search (application/x-www-form-urlencoded), the patient in the nhn-patient-nin header, and conditional criteria inside a transaction Bundle',
    ),
  rateLimited: (message: string) => fail(429, 'throttled', ErrorCode.RateLimited, message),
  auditFailed: () =>
    fail(500, 'exception', ErrorCode.AuditFailed, 'The access could not be recorded in the audit log, so it was not carried out'),
};
