import path from 'node:path';
import type { Database } from './db.js';
import { migrate } from './migrate.js';
import { openPglite } from './pglite.js';
import { openPostgres } from './postgres.js';

/** Opens the configured database (server when a URL is given, else embedded) and migrates it. */
export async function openDatabase(options: { databaseUrl?: string; dataDir: string }): Promise<Database> {
  const db = options.databaseUrl
    ? await openPostgres(options.databaseUrl)
    : await openPglite({ dataDir: path.join(options.dataDir, 'pglite') });
  await migrate(db);
  return db;
}
