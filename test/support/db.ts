/**
 * A fresh, migrated database per test file: embedded PGlite by default, or, when DATABASE_URL is
 * set (as .ci/run does), a new database created on that PostgreSQL server and dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, inject } from 'vitest';
import type { Database } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { openPglite } from '../../src/store/pglite.js';
import { openPostgres } from '../../src/store/postgres.js';

export interface TestDatabase {
  db: Database;
  /** A private temporary directory for files the server writes (e.g. the demo EHR client key). */
  dataDir: string;
  /** Connection URL when running on a PostgreSQL server (for tests that start a second instance). */
  url?: string;
  drop(): Promise<void>;
}

export const onServer = !!process.env.DATABASE_URL;

/** A fresh test database for the calling file's tests: opened before them, dropped after; the getter gives it. */
export function useTestDatabase(): () => Database {
  let t: TestDatabase | undefined;
  beforeAll(async () => {
    t = await openTestDatabase();
  });
  afterAll(async () => {
    await t?.drop();
  });
  return () => {
    if (!t) throw new Error('the test database is opened in beforeAll');
    return t.db;
  };
}

/** `migrateThrough`: only the migrations up to and including this one (a database an older release left). */
export async function openTestDatabase(options: { migrateThrough?: string } = {}): Promise<TestDatabase> {
  const through = options.migrateThrough ? { through: options.migrateThrough } : {};
  const serverUrl = process.env.DATABASE_URL;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'samplan-data-'));
  const removeDir = () => rmSync(dataDir, { recursive: true, force: true });
  if (!serverUrl) {
    // The template is a database with every migration applied.
    const template = options.migrateThrough ? undefined : inject('pgliteTemplate');
    const db = await openPglite(template ? { loadDataDir: new Blob([readFileSync(template)]) } : {});
    await migrate(db, through);
    return {
      db,
      dataDir,
      async drop() {
        await db.close();
        removeDir();
      },
    };
  }
  const name = `samplan_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const db = await openPostgres(url.toString());
  await migrate(db, through);
  return {
    db,
    dataDir,
    url: url.toString(),
    async drop() {
      await db.close();
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
      removeDir();
    },
  };
}
