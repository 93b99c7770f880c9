#!/usr/bin/env node
// Bundles the Electron main process (ESM) and preload (CommonJS: sandboxed preloads cannot load ES modules or npm
// packages, so everything but `electron` is inlined) into dist/desktop/. Native modules stay external.
import { build } from 'esbuild';

const outdir = process.argv[2] ?? 'dist/desktop';
const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: false, logLevel: 'warning' };
await build({
  ...common,
  entryPoints: ['desktop/main/index.ts'],
  format: 'esm',
  outfile: `${outdir}/main/index.js`,
  external: ['electron', 'keytar', 'ssh2', 'cpu-features', 'better-sqlite3', 'electron-updater'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});
await build({ ...common, entryPoints: ['desktop/preload/index.ts'], format: 'cjs', outfile: `${outdir}/preload/index.cjs`, external: ['electron'] });
