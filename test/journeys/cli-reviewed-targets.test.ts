// A MariaDB database and an SSH host under a policy a colleague decides (issue #23), from two terminals on the real
// stack: alice asks with `stint request` and her one-time code and waits; bob sees it in `stint approvals` and
// approves with his own code; alice's waiting command then prints the client command, which runs as printed against
// the real mariadbd / sshd behind the bastion. A session is left open, and at the grant's deadline (20 s) it is cut,
// the files the command named are gone and the credential is dead where it lives (the MariaDB account, the host
// login). carol (admin) reads the audit: bob's approval, the deadline, the credentials revoked, the chain intact.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { startStack, type Stack, type StackAgent } from '../harness/stack';
import { reviewedTargets, REVIEWED_GRANT_SECONDS } from '../harness/reviewed-targets';
import { AuthenticatorApp } from '../harness/authenticator';
import { listenLocalSocket } from '../../agent/core/local-socket';
import { serviceDir } from '../../dev/run-dir';
import { call } from '../server/helpers';
import type { AuditEntry } from '../../shared/contract/http';
import { AuditVerifyStatus } from '../../shared/contract/admin';

const execFileP = promisify(execFile);
/** A command line as pasted into a shell. */
const sh = async (line: string) => (await execFileP('/bin/sh', ['-c', line], { timeout: 15_000 })).stdout.trim();

/** A person at a terminal: their agent (as the tray app runs it) reached by `stint --agent <socket>`, and their app. */
interface Person {
  holder: StackAgent;
  app: AuthenticatorApp;
  stint: (...args: string[]) => Promise<{ stdout: string; stderr: string }>;
  close: () => Promise<void>;
}

let stack: Stack;
let alice: Person;
let bob: Person;

async function person(user: string): Promise<Person> {
  const dir = join(serviceDir('cli-reviewed-targets'), user);
  const holder = stack.agent(user, { dataDir: dir });
  await holder.signIn();
  const { secret } = await holder.agent.api.enrollTotp({});
  const app = new AuthenticatorApp(secret);
  await holder.agent.api.confirmTotp({ code: await app.nextCode() });
  const socket = await listenLocalSocket({ agent: holder.agent, dataDir: dir });
  return {
    holder, app,
    stint: (...args) => execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, ...args], { timeout: 90_000 }),
    close: async () => { await socket.close(); await holder.agent.dispose(); },
  };
}

/** The last JSON line a `stint … --json` printed. */
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!);

/**
 * alice asks for `resourceId` with her code and waits in `stint request`; bob finds it in `stint approvals` and
 * approves with his code. Returns what alice's command printed once access was active.
 */
async function askAndApprove(resourceId: string, reason: string) {
  const asking = alice.stint('request', resourceId, '--reason', reason, '--code', await alice.app.nextCode(), '--json');
  asking.catch(() => undefined); // awaited below; a failure must not go unhandled while bob looks
  let waiting: { id: string; requester: string; resourceId: string; reason: string; durationSeconds: number } | undefined;
  await expect.poll(async () => {
    const inbox = lastJson((await bob.stint('approvals', '--json')).stdout) as Array<NonNullable<typeof waiting>>;
    waiting = inbox.find((r) => r.requester === 'alice' && r.resourceId === resourceId && r.reason === reason);
    return waiting;
  }, { timeout: 30_000, interval: 500 }).toBeDefined();
  expect(waiting).toMatchObject({ durationSeconds: REVIEWED_GRANT_SECONDS });
  // Still waiting for him: alice's command has printed nothing yet.
  const early = await Promise.race([asking.then(() => 'returned'), new Promise((r) => setTimeout(() => r('waiting'), 500))]);
  expect(early).toBe('waiting');

  const approved = await bob.stint('approve', waiting!.id, '--comment', 'ok for today', '--code', await bob.app.nextCode(), '--json');
  expect(lastJson(approved.stdout).request).toMatchObject({ id: waiting!.id, state: 'approved', approvals: [expect.objectContaining({ approver: 'bob', group: 'dba' })] });
  const out = lastJson((await asking).stdout);
  const local = alice.holder.agent.state().grants.find((g) => g.grant.id === out.grantId)!;
  expect(local.grant).toMatchObject({ resourceId, requestId: waiting!.id, state: 'active' });
  return { out, requestId: waiting!.id, endsAt: Date.parse(local.grant.endsAt) };
}

/** The grant's end as the server records it at the deadline (not a release by alice, not a revoke). */
const DEADLINE = { action: 'grant.ended', actor: 'system', subject: 'alice', reason: 'deadline reached' };

async function auditOf(grantId: string): Promise<AuditEntry[]> {
  const carol = await stack.idp.tokenFor('carol');
  return (await call(stack.serverUrl, 'GET', `/v1/audit?grantId=${grantId}&limit=500`, { token: carol })).body.entries as AuditEntry[];
}

async function auditOfRequest(requestId: string): Promise<AuditEntry[]> {
  const carol = await stack.idp.tokenFor('carol');
  return (await call(stack.serverUrl, 'GET', `/v1/audit?requestId=${requestId}&limit=500`, { token: carol })).body.entries as AuditEntry[];
}

/** The audit chain, verified on the server as an admin asks for it. */
async function chainVerifies(): Promise<void> {
  const carol = await stack.idp.tokenFor('carol');
  expect((await call(stack.serverUrl, 'POST', '/v1/admin/audit/verify', { token: carol, body: {} })).status).toBe(202);
  let status: AuditVerifyStatus | undefined;
  await expect.poll(async () => {
    status = AuditVerifyStatus.parse((await call(stack.serverUrl, 'GET', '/v1/admin/audit/verify', { token: carol })).body);
    return status.state;
  }, { timeout: 30_000 }).toBe('done');
  expect(status!.result).toMatchObject({ ok: true });
}

beforeAll(async () => {
  stack = await startStack({ mariadb: true, editConfig: reviewedTargets });
  alice = await person('alice');
  bob = await person('bob');
}, 120_000);
afterAll(async () => {
  await alice?.close();
  await bob?.close();
  await stack?.stop();
});

describe('a reviewed MariaDB grant from the CLI (#23)', () => {
  it('alice asks with her code → bob approves with his → the printed mariadb command reads rows → at the deadline the live query is cut and the account is dead', async () => {
    const { out, requestId, endsAt } = await askAndApprove('staging-shop', 'check products');
    expect(out.mariadb).toMatch(/^mariadb --defaults-file='[^']+\/my\.cnf'$/);
    expect(await sh(`${out.mariadb} -N -B -e 'SELECT COUNT(*) FROM products'`)).toBe('5');

    // A session left running, as a user at a prompt would.
    const live = spawn('/bin/sh', ['-c', `${out.mariadb} -N -B -e 'SELECT SLEEP(60)'`], { stdio: 'ignore' });
    const liveEnded = new Promise<number>((resolve) => live.once('exit', () => resolve(Date.now())));
    const user = decodeURIComponent(new URL(out.uri).username);
    const password = decodeURIComponent(new URL(out.uri).password);
    await expect.poll(async () => (await stack.mariadb!.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user])).length, { timeout: 10_000 }).toBe(1);

    // Cut at the deadline, not before it (the agent's estimate of the server's clock is within a second).
    const ended = await liveEnded;
    expect(ended - endsAt).toBeGreaterThan(-1_500);
    expect(ended - endsAt).toBeLessThan(2_000);
    const optionFile = out.mariadb.match(/--defaults-file='([^']+)'/)[1];
    await expect.poll(() => existsSync(optionFile), { timeout: 5_000 }).toBe(false);
    // Dead on the database itself: no account, no session, and its password logs in nowhere.
    await expect.poll(async () => (await stack.mariadb!.query('SELECT User FROM mysql.user WHERE User = ?', [user])).length, { timeout: 10_000 }).toBe(0);
    expect(await stack.mariadb!.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user])).toEqual([]);
    await expect(mysql.createConnection({ host: '127.0.0.1', port: stack.mariadb!.port, user, password })).rejects.toThrow(/Access denied/);

    // The record, as an admin reads it.
    await expect.poll(async () => (await auditOf(out.grantId)).some((e) => e.action === 'grant.credentials_revoked'), { timeout: 10_000 }).toBe(true);
    const decided = await auditOfRequest(requestId);
    expect(decided).toEqual(expect.arrayContaining([
      expect.objectContaining({ action: 'request.approval_added', actor: 'bob', subject: 'alice', reason: 'ok for today', detail: expect.objectContaining({ group: 'dba', stepUp: 'totp' }) }),
      expect.objectContaining({ action: 'request.approved' }),
    ]));
    const entries = await auditOf(out.grantId);
    expect(entries.map((e) => e.action)).toEqual(expect.arrayContaining(['grant.activated', 'bastion.session.opened', 'grant.credentials_revoked']));
    expect(entries).toContainEqual(expect.objectContaining(DEADLINE));
    await chainVerifies();
  }, 120_000);
});

describe('a reviewed SSH-host grant from the CLI (#23)', () => {
  it('alice asks with her code → bob approves with his → the printed ssh command runs on the host → at the deadline the live session is cut, the command is refused and its files are gone', async () => {
    const { out, requestId, endsAt } = await askAndApprove('staging-web', 'look at the web logs');
    expect(out.ssh).toMatch(/^ssh -F \S+\/ssh_config stint-staging-web$/);
    expect(await sh(`${out.ssh} 'id -un'`)).toBe('stinttarget');
    const configFile = out.ssh.split(' ')[2] as string;
    const keyFile = readFileSync(configFile, 'utf8').match(/^\s*IdentityFile\s+"?([^"\n]+)"?$/m)![1]!;
    expect(existsSync(keyFile)).toBe(true);
    // The grant's files copied aside while it is active (the key, the pinned hosts, the config pointing at them):
    // after the deadline they show the key itself is refused, not only that the printed files are gone.
    const kept = mkdtempSync(join(tmpdir(), 'stint-kept-'));
    cpSync(dirname(configFile), kept, { recursive: true });
    const keptConfig = join(kept, 'ssh_config');
    writeFileSync(keptConfig, readFileSync(keptConfig, 'utf8').replaceAll(dirname(configFile), kept), { mode: 0o600 });
    onTestFinished(() => rmSync(kept, { recursive: true, force: true }));
    expect(await sh(`ssh -F ${keptConfig} stint-staging-web 'id -un'`)).toBe('stinttarget');

    // A live session with a TTY, as at a terminal.
    const live = spawn('/bin/sh', ['-c', `${out.ssh.replace(' stint-staging-web', ' -tt stint-staging-web')} 'echo ready; exec sleep 120'`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    live.stdout.on('data', (d: Buffer) => { said += d.toString(); });
    const liveEnded = new Promise<number>((resolve) => live.once('exit', () => resolve(Date.now())));
    await expect.poll(() => said, { timeout: 15_000 }).toContain('ready');

    const ended = await liveEnded;
    expect(ended - endsAt).toBeGreaterThan(-1_500);
    expect(ended - endsAt).toBeLessThan(2_000);
    await expect(sh(`${out.ssh} 'id -un'`)).rejects.toThrow();
    await expect(sh(`ssh -F ${keptConfig} stint-staging-web 'id -un'`)).rejects.toThrow(/Permission denied/);
    expect(existsSync(configFile)).toBe(false);
    expect(existsSync(keyFile)).toBe(false);

    // Each session on the host, and what became of it at the end; the credentials count as revoked once the host
    // has confirmed and the bastion has cut.
    await expect.poll(async () => (await auditOf(out.grantId)).filter((e) => /^host\.session\.(killed|closed)$/.test(e.action)).length, { timeout: 10_000 }).toBe(3);
    await expect.poll(async () => (await auditOf(out.grantId)).some((e) => e.action === 'grant.credentials_revoked'), { timeout: 10_000 }).toBe(true);
    const entries = await auditOf(out.grantId);
    const opened = entries.filter((e) => e.action === 'host.session.opened');
    expect(opened).toHaveLength(3); // `id -un` as printed and from the copy, and the live session (the refused ones opened none)
    for (const row of opened) expect(row).toMatchObject({ actor: 'host:staging-web', subject: 'alice', detail: { hostId: 'staging-web', login: 'stinttarget' } });
    expect(entries.map((e) => e.action)).toEqual(expect.arrayContaining(['grant.activated', 'bastion.session.opened', 'grant.credentials_revoked']));
    expect(entries).toContainEqual(expect.objectContaining(DEADLINE));
    expect(await auditOfRequest(requestId)).toEqual(expect.arrayContaining([
      expect.objectContaining({ action: 'request.approval_added', actor: 'bob', subject: 'alice', detail: expect.objectContaining({ group: 'dba', stepUp: 'totp' }) }),
    ]));
    await chainVerifies();
  }, 120_000);
});
