import { defineConfig } from '@playwright/test';
import { chromiumLaunchOptions } from './dev/chromium';

// End-to-end tests in Debian's Chromium (never a downloaded browser). The global setup builds the renderer once;
// each spec starts the real services it needs from test/harness and stops them itself.
export default defineConfig({
  testDir: 'test/e2e',
  testMatch: '**/*.spec.ts',
  globalSetup: './test/e2e/global-setup.ts',
  timeout: 60_000,
  workers: 1,
  reporter: process.env.CI ? [['list'], ['json', { outputFile: 'test-results/e2e.json' }]] : [['list']],
  outputDir: 'test-results/e2e',
  use: {
    browserName: 'chromium',
    launchOptions: chromiumLaunchOptions,
    screenshot: 'only-on-failure',
    trace: 'off',
  },
});
