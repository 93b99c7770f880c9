import { defineConfig } from 'vitest/config';

// Unit and integration tests under Node. Integration tests start real services from test/harness;
// the global setup owns the per-run temp root and sweeps anything a failed or interrupted test left behind.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'shared/**/*.test.ts', 'server/**/*.test.ts', 'agent/**/*.test.ts', 'desktop/**/*.test.ts', 'renderer/**/*.test.{ts,tsx}'],
    exclude: ['test/e2e/**', 'node_modules/**'],
    globalSetup: ['test/harness/global-setup.ts', 'test/harness/build-pages.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
