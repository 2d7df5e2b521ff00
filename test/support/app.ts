/**
 * The whole server, in process, on a fresh test database: requests go through the real HTTP
 * adapter (Fastify inject), the engine and the database — nothing is mocked.
 */
import type { Resource } from '@medplum/fhirtypes';
import pino from 'pino';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openTestDatabase, type TestDatabase } from './db.js';

export const BASE = 'http://test.local/fhir';

export interface TestResponse<T = Record<string, unknown>> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
}

export interface TestServer {
  app: App;
  database: TestDatabase;
  request<T = Record<string, unknown>>(
    method: string,
    path: string,
    options?: { body?: unknown; raw?: string; headers?: Record<string, string> },
  ): Promise<TestResponse<T>>;
  /** Creates a resource and returns it as stored (fails the test on a non-201). */
  create<T extends Resource>(resource: T): Promise<T>;
  close(): Promise<void>;
}

export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const database = await openTestDatabase();
  const config = loadConfig({ BASE_URL: BASE, LOG_LEVEL: 'silent', ...env });
  const app = await createApp(config, pino({ level: 'silent' }), { db: database.db });
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
    async close() {
      await app.close();
      await database.drop();
    },
  };
}
