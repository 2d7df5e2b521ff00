// Run by `npm install`/`npm ci` (postinstall): fixes two faults of postgres.js 3.4.x (the latest)
// when a connection dies, found by Samplan's reliability tests. Idempotent (each fix carries a
// mark); a version that no longer has the code is left alone with a warning.
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
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', 'node_modules', 'postgres');
const files = ['src', 'cjs/src', 'cf/src'].map((d) => path.join(root, d, 'connection.js')).filter((f) => existsSync(f));

// Each fix: a mark, and the edits (text → replacement, every occurrence) that must all apply.
const fixes = [
  {
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
    mark: '/* samplan: no stale queries */',
    edits: [
      ['    query && queryError(query, err)\n', '    /* samplan: no stale queries */\n    query && (queryError(query, err), query = null)\n'],
      // An error the dead server sent (57P01, "terminating connection") before its ReadyForQuery
      // would otherwise fail the first query of the reconnected connection.
      ['  async function closed(hadError) {\n    incoming = Buffer.alloc(0)\n', '  async function closed(hadError) {\n    errorResponse = null\n    incoming = Buffer.alloc(0)\n'],
    ],
  },
];

for (const file of files) {
  let text = readFileSync(file, 'utf8');
  for (const { mark, edits } of fixes) {
    if (text.includes(mark)) continue;
    if (!edits.every(([from]) => text.includes(from))) {
      console.warn(`patch-postgres: ${path.relative(process.cwd(), file)} does not look like postgres.js 3.4.x; "${mark}" not applied`);
      continue;
    }
    for (const [from, to] of edits) text = text.replaceAll(from, to);
  }
  writeFileSync(file, text);
}
