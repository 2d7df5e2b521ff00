/**
 * The ceiling: a bare Fastify route doing the single indexed SELECT that a read by id does, on
 * the same database driver and pool, returning the stored text. No security, no audit, no
 * engine. Every scenario is also reported as a ratio to this, so results compare across machines.
 *
 *   GET /r/:type/:id  → the stored JSON of the resource (404 if none)
 *   GET /readyz       → 200
 */
import Fastify from 'fastify';
import { openDatabase } from '../src/store/open.js';

const db = await openDatabase({
  ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
  dataDir: process.env.DATA_DIR ?? './data',
});
const app = Fastify({ logger: false });
app.get('/readyz', async () => 'ok');
app.get<{ Params: { type: string; id: string } }>('/r/:type/:id', async (req, reply) => {
  const rows = await db.query<{ content: string }>('SELECT content FROM resources WHERE type = $1 AND id = $2 AND NOT deleted', [req.params.type, req.params.id]);
  const row = rows[0];
  if (!row) return reply.code(404).send();
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
