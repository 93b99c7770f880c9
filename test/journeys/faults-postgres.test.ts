// Fault: PostgreSQL is down when a grant reaches its deadline, so the server cannot drop the role. The grant still
// ends (on the server and on the agent); the revocation shows as `retrying` (API, metrics, audit) and completes by
// itself once the database is back — the role does not outlive the outage.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { api, keychainItemsFor, portRefuses, roleExists, until } from './faults-support';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

async function metric(name: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', stack.serverUrl))).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

describe('faults: PostgreSQL down at revocation time', () => {
  it('the grant ends on time; revocation is retried (visible in the API, metrics and audit) and completes when the database is back', async () => {
    const alice = stack.agent('alice');
    await alice.signIn();
    const created = await alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', durationSeconds: 5, reason: 'pg outage', connect: true });
    const { grantId, user: role, port } = created.connection!;
    const endsAt = Date.parse(alice.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.endsAt);
    const token = await stack.idp.tokenFor('alice');
    const grant = async () => (await api(stack, token, 'GET', `/v1/grants/${grantId}`)).body.grant;
    const failuresBefore = await metric('stint_revocation_failures_total');

    await stack.pg.pause();
    expect(Date.now()).toBeLessThan(endsAt);

    // The deadline passes with the database down: the grant ends anyway, on both sides.
    await until(async () => (await grant()).state === 'ended', endsAt - Date.now() + 3_000, 100);
    await until(() => alice.agent.state().grants.find((g) => g.grant.id === grantId)?.localState === 'ended', 2_000);
    expect(await portRefuses(port)).toBe(true);
    await expect.poll(() => keychainItemsFor(grantId), { timeout: 2_000 }).toEqual([]);

    // …but the role could not be dropped: the revocation is retrying, and says so.
    await until(async () => (await grant()).revocation === 'retrying', 5_000, 100);
    expect(await metric('stint_revocation_failures_total')).toBeGreaterThan(failuresBefore);
    expect(await metric('stint_revocations_pending')).toBeGreaterThanOrEqual(1);
    const audit = await api(stack, token, 'GET', `/v1/audit?grantId=${grantId}`);
    const actions = audit.body.entries as Array<{ action: string }>;
    expect(actions.map((e) => e.action)).toContain('grant.revoke_failed');
    expect(actions.map((e) => e.action)).not.toContain('grant.credentials_revoked');

    // The database comes back: the next retry drops the role, without anyone doing anything.
    const resuming = Date.now();
    await stack.pg.resume();
    await until(async () => (await grant()).revocation === 'done', 20_000, 200);
    expect(await roleExists(stack, role)).toBe(false);
    expect(await metric('stint_revocations_pending')).toBe(0);
    const after = await api(stack, token, 'GET', `/v1/audit?grantId=${grantId}`);
    const afterActions = (after.body.entries as Array<{ action: string }>).map((e) => e.action);
    expect(afterActions.filter((a) => a === 'grant.credentials_revoked')).toHaveLength(1);
    // Dropped by a retry after the database came back (checking the role right after the restart raced that retry).
    const revoked = (after.body.entries as Array<{ action: string; at: string }>).find((e) => e.action === 'grant.credentials_revoked')!;
    expect(Date.parse(revoked.at)).toBeGreaterThanOrEqual(resuming);
    expect(afterActions.filter((a) => a === 'grant.ended')).toHaveLength(1);
    await alice.agent.dispose();
  }, 50_000);
});
