/**
 * The audit trail is partitioned by month (migration 018): a record goes into its month's table,
 * and there is no catch-all, so a month must exist before its first record. Each instance makes
 * the current month and the next ones at start and again every day (the database function takes a
 * lock, so instances starting together make each month once). A record whose month is missing
 * fails, and its request with it: the audit rule holds, and nothing lands outside the months an
 * operator archives.
 */
import type { WorkerLogger } from '../log.js';
import type { Database } from '../store/db.js';

export interface AuditPartitionOptions {
  /** Months made ahead of the current one (default 2). */
  monthsAhead?: number;
  /** How often to look again (default daily). */
  everyMs?: number;
}

export interface AuditPartitions {
  /** Makes the months now (also done at start and on the timer); the number of months made. */
  ensure(): Promise<number>;
  stop(): void;
}

export async function keepAuditPartitions(db: Database, log: WorkerLogger, options: AuditPartitionOptions = {}): Promise<AuditPartitions> {
  const ahead = options.monthsAhead ?? 2;
  const ensure = async () => (await db.query<{ made: number }>('SELECT samplan_audit_partitions(now(), $1) AS made', [ahead]))[0]?.made ?? 0;
  await ensure();
  const timer = setInterval(() => {
    ensure().catch((err: unknown) => log.error({ err }, "could not make the audit trail's next monthly partitions; records for a missing month will fail"));
  }, options.everyMs ?? 86_400_000);
  timer.unref();
  return { ensure, stop: () => clearInterval(timer) };
}
