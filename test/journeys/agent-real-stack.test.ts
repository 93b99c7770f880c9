// The agent against the real grant server, bastion, PostgreSQL and keychain: one click to a query, and at the
// deadline the tunnel closes, the live database session is killed, the role is gone and no secret stays behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { keychainItemsFor, query } from './faults-support';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('agent on the real stack', () => {
  it('request → auto-approved → tunnel → query → deadline: tunnel closed, session killed, role dropped, secrets wiped', async () => {
    const alice = stack.agent('alice');
    await alice.signIn();
    expect(alice.agent.state().session).toMatchObject({ status: 'signed_in', user: { sub: 'alice' } });
    expect(alice.agent.state().resources.map((r) => r.id).sort()).toEqual(['prod-orders', 'staging-shop', 'staging-users', 'staging-web']);

    const created = await alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', durationSeconds: 6, reason: 'check signups', connect: true });
    expect(created.request.state).toBe('approved');
    const connection = created.connection!;
    expect(connection.host).toBe('127.0.0.1');
    const { uri } = await alice.agent.api.connectionUri({ grantId: connection.grantId });
    expect(uri).toContain(`@127.0.0.1:${connection.port}/users`);

    const live = await query(uri, 'select count(*)::int as n from users');
    expect(live.rows[0].n).toBe(25);
    const role = connection.user;
    expect(await keychainItemsFor(connection.grantId)).not.toEqual([]);
    const running = live.client.query('select pg_sleep(60)').then(() => 'finished', (error: Error) => error.message);

    const endsAt = Date.parse(alice.agent.state().grants.find((g) => g.grant.id === connection.grantId)!.localEndsAt);
    await expect(running).resolves.toMatch(/terminat|connection/i);
    const killedAfterDeadlineMs = Date.now() - endsAt;
    expect(killedAfterDeadlineMs).toBeLessThan(2_000);
    await live.client.end().catch(() => undefined);

    // The local side is gone: no listener, no secret in the keychain, the role no longer exists on the server side.
    await expect(query(uri, 'select 1')).rejects.toThrow(/ECONNREFUSED|terminat|closed/i);
    expect(await keychainItemsFor(connection.grantId)).toEqual([]);
    // The server enforces the end on its own: the role is dropped (revocation runs right after the deadline).
    await expect.poll(async () => (await stack.pg.query('select 1 from pg_roles where rolname = $1', [role], 'postgres')).length, { timeout: 5_000 }).toBe(0);
    const state = alice.agent.state().grants.find((g) => g.grant.id === connection.grantId)!;
    expect(state.localState).not.toBe('active');
  }, 60_000);
});
