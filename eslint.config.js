// Lint is where the architecture is enforced: the import rules of ../shared/design/architecture.md.
// A violation fails `npm test` with the rule's name and a message saying which layer may not import which.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import globals from 'globals';

const layers = {
  shared: './shared',
  server: './server',
  core: './electron/core',
  main: './electron/main',
  preload: './electron/preload',
  hosts: './electron/hosts',
  renderer: './renderer',
  dev: './dev',
  scripts: './scripts',
  bench: './bench',
  build: './build',
  test: './test',
};
const zone = (target, from, why) => ({ target: layers[target], from: from.map((f) => layers[f]), message: why });

const electronOnlyInShell = {
  paths: [{ name: 'electron', message: 'Only electron/main and electron/preload may import electron (layering rule).' }],
  patterns: [{ group: ['electron/*'], message: 'Only electron/main and electron/preload may import electron (layering rule).' }],
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
          zone('shared', ['server', 'core', 'main', 'preload', 'hosts', 'renderer'], 'shared/ imports nothing of ours (layering rule).'),
          zone('server', ['core', 'main', 'preload', 'hosts', 'renderer'], 'server/ may import only shared/ (layering rule).'),
          zone('renderer', ['server', 'core', 'main', 'preload', 'hosts'], 'renderer/ reaches the agent only through the AgentApi; it may import only shared/ (layering rule).'),
          zone('core', ['server', 'main', 'preload', 'hosts', 'renderer'], 'electron/core may import only shared/ (layering rule).'),
          zone('main', ['server', 'preload', 'hosts', 'renderer'], 'electron/main may import only electron/core and shared/ (layering rule).'),
          zone('hosts', ['server', 'main', 'preload', 'renderer'], 'electron/hosts may import only electron/core and shared/ (layering rule).'),
          zone('preload', ['server', 'core', 'main', 'hosts', 'renderer'], 'electron/preload may import only shared/ (layering rule).'),
          // The product and its demo never depend on the tests: the demo's real services live in dev/, which the
          // test harness imports, never the other way round.
          // (bench/ still drives stand-ins from test/ — the fake grant server, the scripted agent — until issue #20
          // moves the benches onto the real server; it is the one exemption.)
          ...['shared', 'server', 'core', 'main', 'preload', 'hosts', 'renderer', 'dev', 'scripts', 'build'].map((target) =>
            zone(target, ['test'], 'Only test/ may import from test/; shared helpers for the demo and the tests go in dev/ (layering rule).')),
          // dev/ is development tooling (services for the demo, benches and tests): the product never imports it.
          ...['shared', 'server', 'core', 'main', 'preload', 'hosts', 'renderer'].map((target) =>
            zone(target, ['dev', 'scripts'], 'The product may not import dev/ or scripts/: they are development tooling (layering rule).')),
        ],
      }],
    },
  },
  {
    files: ['shared/**', 'server/**', 'electron/core/**', 'electron/hosts/**', 'renderer/**'],
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
    files: ['shared/**', 'server/**', 'electron/**'],
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
