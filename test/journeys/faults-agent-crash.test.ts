// Fault: the agent is killed mid-grant (SIGKILL: no dispose, no wipe) and started again on the same device with the
// same keychain. The new run must wipe what the crashed one left in the keychain, offer the grant as left from before
// (it is still active on the server, for this device), say clearly that it cannot connect with it as it is — its SSH
// key died with the crashed process —, and End from the offer releases it. (Resume: crash-resume.test.ts.)
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
  it('a restarted agent wipes the leftovers, offers the grant as left from before, cannot connect with it as it is, and End releases it', async () => {
    crashed = startProcess(process.execPath, ['--import', 'tsx', resolve('test/journeys/faults-crashed-agent.ts')], {
      env: {
        ...process.env,
        FAULT_SERVER_URL: stack.serverUrl, FAULT_ISSUER: stack.idp.issuer, FAULT_AUDIENCE: stack.idp.audience,
        FAULT_USER: 'alice', FAULT_DURATION_SECONDS: '60', FAULT_DEVICE_ID: 'device-crash-end',
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
    const b = stack.agent('alice', { deviceId: 'device-crash-end' });
    await b.agent.start();
    expect(await keychainItemsFor(a.grantId)).toEqual([]);
    expect(b.agent.state().session).toMatchObject({ status: 'signed_in', user: { sub: 'alice' } });

    // The grant is offered as left from before (still active on the server, the role still exists), but it cannot be
    // used as it is.
    const shown = b.agent.state().grants.find((g) => g.grant.id === a.grantId);
    expect(shown).toMatchObject({ localState: 'active', leftFromBefore: true, grant: { state: 'active', deviceId: 'device-crash-end' } });
    expect(await roleExists(stack, a.role)).toBe(true);
    await expect(b.agent.api.connect({ grantId: a.grantId })).rejects.toMatchObject({
      code: 'not_found',
      message: expect.stringMatching(/Stint stopped while this access was active.*Resume it.*or end it/i),
    });
    await expect(b.agent.api.connectionUri({ grantId: a.grantId })).rejects.toMatchObject({ code: 'not_found' });

    // End from the offer: the server ends the grant and drops the role.
    await b.agent.api.release({ grantId: a.grantId });
    await until(async () => !(await roleExists(stack, a.role)), 5_000, 50);
    expect(b.agent.state().grants.find((g) => g.grant.id === a.grantId)).toMatchObject({ localState: 'ended', grant: { state: 'released' } });
    expect(b.agent.state().grants.find((g) => g.grant.id === a.grantId)?.leftFromBefore).toBeUndefined();
  }, 50_000);
});
