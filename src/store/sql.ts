/**
 * SQL building with Kysely's `sql` template (every value a bound parameter), used as a compiler
 * only: our own drivers run the text it produces.
 */
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type RawBuilder } from 'kysely';

export type Fragment = RawBuilder<unknown>;

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
