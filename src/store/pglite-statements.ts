/**
 * Named prepared statements for PGlite, sent in one protocol call each.
 *
 * PGlite's `query()` makes six calls into the WASM backend per statement (Parse, Describe, Bind,
 * Describe, Execute, Sync) and, with an unnamed statement, PostgreSQL plans it every time —
 * asking the file system for the size of every table and index it might use (an `lseek` and an
 * `fstat` each). Measured on a read by id: 0.59 ms per statement that way, 0.13–0.2 ms here. The
 * PostgreSQL server driver (postgres.js) prepares statements too, so both drivers now let
 * PostgreSQL choose between a custom and a cached generic plan the same way.
 *
 * The caller holds PGlite's query lock (`runExclusive`); a transaction also holds its own.
 */
import { type PGlite, parse, protocol } from '@electric-sql/pglite';
import { BoundedMap } from '../bounded-map.js';
import { sqlState } from './db.js';

/** Prepared statements kept per database; the least recently used one is closed beyond this. */
const MAX_STATEMENTS = 256;

/**
 * Types whose binary form is their text in UTF-8 (text, json). A long value of one goes as bytes,
 * encoded natively: PGlite's protocol writer measures a string's UTF-8 length in a JavaScript
 * loop. Measured on a batch of 30 reads' audit records (90 KB of JSON): 2.67 → 2.05–2.3 ms.
 */
const UTF8_TYPES = new Set([25, 114]);
const AS_BYTES_FROM = 256;

/** SQLSTATEs after which a prepared statement must be prepared again (e.g. a table changed under it). */
const STALE = new Set(['0A000', '26000']);

interface Prepared {
  name: string;
  /** The type (OID) of each parameter, as PostgreSQL inferred it: it picks the serialiser. */
  types: number[];
}

const { serialize } = protocol;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class PreparedStatements {
  /** By SQL text, least recently used first (a Map keeps insertion order). */
  readonly #statements = new BoundedMap<string, Prepared>(MAX_STATEMENTS, (_text, statement) => this.#close(statement));
  /** Evicted statements to close with the next call. */
  #closing: Uint8Array[] = [];
  #counter = 0;

  constructor(private readonly pg: PGlite) {}

  /** Runs one statement and returns its rows, parsed as `pg.query` would. */
  async run<R>(text: string, params: readonly unknown[] = []): Promise<R[]> {
    try {
      return await this.#execute<R>(text, params);
    } catch (err) {
      if (!STALE.has(sqlState(err) ?? '')) throw err;
      this.#forget(text);
      // Outside a transaction nothing was done yet: prepare it again, as postgres.js does.
      if (this.pg.isInTransaction()) throw err;
      return this.#execute<R>(text, params);
    }
  }

  async #execute<R>(text: string, params: readonly unknown[]): Promise<R[]> {
    const statement = await this.#prepare(text);
    const values = params.map((value, i) => {
      if (value === null || value === undefined) return null;
      const type = statement.types[i] as number;
      const serializer = this.pg.serializers[type];
      const serialized = serializer ? serializer(value) : String(value);
      return serialized.length >= AS_BYTES_FROM && UTF8_TYPES.has(type) ? Buffer.from(serialized, 'utf8') : serialized;
    });
    const messages = await this.#send(serialize.bind({ statement: statement.name, values }), serialize.describe({ type: 'P' }), serialize.execute({}));
    return (parse.parseResults(messages, this.pg.parsers)[0]?.rows ?? []) as R[];
  }

  async #prepare(text: string): Promise<Prepared> {
    const known = this.#statements.get(text);
    if (known) {
      this.#statements.set(text, known);
      return known;
    }
    const name = `samplan_${++this.#counter}`;
    const messages = await this.#send(serialize.parse({ name, text }), serialize.describe({ type: 'S', name }));
    const prepared = { name, types: parse.parseDescribeStatementResults(messages) };
    this.#statements.set(text, prepared);
    return prepared;
  }

  #forget(text: string): void {
    const statement = this.#statements.get(text);
    if (!statement) return;
    this.#statements.delete(text);
    this.#close(statement);
  }

  #close(statement: Prepared): void {
    this.#closing.push(serialize.close({ type: 'S', name: statement.name }));
  }

  /** The messages, any pending Close, and Sync, in one call; throws the database's error, if any. */
  #send(...messages: Uint8Array[]) {
    const closing = this.#closing;
    this.#closing = [];
    return this.pg.execProtocolStream(concat([...closing, ...messages, serialize.sync()]), { syncToFs: false });
  }
}
