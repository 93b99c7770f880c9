// Fault: the agent is killed mid-grant (SIGKILL: no dispose, no wipe) and started again with the same keychain.
// The new run must wipe what the crashed one left in the keychain, show the grant (it is still active on the
// server), and say clearly that it cannot connect with it — its SSH key died with the crashed process.
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { startProcess, type Started } from '../../dev/process';
import { keychainItemsFor, portRefuses, queryOnce, roleExists, until } from './faults-support';

let stack: Stack;
let crashed: Started | undefined;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => {
  await crashed?.stop('SIGKILL');
  await stack?.stop();
});

describe('faults: the agent crashes mid-grant', () => {
  it('a restarted agent wipes the leftovers, shows the grant, and cannot connect with a clear message', async () => {
    crashed = startProcess(process.execPath, ['--import', 'tsx', resolve('test/journeys/faults-crashed-agent.ts')], {
      env: {
        ...process.env,
        FAULT_SERVER_URL: stack.serverUrl, FAULT_ISSUER: stack.idp.issuer, FAULT_AUDIENCE: stack.idp.audience,
        FAULT_USER: 'alice', FAULT_DURATION_SECONDS: '60',
      },
    });
    await until(() => /^\{.*\}$/m.test(crashed!.output()) || crashed!.child.exitCode !== null, 30_000, 50).catch(() => undefined);
    const line = crashed.output().split('\n').find((l) => l.startsWith('{'));
    const a = JSON.parse(line ?? '{"error":"no output"}') as { grantId: string; port: number; role: string; uri: string; error?: string };
    expect(a.error, `crashed agent output: ${crashed.output()}`).toBeUndefined();

    // The crashed agent had a working tunnel and a keychain record of its grant.
    expect(await queryOnce(a.uri, 'select count(*)::int as n from users')).toEqual([{ n: 25 }]);
    expect(await keychainItemsFor(a.grantId)).toEqual([`grant:${a.grantId}`]);

    await crashed.stop('SIGKILL');
    expect(crashed.child.signalCode).toBe('SIGKILL');
    expect(await portRefuses(a.port)).toBe(true); // its listener died with it…
    expect(await keychainItemsFor(a.grantId)).toEqual([`grant:${a.grantId}`]); // …but the keychain item did not

    // Restart: same user, same keychain. Start-up wipes the leftover and signs in from the stored refresh token.
    const b = stack.agent('alice');
    await b.agent.start();
    expect(await keychainItemsFor(a.grantId)).toEqual([]);
    expect(b.agent.state().session).toMatchObject({ status: 'signed_in', user: { sub: 'alice' } });

    // The grant is shown (still active on the server, the role still exists), but it cannot be used from here.
    const shown = b.agent.state().grants.find((g) => g.grant.id === a.grantId);
    expect(shown).toMatchObject({ localState: 'active', grant: { state: 'active' } });
    expect(await roleExists(stack, a.role)).toBe(true);
    await expect(b.agent.api.connect({ grantId: a.grantId })).rejects.toMatchObject({
      code: 'not_found',
      message: expect.stringMatching(/keys for this access are gone.*request access again/i),
    });
    await expect(b.agent.api.connectionUri({ grantId: a.grantId })).rejects.toMatchObject({ code: 'not_found' });

    // What the message suggests works: end it, and the server drops the role.
    await b.agent.api.release({ grantId: a.grantId });
    await until(async () => !(await roleExists(stack, a.role)), 5_000, 50);
    expect(b.agent.state().grants.find((g) => g.grant.id === a.grantId)).toMatchObject({ localState: 'ended', grant: { state: 'released' } });
  }, 50_000);
});
