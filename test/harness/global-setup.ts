// One temp root per test run, passed to every worker; swept at the end (and on SIGINT/SIGTERM) so no harness
// process or directory outlives the run, whatever the tests did.
import { mkdirSync, mkdtempSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { HARNESS_PARENT, sweep } from './tmp';

export default function setup(): () => void {
  mkdirSync(HARNESS_PARENT, { recursive: true, mode: 0o755 });
  chmodSync(HARNESS_PARENT, 0o755);
  const root = mkdtempSync(join(HARNESS_PARENT, 'run-'));
  chmodSync(root, 0o755);
  process.env.STINT_TEST_ROOT = root;
  const onSignal = (signal: NodeJS.Signals) => {
    sweep(root);
    process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    const { killed } = sweep(root);
    if (killed.length) console.warn(`[harness] swept ${killed.length} leftover process(es): ${killed.join(', ')}`);
  };
}
