/**
 * Where oidc-provider keeps its short-lived artifacts: login interactions, sessions, grants,
 * authorization codes, and the `jti`s of client assertions and DPoP proofs already seen — in the
 * database (table `idp_artifacts`), so that several instances behind one address share logins in
 * progress and replay detection. Access tokens are JWTs and never stored.
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Database } from '../store/db.js';

export interface IdpStorage {
  /** The oidc-provider adapter factory. */
  adapter: (model: string) => Adapter;
  /** Records `key` until `expiresAt` (epoch seconds); false when it was already recorded and has not expired. Atomic. */
  claimOnce(key: string, expiresAt: number): Promise<boolean>;
}

const EXPIRES = 'CASE WHEN $7::integer IS NULL THEN NULL ELSE now() + make_interval(secs => $7::integer) END';

/** The artifacts in the table `idp_artifacts` (migration 004), shared by every instance. */
export function openStorage(db: Database): IdpStorage {
  let writes = 0;
  const sweep = async () => {
    if (++writes % 200 !== 0) return;
    await db.query("DELETE FROM idp_artifacts WHERE expires_at < now() - interval '5 minutes'");
  };
  const parse = (row: { payload: string; consumed: number | null } | undefined): AdapterPayload | undefined => {
    if (!row) return undefined;
    const payload = JSON.parse(row.payload) as AdapterPayload;
    if (row.consumed !== null) payload.consumed = Number(row.consumed);
    return payload;
  };
  const select = `SELECT payload, extract(epoch from consumed_at)::bigint AS consumed FROM idp_artifacts
    WHERE model = $1 AND (expires_at IS NULL OR expires_at > now())`;
  return {
    adapter(model) {
      return {
        async upsert(id, payload, expiresIn) {
          await sweep();
          await db.query(
            `INSERT INTO idp_artifacts (model, id, payload, grant_id, uid, user_code, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, ${EXPIRES})
             ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
               uid = excluded.uid, user_code = excluded.user_code, expires_at = excluded.expires_at`,
            [model, id, JSON.stringify(payload), payload.grantId ?? null, payload.uid ?? null, payload.userCode ?? null, expiresIn ?? null],
          );
        },
        async find(id) {
          return parse((await db.query<{ payload: string; consumed: number | null }>(`${select} AND id = $2`, [model, id]))[0]);
        },
        async findByUid(uid) {
          return parse((await db.query<{ payload: string; consumed: number | null }>(`${select} AND uid = $2 LIMIT 1`, [model, uid]))[0]);
        },
        async findByUserCode(userCode) {
          return parse((await db.query<{ payload: string; consumed: number | null }>(`${select} AND user_code = $2 LIMIT 1`, [model, userCode]))[0]);
        },
        async consume(id) {
          await db.query('UPDATE idp_artifacts SET consumed_at = now() WHERE model = $1 AND id = $2 AND consumed_at IS NULL', [model, id]);
        },
        async destroy(id) {
          await db.query('DELETE FROM idp_artifacts WHERE model = $1 AND id = $2', [model, id]);
        },
        async revokeByGrantId(grantId) {
          await db.query('DELETE FROM idp_artifacts WHERE model = $1 AND grant_id = $2', [model, grantId]);
        },
      };
    },
    async claimOnce(key, expiresAt) {
      await sweep();
      const rows = await db.query(
        `INSERT INTO idp_artifacts (model, id, payload, expires_at) VALUES ('Once', $1, '{}', to_timestamp($2))
         ON CONFLICT (model, id) DO UPDATE SET expires_at = excluded.expires_at WHERE idp_artifacts.expires_at <= now()
         RETURNING 1`,
        [key, expiresAt],
      );
      return rows.length === 1;
    },
  };
}
