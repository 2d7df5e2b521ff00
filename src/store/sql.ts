/**
 * SQL building with Kysely's `sql` template (every value a bound parameter), used as a compiler
 * only: our own drivers run the text it produces.
 */
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type RawBuilder, sql } from 'kysely';

export type Fragment = RawBuilder<unknown>;

const columns = new Map<string, Fragment>();
// Aliases are numbered within a statement (x1, x2, … for its filters): the cache stops growing here.
const MAX_COLUMNS = 4096;

/**
 * `alias.name` as a column reference. Kysely parses the text and freezes a new node for every
 * reference (about a tenth of what a read allocates); its builders are immutable, so each
 * reference is made once and shared.
 */
export function column(alias: string, name: string): Fragment {
  const key = `${alias}.${name}`;
  let ref = columns.get(key);
  if (!ref) {
    ref = sql.ref(key);
    if (columns.size < MAX_COLUMNS) columns.set(key, ref);
  }
  return ref;
}

const compiler = new Kysely<Record<string, never>>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

export interface CompiledQuery {
  sql: string;
  parameters: readonly unknown[];
}

export function compile(fragment: Fragment): CompiledQuery {
  const c = fragment.compile(compiler);
  return { sql: c.sql, parameters: c.parameters };
}

/**
 * A compiled statement to keep and use again: Kysely's text is a chain of thousands of small
 * concatenations (about 10 KB of heap for a 1.5 KB plan Bundle statement, walked again whenever
 * it is used), so the kept text is copied into one flat string.
 */
export function kept(c: CompiledQuery): CompiledQuery {
  return { sql: Buffer.from(c.sql).toString(), parameters: c.parameters };
}
