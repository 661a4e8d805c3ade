import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration suites start real PostgreSQL clusters; run files one at a time on a 2-core machine.
    fileParallelism: false,
    pool: 'forks',
  },
});
