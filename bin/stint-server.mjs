#!/usr/bin/env node
// `stint-server`: the grant server's CLI (serve, migrate, check-config, audit verify/export, policy check/history), run through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../server/main.ts');
process.exit(await main(process.argv.slice(2)));
