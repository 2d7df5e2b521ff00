import { migrations } from './migrations.js';
import type { Database } from './db.js';

/** Arbitrary constant: several server instances starting together migrate one at a time. */
const MIGRATION_LOCK = 7_346_112;

/**
 * Applies every migration not yet recorded in `schema_migrations` — or those up to and including
 * `through` (a test's database as an older release left it). Returns the ids applied.
 */
export async function migrate(db: Database, options: { through?: string } = {}): Promise<string[]> {
  const last = options.through ? migrations.findIndex((m) => m.id === options.through) : migrations.length - 1;
  if (last < 0) throw new Error(`no migration ${options.through}`);
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set((await tx.query<{ id: string }>('SELECT id FROM schema_migrations')).map((r) => r.id));
    const applied: string[] = [];
    for (const m of migrations.slice(0, last + 1)) {
      if (done.has(m.id)) continue;
      for (const statement of splitStatements(m.sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (id) VALUES ($1)', [m.id]);
      applied.push(m.id);
    }
    return applied;
  });
}

/**
 * Splits a migration into statements (the extended protocol takes one per call): at a semicolon
 * that ends a line, outside dollar quotes (a function's body keeps its own).
 */
function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  sql.split('$$').forEach((part, i) => {
    if (i % 2) return void (current += `$$${part}$$`);
    const pieces = part.split(/;\s*\n/);
    current += pieces[0];
    for (const piece of pieces.slice(1)) {
      statements.push(current);
      current = piece;
    }
  });
  statements.push(current);
  return statements.map((s) => s.trim().replace(/;$/, '')).filter(Boolean);
}
