/** The benchmark and the reliability tests start the server as `npm start` does: its Node options and its environment. */
import { describe, expect, it } from 'vitest';
import { productionCommand, serverCommand } from '../../bench/lib/server.js';

describe('the server\'s command', () => {
  it('is read from the start script: the variables it sets and the Node options', () => {
    expect(serverCommand('npm run build && MALLOC_ARENA_MAX=2 TZ=UTC node --max-old-space-size=256 --max-semi-space-size=16 dist/main.js')).toEqual({
      args: ['--max-old-space-size=256', '--max-semi-space-size=16'],
      env: { MALLOC_ARENA_MAX: '2', TZ: 'UTC' },
    });
    expect(serverCommand('node dist/main.js')).toEqual({ args: [], env: {} });
  });

  it('keeps the server\'s memory in bounds as npm start runs it: a heap limit and two malloc arenas', () => {
    const { args, env } = productionCommand();
    expect(args).toContain('--max-old-space-size=256');
    expect(env.MALLOC_ARENA_MAX).toBe('2');
  });
});
