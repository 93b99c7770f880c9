// A MariaDB grant from a terminal, on the real stack with a real mariadbd behind the bastion: `stint request` with
// the one-time code the policy asks for, the `mariadb` command it prints run exactly as printed, a long query held
// open — and at the deadline the query's connection is cut, the option file is gone and the account is dead on the
// database itself (not only the tunnel closed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { startStack, type Stack } from '../harness/stack';
import { AuthenticatorApp } from '../harness/authenticator';
import { listenLocalSocket } from '../../agent/core/local-socket';
import { serviceDir } from '../../dev/run-dir';

const execFileP = promisify(execFile);
const sh = async (line: string) => (await execFileP('/bin/sh', ['-c', line], { timeout: 15_000 })).stdout.trim();

let stack: Stack;
/** alice's authenticator app (enrolled in the first test). */
let app: AuthenticatorApp;
const nextCode = () => app.nextCode();

beforeAll(async () => { stack = await startStack({ mariadb: true }); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('stint with a MariaDB grant', () => {
  it('request with a code → the printed mariadb command reads rows → at the deadline the live query is cut and the account is gone', async () => {
    const dir = join(serviceDir('cli-mariadb'), 'alice');
    const holder = stack.agent('alice', { dataDir: dir });
    await holder.signIn();
    app = await AuthenticatorApp.enroll(holder.agent);
    const socket = await listenLocalSocket({ agent: holder.agent, dataDir: dir });
    try {
      const code = await nextCode();
      const requested = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, 'request', 'staging-shop', '--for', '10s', '--reason', 'check products', '--code', code, '--json'], { timeout: 30_000 });
      const out = JSON.parse(requested.stdout.trim().split('\n').at(-1)!);
      expect(out.mariadb).toMatch(/^mariadb --defaults-file='[^']+\/my\.cnf'$/);
      expect(out.mariadb).not.toContain(new URL(out.uri).password);
      expect(out.uri).toMatch(new RegExp(`^mysql://stint_g_[a-z0-9]{20}:[^@]+@127\\.0\\.0\\.1:${out.port}/shop$`));
      expect(await sh(`${out.mariadb} -N -B -e 'SELECT COUNT(*) FROM products'`)).toBe('5');
      await expect(sh(`${out.mariadb} -N -B -e "INSERT INTO products VALUES (9, 'x', 1)"`)).rejects.toThrow(/INSERT command denied/);

      // A session left running, as a user at a prompt would.
      const live = spawn('/bin/sh', ['-c', `${out.mariadb} -N -B -e 'SELECT SLEEP(60)'`], { stdio: 'ignore' });
      const liveEnded = new Promise<number>((resolve) => live.once('exit', () => resolve(Date.now())));
      const user = decodeURIComponent(new URL(out.uri).username);
      const password = decodeURIComponent(new URL(out.uri).password);
      await expect.poll(async () => (await stack.mariadb!.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user])).length, { timeout: 10_000 }).toBe(1);

      const grant = holder.agent.state().grants.find((g) => g.grant.resourceId === 'staging-shop')!;
      expect(grant.grant.kind).toBe('mariadb');
      const deadline = Date.parse(grant.grant.endsAt);
      expect(await liveEnded - deadline).toBeLessThan(2_000);
      const optionFile = out.mariadb.match(/--defaults-file='([^']+)'/)[1];
      // Wiped with the grant's other secrets, right after the tunnel closed.
      await expect.poll(() => existsSync(optionFile), { timeout: 5_000 }).toBe(false);
      // Dead on the database, not only behind a closed tunnel: no session, no account, and the password logs in nowhere.
      await expect.poll(async () => (await stack.mariadb!.query('SELECT User FROM mysql.user WHERE User = ?', [user])).length, { timeout: 10_000 }).toBe(0);
      expect(await stack.mariadb!.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user])).toEqual([]);
      await expect(mysql.createConnection({ host: '127.0.0.1', port: stack.mariadb!.port, user, password })).rejects.toThrow(/Access denied/);
      await expect(sh(`mariadb --no-defaults -h 127.0.0.1 -P ${out.port} -u ${user} -p${password} -e 'SELECT 1'`)).rejects.toThrow();
    } finally {
      await socket.close();
      await holder.agent.dispose();
    }
  }, 90_000);

  it('connect --exec gives the command the MariaDB connection: the real mariadb client reads rows through $STINT_MYCNF, and through the MYSQL_* variables it reads', async () => {
    const dir = join(serviceDir('cli-mariadb-exec'), 'alice');
    const holder = stack.agent('alice', { dataDir: dir });
    await holder.signIn();
    const socket = await listenLocalSocket({ agent: holder.agent, dataDir: dir });
    const stint = (args: string[]) => execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, ...args], { timeout: 30_000 });
    try {
      const requested = await stint(['request', 'staging-shop', '--for', '60s', '--reason', 'nightly export', '--code', await nextCode(), '--json']);
      const out = JSON.parse(requested.stdout.trim().split('\n').at(-1)!);
      const user = decodeURIComponent(new URL(out.uri).username);
      const ran = await stint(['connect', 'staging-shop', '--exec', [
        `mariadb --defaults-file="$STINT_MYCNF" -N -B -e 'SELECT COUNT(*) FROM products'`,
        // No option file at all: host, port and password from the environment the client reads; no PG* left over.
        `mariadb --no-defaults -u ${user} -N -B -e 'SELECT CURRENT_USER()' shop`,
        'echo "pg:${PGHOST:-none}"',
      ].join(' && ')]);
      const [count, currentUser, pg] = ran.stdout.trim().split('\n');
      expect([count, currentUser?.split('@')[0], pg]).toEqual(['5', user, 'pg:none']);
      // The command's end is the access's end.
      const grant = holder.agent.state().grants.find((g) => g.grant.resourceId === 'staging-shop')!;
      expect(grant.grant.state).toBe('released');
    } finally {
      await socket.close();
      await holder.agent.dispose();
    }
  }, 90_000);

  it('MariaDB down at activation: a clear refusal, and the grant is failed, not active', async () => {
    const dir = join(serviceDir('cli-mariadb-down'), 'alice');
    const holder = stack.agent('alice', { dataDir: dir });
    await holder.signIn();
    const socket = await listenLocalSocket({ agent: holder.agent, dataDir: dir });
    try {
      const code = await nextCode();
      await stack.mariadb!.pause();
      const failed = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, 'request', 'staging-shop', '--for', '10s', '--reason', 'down', '--code', code], { timeout: 30_000 }).catch((e) => e);
      expect(failed.code).not.toBe(0);
      expect(failed.stderr).toContain('The server could not set up your database access.');
      const token = await stack.idp.tokenFor('alice');
      const { grants } = await (await fetch(`${stack.serverUrl}/v1/grants`, { headers: { authorization: `Bearer ${token}` } })).json() as { grants: Array<{ resourceId: string; state: string; startsAt: string }> };
      const shop = grants.filter((g) => g.resourceId === 'staging-shop').sort((a, b) => Date.parse(b.startsAt) - Date.parse(a.startsAt));
      expect(shop[0]!.state).toBe('failed');
      expect(shop.filter((g) => g.state === 'active')).toEqual([]);
    } finally {
      await stack.mariadb!.resume();
      await socket.close();
      await holder.agent.dispose();
    }
  }, 90_000);
});
