// Fault: the network between the agent and the server is cut (the server itself stays up) across a grant's
// deadline. The agent ends local access on time on its own and shows that it is offline; the server ends its side
// at the deadline too; when the network comes back the agent agrees with the server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { CuttableNetwork, keychainItemsFor, portRefuses, query, roleExists, until } from './faults-support';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('faults: network cut between agent and server', () => {
  it('across the deadline: local access ends on time while offline; the server ends its side at the deadline', async () => {
    const network = new CuttableNetwork();
    const alice = stack.agent('alice', { fetch: network.fetch });
    await alice.signIn();
    const created = await alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', durationSeconds: 6, reason: 'network cut', connect: true });
    const { grantId, port, user: role } = created.connection!;
    const { uri } = await alice.agent.api.connectionUri({ grantId });
    const endsAt = Date.parse(alice.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.endsAt);
    const live = await query(uri, 'select 1');
    const running = live.client.query('select pg_sleep(60)').then(() => 'finished', (error: Error) => error.message);

    network.cut();
    await until(() => alice.agent.state().server.status === 'offline', 5_000);
    expect(Date.now()).toBeLessThan(endsAt - 1_000);
    // Ending early is refused by nothing here: the agent can't tell the server, and must not need to.
    await expect(alice.agent.api.refresh({})).rejects.toMatchObject({ code: 'server_unreachable' });

    const endedAt = await until(() => alice.agent.state().grants.find((g) => g.grant.id === grantId)?.localState === 'ended', endsAt - Date.now() + 3_000, 5);
    expect(Math.abs(endedAt - endsAt)).toBeLessThan(1_500);
    await expect(running).resolves.toMatch(/terminat|connection|closed|ECONNRESET/i);
    await live.client.end().catch(() => undefined);
    expect(await portRefuses(port)).toBe(true);
    await expect.poll(() => keychainItemsFor(grantId), { timeout: 2_000 }).toEqual([]);
    expect(alice.agent.state().server).toMatchObject({ status: 'offline', message: expect.stringMatching(/reach|connect|server/i) });

    // The server, which was up all along, ended it at the deadline on its own.
    const goneAt = await until(async () => !(await roleExists(stack, role)), 5_000, 50);
    expect(goneAt - endsAt).toBeLessThan(5_000);

    // Network back: the agent catches up and agrees (the grant ended on the server, no stale "active").
    network.restore();
    await alice.agent.api.refresh({});
    // The server answering again also wakes the event stream from its backoff: online within a moment, not 30 s.
    await until(() => alice.agent.state().server.status === 'online', 3_000);
    expect(alice.agent.state().grants.find((g) => g.grant.id === grantId)).toMatchObject({ localState: 'ended', grant: { state: 'ended' } });
    await alice.agent.dispose();
  }, 40_000);
});
