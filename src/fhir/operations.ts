/**
 * Named operations ($validate now; later $apply, $export, ...). Each declares where it may be
 * invoked, and the router dispatches to it; the CapabilityStatement lists what is registered.
 */
import type { Interaction } from './access.js';
import type { Call, Services } from './services.js';
import type { FhirRequest, FhirResponse } from './types.js';

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
  /** How access rules see the operation; default 'operation'. */
  interaction?: Interaction;
  system: boolean;
  typeLevel: boolean;
  instance: boolean;
  /** Whether GET is allowed (operations without side effects). */
  get: boolean;
  /** Whether DELETE is allowed: the operation removes what it names (cancelling a bulk export). */
  delete?: boolean;
  /** Whether a call is recorded in the audit trail (default yes); no for calls that show no patient data. */
  audited?: (req: FhirRequest) => boolean;
  handler(s: Services, call: Call, target: OperationTarget): Promise<FhirResponse>;
}
