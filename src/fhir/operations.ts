/**
 * Named operations ($validate now; later $apply, $export, ...). Each declares where it may be
 * invoked, and the router dispatches to it; the CapabilityStatement lists what is registered.
 */
import type { Call, Services } from './services.js';
import type { FhirResponse } from './types.js';

export interface OperationTarget {
  type?: string;
  id?: string;
}

export interface OperationDefinitionSummary {
  name: string;
  /** Canonical URL of the OperationDefinition. */
  definition: string;
  /** Restricts the operation to one resource type; undefined: every type. */
  type?: string;
}

export interface Operation extends OperationDefinitionSummary {
  system: boolean;
  typeLevel: boolean;
  instance: boolean;
  /** Whether GET is allowed (operations without side effects). */
  get: boolean;
  handler(s: Services, call: Call, target: OperationTarget): Promise<FhirResponse>;
}
