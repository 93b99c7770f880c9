// Lint is where the architecture is enforced: the import rules drawn in docs/development.md.
// A violation fails `npm test` with the rule's name and a message saying which layer may not import which.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import globals from 'globals';

const layers = {
  shared: './shared',
  server: './server',
  core: './agent/core',
  web: './agent/web',
  cli: './agent/cli',
  main: './desktop/main',
  preload: './desktop/preload',
  renderer: './renderer',
  dev: './dev',
  scripts: './scripts',
  bench: './bench',
  build: './build',
  test: './test',
};
const zone = (target, from, why) => ({ target: layers[target], from: from.map((f) => layers[f]), message: why });
const product = ['shared', 'server', 'core', 'web', 'cli', 'main', 'preload', 'renderer'];

const electronOnlyInShell = {
  paths: [{ name: 'electron', message: 'Only desktop/ (the Electron shell) may import electron (layering rule).' }],
  patterns: [{ group: ['electron/*'], message: 'Only desktop/ (the Electron shell) may import electron (layering rule).' }],
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'test-results/**', 'playwright-report/**', '.stint-demo/**', 'docs/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ alwaysTryTypes: true })] },
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
      'import-x/no-restricted-paths': ['error', {
        zones: [
          zone('shared', ['server', 'core', 'web', 'cli', 'main', 'preload', 'renderer'], 'shared/ imports nothing of ours (layering rule).'),
          zone('server', ['core', 'web', 'cli', 'main', 'preload', 'renderer'], 'server/ may import only shared/ (layering rule).'),
          zone('renderer', ['server', 'core', 'web', 'cli', 'main', 'preload'], 'renderer/ reaches the agent only through the AgentApi; it may import only shared/ (layering rule).'),
          zone('core', ['server', 'web', 'cli', 'main', 'preload', 'renderer'], 'agent/core may import only shared/ (layering rule).'),
          zone('web', ['server', 'cli', 'main', 'preload', 'renderer'], 'agent/web (the web host) may import only agent/core and shared/ (layering rule).'),
          zone('cli', ['server', 'web', 'main', 'preload', 'renderer'], 'agent/cli may import only agent/core and shared/ (layering rule).'),
          zone('main', ['server', 'web', 'cli', 'preload', 'renderer'], 'desktop/main may import only agent/core and shared/ (layering rule).'),
          zone('preload', ['server', 'core', 'web', 'cli', 'main', 'renderer'], 'desktop/preload may import only shared/ (layering rule).'),
          // The product, its demo and the benchmarks never depend on the tests: the real services they share live in
          // dev/, which the test harness imports, never the other way round.
          ...[...product, 'dev', 'scripts', 'bench', 'build'].map((target) =>
            zone(target, ['test'], 'Only test/ may import from test/; shared helpers for the demo, the benchmarks and the tests go in dev/ (layering rule).')),
          // dev/ is development tooling (services for the demo, benches and tests): the product never imports it.
          ...product.map((target) =>
            zone(target, ['dev', 'scripts'], 'The product may not import dev/ or scripts/: they are development tooling (layering rule).')),
        ],
      }],
    },
  },
  {
    files: ['shared/**', 'server/**', 'agent/**', 'renderer/**'],
    rules: { 'no-restricted-imports': ['error', electronOnlyInShell] },
  },
  {
    files: ['shared/**'],
    rules: {
      'import-x/no-nodejs-modules': ['error'],
      'no-restricted-imports': ['error', {
        ...electronOnlyInShell,
        patterns: [{ regex: '^(?!zod(/|$)|\\.)', message: 'shared/ may import only zod and its own files (layering rule).' }],
      }],
    },
  },
  {
    files: ['renderer/**'],
    languageOptions: { globals: { ...globals.browser } },
    rules: { 'import-x/no-nodejs-modules': ['error'] },
  },
  {
    // Only the renderer may use the DOM.
    files: ['shared/**', 'server/**', 'agent/**', 'desktop/**'],
    rules: {
      'no-restricted-globals': ['error',
        ...['window', 'document', 'localStorage', 'sessionStorage', 'navigator'].map((name) => ({ name, message: 'Only renderer/ may use the DOM (layering rule).' }))],
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
