/**
 * Named operations ($validate, $apply, $export, …). Each declares where it may be invoked, and
 * the router dispatches to it; the CapabilityStatement lists what is registered, and the
 * OperationDefinitions of Samplan's own operations are generated from the same objects.
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

/** A parameter of an operation, as its OperationDefinition states it. */
export interface OperationParameter {
  name: string;
  use: 'in' | 'out';
  min: number;
  /** `'1'`, `'*'`, … */
  max: string;
  /** The FHIR type; absent for a parameter made of `part`s. */
  type?: string;
  /** For a `string` parameter given in search syntax (e.g. `reference`: `Patient/123`). */
  searchType?: 'reference' | 'token' | 'string' | 'date' | 'number' | 'uri';
  documentation: string;
  part?: OperationParameter[];
}

/**
 * What the OperationDefinition of an operation says beyond what the Operation itself states (its
 * code, type and invocation levels, from which the definition's flags are generated): written
 * next to the handler, so the definition a client reads is the one the code implements.
 */
export interface OperationSpec {
  title: string;
  description: string;
  /** Whether a call may change stored data (side effects such as the audit trail do not count). */
  affectsState: boolean;
  /** The OperationDefinition this one extends or narrows (e.g. a core FHIR operation). */
  base?: string;
  /** How it is called and answered beyond the parameters: HTTP methods, headers, non-FHIR bodies. */
  comment?: string;
  parameter: OperationParameter[];
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
  /**
   * The OperationDefinition's content, for an operation Samplan defines (its `definition` is a
   * Samplan canonical URL, published by the server); none for operations defined by FHIR or an
   * implementation guide, whose canonical URLs are theirs.
   */
  spec?: OperationSpec;
  handler(s: Services, call: Call, target: OperationTarget): Promise<FhirResponse>;
}
