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
import { registerNhnStatus } from './http/nhn-status.js';
import { createEmbeddedIdp, type EmbeddedIdp } from './idp/index.js';
import { type Delivery, type DeliveryOptions, startDelivery, SUBSCRIPTION_CAPABILITY_EXTENSIONS, subscriptionHook, subscriptionStatusOperation } from './plan/subscriptions/index.js';
import { type BulkExport, createBulkExport } from './plan/export/index.js';
import { checkIns } from './plan/checkins.js';
import { applyOperation } from './plan/apply.js';
import { installConformance, registerSamplanProfiles } from './plan/profiles/index.js';
import { provenance } from './plan/provenance.js';
import { publication } from './plan/publication.js';
import { planRules } from './plan/rules.js';
import { diffOperation, versionsOperation } from './plan/history.js';
import { nhnPlanOperation } from './plan/nhn-plan.js';
import { planChanges, planStatusOperation } from './plan/status.js';
import { installTemplates } from './plan/templates/index.js';
import { approvalOperation, publishOperation } from './plan/workflow.js';
import { searchRegistry } from './search/registry.js';
import { AuditWriter } from './security/audit.js';
import { keepAuditPartitions } from './security/audit-partitions.js';
import type { AuthRequest } from './security/authenticate.js';
import { apiScopes } from './security/claims.js';
import { ANONYMOUS_ACCESS } from './security/policy.js';
import { PageTokens } from './search/page-tokens.js';
import { PrivacyCache } from './security/privacy-cache.js';
import { startReindex } from './search/reindex.js';
import { createSecurity } from './security/setup.js';
import type { Database } from './store/db.js';
import { openDatabase } from './store/open.js';
import { ResourceStore } from './store/resources.js';
import { serverSecret } from './store/secrets.js';

export interface App {
  server: FastifyInstance;
  engine: FhirEngine;
  db: Database;
  /** The embedded identity provider, when Samplan runs its own. */
  idp?: EmbeddedIdp;
  /** Bulk export ($export): its operations and the worker running in this process. */
  bulkExport: BulkExport;
  /** The notification delivery worker of this instance (unless turned off). */
  delivery?: Delivery;
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
  /** Options of the delivery worker, or false to start none (tests that run their own). */
  delivery?: Partial<Omit<DeliveryOptions, 'writer' | 'baseUrl'>> | false;
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export async function createApp(config: Config, logger: Logger, options: AppOptions = {}): Promise<App> {
  definitions();
  searchRegistry();
  setAllowedExtensionDomains(config.allowedExtensionDomains);
  registerSamplanProfiles();
  // Build the validator's lazily made tables (terminology, type indexes) now, not on the first write.
  validateResource({ resourceType: 'Patient', gender: 'unknown', name: [{ family: 'Oppvarming' }] });
  const db =
    options.db ??
    (await openDatabase({
      ...config,
      replica: {
        maxStalenessMs: config.replicaMaxStalenessMs,
        onState: (state, cause) =>
          state === 'down'
            ? logger.warn({ err: cause }, 'the read replica is not in use; reads go to the primary')
            : logger.info('the read replica is in use again'),
      },
    }));
  const store = new ResourceStore();
  // Before anything is written here: a database without resources is marked current at once.
  const reindex = await startReindex(db, store, { baseUrl: config.baseUrl, logger });
  const auditPartitions = await keepAuditPartitions(db, logger);
  const writer = new ResourceWriter(store);
  // The plan domain plugs into the one write pipeline, in this order.
  writer.use(planRules);
  writer.use(provenance);
  writer.use(publication);
  writer.use(checkIns(store));
  writer.use(subscriptionHook()); // outbox events in the write's transaction
  writer.use(planChanges); // the status check's "last changed"
  const privacy = new PrivacyCache(db);
  writer.use(privacy.hook);
  await privacy.start();
  const lookupPrivacy = (nin: string) => privacy.lookup(nin);
  const bulkExport = createBulkExport({
    db,
    policy: { scopes: apiScopes(config.security.audience), allowedRoles: new Set(config.security.allowedRoles) },
    log: logger,
  });
  const engine = new FhirEngine(
    { db, store, writer, pages: new PageTokens(await serverSecret(db, 'page-tokens')), privacy: lookupPrivacy },
    [validateOperation, applyOperation, publishOperation, approvalOperation, planStatusOperation, versionsOperation, diffOperation, nhnPlanOperation, ...bulkExport.operations, subscriptionStatusOperation],
    logger,
    { name: 'Samplan', version: pkg.version, resourceExtensions: { Subscription: SUBSCRIPTION_CAPABILITY_EXTENSIONS } },
    new AuditWriter(db),
  );
  await installConformance(engine, config.baseUrl);
  await installTemplates(engine, config.baseUrl);

  const external = config.security.helseIdIssuer || config.security.helsenorgeIssuer;
  const idp = external
    ? undefined
    : await createEmbeddedIdp({
        db,
        issuer: `${new URL(config.baseUrl).origin}/idp`,
        scopes: apiScopes(config.security.audience),
        dataDir: config.dataDir,
      });
  const authenticate = options.authenticate ?? (await createSecurity(config.security, db, idp, lookupPrivacy)).authenticate;

  // One delivery worker per instance; they share the work through the database.
  const delivery = options.delivery === false ? undefined : startDelivery(db, { writer, baseUrl: config.baseUrl, logger, ...options.delivery });

  let closing = false;
  const server = buildServer({
    config,
    engine,
    logger,
    authenticate,
    anonymous: ANONYMOUS_ACCESS,
    plugins: [
      async (app: FastifyInstance) => registerNhnStatus(app, { db, privacy: lookupPrivacy, baseUrl: config.baseUrl, authenticate }),
      ...(idp ? [(app: FastifyInstance) => idp.register(app)] : []),
    ],
    ready: async () => {
      if (closing) return false;
      await db.query('SELECT 1');
      return true;
    },
  });
  await bulkExport.start();
  return {
    server,
    engine,
    db,
    ...(idp ? { idp } : {}),
    bulkExport,
    ...(delivery ? { delivery } : {}),
    async close() {
      closing = true;
      await server.close();
      await delivery?.stop(); // finishes the round in flight before the database closes
      await bulkExport.stop(); // running jobs give their claim back before the database closes
      await reindex.stop();
      auditPartitions.stop();
      await idp?.close();
      if (!options.db) await db.close();
    },
  };
}
