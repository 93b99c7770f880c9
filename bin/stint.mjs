#!/usr/bin/env node
// The `stint` CLI: runs the TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../agent/cli/main.ts');
process.exit(await runCli(process.argv.slice(2)));
