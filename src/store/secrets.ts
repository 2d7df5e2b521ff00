/** Server secrets (DPoP nonces, paging links): made once, shared by every instance through the database. */
import { randomBytes } from 'node:crypto';
import type { Database } from './db.js';

/** Gets (or makes, once, shared by all instances) a named server secret. */
export async function serverSecret(db: Database, name: string): Promise<Buffer> {
  await db.query('INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
    name,
    randomBytes(32).toString('base64url'),
  ]);
  const rows = await db.query<{ value: string }>('SELECT value FROM server_secrets WHERE name = $1', [name]);
  return Buffer.from((rows[0] as { value: string }).value, 'base64url');
}
