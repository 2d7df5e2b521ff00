/** Process entry: configuration, the app, listening, and a graceful stop on SIGTERM/SIGINT. */
import { createApp } from './app.js';
import { loadConfig } from './config.js';
import { seedOnStart } from './demo/seed.js';
import { createLogger } from './log.js';

const config = loadConfig();
const logger = createLogger(config.logLevel);

try {
  const app = await createApp(config, logger);
  // Before listening, so the first request already sees the demo data (SEED_DEMO_DATA).
  await seedOnStart(app.engine, config, logger);
  await app.server.listen({ port: config.port, host: config.host });
  logger.info({ baseUrl: config.baseUrl, database: app.db.kind }, 'Samplan is serving FHIR R4');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    try {
      await app.close();
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'error during shutdown');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
} catch (err) {
  logger.fatal({ err }, 'Samplan could not start');
  process.exit(1);
}
