import path from 'node:path';
import type { Database } from './db.js';
import { migrate } from './migrate.js';
import { openPglite } from './pglite.js';
import { openPostgres } from './postgres.js';
import { openReplicated, type ReplicaOptions } from './replica.js';

export interface DatabaseOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  /** A streaming replica of `databaseUrl` for read-only work (src/store/replica.ts). */
  databaseReplicaUrl?: string | undefined;
  replica?: ReplicaOptions;
}

/** Opens the configured database (server when a URL is given, else embedded) and migrates it. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.databaseReplicaUrl && !options.databaseUrl) throw new Error('DATABASE_REPLICA_URL needs DATABASE_URL (the embedded database has no replicas)');
  let db = options.databaseUrl
    ? await openPostgres(options.databaseUrl)
    : await openPglite({ dataDir: path.join(options.dataDir, 'pglite') });
  await migrate(db);
  if (options.databaseReplicaUrl) {
    // The replica may be down or still catching up at start: reads go to the primary until it is there.
    const replica = await openPostgres(options.databaseReplicaUrl, { check: false, connectTimeout: 2 });
    db = await openReplicated(db, replica, options.replica);
  }
  return db;
}
