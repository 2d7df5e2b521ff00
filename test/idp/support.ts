/**
 * A Fastify server with only the embedded identity provider (and a stand-in JSON route and health
 * check, to show the rest of a server is unaffected), listening on a free loopback port, on a
 * fresh test database. Tests talk to it over real HTTP.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { createEmbeddedIdp, type EmbeddedIdp, type EmbeddedIdpOptions } from '../../src/idp/index.js';
import { discover, type Discovery } from '../../src/idp/token-client.js';
import { apiScopes } from '../../src/security/claims.js';
import type { Database } from '../../src/store/db.js';

export const SCOPES = apiScopes('nhn:samplan');

/** A port that was free a moment ago (the issuer URL must be known before the server listens). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export interface IdpServer {
  app: FastifyInstance;
  idp: EmbeddedIdp;
  origin: string;
  issuer: string;
  dataDir: string;
  discovery: Discovery;
  close(): Promise<void>;
}

/** Starts a server; with `options.issuer` (another instance's) it serves that issuer from its own port. */
export async function startIdpServer(db: Database, options: Partial<EmbeddedIdpOptions> = {}): Promise<IdpServer> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const issuer = options.issuer ?? `${origin}/idp`;
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'samplan-idp-'));
  const idp = await createEmbeddedIdp({ db, scopes: SCOPES, dataDir, ...options, issuer });
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.post('/echo', async (req) => ({ received: req.body }));
  await idp.register(app);
  await app.listen({ port, host: '127.0.0.1' });
  const discovery = await discover(`${origin}${new URL(issuer).pathname}`);
  return {
    app,
    idp,
    origin,
    issuer,
    dataDir,
    discovery,
    async close() {
      await app.close();
      await idp.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
