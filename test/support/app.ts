/**
 * The whole server, in process, on a fresh test database: requests go through the real HTTP
 * adapter (Fastify inject), the engine and the database.
 *
 * Tests of FHIR behaviour that is the same for every caller (`auth: 'system'`, the default) run
 * as the server's own system context, so they can work across patients freely; the security
 * tests (`auth: 'tokens'`) use the real authentication with tokens from the embedded identity
 * provider and its real signing keys.
 */
import type { Resource } from '@medplum/fhirtypes';
import pino from 'pino';
import { type App, type AppOptions, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { SYSTEM_ACCESS } from '../../src/fhir/access.js';
import { type Database, textOf } from '../../src/store/db.js';
import { openTestDatabase, type TestDatabase } from './db.js';

export const BASE = 'http://test.local/fhir';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field
export interface TestResponse<T = Record<string, any>> {
  status: number;
  headers: Record<string, string | number | string[] | undefined>;
  body: T;
  text: string;
}

export interface TestServer {
  app: App;
  database: TestDatabase;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  request<T = Record<string, any>>(
    method: string,
    path: string,
    options?: { body?: unknown; raw?: string; headers?: Record<string, string> },
  ): Promise<TestResponse<T>>;
  /** Creates a resource and returns it as stored (fails the test on a non-201). */
  create<T extends Resource>(resource: T): Promise<T & { id: string }>;
  /** Runs a request in process as the server's own system context (seeding data for a test). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  system<T = Record<string, any>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

export async function startTestServer(
  env: Record<string, string> = {},
  options: {
    auth?: 'system' | 'tokens';
    app?: Omit<AppOptions, 'db' | 'authenticate'>;
    /** Wraps the database the app uses (e.g. to record the statements it sends). */
    wrapDb?: (db: Database) => Database;
  } = {},
): Promise<TestServer> {
  const database = await openTestDatabase();
  const config = loadConfig({ BASE_URL: BASE, LOG_LEVEL: 'silent', DATA_DIR: database.dataDir, ...env });
  const app = await createApp(config, pino({ level: 'silent' }), {
    ...options.app,
    db: options.wrapDb ? options.wrapDb(database.db) : database.db,
    ...(options.auth === 'tokens' ? {} : { authenticate: async () => ({ access: SYSTEM_ACCESS }) }),
  });
  const request: TestServer['request'] = async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    let payload: string | undefined = options.raw;
    if (options.body !== undefined) {
      payload = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/fhir+json';
    }
    const res = await app.server.inject({
      method: method as 'GET',
      url: path.startsWith('/') ? path : `/fhir/${path}`,
      headers,
      ...(payload !== undefined ? { payload } : {}),
    });
    let body: unknown = {};
    if (res.body) {
      try {
        body = JSON.parse(res.body);
      } catch {
        body = { unparsed: res.body };
      }
    }
    return { status: res.statusCode, headers: res.headers, body: body as never, text: res.body };
  };
  return {
    app,
    database,
    request,
    async create(resource) {
      const res = await request('POST', resource.resourceType, { body: resource });
      if (res.status !== 201) throw new Error(`create ${resource.resourceType} failed: ${res.status} ${res.text}`);
      return res.body as never;
    },
    async system(method, path, body) {
      const [p, q = ''] = path.split('?', 2) as [string, string?];
      const res = await app.engine.handle(
        { method: method as 'GET', path: p, query: [...new URLSearchParams(q).entries()], ...(body !== undefined ? { body, bodyKind: 'resource' as const } : {}) },
        { requestId: 'test-seed', baseUrl: BASE, access: SYSTEM_ACCESS },
      );
      return { status: res.status, body: (res.body ? JSON.parse(textOf(res.body)) : {}) as never };
    },
    async close() {
      await app.close();
      await database.drop();
    },
  };
}
