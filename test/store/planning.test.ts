/**
 * Statements are planned once per connection, not for each request's values (SESSION_SETTINGS):
 * left to choose, PostgreSQL re-planned the plan Bundle's search on every run once the tables were
 * large, at several times the cost of running it. And none is compiled (JIT), which the plan
 * Bundle's generic estimate once made PostgreSQL do on every run, at 30 times its cost.
 */
import { describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/store/db.js';
import { useTestDatabase } from '../support/db.js';

const database = useTestDatabase();

const mode = async (q: Queryable) =>
  (await q.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode'))[0]?.plan_cache_mode;

describe('planning', () => {
  it('uses generic plans for single statements and in transactions', async () => {
    expect(await mode(database())).toBe('force_generic_plan');
    expect(await database().transaction((tx) => mode(tx))).toBe('force_generic_plan');
    // A transaction that fails, and one that changes the setting for itself, leave the session's as it was.
    await expect(database().transaction(async (tx) => tx.query('SELECT 1 / 0'))).rejects.toThrow(/division by zero/);
    await database().transaction((tx) => tx.query('SET LOCAL plan_cache_mode = auto'));
    expect(await mode(database())).toBe('force_generic_plan');
  });

  it('compiles no statement, however costly its estimate', async () => {
    const plan = (await database().query<Record<string, string>>('EXPLAIN SELECT count(*) FROM generate_series(1, 100000000)')).map((r) => Object.values(r)[0]).join('\n');
    // Far above jit_above_cost (100,000), where PostgreSQL would compile it.
    expect(Number(/cost=[\d.]+\.\.(\d+)/.exec(plan)?.[1])).toBeGreaterThan(1_000_000);
    expect(plan).not.toContain('JIT');
    expect(await database().transaction(async (tx) => (await tx.query<{ jit: string }>('SHOW jit'))[0]?.jit)).toBe('off');
  });

  it('plans a statement once, whatever values it is run with', async () => {
    // A text no other test sends, so that it is prepared here for the first time.
    const text = 'SELECT rid FROM resources WHERE type = $1 AND id = $2 AND compartments && $3::text[] /* planning.test */';
    const counts = await database().transaction(async (tx) => {
      for (let i = 0; i < 8; i++) await tx.query(text, [i % 2 ? 'Goal' : 'CarePlan', `id-${i}`, [`Patient/p${i}`]]);
      return tx.query<{ generic: number; custom: number }>(
        'SELECT generic_plans::int AS generic, custom_plans::int AS custom FROM pg_prepared_statements WHERE statement LIKE $1',
        ['%/* planning.test */%'],
      );
    });
    // Left to itself (plan_cache_mode = auto) PostgreSQL plans at least the first five runs for their values.
    expect(counts).toEqual([{ generic: 8, custom: 0 }]);
  });
});
