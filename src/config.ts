import path from 'node:path';

/** Typed process configuration, read once from the environment. */
export interface Config {
  port: number;
  host: string;
  /** Public base URL of the FHIR endpoint, used in Location headers, fullUrls and paging links. */
  baseUrl: string;
  /** PostgreSQL server URL; when absent Samplan runs on embedded PGlite in `dataDir`. */
  databaseUrl: string | undefined;
  /**
   * A streaming replica of `databaseUrl` (PostgreSQL server only). Reads, vreads, searches, history
   * and the status check go to it whenever it has replayed what the reader must see (this
   * instance's writes, the client's consistency token, writes older than `replicaMaxStalenessMs`),
   * else to the primary; see src/store/replica.ts and docs/scaling.md.
   */
  databaseReplicaUrl: string | undefined;
  /** Writes made through other instances are seen through the replica at most this late (ms). */
  replicaMaxStalenessMs: number;
  dataDir: string;
  logLevel: string;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
  /** Deepest accepted JSON nesting (objects and arrays). */
  maxJsonDepth: number;
  /** Extension URL prefixes accepted even though their StructureDefinition is unknown to the server. */
  allowedExtensionDomains: string[];
  /**
   * Seed the synthetic demo population (src/demo) into an empty database at start. Default: on
   * with the embedded database, off with DATABASE_URL, so a server database never gets demo data
   * unless asked for.
   */
  seedDemoData: boolean;
  security: SecurityConfig;
}

/** Who may call, and how (see docs/security.md). */
export interface SecurityConfig {
  /** Issuer of health-personnel (and machine) tokens, e.g. https://helseid-sts.nhn.no; unset: the embedded provider. */
  helseIdIssuer: string | undefined;
  /** Issuer of citizen tokens (Helsenorge); unset: the embedded provider. */
  helsenorgeIssuer: string | undefined;
  /** Token audience; scopes are `<audience>/read`, `/write`, `/status`. */
  audience: string;
  /** Accept plain Bearer tokens (not bound to a DPoP key). */
  allowBearer: boolean;
  /** Require a server-issued DPoP nonce in every proof. */
  requireDpopNonce: boolean;
  /** Leeway for exp, nbf and iat checks, in seconds. */
  clockToleranceSeconds: number;
  /** Volven 9060 personnel categories allowed to use the API. */
  allowedRoles: string[];
  /** Browser origins allowed by CORS (the portals served by Samplan itself are same-origin). */
  corsOrigins: string[];
  /** Requests per minute per client (token subject or, unauthenticated, address). */
  rateLimitPerMinute: number;
}

function list(env: NodeJS.ProcessEnv, name: string, fallback: string[]): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function bool(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new Error(`${name} must be true or false, got "${raw}"`);
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
  const databaseUrl = env.DATABASE_URL || undefined;
  const databaseReplicaUrl = env.DATABASE_REPLICA_URL || undefined;
  if (databaseReplicaUrl && !databaseUrl) throw new Error('DATABASE_REPLICA_URL needs DATABASE_URL: the embedded database has no replicas');
  const replicaMaxStalenessMs = int(env, 'DATABASE_REPLICA_MAX_STALENESS_MS', 1000);
  if (replicaMaxStalenessMs < 20) throw new Error('DATABASE_REPLICA_MAX_STALENESS_MS must be at least 20');
  return {
    port,
    host,
    baseUrl,
    databaseUrl,
    databaseReplicaUrl,
    replicaMaxStalenessMs,
    dataDir: path.resolve(env.DATA_DIR || 'data'),
    logLevel: env.LOG_LEVEL || 'info',
    bodyLimit: int(env, 'BODY_LIMIT', 16 * 1024 * 1024),
    maxJsonDepth: int(env, 'MAX_JSON_DEPTH', 64),
    allowedExtensionDomains: list(env, 'ALLOWED_EXTENSION_DOMAINS', []),
    seedDemoData: bool(env, 'SEED_DEMO_DATA', !databaseUrl),
    security: {
      helseIdIssuer: env.HELSEID_ISSUER || undefined,
      helsenorgeIssuer: env.HELSENORGE_ISSUER || undefined,
      audience: env.TOKEN_AUDIENCE || 'nhn:samplan',
      allowBearer: bool(env, 'ALLOW_BEARER', true),
      requireDpopNonce: bool(env, 'REQUIRE_DPOP_NONCE', false),
      clockToleranceSeconds: int(env, 'CLOCK_TOLERANCE_SECONDS', 30),
      allowedRoles: list(env, 'ALLOWED_ROLES', ['LE', 'SP', 'FT', 'ET', 'PS', 'VP', 'HF', 'HP', 'JO', 'KE', 'BI', 'RA', 'TL']),
      corsOrigins: list(env, 'CORS_ORIGINS', []),
      rateLimitPerMinute: int(env, 'RATE_LIMIT_PER_MINUTE', 6000),
    },
  };
}
