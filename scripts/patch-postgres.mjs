// Run by `npm install`/`npm ci` (postinstall): fixes postgres.js 3.4.x's write scheduler, which
// crashes the process when a connection dies with a write pending — e.g. the ROLLBACK that
// sql.begin() sends after its connection closed during a database restart:
// "TypeError: Cannot read properties of null (reading 'write')" from a setImmediate, uncatchable
// (porsager/postgres#1154, #1208; fix proposed upstream in #1209). It also clears the pending
// write on teardown, so a reconnected connection is not left unable to flush (stale timer).
// Idempotent; a version that no longer has the code is left alone with a warning.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', 'node_modules', 'postgres');
const MARK = '/* samplan: guarded nextWrite */';
const files = ['src', 'cjs/src', 'cf/src'].map((d) => path.join(root, d, 'connection.js')).filter((f) => existsSync(f));

for (const file of files) {
  let text = readFileSync(file, 'utf8');
  if (text.includes(MARK)) continue;
  const before = text;
  text = text.replace(
    'function nextWrite(fn) {\n    const x = socket.write(chunk, fn)',
    `function nextWrite(fn) {\n    ${MARK}\n    if (!socket) {\n      chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options))\n      return false\n    }\n    const x = socket.write(chunk, fn)`,
  );
  // terminate() and closed(): the timer is cleared but was left non-null, so later writes never flushed.
  text = text.replaceAll('\n    clearImmediate(nextWriteTimer)\n', '\n    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n');
  if (text === before || !text.includes(MARK)) {
    console.warn(`patch-postgres: ${path.relative(process.cwd(), file)} does not look like postgres.js 3.4.x; not patched`);
    continue;
  }
  writeFileSync(file, text);
}
