// Run by `npm install`/`npm ci` (postinstall): fixes four faults of postgres.js 3.4.x (the
// latest), found by Samplan's reliability tests: two when a connection dies (1, 2), one under load
// (3) and one while the server is down (7); saves a round trip per transaction (4); can hand a
// column over as bytes (5); and sends what a tick queued in one write (6).
// Idempotent (each fix carries a mark); a version that no longer has the code is left alone with
// a warning.
//
// 1. Its write scheduler crashes the process when a connection dies with a write pending — e.g.
//    the ROLLBACK that sql.begin() sends after its connection closed during a database restart:
//    "TypeError: Cannot read properties of null (reading 'write')" from a setImmediate,
//    uncatchable (porsager/postgres#1154, #1208; fix proposed upstream in #1209). The pending write
//    is also cleared on teardown, so a reconnected connection is not left unable to flush.
// 2. A connection that fails with a socket error (ECONNRESET: the backend was terminated, a
//    failover) keeps the query it rejected as its active one; reconnected, it pairs the new
//    server's answers with that stale query, and later queries hang (porsager/postgres#1130, fix
//    proposed upstream in #1142). And an error the server sent just before the socket closed
//    (57P01) fails the first query after the reconnect. The active query is cleared when
//    rejected, and the pending error is dropped with the socket. (Also rejecting what is still
//    queued when the socket closes after an error, as #1142 does, kept a replica's pool from
//    ever recovering after the replica restarted: test/reliability/replica.test.ts.)
// 3. Its connection queues leave a dead slot behind each shift and are only emptied when a shift
//    takes the last entry. With every connection busy, each query shifts a busy connection and
//    pushes it back, so the busy queue grows by one slot per query for as long as the load lasts
//    (megabytes an hour), and each move of a connection scans all of it (indexOf): 2 % of a read's
//    CPU after 15 s of benchmark. The scan now starts at the first live entry, and a queue drops
//    its dead slots once they are the larger half.
// 4. sql.begin() waits for BEGIN's answer before the transaction's first statement is sent: a
//    round trip, and a wake-up of the database backend (the costliest part of a socket write on
//    a busy host), per transaction. The first statement now goes out in the same write, as soon
//    as BEGIN has its connection. BEGIN's failure is still the transaction's: the transaction
//    rolls back instead of committing. A connection lost meanwhile fails the transaction as
//    before. Only a cancel request arriving during BEGIN itself (an operator's
//    pg_cancel_backend; Samplan never cancels) could leave the first statement committed alone.
// 5. A query may name one text column (option `bytes`) to get as the bytes the server sent (a
//    Buffer, as raw() gives every column) instead of a string: stored resource text is served as
//    it came, without decoding UTF-8 into a string and encoding it again.
// 6. It wrote its buffer out at once whenever it passed 1 KB, so statements queued together went
//    out in several writes: an update's deferred audit record and Provenance and its COMMIT took
//    three (each a wake-up of the database backend). What one tick queues now goes out in one
//    write at the end of the tick, up to 64 KB: an update sends 3 writes instead of 6, a create 2
//    instead of 4.
// 7. While the server is down, the queries waiting for a connection were handed to the next
//    connection attempts one at a time, each after the reconnect delay: with few connections the
//    last of them waited seconds for its 503. A refused connection attempt now fails every query
//    waiting for a connection at once; the next query starts a new attempt.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', 'node_modules', 'postgres');
const dirs = ['src', 'cjs/src', 'cf/src'];

// Each fix: its file, a mark, and the edits (text → replacement, every occurrence) that must all apply.
const fixes = [
  {
    file: 'connection.js',
    mark: '/* samplan: guarded nextWrite */',
    edits: [
      [
        'function nextWrite(fn) {\n    const x = socket.write(chunk, fn)',
        "function nextWrite(fn) {\n    /* samplan: guarded nextWrite */\n    if (!socket) {\n      chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options))\n      return false\n    }\n    const x = socket.write(chunk, fn)",
      ],
      // terminate() and closed(): the timer is cleared but was left non-null, so later writes never flushed.
      ['\n    clearImmediate(nextWriteTimer)\n', '\n    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n'],
    ],
  },
  {
    file: 'connection.js',
    mark: '/* samplan: no stale queries */',
    edits: [
      ['    query && queryError(query, err)\n', '    /* samplan: no stale queries */\n    query && (queryError(query, err), query = null)\n'],
      // An error the dead server sent (57P01, "terminating connection") before its ReadyForQuery
      // would otherwise fail the first query of the reconnected connection.
      ['  async function closed(hadError) {\n    incoming = Buffer.alloc(0)\n', '  async function closed(hadError) {\n    errorResponse = null\n    incoming = Buffer.alloc(0)\n'],
    ],
  },
  {
    file: 'queue.js',
    mark: '/* samplan: compacting queue */',
    edits: [
      ['      const index = xs.indexOf(x)\n', '      /* samplan: compacting queue */\n      const at = xs.indexOf(x, index)\n'],
      ['      return index === -1\n        ? null\n        : (xs.splice(index, 1), x)\n', '      return at === -1\n        ? null\n        : (xs.splice(at, 1), x)\n'],
      [
        '      } else {\n        xs[index - 1] = undefined\n      }\n',
        '      } else if (index > 32 && index * 2 > xs.length) {\n        xs = xs.slice(index)\n        index = 0\n      } else {\n        xs[index - 1] = undefined\n      }\n',
      ],
    ],
  },
  {
    file: 'index.js',
    mark: '/* samplan: pipelined begin */',
    edits: [
      [
        "      await sql.unsafe('begin ' + options.replace(/[^a-z ]/ig, ''), [], { onexecute }).execute()\n      return await Promise.race([\n        scope(connection, fn),\n",
        [
          '      /* samplan: pipelined begin */',
          '      let taken',
          '        , refused',
          '      const reserving = new Promise((resolve, reject) => (taken = resolve, refused = reject))',
          "      const began = sql.unsafe('begin ' + options.replace(/[^a-z ]/ig, ''), [], { onexecute: c => (onexecute(c), taken()) }).execute()",
          '      began.catch(refused)',
          '      await reserving',
          '      move(connection, reserved)',
          '      return await Promise.race([',
          '        scope(connection, fn, null, began),',
          '',
        ].join('\n'),
      ],
      ['    async function scope(c, fn, name) {\n', '    async function scope(c, fn, name, began) {\n'],
      // A BEGIN that failed on a live connection (only a cancel can do that) rolls back the rest.
      ['\n        if (uncaughtError)\n          throw uncaughtError\n', '\n        await began\n\n        if (uncaughtError)\n          throw uncaughtError\n'],
    ],
  },
  {
    file: 'connection.js',
    mark: '/* samplan: one write per tick */',
    edits: [
      [
        '    if (fn || chunk.length >= 1024)\n      return nextWrite(fn)\n',
        '    /* samplan: one write per tick */\n    if (fn || chunk.length >= 65536)\n      return nextWrite(fn)\n',
      ],
    ],
  },
  {
    file: 'index.js',
    mark: '/* samplan: a refused connection fails the waiting */',
    edits: [
      [
        '  function onclose(c, e) {\n    move(c, closed)\n',
        '  function onclose(c, e) {\n    /* samplan: a refused connection fails the waiting */\n    const refused = c.queue === connecting\n    move(c, closed)\n',
      ],
      [
        '    options.onclose && options.onclose(c.id)\n    queries.length && connect(c, queries.shift())\n',
        '    options.onclose && options.onclose(c.id)\n    if (refused)\n      while (queries.length)\n        queries.shift().reject(e)\n    queries.length && connect(c, queries.shift())\n',
      ],
    ],
  },
  {
    file: 'connection.js',
    mark: '/* samplan: bytes column */',
    edits: [
      [
        "          : column.parser === undefined\n            ? x.toString('utf8', index, index += length)\n",
        "          : column.parser === undefined\n            ? query.options.bytes === column.name /* samplan: bytes column */\n              ? x.subarray(index, index += length)\n              : x.toString('utf8', index, index += length)\n",
      ],
    ],
  },
];

for (const dir of dirs) {
  for (const name of new Set(fixes.map((f) => f.file))) {
    const file = path.join(root, dir, name);
    if (!existsSync(file)) continue;
    let text = readFileSync(file, 'utf8');
    for (const { mark, edits } of fixes.filter((f) => f.file === name)) {
      if (text.includes(mark)) continue;
      if (!edits.every(([from]) => text.includes(from))) {
        console.warn(`patch-postgres: ${path.relative(process.cwd(), file)} does not look like postgres.js 3.4.x; "${mark}" not applied`);
        continue;
      }
      for (const [from, to] of edits) text = text.replaceAll(from, to);
    }
    writeFileSync(file, text);
  }
}
