/**
 * Bulk export ($export, NDJSON) for migration and analytics, following the FHIR Bulk Data Access
 * IG's async request pattern. One BulkExport per server: the engine operations (kick-off, status and
 * cancel, files) and the background worker.
 *
 * What is exported:
 * - system level (`GET /$export`): every current, non-deleted resource of every type in
 *   `resources` — all patients' data, the directory, definitions — for an operator (health
 *   personnel with `<audience>/export`). Not the audit trail (its own table, and refused in `_type`).
 * - patient level (`GET /Patient/{id}/$export`, `GET /Patient/$export`): exactly the patient's
 *   compartment (the Patient and what the CompartmentDefinition puts in it), read with the
 *   requester's own rule (consent, blocks, restriction, citizens' published versions). Public
 *   resources outside any compartment (Organization, Practitioner, PlanDefinition, …) are *not*
 *   included: they are not the patient's data, and are read with ordinary searches.
 */
import type { WorkerLogger } from '../../log.js';
import type { Operation } from '../../fhir/operations.js';
import type { PolicyOptions } from '../../security/policy.js';
import type { Database } from '../../store/db.js';
import { exportOperations } from './operations.js';
import { type ExportSettings, ExportWorker } from './worker.js';

export { exportMigration } from './migration.js';
export type { ExportSettings } from './worker.js';
export { ExportWorker } from './worker.js';

export interface BulkExportOptions {
  db: Database;
  /** The API's scopes and allowed roles (to rebuild requesters' access rules in the background). */
  policy: PolicyOptions;
  log: WorkerLogger;
  /** Jobs one principal may have queued or running at once (default 5). */
  maxActivePerOwner?: number;
  settings?: Partial<ExportSettings>;
}

export interface BulkExport {
  /** Register with the engine. */
  readonly operations: Operation[];
  readonly worker: ExportWorker;
  /** The scope an export of everything needs: `<audience>/export`. */
  readonly exportScope: string;
  /** Starts the worker (call once the database is migrated). */
  start(): Promise<void>;
  /** Stops the worker; running jobs give their claim back. Call before closing the database. */
  stop(): Promise<void>;
}

export function createBulkExport(options: BulkExportOptions): BulkExport {
  const worker = new ExportWorker(options.db, options.policy, options.log, options.settings);
  const exportScope = options.policy.scopes.export;
  const operations = exportOperations({
    exportScope,
    maxActivePerOwner: options.maxActivePerOwner ?? 5,
    retryAfterSeconds: Math.max(1, Math.round(worker.settings.pollMs / 1000)),
    queued: () => worker.wake(),
  });
  return {
    operations,
    worker,
    exportScope,
    start: () => worker.start(),
    stop: () => worker.stop(),
  };
}
