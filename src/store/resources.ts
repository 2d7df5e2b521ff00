/**
 * The versioned resource repository: the SQL for reading, writing and listing versions of
 * resources. It knows tables and rows, not FHIR rules: callers (the write pipeline and the
 * interactions) decide what to write; every write here is a single statement, so a version, its
 * history row and its index rows land together or not at all.
 */
import { hash } from 'node:crypto';
import { sql } from 'kysely';
import type { IndexRows } from '../search/extract.js';
import { type Queryable, type QueryOptions, sqlState, type StoredText, type Transaction } from './db.js';
import { bind, column, type CompiledQuery, compile, type Fragment, kept, Slot } from './sql.js';

/**
 * The caller's rule for reads, in SQL on the `resources` row with the given alias: which rows are
 * visible, and (for callers who see a published version rather than the latest) which version's
 * content and number they are served.
 */
export interface ReadRule {
  /** `types`: the rule for rows of these types only (the same rows pass; fewer parts need writing). */
  filter(alias: string, types?: readonly string[]): Fragment | undefined;
  served?(alias: string): { version: Fragment; content: Fragment; lastUpdated: Fragment };
  /**
   * The types whose rows `filter` lets through only from a few patients' compartments: a search of
   * these types is driven by the rule, whatever else it asks (search/sql.ts).
   */
  confines?: ReadonlySet<string>;
}

/** The content and version columns a rule serves for the row `alias` (and when that version was written, if asked). */
export function servedColumns(rule: ReadRule | undefined, alias: string, withLastUpdated = false): Fragment {
  const served = rule?.served?.(alias);
  const r = (name: string) => column(alias, name);
  const columns = served
    ? sql`${served.version} AS version, ${served.content} AS content`
    : sql`${r('version')} AS version, ${r('content')} AS content`;
  if (!withLastUpdated) return columns;
  return sql`${columns}, ${served ? served.lastUpdated : r('last_updated')} AS "lastUpdated"`;
}

/** How a caller takes the stored text: 'bytes' for serving it as it is (QueryOptions.bytes). */
export type TextAs = 'string' | 'bytes';

const AS_BYTES: QueryOptions = { bytes: 'content' };
/** The query options that give the text as asked. */
export const asked = (as: TextAs): QueryOptions | undefined => (as === 'bytes' ? AS_BYTES : undefined);

export interface StoredResource<Text extends StoredText = string> {
  rid: number;
  type: string;
  id: string;
  version: number;
  lastUpdated: Date;
  deleted: boolean;
  /** JSON text of the current version; null when deleted. */
  content: Text | null;
  /** Patient compartments of the current version, e.g. ["Patient/123"]. */
  compartments: string[];
  /** From `lock`: the digest of the index rows stored for it (null when not known; see `update`). */
  indexDigest?: string | null;
}

export interface VersionRow<Text extends StoredText = string> {
  rid: number;
  type: string;
  id: string;
  version: number;
  lastUpdated: Date;
  method: string;
  content: Text | null;
}

export interface NewVersion {
  type: string;
  id: string;
  version: number;
  lastUpdated: string;
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  content: string | null;
  compartments: string[];
}

const RESOURCE_COLUMNS = 'rid, type, id, version, last_updated AS "lastUpdated", deleted, content, compartments';

/** Column lists and array casts of the index tables, in the order IndexRows holds their values. */
const INDEX_TABLES: ReadonlyArray<{ key: keyof IndexRows; table: string; columns: string[]; casts: string[] }> = [
  { key: 'token', table: 'idx_token', columns: ['sp', 'system', 'code', 'display'], casts: ['int4', 'text', 'text', 'text'] },
  { key: 'string', table: 'idx_string', columns: ['sp', 'norm', 'exact'], casts: ['int4', 'text', 'text'] },
  { key: 'date', table: 'idx_date', columns: ['sp', 'lo', 'hi'], casts: ['int4', 'timestamptz', 'timestamptz'] },
  { key: 'number', table: 'idx_number', columns: ['sp', 'lo', 'hi'], casts: ['int4', 'numeric', 'numeric'] },
  {
    key: 'quantity',
    table: 'idx_quantity',
    columns: ['sp', 'system', 'code', 'unit', 'lo', 'hi'],
    casts: ['int4', 'text', 'text', 'text', 'numeric', 'numeric'],
  },
  {
    key: 'reference',
    table: 'idx_reference',
    columns: ['sp', 'target_type', 'target_id', 'url', 'version'],
    casts: ['int4', 'text', 'text', 'text', 'text'],
  },
  { key: 'uri', table: 'idx_uri', columns: ['sp', 'value'], casts: ['int4', 'text'] },
  {
    key: 'composite',
    table: 'idx_composite',
    columns: ['sp', 'c1', 's1', 'c2', 's2', 'lo', 'hi', 'dlo', 'dhi', 'str'],
    casts: ['int4', 'text', 'text', 'text', 'text', 'numeric', 'numeric', 'timestamptz', 'timestamptz', 'text'],
  },
];

export const INDEX_TABLE_NAMES = INDEX_TABLES.map((t) => t.table);

/** Every index table, as a mask with one bit per entry of INDEX_TABLES. */
const ALL_TABLES = (1 << INDEX_TABLES.length) - 1;

/**
 * CTEs writing the index rows of the rid produced by CTE `source` into the tables of `tables` (a
 * mask), from parameter arrays starting at `$first`. `replacing` a resource's rows: only the
 * difference is written — rows no longer made are deleted, new ones inserted, rows that stay are
 * left alone — as most updates change no searchable value, and each row written is a heap tuple
 * and up to four B-tree entries. The sub-statements share one snapshot, so the INSERT compares
 * against the rows as they were; both write only when `source` made its row (an update that does
 * not follow the stored version writes nothing).
 */
function indexWriteCtes(source: string, first: number, tables: number, replacing?: string): string[] {
  let n = first;
  return INDEX_TABLES.filter((_, t) => tables & (1 << t)).map(({ table, columns, casts }) => {
    const rows = `unnest(${casts.map((c) => `$${n++}::${c}[]`).join(', ')}) AS u(${columns.join(', ')})`;
    if (!replacing) return `i_${table} AS (INSERT INTO ${table} (rid, ${columns.join(', ')}) SELECT ${source}.rid, u.* FROM ${source}, ${rows})`;
    const same = `(${columns.map((c) => `o.${c}`).join(', ')}) IS NOT DISTINCT FROM (${columns.map((c) => `u.${c}`).join(', ')})`;
    return `d_${table} AS (DELETE FROM ${table} AS o WHERE o.rid = ${replacing} AND EXISTS (SELECT 1 FROM ${source}) AND NOT EXISTS (SELECT 1 FROM ${rows} WHERE ${same})),
i_${table} AS (INSERT INTO ${table} (rid, ${columns.join(', ')}) SELECT ${source}.rid, u.* FROM ${source}, ${rows}
  WHERE NOT EXISTS (SELECT 1 FROM ${table} AS o WHERE o.rid = ${replacing} AND ${same}))`;
  });
}

/** A resource's index rows as parameter arrays: per table (in INDEX_TABLES' order), one array per column. */
type IndexParams = unknown[][][];

function indexParams(rows: IndexRows | undefined): IndexParams {
  return INDEX_TABLES.map(({ key, columns }) => {
    const list = (rows?.[key] ?? []) as unknown[][];
    return columns.map((_, i) => list.map((row) => row[i]));
  });
}

/** The tables a resource has index rows in (a mask). */
function tablesWithRows(params: IndexParams): number {
  return params.reduce((mask, table, t) => ((table[0]?.length ?? 0) > 0 ? mask | (1 << t) : mask), 0);
}

/** The parameter arrays of the tables in `tables`, in the order indexWriteCtes numbers them. */
function arraysOf(params: IndexParams, tables: number): unknown[][] {
  return params.flatMap((table, t) => (tables & (1 << t) ? table : []));
}

/**
 * A resource's index rows in short: the same digest, the same rows. It begins with the mask of
 * the tables they are in (`5:…`), so that an update knows where the rows it replaces can be.
 */
function indexDigest(params: IndexParams): string {
  return `${tablesWithRows(params)}:${hash('sha256', JSON.stringify(params), 'base64url')}`;
}

/** The tables a stored digest says its resource has rows in; every table when it says nothing (none stored, or from before the mask). */
function tablesOfDigest(digest: string | null | undefined): number {
  const m = digest ? /^(\d+):/.exec(digest) : null;
  return m ? Number(m[1]) & ALL_TABLES : ALL_TABLES;
}

/** $1–$7 of every write: the resource's row. */
function rowParams(v: NewVersion): unknown[] {
  return [v.type, v.id, v.version, v.lastUpdated, v.content === null, v.content, v.compartments];
}

/**
 * The statements that write a resource, one per combination of index tables it writes to (at most
 * 2^8 of each kind; a type makes a few). A statement names only the tables that get rows: every
 * table it names is opened and locked with all its indexes, even for no rows: naming all eight, a
 * create locked 45 relations, where a Goal's rows are in three tables (25 relations). Past 16 a
 * transaction's locks go to PostgreSQL's shared lock table, which every backend contends for. An
 * update naming no table keeps the index rows as they are. Parameters: $1–$7 the row (rowParams),
 * $8 the method, $9 the index rows' digest, for an update $10 the rid, then the tables' arrays
 * (arraysOf).
 */
const writeStatements = new Map<string, string>();

type WriteKind = 'insert' | 'insert-new' | 'update';

function writeStatement(kind: WriteKind, tables: number): string {
  const key = `${kind}:${tables}`;
  let text = writeStatements.get(key);
  if (text !== undefined) return text;
  const update = kind === 'update';
  const row = update
    ? `r AS (
  UPDATE resources SET version = $3, last_updated = $4, deleted = $5, content = $6, compartments = $7::text[], index_digest = $9
  WHERE rid = $10 AND version = $3::int - 1 RETURNING rid
)`
    : `r AS (
  INSERT INTO resources (type, id, version, last_updated, deleted, content, compartments, index_digest)
  VALUES ($1, $2, $3, $4, $5, $6, $7::text[], $9)
  ${kind === 'insert' ? 'ON CONFLICT (type, id) DO NOTHING' : ''}
  RETURNING rid
)`;
  const history = `v AS (INSERT INTO resource_versions (rid, version, type, id, last_updated, method, content)
  SELECT r.rid, $3, $1, $2, $4, $8, $6 FROM r)`;
  const index = update ? indexWriteCtes('r', 11, tables, '$10') : indexWriteCtes('r', 10, tables);
  text = `WITH ${[row, history, ...index].join(',\n')}
${update ? 'SELECT coalesce((SELECT rid FROM r), samplan_version_moved($10::bigint)) AS rid' : 'SELECT rid FROM r'}`;
  writeStatements.set(key, text);
  return text;
}

/** A write's statement and parameters: the version's row, and its index rows into the tables of `tables`. */
function write(kind: WriteKind, v: NewVersion, params: IndexParams, digest: string, tables: number, rid?: number) {
  return { text: writeStatement(kind, tables), params: [...rowParams(v), v.method, digest, ...(rid === undefined ? [] : [rid]), ...arraysOf(params, tables)] };
}

/** A new resource's statement and parameters: its index rows into the tables they are in. */
function create(kind: 'insert' | 'insert-new', v: NewVersion, index: IndexRows | undefined) {
  const params = indexParams(index);
  return write(kind, v, params, indexDigest(params), tablesWithRows(params));
}

/** SQLSTATE of an update that found its row at another version (migration 016). */
const VERSION_MOVED = 'SP409';
/** SQLSTATE of an INSERT of a type/id that exists. */
const UNIQUE_VIOLATION = '23505';

/**
 * True once `statement` has run; false when it failed with `state` — as a whole, nothing written
 * (and in a transaction, the transaction with it).
 */
async function failsAs(state: string, statement: Promise<unknown>): Promise<boolean> {
  try {
    await statement;
    return true;
  } catch (err) {
    if (sqlState(err) === state) return false;
    throw err;
  }
}


/** A resource to insert as a whole, for `insertMany`: its version, index rows and published version. */
export interface NewResource extends NewVersion {
  index: IndexRows | undefined;
  /** The version its patient is served (resources.published_version); null or absent: not published. */
  publishedVersion?: number | null;
}

/** CTEs inserting the index rows of `insertMany`: per table, the owner's position `n`, then the columns; parameters from `$first`. */
function indexInsertManyCtes(first: number): string {
  let n = first;
  return INDEX_TABLES.map(({ table, columns, casts }) => {
    const arrays = [`$${n++}::int8[]`, ...casts.map((c) => `$${n++}::${c}[]`)].join(', ');
    return `i_${table} AS (INSERT INTO ${table} (rid, ${columns.join(', ')})
  SELECT w.rid, ${columns.map((c) => `u.${c}`).join(', ')} FROM unnest(${arrays}) AS u(n, ${columns.join(', ')}) JOIN w USING (n))`;
  }).join(',\n');
}

/** The parameters of indexInsertManyCtes: per table, each row's owner (1-based position in `owners`), then the columns. */
function indexManyParams(owners: ReadonlyArray<{ index: IndexRows | undefined }>): unknown[][] {
  return INDEX_TABLES.flatMap(({ key, columns }) => {
    const positions: number[] = [];
    const values: unknown[][] = columns.map(() => []);
    owners.forEach((owner, i) => {
      for (const row of (owner.index?.[key] ?? []) as unknown[][]) {
        positions.push(i + 1);
        row.forEach((value, c) => values[c]?.push(value));
      }
    });
    return [positions, ...values];
  });
}

/**
 * The insert of many resources: the rows come in as parallel arrays (compartments joined with
 * ','), each index row names its resource by position (`n`, 1-based) in them.
 */
const INSERT_MANY_SQL = `WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::text[], $7::int[], $8::text[])
    WITH ORDINALITY AS u(type, id, version, last_updated, content, compartments, published_version, method, n)
),
r AS (
  INSERT INTO resources (type, id, version, last_updated, deleted, content, compartments, published_version)
  SELECT type, id, version, last_updated, content IS NULL, content, string_to_array(compartments, ','), published_version FROM input ORDER BY n
  ON CONFLICT (type, id) DO NOTHING
  RETURNING rid, type, id
),
w AS (SELECT r.rid, input.* FROM r JOIN input USING (type, id)),
v AS (INSERT INTO resource_versions (rid, version, type, id, last_updated, method, content)
  SELECT rid, version, type, id, last_updated, method, content FROM w),
${indexInsertManyCtes(9)}
SELECT count(*)::int AS inserted FROM r`;

/**
 * New index rows and compartments for stored resources (the search index rebuilt after extraction
 * changed: src/search/reindex.ts). Sub-statements share one snapshot: the DELETE cannot see the rows the INSERT adds.
 */
const REINDEX_SQL = `WITH input AS (
  SELECT * FROM unnest($1::int8[], $2::text[], $3::text[]) WITH ORDINALITY AS u(rid, compartments, digest, n)
),
${INDEX_TABLES.map(({ table }) => `d_${table} AS (DELETE FROM ${table} WHERE rid = ANY($1::int8[]))`).join(',\n')},
c AS (
  UPDATE resources AS r SET compartments = string_to_array(input.compartments, ','), index_digest = input.digest
  FROM input WHERE r.rid = input.rid
    AND (r.compartments IS DISTINCT FROM string_to_array(input.compartments, ',') OR r.index_digest IS DISTINCT FROM input.digest)
),
w AS (SELECT rid, n FROM input),
${indexInsertManyCtes(4)}
SELECT count(*)::int AS reindexed FROM input`;

/** A stored resource's index rows and compartments as extraction makes them now. */
export interface Reindexed {
  rid: number;
  compartments: readonly string[];
  index: IndexRows;
}

/** By rule (one per caller's access, fhir/access.ts `visibility`): the SQL of a read by id is the same on every read; compiling it was about 5 % of a read. */
const readStatements = new WeakMap<ReadRule, CompiledQuery | undefined>();

/** The read by id under `rule`, with slots for the type and the id; undefined when the rule restricts nothing. */
function readStatement(rule: ReadRule): CompiledQuery | undefined {
  if (readStatements.has(rule)) return readStatements.get(rule);
  const filter = rule.filter('r');
  const statement = filter
    ? kept(
        compile(sql`SELECT r.rid, r.type, r.id, r.deleted, r.compartments, ${servedColumns(rule, 'r', true)}
          FROM resources AS r WHERE r.type = ${new Slot(0)} AND r.id = ${new Slot(1)} AND ${filter}`),
      )
    : undefined;
  readStatements.set(rule, statement);
  return statement;
}

export class ResourceStore {
  /** The current version (or deletion marker) of a resource, if the caller may see it. */
  async read(q: Queryable, type: string, id: string, rule?: ReadRule): Promise<StoredResource | undefined>;
  async read(q: Queryable, type: string, id: string, rule: ReadRule | undefined, as: TextAs): Promise<StoredResource<StoredText> | undefined>;
  async read(q: Queryable, type: string, id: string, rule?: ReadRule, as: TextAs = 'string'): Promise<StoredResource<StoredText> | undefined> {
    const statement = rule ? readStatement(rule) : undefined;
    if (!statement) {
      const rows = await q.query<StoredResource<StoredText>>(`SELECT ${RESOURCE_COLUMNS} FROM resources WHERE type = $1 AND id = $2`, [type, id], asked(as));
      return rows[0];
    }
    return (await q.query<StoredResource<StoredText>>(statement.sql, bind(statement.parameters, [type, id]), asked(as)))[0];
  }

  /** Like read, but locks the row until the transaction ends, so concurrent writers queue. */
  async lock(q: Queryable, type: string, id: string): Promise<StoredResource | undefined> {
    const rows = await q.query<StoredResource>(
      `SELECT ${RESOURCE_COLUMNS}, index_digest AS "indexDigest" FROM resources WHERE type = $1 AND id = $2 FOR UPDATE`,
      [type, id],
    );
    return rows[0];
  }

  /** One version of a resource, if the caller may see the resource; its text to be served as it is. */
  async readVersion(q: Queryable, type: string, id: string, version: number, visible?: ReadRule): Promise<VersionRow<StoredText> | undefined> {
    const c = compile(sql`SELECT v.rid, v.type, v.id, v.version, v.last_updated AS "lastUpdated", v.method, v.content
       FROM resources AS r JOIN resource_versions AS v ON v.rid = r.rid
       WHERE r.type = ${type} AND r.id = ${id} AND v.version = ${version} ${andFilter(visible)}`);
    return (await q.query<VersionRow<StoredText>>(c.sql, c.parameters, AS_BYTES))[0];
  }

  /** Inserts version 1 under an id the client chose (update as create). Returns undefined if (type, id) exists. */
  async insert(q: Queryable, v: NewVersion, index: IndexRows | undefined): Promise<number | undefined> {
    const { text, params } = create('insert', v, index);
    const rows = await q.query<{ rid: number }>(text, params);
    return rows[0]?.rid;
  }

  /**
   * Inserts version 1 of a resource with a new, server-made id. False when type/id exists: the
   * statement then fails as a whole (unique_violation) rather than skip it, taking its transaction
   * down with it — so the caller need not wait for its answer (Transaction.expect).
   */
  async insertNew(q: Queryable, v: NewVersion, index: IndexRows | undefined): Promise<boolean> {
    const { text, params } = create('insert-new', v, index);
    return failsAs(UNIQUE_VIOLATION, q.query(text, params));
  }

  /**
   * insertNew as the transaction's last statement, sent with COMMIT (Transaction.defer): for
   * records no statement of the transaction reads.
   */
  insertWithCommit(tx: Transaction, v: NewVersion, index: IndexRows | undefined): void {
    const { text, params } = create('insert-new', v, index);
    tx.defer({ text, params });
  }

  /**
   * Inserts many new resources — each as version `version` with its history row, index rows and
   * published version — in one statement (for bulk loading, e.g. bench/generate.ts --bulk; the API
   * writes one at a time through the write pipeline). Rows whose (type, id) exists are skipped.
   * Returns how many were inserted.
   */
  async insertMany(q: Queryable, rows: readonly NewResource[]): Promise<number> {
    if (!rows.length) return 0;
    const column = <T>(f: (r: NewResource) => T) => rows.map(f);
    const index = indexManyParams(rows);
    const params = [
      column((r) => r.type),
      column((r) => r.id),
      column((r) => r.version),
      column((r) => r.lastUpdated),
      column((r) => r.content),
      column((r) => r.compartments.join(',')),
      column((r) => r.publishedVersion ?? null),
      column((r) => r.method),
      ...index,
    ];
    const result = await q.query<{ inserted: number }>(INSERT_MANY_SQL, params);
    return result[0]?.inserted ?? 0;
  }

  /** Replaces the index rows and compartments of current versions (locked by the caller), in one statement. */
  async reindex(q: Queryable, items: readonly Reindexed[]): Promise<void> {
    if (!items.length) return;
    const digests = items.map((i) => indexDigest(indexParams(i.index)));
    await q.query(REINDEX_SQL, [items.map((i) => i.rid), items.map((i) => i.compartments.join(',')), digests, ...indexManyParams(items)]);
  }

  /**
   * Writes a new current version of an existing (locked) resource and replaces its index rows.
   * Most changes change no searchable value (a goal's text, a note): when the rows' digest is the
   * one `target` had when locked, the index tables are not touched at all. Finding that out in
   * SQL, row by row, was most of the statement's 0.3 ms in PostgreSQL.
   *
   * False when the row is not at the version before `v`: the statement then fails as a whole
   * (migration 016) rather than change nothing, so in a transaction, which it takes down with it,
   * the caller need not wait for its answer (Transaction.expect).
   */
  async update(q: Queryable, target: { rid: number; indexDigest?: string | null }, v: NewVersion, index: IndexRows | undefined): Promise<boolean> {
    const params = indexParams(index);
    const digest = indexDigest(params);
    // The rows' tables, and those the stored digest says the rows it replaces are in; none when the rows are the stored ones.
    const tables = digest === target.indexDigest ? 0 : tablesWithRows(params) | tablesOfDigest(target.indexDigest);
    const { text, params: values } = write('update', v, params, digest, tables, target.rid);
    return failsAs(VERSION_MOVED, q.query(text, values));
  }

  /**
   * Versions newest first: of one resource (`type` and `id`), of one type, or of everything. Paged by a
   * keyset (`before`: the last row of the previous page), so pages stay stable while writes go on.
   * Their text is to be served as it is.
   */
  async history(
    q: Queryable,
    scope: { type?: undefined; id?: undefined } | { type: string; id?: string },
    options: { since?: string; count: number; before?: HistoryCursor; visible?: ReadRule },
  ): Promise<Array<VersionRow<StoredText>>> {
    const where: Fragment[] = [];
    if (scope.id !== undefined) where.push(sql`r.type = ${scope.type} AND r.id = ${scope.id}`);
    else if (scope.type !== undefined) where.push(sql`v.type = ${scope.type}`);
    if (options.since) where.push(sql`v.last_updated >= ${options.since}::timestamptz`);
    if (options.before) {
      const b = options.before;
      where.push(sql`(v.last_updated, v.rid, v.version) < (${b.lastUpdated}::timestamptz, ${b.rid}::bigint, ${b.version}::int)`);
    }
    const filter = options.visible?.filter('r');
    // The access rule applies to the resource as it is now; one resource is found by its current row.
    const from = filter || scope.id !== undefined ? sql`resource_versions AS v JOIN resources AS r ON r.rid = v.rid` : sql`resource_versions AS v`;
    if (filter) where.push(filter);
    const c = compile(sql`SELECT v.rid, v.type, v.id, v.version, v.last_updated AS "lastUpdated", v.method, v.content
      FROM ${from} ${where.length ? sql`WHERE ${sql.join(where, sql` AND `)}` : sql``}
      ORDER BY v.last_updated DESC, v.rid DESC, v.version DESC LIMIT ${options.count}`);
    return q.query<VersionRow<StoredText>>(c.sql, c.parameters, AS_BYTES);
  }
}

function andFilter(visible: ReadRule | undefined): Fragment {
  const filter = visible?.filter('r');
  return filter ? sql`AND ${filter}` : sql``;
}

export interface HistoryCursor {
  lastUpdated: string;
  rid: number;
  version: number;
}
