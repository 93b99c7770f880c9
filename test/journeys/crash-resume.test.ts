// Issue #21 item 1 on the real stack: the agent is killed mid-grant (SIGKILL, a separate process: no dispose, no wipe),
// and the same device starts Stint again. The new agent offers the grant as left from before and Resume takes it back:
// new keys from the server for the same grant and end, the tunnel opened again, and a real `psql` query works through
// it — while the crashed run's password logs in nowhere. The same from a terminal: `stint grants` lists it as left
// from before and `stint resume` takes it back and holds the tunnel. (End from the offer: faults-agent-crash.test.ts.)
import { resolve } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { startProcess, type Started } from '../../dev/process';
import { serviceDir } from '../../dev/run-dir';
import { runCli, type Io } from '../../agent/cli/main';
import { api, keychainItemsFor, portRefuses, queryOnce, until } from './faults-support';

const execFileP = promisify(execFile);
/** A command line as pasted into a shell. */
const sh = async (line: string) => (await execFileP('/bin/sh', ['-c', line], { timeout: 15_000 })).stdout.trim();

let stack: Stack;
let crashed: Started | undefined;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => {
  await crashed?.stop('SIGKILL');
  await stack?.stop();
});

const DEVICE = 'device-crash-resume';

interface Crashed { grantId: string; port: number; role: string; uri: string; error?: string }

/** An agent in its own process gets a staging grant with a tunnel on `device`, and is killed (SIGKILL). */
async function crashMidGrant(device: string): Promise<Crashed> {
  crashed = startProcess(process.execPath, ['--import', 'tsx', resolve('test/journeys/faults-crashed-agent.ts')], {
    env: {
      ...process.env,
      FAULT_SERVER_URL: stack.serverUrl, FAULT_ISSUER: stack.idp.issuer, FAULT_AUDIENCE: stack.idp.audience,
      FAULT_USER: 'alice', FAULT_DURATION_SECONDS: '600', FAULT_DEVICE_ID: device,
    },
  });
  await until(() => /^\{.*\}$/m.test(crashed!.output()) || crashed!.child.exitCode !== null, 30_000, 50).catch(() => undefined);
  const line = crashed.output().split('\n').find((l) => l.startsWith('{'));
  const a = JSON.parse(line ?? '{"error":"no output"}') as Crashed;
  expect(a.error, `crashed agent output: ${crashed.output()}`).toBeUndefined();
  expect(await queryOnce(a.uri, 'select count(*)::int as n from users')).toEqual([{ n: 25 }]);
  await crashed.stop('SIGKILL');
  expect(await portRefuses(a.port)).toBe(true);
  return a;
}

/** A login straight to PostgreSQL (not through any tunnel) with the grant's role and a password. */
function direct(role: string, password: string): pg.Client {
  const client = new pg.Client({ host: '127.0.0.1', port: stack.pg.port, database: 'users', user: role, password, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  return client;
}

describe('journey: take a grant back after a crash', () => {
  it('the same device starts again, sees the grant offered, resumes it, and psql works through the new tunnel; the old password does not', async () => {
    const a = await crashMidGrant(DEVICE);
    const oldPassword = decodeURIComponent(new URL(a.uri).password);
    const token = await stack.idp.tokenFor('alice');
    const before = (await api(stack, token, 'GET', `/v1/grants/${a.grantId}`)).body.grant as { endsAt: string; deviceId?: string };
    expect(before.deviceId).toBe(DEVICE);
    // Still valid for whoever copied the password, until it is taken back or ended.
    const copied = direct(a.role, oldPassword);
    await copied.connect();
    expect((await copied.query('select 1 as one')).rows).toEqual([{ one: 1 }]);

    // Stint starts again on the same device: the grant is offered as left from before.
    const b = stack.agent('alice', { deviceId: DEVICE, dataDir: serviceDir('crash-resume-agent') });
    await b.agent.start();
    expect(b.agent.state().session).toMatchObject({ status: 'signed_in' });
    const offered = b.agent.state().grants.find((g) => g.grant.id === a.grantId);
    expect(offered).toMatchObject({ localState: 'active', phase: 'active', leftFromBefore: true });
    expect(offered?.tunnel).toBeUndefined();

    // Resume.
    const resumed = await b.agent.api.resumeGrant({ grantId: a.grantId });
    expect(resumed).toMatchObject({ grantId: a.grantId, host: '127.0.0.1', user: a.role, database: 'users' });
    const shown = b.agent.state().grants.find((g) => g.grant.id === a.grantId)!;
    expect(shown.leftFromBefore).toBeUndefined();
    expect(shown.grant.endsAt).toBe(before.endsAt); // the same grant, the same end
    expect(shown.tunnel).toMatchObject({ status: 'open', port: resumed.port, command: expect.stringMatching(/^psql '/) });
    expect(await sh(`${shown.tunnel!.command!} -At -c 'select count(*) from users'`)).toBe('25');
    expect(await keychainItemsFor(a.grantId)).toEqual([`grant:${a.grantId}`]);

    // The crashed run's password is dead: the session it opened was ended, and it logs in no more.
    await expect(copied.query('select 1')).rejects.toThrow();
    await expect(direct(a.role, oldPassword).connect()).rejects.toThrow(/password authentication failed/);
    const audit = (await api(stack, token, 'GET', `/v1/audit?grantId=${a.grantId}&action=grant.rekeyed`)).body.entries as Array<{ actor: string; detail: Record<string, unknown> }>;
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'alice', detail: { deviceId: DEVICE, keyType: 'ssh-ed25519' } });

    await b.agent.api.release({ grantId: a.grantId });
    await expect(sh(`${shown.tunnel!.command!} -At -c 'select 1'`)).rejects.toThrow();
  }, 60_000);

  it('from a terminal: `stint grants` lists it as left from before, `stint resume` takes it back and holds the tunnel', async () => {
    const device = 'device-crash-cli';
    const a = await crashMidGrant(device);
    const oldPassword = decodeURIComponent(new URL(a.uri).password);
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l) };
    const sameDevice = () => stack.agent('alice', { deviceId: device }).agent;

    expect(await runCli(['grants'], io, sameDevice), err.join('\n')).toBe(0);
    expect(out.find((l) => l.includes(a.grantId))).toMatch(/^staging-users · read · \d+m left {2}\(\S+\) · left from before$/);
    expect(out.at(-1)).toMatch(/Stint stopped while this access was active.*`stint resume <grant>`.*`stint release <grant>`/);

    out.length = 0;
    const running = runCli(['resume', a.grantId, '--json'], io, sameDevice);
    await expect.poll(() => out.length, { timeout: 20_000 }).toBe(1);
    const held = JSON.parse(out[0]!) as { grantId: string; uri: string; port: number };
    expect(held.grantId).toBe(a.grantId);
    expect(await queryOnce(held.uri, 'select count(*)::int as n from users')).toEqual([{ n: 25 }]);
    await expect(direct(a.role, oldPassword).connect()).rejects.toThrow(/password authentication failed/);

    // Released elsewhere (here: over the API), the access ends and `resume` returns.
    const token = await stack.idp.tokenFor('alice');
    expect((await api(stack, token, 'POST', `/v1/grants/${a.grantId}/release`, {})).status).toBe(200);
    expect(await running, err.join('\n')).toBe(0);
    expect(await portRefuses(held.port)).toBe(true);
  }, 60_000);
});
