/**
 * Composition of the parts: database → repository → write pipeline → audit → FHIR engine →
 * security (embedded identity provider or external issuers) → HTTP server. Used by main.ts and
 * by the tests, so what is tested is what runs.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { definitions } from './fhir/definitions.js';
import { FhirEngine } from './fhir/engine.js';
import { validateOperation } from './fhir/interactions/validate.js';
import { setAllowedExtensionDomains } from './fhir/validation/extensions.js';
import { validateResource } from './fhir/validation/validator.js';
import { ResourceWriter } from './fhir/writer.js';
import { buildServer, type RequestAuth } from './http/server.js';
import { createEmbeddedIdp, type EmbeddedIdp } from './idp/index.js';
import { searchRegistry } from './search/registry.js';
import { AuditWriter } from './security/audit.js';
import type { AuthRequest } from './security/authenticate.js';
import { apiScopes } from './security/claims.js';
import { ANONYMOUS_ACCESS } from './security/policy.js';
import { createSecurity } from './security/setup.js';
import type { Database } from './store/db.js';
import { openDatabase } from './store/open.js';
import { ResourceStore } from './store/resources.js';

export interface App {
  server: FastifyInstance;
  engine: FhirEngine;
  db: Database;
  /** The embedded identity provider, when Samplan runs its own. */
  idp?: EmbeddedIdp;
  close(): Promise<void>;
}

export interface AppOptions {
  /** Use this database instead of opening the configured one (tests). */
  db?: Database;
  /**
   * Replace authentication (tests of FHIR behaviour that is the same for every caller). The
   * security tests use the real one; production has no way to set this.
   */
  authenticate?: (req: AuthRequest) => Promise<RequestAuth>;
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export async function createApp(config: Config, logger: Logger, options: AppOptions = {}): Promise<App> {
  definitions();
  searchRegistry();
  setAllowedExtensionDomains(config.allowedExtensionDomains);
  // Build the validator's lazily made tables (terminology, type indexes) now, not on the first write.
  validateResource({ resourceType: 'Patient', gender: 'unknown', name: [{ family: 'Oppvarming' }] });
  const db = options.db ?? (await openDatabase(config));
  const store = new ResourceStore();
  const engine = new FhirEngine(
    { db, store, writer: new ResourceWriter(store) },
    [validateOperation],
    logger,
    { name: 'Samplan', version: pkg.version },
    new AuditWriter(db),
  );

  const external = config.security.helseIdIssuer || config.security.helsenorgeIssuer;
  const idp = external
    ? undefined
    : await createEmbeddedIdp({
        db,
        issuer: `${new URL(config.baseUrl).origin}/idp`,
        scopes: apiScopes(config.security.audience),
        dataDir: config.dataDir,
      });
  const authenticate = options.authenticate ?? (await createSecurity(config.security, db, idp)).authenticate;

  let closing = false;
  const server = buildServer({
    config,
    engine,
    logger,
    authenticate,
    anonymous: ANONYMOUS_ACCESS,
    ...(idp ? { plugins: [(app: FastifyInstance) => idp.register(app)] } : {}),
    ready: async () => {
      if (closing) return false;
      await db.query('SELECT 1');
      return true;
    },
  });
  return {
    server,
    engine,
    db,
    ...(idp ? { idp } : {}),
    async close() {
      closing = true;
      await server.close();
      await idp?.close();
      if (!options.db) await db.close();
    },
  };
}
