import { defineConfig } from 'vitest/config';

// `npm run test:reliability`: crash, race, outage, multi-instance and soak tests against real
// server processes and databases. One file at a time: they start processes and clusters and load
// the machine; RELIABILITY=short scales them down for CI.
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 20 * 60_000,
    hookTimeout: 5 * 60_000,
  },
});
