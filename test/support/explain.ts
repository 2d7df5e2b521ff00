import { PUBLIC_TYPES } from '../../src/security/policy.js';
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

// Reading a plan for rows of the whole population: on a database with a population and its
// statistics (support/population.ts), a statement about one patient must find that patient's
// rows, not read everyone's and keep a few.

/** The tables the population has made large (10,000 rows or more), and their indexes (a Bitmap Index Scan names only the index). */
export interface LargeRelations {
  tables: ReadonlySet<string>;
  indexes: ReadonlySet<string>;
}

export async function largeRelations(db: Database): Promise<LargeRelations> {
  const rows = await db.query<{ index: string; table: string }>(
    `SELECT i.indexname AS index, i.tablename AS table FROM pg_indexes i JOIN pg_class c ON c.relname = i.tablename AND c.relnamespace = current_schema()::regnamespace
      WHERE i.schemaname = current_schema() AND c.reltuples >= 10000`,
  );
  return { tables: new Set(rows.map((r) => r.table)), indexes: new Set(rows.map((r) => r.index)) };
}

/**
 * What `plan` (EXPLAIN, or EXPLAIN ANALYZE for the rows read) reads of the population: a Seq Scan
 * of a large table; an index scan of one whose condition names no value (only the type or the
 * search parameter: all Goals, all of a parameter's rows) unless the types are the shared
 * catalogue's; a scan of one that read more than MAX_ROWS rows. Empty when it reads none.
 */
export function populationReads(plan: string, large: LargeRelations): string[] {
  return [...wholeScans(plan, large), ...manyRows(plan, large)];
}

/** Columns whose condition alone selects a whole type's or a whole parameter's rows. */
const NO_VALUE = new Set(['type', 'sp', 'deleted']);

/** A condition to the shared catalogue's types (Practitioner, PlanDefinition, …): rows the population does not add to. */
function catalogueOnly(condition: string): boolean {
  const lists = [...condition.matchAll(/type = ANY \('\{([^}]*)\}'::text\[\]\)/g)].map((m) => (m[1] as string).split(','));
  return lists.length > 0 && lists.every((list) => list.every((type) => PUBLIC_TYPES.includes(type)));
}

/** More rows than any one patient has: the demo patients have up to a few dozen resources, and the population 500 of each kind. */
const MAX_ROWS = 250;

/** The scans of a large table or its index in an analysed `plan` that read more than MAX_ROWS rows, the filtered-out ones included. */
function manyRows(plan: string, { tables, indexes }: LargeRelations): string[] {
  const lines = plan.split('\n');
  const found: string[] = [];
  lines.forEach((line, i) => {
    const scan = /(?:Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)(?: Backward)?(?: using \w+)? on (\w+)|Bitmap Index Scan on (\w+)/.exec(line);
    if (!scan || !(scan[1] ? tables.has(scan[1]) : indexes.has(scan[2] as string))) return;
    const actual = /actual rows=(\d+) loops=(\d+)/.exec(line);
    if (!actual) return;
    let removed = 0;
    for (const detail of nodeDetails(lines, i)) {
      const m = /Rows Removed by (?:Filter|Index Recheck): (\d+)/.exec(detail);
      if (m) removed += Number(m[1]);
    }
    const read = (Number(actual[1]) + removed) * Number(actual[2]);
    if (read > MAX_ROWS) found.push(`${read} rows: ${line.trim()}`);
  });
  return found;
}

/** The lines that describe the node on line `i` (more deeply indented, up to the next node). */
function nodeDetails(lines: readonly string[], i: number): string[] {
  const depth = (lines[i] as string).search(/\S/);
  const details: string[] = [];
  for (let j = i + 1; j < lines.length; j++) {
    const next = lines[j] as string;
    if (next.search(/\S/) <= depth || next.trim().startsWith('->')) break;
    details.push(next);
  }
  return details;
}

/**
 * The scans in `plan` that read a large table whole (Seq Scan) or a whole range of a large table's
 * index that no value narrows: an index scan without an Index Cond, or one whose conditions are on
 * NO_VALUE columns only.
 */
function wholeScans(plan: string, { tables, indexes }: LargeRelations): string[] {
  const lines = plan.split('\n');
  const found: string[] = [];
  lines.forEach((line, i) => {
    const seq = /Seq Scan on (\w+)/.exec(line);
    if (seq && tables.has(seq[1] as string)) found.push(line.trim());
    const scan = /(?:Index Scan|Index Only Scan)(?: Backward)? using (\w+) on (\w+)|Bitmap Index Scan on (\w+)/.exec(line);
    if (!scan || !indexes.has((scan[1] ?? scan[3]) as string)) return;
    const condition = nodeDetails(lines, i)
      .map((detail) => /^\s*Index Cond: (.*)$/.exec(detail)?.[1])
      .find((c) => c !== undefined) ?? '';
    const columns = [...condition.matchAll(/([a-z_]+(?:\[1\])?) (?:=|<>|>=|<=|<|>|&&|@>|<@|~~)/g)].map((m) => m[1] as string);
    if (!columns.some((c) => !NO_VALUE.has(c)) && !catalogueOnly(condition)) found.push(`${line.trim()}${condition ? ` (${condition})` : ''}`);
  });
  return found;
}
