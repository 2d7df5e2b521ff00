/** The SQL of export jobs and their files (tables: see migration.ts). */
import type { Queryable } from '../../store/db.js';
import type { Actor } from './principal.js';

export type JobStatus = 'accepted' | 'in-progress' | 'completed' | 'failed';

export interface JobRow {
  id: string;
  owner: string;
  actor: Actor;
  principal: string | null;
  level: 'system' | 'patient';
  patients: string[] | null;
  types: string[] | null;
  since: Date | null;
  request: string;
  status: JobStatus;
  created: Date;
  transactionTime: Date | null;
  claimedBy: string | null;
  leaseUntil: Date | null;
  typeIndex: number;
  lastRid: number;
  exported: number;
  finished: Date | null;
  expires: Date | null;
  error: string | null;
}

export interface FileRow {
  n: number;
  type: string;
  count: number;
}

const JOB_COLUMNS = `id, owner, actor, principal, level, patients, types, since, request, status, created,
  transaction_time AS "transactionTime", claimed_by AS "claimedBy", lease_until AS "leaseUntil", type_index AS "typeIndex",
  last_rid AS "lastRid", exported, finished, expires, error`;

/** What kick-off stores: the request; `since` as given (an instant). */
export type NewJob = Pick<JobRow, 'id' | 'owner' | 'actor' | 'principal' | 'level' | 'patients' | 'types' | 'request'> & { since: string | null };

/** Jobs still to run or running. */
const ACTIVE = `status IN ('accepted', 'in-progress')`;

export class JobStore {
  async insert(q: Queryable, job: NewJob): Promise<void> {
    await q.query(
      `INSERT INTO export_jobs (id, owner, actor, principal, level, patients, types, since, request, status)
       VALUES ($1, $2, $3, $4, $5, $6::text[], $7::text[], $8::timestamptz, $9, 'accepted')`,
      [job.id, job.owner, job.actor, job.principal, job.level, job.patients, job.types, job.since, job.request],
    );
  }

  async activeCount(q: Queryable, owner: string): Promise<number> {
    const rows = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM export_jobs WHERE owner = $1 AND ${ACTIVE}`, [owner]);
    return rows[0]?.n ?? 0;
  }

  /** A job, if it exists and has not expired. */
  async get(q: Queryable, id: string): Promise<JobRow | undefined> {
    const rows = await q.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM export_jobs WHERE id = $1 AND (expires IS NULL OR expires > now())`, [id]);
    return rows[0];
  }

  /** Deletes a job with its files (cancel); a worker running it notices at its next page. */
  async delete(q: Queryable, id: string): Promise<boolean> {
    const rows = await q.query(`DELETE FROM export_jobs WHERE id = $1 RETURNING id`, [id]);
    return rows.length > 0;
  }

  async files(q: Queryable, id: string): Promise<FileRow[]> {
    return q.query<FileRow>(`SELECT n, type, count FROM export_files WHERE job = $1 ORDER BY n`, [id]);
  }

  async file(q: Queryable, id: string, n: number): Promise<FileRow | undefined> {
    return (await q.query<FileRow>(`SELECT n, type, count FROM export_files WHERE job = $1 AND n = $2`, [id, n]))[0];
  }

  /** The parts of a file, in order. */
  async fileParts(q: Queryable, id: string, n: number): Promise<string[]> {
    const rows = await q.query<{ content: string }>(`SELECT content FROM export_file_parts WHERE job = $1 AND n = $2 ORDER BY part`, [id, n]);
    return rows.map((r) => r.content);
  }

  /**
   * Claims the oldest job no live instance is running: queued, released, or whose claimant's lease
   * ran out. Rows other instances are claiming right now are skipped, not waited for.
   */
  async claim(q: Queryable, instance: string, leaseMs: number, now: Date): Promise<JobRow | undefined> {
    const rows = await q.query<JobRow>(
      `UPDATE export_jobs SET status = 'in-progress', claimed_by = $1, lease_until = now() + $2::float8 * interval '1 millisecond',
              transaction_time = coalesce(transaction_time, $3::timestamptz)
        WHERE id = (SELECT id FROM export_jobs
                     WHERE ${ACTIVE} AND (lease_until IS NULL OR lease_until < now())
                     ORDER BY created, id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING ${JOB_COLUMNS}`,
      [instance, leaseMs, now.toISOString()],
    );
    return rows[0];
  }

  /**
   * Renews the claim and moves the checkpoint, in the transaction that writes the page it
   * describes. False when the job is gone (cancelled, expired) or another instance holds it now.
   */
  async advance(q: Queryable, id: string, instance: string, leaseMs: number, checkpoint: { typeIndex: number; lastRid: number; added: number }): Promise<boolean> {
    const rows = await q.query(
      `UPDATE export_jobs SET type_index = $3, last_rid = $4, exported = exported + $5, lease_until = now() + $6::float8 * interval '1 millisecond'
        WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`,
      [id, instance, checkpoint.typeIndex, checkpoint.lastRid, checkpoint.added, leaseMs],
    );
    return rows.length > 0;
  }

  async setTypes(q: Queryable, id: string, instance: string, types: string[]): Promise<boolean> {
    const rows = await q.query(`UPDATE export_jobs SET types = $3::text[] WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`, [
      id,
      instance,
      types,
    ]);
    return rows.length > 0;
  }

  /** The last file of a job, to continue after a restart. */
  async lastFile(q: Queryable, id: string): Promise<(FileRow & { parts: number }) | undefined> {
    const rows = await q.query<FileRow & { parts: number }>(
      `SELECT f.n, f.type, f.count, (SELECT count(*)::int FROM export_file_parts p WHERE p.job = f.job AND p.n = f.n) AS parts
         FROM export_files f WHERE f.job = $1 ORDER BY f.n DESC LIMIT 1`,
      [id],
    );
    return rows[0];
  }

  async addFile(q: Queryable, id: string, n: number, type: string): Promise<void> {
    await q.query(`INSERT INTO export_files (job, n, type, count) VALUES ($1, $2, $3, 0)`, [id, n, type]);
  }

  async addPart(q: Queryable, id: string, n: number, part: number, content: string, count: number): Promise<void> {
    await q.query(`INSERT INTO export_file_parts (job, n, part, content) VALUES ($1, $2, $3, $4)`, [id, n, part, content]);
    await q.query(`UPDATE export_files SET count = count + $3 WHERE job = $1 AND n = $2`, [id, n, count]);
  }

  /** Ends a job: completed (files kept until `expires`) or failed (the error kept as long). */
  async finish(q: Queryable, id: string, instance: string, outcome: { status: 'completed' | 'failed'; error?: string; retentionMs: number }): Promise<boolean> {
    const rows = await q.query(
      `UPDATE export_jobs SET status = $3, error = $4, finished = now(), expires = now() + $5::float8 * interval '1 millisecond',
              principal = NULL, claimed_by = NULL, lease_until = NULL
        WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`,
      [id, instance, outcome.status, outcome.error ?? null, outcome.retentionMs],
    );
    return rows.length > 0;
  }

  /** Gives a job back (clean shutdown, database trouble): the next claim resumes it from its checkpoint. */
  async release(q: Queryable, id: string, instance: string): Promise<void> {
    await q.query(`UPDATE export_jobs SET claimed_by = NULL, lease_until = NULL WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress'`, [id, instance]);
  }

  /** Removes jobs (and their files) past their expiry. */
  async purgeExpired(q: Queryable): Promise<number> {
    const rows = await q.query(`DELETE FROM export_jobs WHERE expires IS NOT NULL AND expires <= now() RETURNING id`);
    return rows.length;
  }
}
