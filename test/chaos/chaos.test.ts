// A short seeded chaos run (dev/chaos/run.ts, the engine of `npm run bench -- chaos`) in the test suite: real agents
// in their own processes, two grant server instances on PostgreSQL, the OpenSSH bastion and PostgreSQL, with agents,
// a server instance and the bastion killed with kill -9, a server instance frozen across deadlines and agents'
// clocks jumped, while grants with live psql sessions run out. After every deadline, from outside: the role cannot log
// in, none of its backends runs, the key does not pass the bastion, the agent's keychain holds nothing of the grant;
// at the end nothing of any grant is left, the audit trail has every grant's activation, end and revocation, and its
// chain verifies. A failure prints the seed: `npm run bench -- chaos --quick --seed <seed>` replays the schedule.
import { describe, expect, it } from 'vitest';
import { runChaos } from '../../dev/chaos/run';

const SEED = Number(process.env.STINT_CHAOS_SEED ?? 2121);

describe('chaos: whatever dies, no credential outlives its grant', () => {
  it(`seed ${SEED}: kill -9 of agents, a server instance and the bastion, a frozen instance and clock jumps`, async () => {
    const lines: string[] = [];
    const result = await runChaos({
      seed: SEED, lifecycles: 24, maxMs: 90_000, agents: 2, slots: 2,
      // PostgreSQL's own crash is left to the bench: while it is down nothing can be checked, and its restarts
      // would take most of a short run.
      faults: ['agent-kill', 'server-kill', 'server-freeze', 'sshd-kill', 'clock-jump'],
      faultEveryMs: [1_500, 3_000],
      log: (line) => lines.push(line),
    });
    const summary = `${JSON.stringify({ ...result, violations: undefined })}\n${lines.join('\n')}`;
    expect(result.lifecycles, summary).toBeGreaterThanOrEqual(24);
    expect(result.kills, summary).toBeGreaterThanOrEqual(3);
    expect(result.violations, summary).toEqual([]);
    expect(result, summary).toMatchObject({ credentials_alive_after_deadline: 0, leftovers_after_restart: 0, lost_audit_events: 0, audit_verify: 'ok' });
    expect(result.max_credential_overrun_ms, summary).toBeLessThanOrEqual(1_000);
  }, 240_000);
});
