// `npm run bench -- <name> [--quick]`: runs bench/<name>.ts and prints its numbers as the last line,
// `RESULT key=value …`, so results can be compared run to run (see bench/RESULTS.md).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { sweep, runDir } from '../dev/run-dir';

const [name, ...rest] = process.argv.slice(2);
const quick = rest.includes('--quick');
const available = readdirSync(import.meta.dirname).filter((f) => f.endsWith('.ts') && f !== 'run.ts').map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name> [--quick]\navailable: ${available.join(', ') || '(none)'}`);
  process.exit(2);
}
const file = join(import.meta.dirname, `${name}.ts`);
if (!existsSync(file)) process.exit(2);
// Benchmarks start harness services (PostgreSQL, sshd, …) under one temp root, swept whatever happens.
const root = runDir();
let result: Record<string, number | string>;
try {
  const module = await import(pathToFileURL(file).href);
  result = await module.default({ quick });
} finally {
  sweep(root);
}
const line = Object.entries(result).map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toFixed(2)) : v}`).join(' ');
console.log(`RESULT ${line}`);
process.exit(0);
