/**
 * The engine's view of access rules. The security layer compiles one Access per request from the
 * caller and the patient's settings; the engine and the data layer only apply it: every SQL read
 * (read, vread, search, includes, _has, chains, history) ANDs `readFilter`, and the write pipeline
 * calls `checkWrite` under the row lock. Internal callers (seeding) use SYSTEM_ACCESS.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { RawBuilder } from 'kysely';
import type { ReadRule } from '../store/resources.js';

export type Interaction =
  | 'read'
  | 'vread'
  | 'search'
  | 'history'
  | 'create'
  | 'update'
  | 'patch'
  | 'delete'
  | 'operation'
  | 'capabilities'
  /** Whether a patient has an active plan and when it changed: no content, not audited. */
  | 'status';

export const WRITE_INTERACTIONS: ReadonlySet<Interaction> = new Set(['create', 'update', 'patch', 'delete']);

export interface WriteCheck {
  type: string;
  /** The new content; undefined for a delete. */
  next?: Resource;
  nextCompartments: readonly string[];
  /** The current content; undefined for a create. */
  current?: Resource;
  currentCompartments: readonly string[];
}

export interface Access {
  /**
   * SQL condition on the `resources` row with this alias that makes it visible; undefined: no
   * restriction. The same alias gives the same condition for as long as the Access lives.
   */
  readFilter(alias: string, types?: readonly string[]): RawBuilder<unknown> | undefined;
  /** The types whose visible rows `readFilter` confines to a few patients' compartments (ReadRule.confines). */
  readonly confines?: ReadonlySet<string>;
  /** For callers who see the published version of a resource rather than the latest: its content and number. */
  served?(alias: string): { version: RawBuilder<unknown>; content: RawBuilder<unknown>; lastUpdated: RawBuilder<unknown> };
  /** Refuses (throws a FhirError) an interaction on a type — undefined: system level — before data is touched. */
  checkInteraction(interaction: Interaction, type: string | undefined): void;
  /** Refuses a write the caller may not make. */
  checkWrite(check: WriteCheck): void;
}

/** No restrictions: for the server's own work (seeding, migrations), never for a request. */
export const SYSTEM_ACCESS: Access = {
  readFilter: () => undefined,
  checkInteraction: () => undefined,
  checkWrite: () => undefined,
};

const rules = new WeakMap<Access, ReadRule>();

/**
 * The caller's read rule in the form the data layer takes: one object per Access, so the data
 * layer can keep what it compiles for a rule (ResourceStore.read) as long as the rule lives.
 */
export function visibility(access: Access): ReadRule {
  let rule = rules.get(access);
  if (!rule) {
    const served = access.served?.bind(access);
    rule = { filter: (alias, types) => access.readFilter(alias, types), ...(served ? { served } : {}), ...(access.confines ? { confines: access.confines } : {}) };
    rules.set(access, rule);
  }
  return rule;
}
