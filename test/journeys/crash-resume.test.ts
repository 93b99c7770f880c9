// Issue #21 item 1 on the real stack: the agent is killed mid-grant (SIGKILL, a separate process: no dispose, no wipe),
// and the same device starts Stint again. The new agent offers the grant as left from before and Resume takes it back:
// new keys from the server for the same grant and end, the tunnel opened again, and a real `psql` query works through
// it — while the crashed run's password logs in nowhere. The same from a terminal: `stint grants` lists it as left
// from before and `stint resume` takes it back and holds the tunnel — with a one-time code where the policy asks for
// a step-up (staging-shop, MariaDB). (End from the offer: faults-agent-crash.test.ts; the tray: test/shell/tray-resume.)
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { serviceDir } from '../../dev/run-dir';
import { runCli, type Io } from '../../agent/cli/main';
import { api, AuthenticatorApp, crashMidGrant as crash, keychainItemsFor, portRefuses, queryOnce, type CrashedGrant } from './faults-support';

const execFileP = promisify(execFile);
/** A command line as pasted into a shell. */
const sh = async (line: string) => (await execFileP('/bin/sh', ['-c', line], { timeout: 15_000 })).stdout.trim();

let stack: Stack;
beforeAll(async () => { stack = await startStack({ mariadb: true }); }, 120_000);
afterAll(async () => { await stack?.stop(); });

const DEVICE = 'device-crash-resume';

/** An agent in its own process gets a staging grant with a working tunnel on `device`, and is killed (SIGKILL). */
function crashMidGrant(device: string): Promise<CrashedGrant> {
  return crash(stack, { device, whileAlive: async (a) => { expect(await queryOnce(a.uri, 'select count(*)::int as n from users')).toEqual([{ n: 25 }]); } });
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

  it('a policy that asks for a step-up (staging-shop): `stint resume` asks for a code, and `--code` takes it back; the old MariaDB password is dead', async () => {
    const holder = stack.agent('alice');
    await holder.signIn();
    const app = await AuthenticatorApp.enroll(holder.agent);
    const device = 'device-crash-cli-stepup';
    const db = stack.mariadb!;
    const a = await crash(stack, { device, resourceId: 'staging-shop', code: await app.nextCode() });
    const oldPassword = decodeURIComponent(new URL(a.uri).password);
    const copied = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user: a.role, password: oldPassword, database: 'shop' });
    copied.on('error', () => undefined);
    const sameDevice = () => stack.agent('alice', { deviceId: device }).agent;
    const out: string[] = [];
    const err: string[] = [];
    try {
      // No code and no terminal to ask on: told how to give one, nothing sent.
      expect(await runCli(['resume', a.grantId], { out: (l) => out.push(l), err: (l) => err.push(l) }, sameDevice)).toBe(2);
      expect(err.join('\n')).toMatch(/Resuming this access needs a one-time code[\s\S]*--code 123456/);
      // At a terminal it says what the code is for and asks; an empty answer stops it, nothing sent.
      err.length = 0;
      const asked: string[] = [];
      const atTerminal: Io = { out: (l) => out.push(l), err: (l) => err.push(l), ask: async (q) => { asked.push(q); return ''; } };
      expect(await runCli(['resume', 'staging-shop'], atTerminal, sameDevice)).toBe(1);
      expect(asked).toEqual(['Code: ']);
      expect(err.join('\n')).toMatch(/Take back your read access to staging-shop with new keys \(same end\): confirm it is you with the code from your authenticator app\.[\s\S]*no code entered, nothing was sent/);
      expect(await copied.query('SELECT 1 AS one').then(([rows]) => rows)).toEqual([{ one: 1 }]);

      err.length = 0;
      out.length = 0;
      const running = runCli(['resume', a.grantId, '--code', await app.nextCode(), '--json'], { out: (l) => out.push(l), err: (l) => err.push(l) }, sameDevice);
      await expect.poll(() => out.length, { timeout: 20_000 }).toBe(1);
      const held = JSON.parse(out[0]!) as { grantId: string; uri: string; port: number };
      expect(held.grantId).toBe(a.grantId);
      const fresh = new URL(held.uri);
      const through = await mysql.createConnection({ host: fresh.hostname, port: Number(fresh.port), user: a.role, password: decodeURIComponent(fresh.password), database: 'shop' });
      expect(await through.query('SELECT COUNT(*) AS n FROM products').then(([rows]) => rows)).toEqual([{ n: 5 }]);
      await through.end();
      // The crashed run's password: its session ended, and it logs in no more.
      await expect(copied.query('SELECT 1')).rejects.toThrow();
      await expect(mysql.createConnection({ host: '127.0.0.1', port: db.port, user: a.role, password: oldPassword })).rejects.toThrow(/Access denied/);
      const token = await stack.idp.tokenFor('alice');
      const audit = (await api(stack, token, 'GET', `/v1/audit?grantId=${a.grantId}&action=grant.rekeyed`)).body.entries as Array<{ actor: string; detail: Record<string, unknown> }>;
      expect(audit).toEqual([expect.objectContaining({ actor: 'alice', detail: expect.objectContaining({ deviceId: device, stepUp: 'totp' }) })]);

      expect((await api(stack, token, 'POST', `/v1/grants/${a.grantId}/release`, {})).status).toBe(200);
      expect(await running, err.join('\n')).toBe(0);
      expect(await portRefuses(held.port)).toBe(true);
    } finally {
      copied.destroy();
    }
  }, 120_000);
});
