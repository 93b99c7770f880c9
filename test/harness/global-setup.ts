// One run dir per test run, passed to every worker; swept at the end (and on SIGINT/SIGTERM) so no service process
// or directory outlives the run, whatever the tests did.
import { createRunDir, sweep } from '../../dev/run-dir';

export default function setup(): () => void {
  const root = createRunDir();
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
