import type { Database } from '../../src/store/db.js';

/** `value` as an SQL literal of unknown type, which EXECUTE casts to its parameter's type. */
function literal(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  const quote = (text: string) => `'${text.replace(/'/g, "''")}'`;
  if (value instanceof Date) return quote(value.toISOString());
  if (Array.isArray(value)) return quote(`{${value.map((v) => (v === null ? 'NULL' : `"${String(v).replace(/[\\"]/g, (c) => `\\${c}`)}"`)).join(',')}}`);
  return quote(String(value));
}

/**
 * The plan PostgreSQL runs `text` with, as the server sends it: prepared, with the session's
 * generic plan (SESSION_SETTINGS), so one that needs the values to use an index shows up. Sequential
 * scans are off unless `free`: a Seq Scan that stays means no index can serve the statement. `free`
 * leaves the planner its own choice, which says something on a database with statistics.
 * `analyze`: run with the values (EXPLAIN ANALYZE) for the rows each node read, and rolled back.
 */
let planned = 0;

export async function genericPlan(db: Database, text: string, params: readonly unknown[], options: { free?: boolean; analyze?: boolean } = {}): Promise<string> {
  // A name of its own each time: a prepared statement outlives a transaction that fails, and one
  // left behind must not make the next call fail as "already exists".
  const name = `planned_${++planned}`;
  let plan = '';
  const explained = db.transaction(async (tx) => {
    if (!options.free) await tx.query('SET LOCAL enable_seqscan = off');
    await tx.query(`PREPARE ${name} AS ${text}`);
    const args = params.length ? `(${params.map(literal).join(', ')})` : '';
    const rows = await tx.query<Record<string, string>>(`EXPLAIN ${options.analyze ? '(ANALYZE, TIMING OFF) ' : ''}EXECUTE ${name}${args}`);
    await tx.query(`DEALLOCATE ${name}`);
    plan = rows.map((r) => Object.values(r)[0]).join('\n');
    if (options.analyze) throw new RolledBack();
  });
  await explained.catch((err: unknown) => {
    if (!(err instanceof RolledBack)) throw err;
  });
  return plan;
}

/** Thrown to roll back what an analysed statement wrote. */
class RolledBack extends Error {}
