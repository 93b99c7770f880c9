// Chaos (issue #21): grants with live psql sessions on real parts — two grant server instances on PostgreSQL, the
// OpenSSH bastion, PostgreSQL, agents in processes of their own — while the run kill -9s and restarts each of them,
// jumps agents' clocks and SIGSTOPs a server instance across deadlines; after every deadline it checks from outside
// that the role cannot log in, no backend of it runs, the key no longer passes the bastion and the agent's keychain
// holds nothing of the grant (dev/chaos/run.ts). Prints a line per violation with its seed, then the RESULT line.
//   npm run bench -- chaos [--quick] [--seed N] [--max-minutes M]   (stops starting grants after M minutes)
import { ALL_FAULTS, runChaos } from '../dev/chaos/run';

export default async function chaos(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const seedArg = process.argv.indexOf('--seed');
  const seed = seedArg > 0 ? Number(process.argv[seedArg + 1]) : Number(process.env.STINT_CHAOS_SEED ?? 2101);
  const minutesArg = process.argv.indexOf('--max-minutes');
  const maxMinutes = minutesArg > 0 ? Number(process.argv[minutesArg + 1]) : opts.quick ? 8 : 60;
  const result = await runChaos({
    seed,
    lifecycles: opts.quick ? 200 : 2_000,
    maxMs: maxMinutes * 60_000,
    agents: opts.quick ? 2 : 3,
    slots: 3,
    faults: ALL_FAULTS,
    faultEveryMs: opts.quick ? [1_500, 4_000] : [2_000, 6_000],
    log: (line) => console.error(line),
  });
  for (const line of result.violations) console.log(line);
  const { violations: _, ...figures } = result;
  return figures;
}
