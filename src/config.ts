import path from 'node:path';

/** Typed process configuration, read once from the environment. */
export interface Config {
  port: number;
  host: string;
  /** Public base URL of the FHIR endpoint, used in Location headers, fullUrls and paging links. */
  baseUrl: string;
  /** PostgreSQL server URL; when absent Samplan runs on embedded PGlite in `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  logLevel: string;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
  /** Deepest accepted JSON nesting (objects and arrays). */
  maxJsonDepth: number;
  /** Extension URL prefixes accepted even though their StructureDefinition is unknown to the server. */
  allowedExtensionDomains: string[];
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = int(env, 'PORT', 8080);
  const host = env.HOST || '0.0.0.0';
  const publicHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  const baseUrl = (env.BASE_URL || `http://${publicHost}:${port}/fhir`).replace(/\/+$/, '');
  return {
    port,
    host,
    baseUrl,
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: path.resolve(env.DATA_DIR || 'data'),
    logLevel: env.LOG_LEVEL || 'info',
    bodyLimit: int(env, 'BODY_LIMIT', 16 * 1024 * 1024),
    maxJsonDepth: int(env, 'MAX_JSON_DEPTH', 64),
    allowedExtensionDomains: (env.ALLOWED_EXTENSION_DOMAINS || '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
}
