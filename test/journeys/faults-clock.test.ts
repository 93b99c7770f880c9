// Faults of the agent's time: a sleep past the deadline (monotonic time stood still, wall time moved on), the clock
// moved forward past the deadline, and the clock moved back. Local time can only shorten access, never lengthen it:
// access ends at once on resume / clock change when the deadline is past, and at the real deadline otherwise.
import type { AgentState } from '../../shared/contract/agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack, type StackAgent } from '../harness/stack';
import { CuttableNetwork, MovableClock, keychainItemsFor, portRefuses, query, roleExists, until } from './faults-support';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

const grantOf = (who: StackAgent, grantId: string) => who.agent.state().grants.find((g) => g.grant.id === grantId);
const isEnded = (who: StackAgent, grantId: string) => grantOf(who, grantId)?.localState === 'ended';

async function connected(who: StackAgent, durationSeconds: number) {
  const created = await who.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', durationSeconds, reason: 'clock fault', connect: true });
  const connection = created.connection!;
  const { uri } = await who.agent.api.connectionUri({ grantId: connection.grantId });
  const live = await query(uri, 'select 1');
  const running = live.client.query('select pg_sleep(60)').then(() => 'finished', (error: Error) => error.message);
  return { grantId: connection.grantId, port: connection.port, role: connection.user, live, running, endsAt: Date.parse(grantOf(who, connection.grantId)!.grant.endsAt) };
}

/** Everything local is gone: the running session cut, nothing listening, no keychain item. */
async function expectLocalAccessGone(g: Awaited<ReturnType<typeof connected>>) {
  await expect(g.running).resolves.toMatch(/terminat|connection|closed|ECONNRESET/i);
  await g.live.client.end().catch(() => undefined);
  expect(await portRefuses(g.port)).toBe(true);
  await expect.poll(() => keychainItemsFor(g.grantId), { timeout: 2_000 }).toEqual([]);
}

/** The test ended access early on purpose; tell the server too so the role goes (and the next test starts clean). */
async function releaseOnServer(who: StackAgent, g: Awaited<ReturnType<typeof connected>>) {
  await who.agent.api.release({ grantId: g.grantId });
  await until(async () => !(await roleExists(stack, g.role)), 5_000, 50);
  await who.agent.dispose();
}

describe('faults: the agent clock', () => {
  it('resume from a sleep past the deadline (monotonic clock stopped, wall clock moved on) ends access at once', async () => {
    const clock = new MovableClock();
    const network = new CuttableNetwork();
    const alice = stack.agent('alice', { clock, fetch: network.fetch });
    await alice.signIn();
    const g = await connected(alice, 30);
    expect(grantOf(alice, g.grantId)!.localState).toBe('active');

    // The lid closes: the network goes, and 2 minutes of wall time pass with no monotonic time and no timers.
    network.cut();
    clock.jump(120_000);
    const resumedAt = Date.now();
    alice.agent.resume();
    const endedAt = await until(() => isEnded(alice, g.grantId), 2_000, 5);
    expect(endedAt - resumedAt).toBeLessThan(1_000);
    expect(endedAt).toBeLessThan(g.endsAt - 20_000); // long before the (real) deadline: the sleep ended it
    await expectLocalAccessGone(g);
    expect(await roleExists(stack, g.role)).toBe(true); // the server was not told: this was all local

    network.restore();
    await releaseOnServer(alice, g);
  }, 30_000);

  it('clock moved forward past the deadline: access ends at once after clockChanged()', async () => {
    const clock = new MovableClock();
    const alice = stack.agent('alice', { clock });
    await alice.signIn();
    const g = await connected(alice, 30);

    clock.jump(10 * 60_000);
    const changedAt = Date.now();
    alice.agent.clockChanged();
    const endedAt = await until(() => isEnded(alice, g.grantId), 2_000, 5);
    expect(endedAt - changedAt).toBeLessThan(1_000);
    expect(endedAt).toBeLessThan(g.endsAt - 20_000);
    await expectLocalAccessGone(g);
    // The agent tells the server of an end its wall clock decided (#21): the role goes with no release from here.
    await until(async () => !(await roleExists(stack, g.role)), 5_000, 50);
    await alice.agent.dispose();
  }, 30_000);

  it('clock moved back: access still ends at the real deadline, not later (and not early)', async () => {
    const clock = new MovableClock();
    const alice = stack.agent('alice', { clock });
    await alice.signIn();
    const g = await connected(alice, 8);
    // What the shells see: the snapshots the agent publishes (not the state computed on request).
    let shown: AgentState | undefined;
    const stop = alice.agent.subscribe((event) => { if (event.type === 'state') shown = event.state; });

    clock.jump(-10 * 60_000);
    alice.agent.clockChanged();
    // Published at once, before anything else happens: the countdown is right again without waiting for an event.
    const published = shown!.grants.find((x) => x.grant.id === g.grantId)!;
    expect(Math.abs(Date.parse(published.localEndsAt) - clock.now() - (g.endsAt - Date.now()))).toBeLessThan(1_500);
    stop();
    // Talk to the server with the wrong clock too: what the agent learns from responses must not move the end.
    await alice.agent.api.refresh({});
    expect(grantOf(alice, g.grantId)!.localState).toBe('active');
    expect(Math.abs(Date.parse(grantOf(alice, g.grantId)!.localEndsAt) - clock.now() - (g.endsAt - Date.now()))).toBeLessThan(1_500);

    const endedAt = await until(() => isEnded(alice, g.grantId), g.endsAt - Date.now() + 3_000, 5);
    expect(endedAt - g.endsAt).toBeLessThan(1_000); // not later than the real deadline
    expect(endedAt - g.endsAt).toBeGreaterThan(-1_500); // nor early (the server's Date header is whole seconds)
    await expectLocalAccessGone(g);
    await until(async () => !(await roleExists(stack, g.role)), 5_000, 50);
    await alice.agent.dispose();
  }, 30_000);
});
