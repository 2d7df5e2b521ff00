/**
 * The ceiling: a bare Fastify route doing the single indexed SELECT that a read by id does, on
 * the same database driver and pool, returning the stored text. No security, no audit, no
 * engine. Every scenario is also reported as a ratio to this, so results compare across machines.
 *
 * A second route adds what the security issue requires of every read, and nothing else: the
 * AuditEvent, stored (group-committed, by Samplan's own AuditWriter) before the answer. The gap
 * between the two is the price of the audit rule; the gap from there to a real read is ours.
 *
 *   GET /r/:type/:id  → the stored JSON of the resource (404 if none)
 *   GET /ra/:type/:id → the same, after its AuditEvent is stored
 *   GET /readyz       → 200
 */
import Fastify from 'fastify';
import { SYSTEM_ACCESS } from '../src/fhir/access.js';
import { AuditWriter } from '../src/security/audit.js';
import { openDatabase } from '../src/store/open.js';

const db = await openDatabase({
  ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
  dataDir: process.env.DATA_DIR ?? './data',
});
const app = Fastify({ logger: false });
app.get('/readyz', async () => 'ok');
const audit = new AuditWriter(db);
const select = (type: string, id: string) => db.query<{ content: string; version: number }>('SELECT content, version FROM resources WHERE type = $1 AND id = $2 AND NOT deleted', [type, id]);
app.get<{ Params: { type: string; id: string } }>('/r/:type/:id', async (req, reply) => {
  const row = (await select(req.params.type, req.params.id))[0];
  if (!row) return reply.code(404).send();
  return reply.header('content-type', 'application/fhir+json; charset=utf-8').send(row.content);
});
app.get<{ Params: { type: string; id: string } }>('/ra/:type/:id', async (req, reply) => {
  const { type, id } = req.params;
  const row = (await select(type, id))[0];
  if (!row) return reply.code(404).send();
  await audit.record({ ctx: { requestId: req.id, baseUrl: 'http://localhost/fhir', access: SYSTEM_ACCESS }, interaction: 'read', outcome: 'success', entities: [{ type, id, version: row.version }] });
  return reply.header('content-type', 'application/fhir+json; charset=utf-8').send(row.content);
});
await app.listen({ port: Number(process.env.PORT ?? 8090), host: process.env.HOST ?? '127.0.0.1' });
const stop = async () => {
  await app.close();
  await db.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
