/**
 * The background side of $export: each server instance runs one ExportWorker, which claims queued
 * jobs (FOR UPDATE SKIP LOCKED, so instances never run the same job), rebuilds the requester's
 * access rule, and pages through `resources` in `rid` order, one type at a time, writing NDJSON.
 *
 * - Memory stays bounded: one page (`pageSize` rows) at a time, whatever the table holds.
 * - Each page is written in one transaction together with the job's checkpoint and lease, so a job
 *   stopped anywhere (shutdown, crash, another instance taking over) resumes exactly after the
 *   last page written: no resource is lost or written twice.
 * - A resource is exported as the requester would be served it (`servedColumns`: e.g. citizens get
 *   the published version), current versions only, never deleted ones, `meta` as stored, and only
 *   if last changed at or before the job's `transactionTime` (and after `_since`).
 * - A clean shutdown releases the claim at once; after a crash the lease (`leaseMs`) runs out
 *   and any instance picks the job up. On the embedded database only one process can run, so
 *   claims left behind are released at start.
 * - Jobs and files expire `retentionMs` after they finish and are purged.
 */
import type { WorkerLogger } from '../../log.js';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { visibility } from '../../fhir/access.js';
import { definitions } from '../../fhir/definitions.js';
import { errors, FhirError } from '../../fhir/outcomes.js';
import { patientCompartmentTypes, type PolicyOptions } from '../../security/policy.js';
import { type Database, DatabaseUnavailableError, isRetryable } from '../../store/db.js';
import { inCompartments } from '../../store/compartments.js';
import { servedColumns } from '../../store/resources.js';
import { compile, type Fragment } from '../../store/sql.js';
import { type JobRow, JobStore } from './jobs.js';
import { type RunAccess, runAccess } from './principal.js';

/** Types never exported: the audit trail lives in its own table and is not plan data. */
export const NEVER_EXPORTED: ReadonlySet<string> = new Set(['AuditEvent']);

export interface ExportSettings {
  /** Rows read and written per transaction. */
  pageSize: number;
  /** Resources per NDJSON file; a type with more is split over several files. */
  maxPerFile: number;
  /** How long a claim holds without a page written; after that another instance may take over. */
  leaseMs: number;
  /** How often an idle worker looks for queued jobs (new jobs of this instance start at once). */
  pollMs: number;
  /** How long a finished job's files (or its error) stay available. */
  retentionMs: number;
  /** Jobs one instance runs at the same time. */
  concurrency: number;
  /** Name of this instance in claims (random by default). */
  instance: string;
}

export const DEFAULT_SETTINGS: Omit<ExportSettings, 'instance'> = {
  pageSize: 1000,
  maxPerFile: 10_000,
  leaseMs: 60_000,
  pollMs: 2_000,
  retentionMs: 24 * 3600_000,
  concurrency: 1,
};

interface OpenFile {
  n: number;
  count: number;
  parts: number;
}

/** A resource as one NDJSON line (stored JSON is compact already; anything else is re-serialised). */
function ndjsonLine(content: string): string {
  return /[\n\r]/.test(content) ? `${JSON.stringify(JSON.parse(content))}\n` : `${content}\n`;
}

export class ExportWorker {
  readonly settings: ExportSettings;
  private readonly store = new JobStore();
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private ticking: Promise<void> | undefined;
  private again = false;
  private readonly running = new Set<Promise<void>>();
  private lastPurge = 0;

  constructor(
    private readonly db: Database,
    private readonly policy: PolicyOptions,
    private readonly log: WorkerLogger,
    settings: Partial<ExportSettings> = {},
  ) {
    this.settings = { ...DEFAULT_SETTINGS, instance: `export-${randomUUID()}`, ...settings };
  }

  get started(): boolean {
    return this.timer !== undefined;
  }

  /** Starts looking for jobs, now and every `pollMs`. */
  async start(): Promise<void> {
    if (this.timer) return;
    this.stopping = false;
    if (this.db.kind === 'pglite') {
      // Only one process can open an embedded database: claims in it are from a previous run.
      await this.db.query(`UPDATE export_jobs SET claimed_by = NULL, lease_until = NULL WHERE status = 'in-progress' AND claimed_by IS NOT NULL`);
    }
    this.timer = setInterval(() => this.wake(), this.settings.pollMs);
    this.timer.unref();
    this.wake();
  }

  /** Looks for jobs now (after a kick-off on this instance). */
  wake(): void {
    if (this.stopping || !this.timer) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = this.tick().finally(() => {
      this.ticking = undefined;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  /** Stops claiming; running jobs give their claim back after the page in hand. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    await Promise.all([...this.running]);
  }

  private async tick(): Promise<void> {
    try {
      if (Date.now() - this.lastPurge > 60_000) {
        this.lastPurge = Date.now();
        const purged = await this.store.purgeExpired(this.db);
        if (purged) this.log.info({ purged }, 'expired export jobs removed');
      }
      while (!this.stopping && this.running.size < this.settings.concurrency) {
        const job = await this.store.claim(this.db, this.settings.instance, this.settings.leaseMs, new Date());
        if (!job) break;
        const run: Promise<void> = this.run(job).finally(() => {
          this.running.delete(run);
          this.wake();
        });
        this.running.add(run);
      }
    } catch (err) {
      this.log.warn({ err }, 'could not look for export jobs; trying again later');
    }
  }

  /** Runs a claimed job to its end, or until it is cancelled, taken over, or this worker stops. */
  private async run(job: JobRow): Promise<void> {
    const me = this.settings.instance;
    try {
      const access = await runAccess(this.db, job, this.policy);
      let types = job.types;
      if (!types) {
        types = await this.defaultTypes(job, access);
        if (!(await this.store.setTypes(this.db, job.id, me, types))) return;
      }
      if (access.personal) for (const type of types) access.access.checkInteraction('search', type);
      await this.write(job, types, access);
    } catch (err) {
      await this.fail(job, err);
    }
  }

  private async write(job: JobRow, types: string[], access: RunAccess): Promise<void> {
    const { pageSize, maxPerFile, leaseMs, instance: me } = this.settings;
    const last = await this.store.lastFile(this.db, job.id);
    let file: OpenFile | undefined =
      last && last.type === types[job.typeIndex] && last.count < maxPerFile ? { n: last.n, count: last.count, parts: last.parts } : undefined;
    let nextN = (last?.n ?? 0) + 1;
    let typeIndex = job.typeIndex;
    let lastRid = job.lastRid;
    while (typeIndex < types.length) {
      if (this.stopping) {
        await this.store.release(this.db, job.id, me);
        return;
      }
      const type = types[typeIndex] as string;
      const room = file ? maxPerFile - file.count : maxPerFile;
      const limit = Math.min(pageSize, room);
      const { rows, read, lastRead } = await this.page(job, access, type, lastRid, limit);
      // A short page ends the type: the checkpoint moves on to the next one with it.
      const typeDone = read < limit;
      const target = rows.length ? (file ?? { n: nextN, count: 0, parts: 0 }) : undefined;
      const checkpoint = typeDone ? { typeIndex: typeIndex + 1, lastRid: 0, added: rows.length } : { typeIndex, lastRid: lastRead, added: rows.length };
      const text = rows.map((r) => ndjsonLine(r.content)).join('');
      const ok = await this.db.transaction(async (tx) => {
        if (!(await this.store.advance(tx, job.id, me, leaseMs, checkpoint))) return false;
        if (target) {
          if (target.count === 0 && target.parts === 0) await this.store.addFile(tx, job.id, target.n, type);
          await this.store.addPart(tx, job.id, target.n, target.parts, text, rows.length);
        }
        return true;
      });
      if (!ok) return; // cancelled, expired, or taken over: nothing more to do here
      if (target) {
        if (target.n === nextN) nextN++;
        file = { n: target.n, count: target.count + rows.length, parts: target.parts + 1 };
        if (file.count >= maxPerFile) file = undefined;
      }
      typeIndex = checkpoint.typeIndex;
      lastRid = checkpoint.lastRid;
      if (typeDone) file = undefined;
    }
    if (await this.store.finish(this.db, job.id, me, { status: 'completed', retentionMs: this.settings.retentionMs })) {
      this.log.info({ job: job.id }, 'export job completed');
    }
  }

  /** One page of a type: the rows after `afterRid` the job may export, as the requester is served them. */
  private async page(
    job: JobRow,
    run: RunAccess,
    type: string,
    afterRid: number,
    limit: number,
  ): Promise<{ rows: Array<{ rid: number; content: string }>; read: number; lastRead: number }> {
    const rule = visibility(run.access);
    // The type as a literal: a prepared statement's generic plan then still walks (type, rid) for a
    // rare type instead of the whole table by rid. Types come from the definitions, never from input.
    if (!definitions().isResourceType(type)) throw new Error(`not a resource type: ${type.slice(0, 64)}`);
    const where: Fragment[] = [sql`r.type = ${sql.lit(type)}`, sql`NOT r.deleted`, sql`r.rid > ${afterRid}`];
    if (job.transactionTime) where.push(sql`r.last_updated <= ${job.transactionTime.toISOString()}::timestamptz`);
    if (job.since) where.push(sql`r.last_updated > ${job.since.toISOString()}::timestamptz`);
    const compartment = this.compartmentCondition(job, run);
    if (compartment) where.push(compartment);
    const filter = rule.filter('r');
    if (filter) where.push(filter);
    const c = compile(sql`SELECT r.rid, ${servedColumns(rule, 'r')} FROM resources AS r
      WHERE ${sql.join(where, sql` AND `)} ORDER BY r.rid LIMIT ${limit}`);
    const rows = await this.db.query<{ rid: number; content: string | null }>(c.sql, c.parameters);
    return {
      // A version without content (a deletion) is never served: skipped, but the page still moves on.
      rows: rows.filter((r): r is { rid: number; content: string } => r.content !== null),
      read: rows.length,
      lastRead: rows[rows.length - 1]?.rid ?? afterRid,
    };
  }

  private compartmentCondition(job: JobRow, run: RunAccess): Fragment | undefined {
    if (job.level !== 'patient') return undefined;
    if (run.patients === null) return sql`cardinality(r.compartments) > 0`;
    return inCompartments(sql, sql`r.compartments`, sql`${run.patients.map((id) => `Patient/${id}`)}::text[]`);
  }

  /** The types a job exports when the request named none: those present that the export may hold. */
  private async defaultTypes(job: JobRow, run: RunAccess): Promise<string[]> {
    let present: string[];
    if (job.level === 'patient' && run.patients !== null) {
      if (!run.patients.length) return [];
      present = (
        await this.db.query<{ type: string }>(`SELECT DISTINCT type FROM resources WHERE ${inCompartments(String.raw, 'compartments', '$1::text[]')} AND NOT deleted`, [
          run.patients.map((id) => `Patient/${id}`),
        ])
      ).map((r) => r.type);
    } else {
      // Distinct types by skipping through the (type, rid) index: one probe per type present.
      present = (
        await this.db.query<{ type: string }>(
          `WITH RECURSIVE t(type) AS (
             (SELECT type FROM resources WHERE NOT deleted ORDER BY type LIMIT 1)
             UNION ALL
             SELECT (SELECT r.type FROM resources r WHERE NOT r.deleted AND r.type > t.type ORDER BY r.type LIMIT 1) FROM t WHERE t.type IS NOT NULL
           ) SELECT type FROM t WHERE type IS NOT NULL`,
        )
      ).map((r) => r.type);
    }
    const allowed = job.level === 'patient' ? patientCompartmentTypes() : new Set(definitions().resourceTypes);
    return present.filter((t) => allowed.has(t) && !NEVER_EXPORTED.has(t)).sort();
  }

  private async fail(job: JobRow, err: unknown): Promise<void> {
    const me = this.settings.instance;
    if (err instanceof DatabaseUnavailableError || isRetryable(err)) {
      this.log.warn({ job: job.id }, 'the database is unavailable or busy; the export job will be resumed later');
      await this.store.release(this.db, job.id, me).catch(() => undefined);
      return;
    }
    let failure: FhirError;
    if (err instanceof FhirError) failure = err;
    else {
      this.log.error({ err, job: job.id }, 'export job failed');
      failure = errors.internal();
    }
    try {
      await this.store.finish(this.db, job.id, me, {
        status: 'failed',
        error: JSON.stringify({ status: failure.status, outcome: failure.outcome }),
        retentionMs: this.settings.retentionMs,
      });
    } catch (finishError) {
      this.log.error({ err: finishError, job: job.id }, 'could not record the failure of an export job');
    }
  }
}
