/**
 * Composition of the parts: database → repository → write pipeline → FHIR engine → HTTP server.
 * Used by main.ts and by the tests, so what is tested is what runs.
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
import { buildServer } from './http/server.js';
import { searchRegistry } from './search/registry.js';
import type { Database } from './store/db.js';
import { openDatabase } from './store/open.js';
import { ResourceStore } from './store/resources.js';

export interface App {
  server: FastifyInstance;
  engine: FhirEngine;
  db: Database;
  close(): Promise<void>;
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export async function createApp(config: Config, logger: Logger, options: { db?: Database } = {}): Promise<App> {
  definitions();
  searchRegistry();
  setAllowedExtensionDomains(config.allowedExtensionDomains);
  // Build the validator's lazily made tables (terminology, type indexes) now, not on the first write.
  validateResource({ resourceType: 'Patient', gender: 'unknown', name: [{ family: 'Oppvarming' }] });
  const db = options.db ?? (await openDatabase(config));
  const store = new ResourceStore();
  const engine = new FhirEngine({ db, store, writer: new ResourceWriter(store) }, [validateOperation], logger, {
    name: 'Samplan',
    version: pkg.version,
  });
  let closing = false;
  const server = buildServer({
    config,
    engine,
    logger,
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
    async close() {
      closing = true;
      await server.close();
      if (!options.db) await db.close();
    },
  };
}
