/**
 * The parsed form of a FHIR search: what parse.ts produces from the URL or form parameters and
 * what sql.ts turns into one SQL query. Filters are ANDed; the values of one filter are ORed.
 */
import type { ParamDef } from './registry.js';
import type { DateRange, NumberValue } from './values.js';

export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

export interface TokenValue {
  /** undefined: any system; null: explicitly no system ("|code"). */
  system?: string | null;
  code?: string;
}

export type Value =
  | { type: 'token'; token: TokenValue }
  | { type: 'text'; text: string }
  | { type: 'string'; text: string }
  | { type: 'date'; prefix: Prefix; range: DateRange }
  | { type: 'number'; prefix: Prefix; number: NumberValue }
  | { type: 'quantity'; prefix: Prefix; number: NumberValue; system?: string; code?: string }
  | { type: 'reference'; targetType?: string; id?: string; url?: string; version?: string }
  | { type: 'uri'; uri: string }
  | { type: 'composite'; first: CompositePart; second?: CompositePart; last?: Value }
  | { type: 'missing'; missing: boolean };

/**
 * A discrete composite component as searched (see extract.ts's compositeRows): a code, id, URI or
 * unit naming; a system or reference type, `null` when there must be none, absent when any will do.
 */
export interface CompositePart {
  code?: string;
  system?: string | null;
}

export type Modifier =
  | 'exact'
  | 'contains'
  | 'missing'
  | 'not'
  | 'text'
  | 'identifier'
  | 'above'
  | 'below'
  | 'type';

export interface ParamFilter {
  kind: 'param';
  param: ParamDef;
  modifier?: Modifier;
  values: Value[];
}

/** `subject:Patient.name=x`: resources whose reference `param` points at a match of `inner`. */
export interface ChainFilter {
  kind: 'chain';
  param: ParamDef;
  targetTypes: string[];
  inner: Filter;
}

/** `_has:Observation:patient:code=x`: resources referenced by a `sourceType` matching `inner`. */
export interface HasFilter {
  kind: 'has';
  sourceType: string;
  param: ParamDef;
  inner: Filter;
}

export interface IdFilter {
  kind: 'id';
  ids: string[];
  not?: boolean;
}

export interface LastUpdatedFilter {
  kind: 'lastUpdated';
  values: Array<{ prefix: Prefix; range: DateRange }>;
}

/**
 * The same parameter over several types whose definitions differ (a chain to Patient|Group, or a
 * system search with _type): matches when the resource's type has a matching filter.
 */
export interface PerTypeFilter {
  kind: 'perType';
  byType: Array<{ type: string; filter: Filter }>;
}

export type Filter = ParamFilter | ChainFilter | HasFilter | IdFilter | LastUpdatedFilter | PerTypeFilter;

export type SortKey =
  | { kind: 'column'; column: 'id' | 'last_updated'; descending: boolean }
  | { kind: 'param'; param: ParamDef; descending: boolean };

export interface IncludeSpec {
  /** Resource type whose reference parameter is followed (the source of the reference). */
  sourceType: string;
  /** undefined for `*`: every reference parameter. */
  param?: ParamDef;
  targetType?: string;
  iterate: boolean;
}

export type Summary = 'true' | 'text' | 'data' | 'count' | 'false';

export interface Cursor {
  /** Sort key values of the row the page starts after (next) or before (previous). */
  keys: Array<string | number | null>;
  rid: number;
  direction: 'next' | 'prev';
}

export interface SearchQuery {
  /** Resource types searched: one for a type search, several or none (= all) for a system search. */
  types: string[];
  filters: Filter[];
  sort: SortKey[];
  count: number;
  cursor?: Cursor;
  total: 'none' | 'estimate' | 'accurate';
  summary?: Summary;
  elements?: string[];
  includes: IncludeSpec[];
  revincludes: IncludeSpec[];
  /** "Patient/123" for a compartment search. */
  compartment?: string;
  /** The parameters as understood (unknown ones left out under lenient handling), for links. */
  used: Array<[string, string]>;
  /** Parameters ignored under lenient handling, reported in an OperationOutcome entry. */
  ignored: string[];
}

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;
