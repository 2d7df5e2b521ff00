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

/**
 * A list of names fixed in the code (resource types) as a `text[]` literal in the statement's text:
 * sent as a bound parameter, the driver escapes and serialises every element on every run (2 % of
 * a read for the public types). Only plain names are taken, so nothing needs quoting.
 */
export function constantList(values: readonly string[]): Fragment {
  const bad = values.find((v) => !/^[A-Za-z][A-Za-z0-9]*$/.test(v));
  if (bad !== undefined) throw new Error(`constantList takes plain names only, not ${JSON.stringify(bad)}`);
  return sql.raw(`'{${values.join(',')}}'::text[]`);
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

/**
 * The place of a value in a statement compiled to be used again (a search's shape, search/shapes.ts;
 * a read by id, resources.ts): Kysely takes it as a value, so it lands in the parameters, and
 * `bind` puts each request's value there. In a shape's JSON key it is "$".
 */
export class Slot {
  constructor(readonly index: number) {}

  toJSON(): string {
    return '$';
  }
}

/** A parameter computed from values at binding time. */
class Derived {
  constructor(
    readonly inputs: readonly unknown[],
    readonly compute: (...values: never[]) => unknown,
  ) {}
}

/**
 * `compute(...inputs)`, or, when an input is a Slot (the statement is being built to be used
 * again), a stand-in that `bind` computes from each request's values. Typed as the result, since
 * the builder passes it on to Kysely as a value. `compute` should be a module's function: the
 * kept statement keeps it, and an inline one its whole scope.
 */
export function derive<A extends unknown[], T>(compute: (...inputs: A) => T, ...inputs: A): T {
  return inputs.some((x) => x instanceof Slot) ? (new Derived(inputs, compute as (...values: never[]) => unknown) as T) : compute(...inputs);
}

/** A kept statement's parameters with this request's values in the slots and the derived ones computed. */
export function bind(parameters: readonly unknown[], values: readonly unknown[]): unknown[] {
  const resolve = (p: unknown): unknown => {
    if (p instanceof Slot) return values[p.index];
    if (p instanceof Derived) return p.compute(...(p.inputs.map(resolve) as never[]));
    return p;
  };
  return parameters.map(resolve);
}
