// The MariaDB credential provider against a real mariadbd 10.11: a grant's account logs in with the level's
// privileges on its one database only (checked with the real `mariadb` client reading the option file the agent
// writes), and its end locks it, kills its live connections and drops it — idempotently, also after the database
// was down at the first attempt. Rotation (rekey) makes the old password and its sessions useless.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { startMariadb, type MariadbInstance } from '../../dev/mariadb';
import { serviceDir } from '../../dev/run-dir';
import { createMariadbProvider, nativePasswordHash, parseVersion, supportsAccountLock, type MariadbCredentialProvider } from '../../server/targets/mariadb/provider';
import { optionFile, mariadbCommand } from '../../agent/core/kinds/mariadb';
import { CredentialError } from '../../server/credentials/errors';
import { stringify } from 'yaml';
import { main } from '../../server/main';
import { testConfig } from '../../dev/grant-server';

let db: MariadbInstance;
let provider: MariadbCredentialProvider;
let filesDir: string;
const logLines: string[] = [];
const logger = {
  info: (obj: object, msg?: string) => logLines.push(JSON.stringify({ obj, msg })),
  warn: (obj: object, msg?: string) => logLines.push(JSON.stringify({ obj, msg })),
  error: (obj: object, msg?: string) => logLines.push(JSON.stringify({ obj, msg })),
};

const inOneHour = () => Date.now() + 3_600_000;

/** What the user runs: the command the agent prints, with the option file it writes, and SQL on stdin. */
function mariadbClient(user: string, password: string, sql: string): Promise<string> {
  const path = join(mkdtempSync(join(filesDir, 'grant-')), 'my.cnf');
  writeFileSync(path, optionFile({ host: '127.0.0.1', port: db.port, database: db.database, user, password }), { mode: 0o600 });
  return new Promise((resolve, reject) => {
    const child = execFile('/bin/sh', ['-c', `${mariadbCommand(path)} -N -B`], { timeout: 20_000 }, (error, stdout, stderr) => (error ? reject(new Error(stderr || error.message)) : resolve(stdout.trim())));
    child.stdin!.end(sql);
  });
}

async function login(user: string, password: string): Promise<mysql.Connection> {
  const connection = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user, password, database: db.database });
  connection.on('error', () => undefined); // killed at revoke: expected
  return connection;
}

beforeAll(async () => {
  db = await startMariadb({ database: 'shop' });
  filesDir = serviceDir('mariadb-client');
  await db.query('CREATE TABLE orders (id INT PRIMARY KEY, item TEXT); INSERT INTO orders VALUES (1, \'book\'), (2, \'lamp\'); CREATE DATABASE other; CREATE TABLE other.secrets (x INT)');
  provider = createMariadbProvider({
    logger,
    terminateBudgetMs: 5_000,
    resources: {
      shop: { adminUrl: db.adminUrl(''), database: 'shop', accountHost: '127.0.0.1', connectionLimit: 3, levels: { read: ['SELECT'], write: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] } },
    },
  });
}, 60_000);

afterAll(async () => {
  await provider?.close();
  await db?.stop();
  if (filesDir) rmSync(filesDir, { recursive: true, force: true });
});

describe('MariaDB credential provider', () => {
  it('issues a random account that reads its one database with the real mariadb client, cannot write or reach another, and never logs the password', async () => {
    const cred = await provider.issue({ grantId: 'g-read', resourceId: 'shop', level: 'read', endsAt: inOneHour() });
    expect(cred.username).toMatch(/^stint_g_[a-z0-9]{20}$/);
    expect(cred.password.length).toBeGreaterThanOrEqual(32);
    expect(await mariadbClient(cred.username, cred.password, 'SELECT item FROM orders ORDER BY id;')).toBe('book\nlamp');
    await expect(mariadbClient(cred.username, cred.password, "INSERT INTO orders VALUES (3, 'pen');")).rejects.toThrow(/INSERT command denied/);
    await expect(mariadbClient(cred.username, cred.password, 'SELECT * FROM other.secrets;')).rejects.toThrow(/denied/);
    const [account] = await db.query('SELECT Host AS host, max_user_connections AS max, authentication_string AS hash FROM mysql.user WHERE User = ?', [cred.username]);
    // Only the hash reached the server; the account matches only where the bastion's connections come from.
    expect(account).toEqual({ host: '127.0.0.1', max: 3, hash: nativePasswordHash(cred.password) });
    expect(logLines.join('\n')).not.toContain(cred.password);
    await provider.revoke({ grantId: 'g-read', resourceId: 'shop', username: cred.username });
  });

  it('the write level writes; MAX_USER_CONNECTIONS stops a fourth connection', async () => {
    const cred = await provider.issue({ grantId: 'g-write', resourceId: 'shop', level: 'write', endsAt: inOneHour() });
    expect(await mariadbClient(cred.username, cred.password, "INSERT INTO orders VALUES (3, 'pen'); SELECT COUNT(*) FROM orders;")).toBe('3');
    const open = await Promise.all([1, 2, 3].map(() => login(cred.username, cred.password)));
    await expect(login(cred.username, cred.password)).rejects.toThrow(/max_user_connections/);
    await Promise.all(open.map((c) => c.end().catch(() => undefined)));
    await db.query('DELETE FROM orders WHERE id = 3');
    await provider.revoke({ grantId: 'g-write', resourceId: 'shop', username: cred.username });
  });

  it('revoke kills a live query within a second, refuses new logins and drops the account; again is a no-op', async () => {
    const cred = await provider.issue({ grantId: 'g-revoke', resourceId: 'shop', level: 'read', endsAt: inOneHour() });
    const live = await login(cred.username, cred.password);
    const running = live.query('SELECT SLEEP(30)').then(() => 'finished', (error: Error) => error.message);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await provider.revoke({ grantId: 'g-revoke', resourceId: 'shop', username: cred.username });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await running).not.toBe('finished');
    expect(await db.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [cred.username])).toEqual([]);
    await expect(login(cred.username, cred.password)).rejects.toThrow(/Access denied/);
    expect(await provider.userExists({ resourceId: 'shop', username: cred.username })).toBe(false);
    await provider.revoke({ grantId: 'g-revoke', resourceId: 'shop', username: cred.username });
    await provider.revoke({ grantId: 'g-never', resourceId: 'shop', username: 'stint_g_aaaaaaaaaaaaaaaaaaaa' });
  });

  it('a name already taken is never reused: a new one is drawn, and after three taken names issue fails', async () => {
    const taken = 'stint_g_takentakentakentaken';
    await db.query(`CREATE USER '${taken}'@'127.0.0.1' IDENTIFIED BY 'someone-elses'`);
    const names = [taken, 'stint_g_freshfreshfreshfresh'];
    const drawing = createMariadbProvider({ userName: () => names.shift() ?? taken, resources: { shop: { adminUrl: db.adminUrl(''), database: 'shop', accountHost: '127.0.0.1', levels: { read: ['SELECT'] } } } });
    try {
      const cred = await drawing.issue({ grantId: 'g-collide', resourceId: 'shop', level: 'read', endsAt: inOneHour() });
      expect(cred.username).toBe('stint_g_freshfreshfreshfresh');
      expect(await mariadbClient(cred.username, cred.password, 'SELECT COUNT(*) FROM orders;')).toBe('2');
      // The other account keeps its own password: nothing of it was touched.
      const other = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user: taken, password: 'someone-elses' });
      expect((await other.query<mysql.RowDataPacket[]>('SELECT CURRENT_USER() AS u'))[0][0]!.u).toBe(`${taken}@127.0.0.1`);
      await other.end();
      await expect(drawing.issue({ grantId: 'g-collide-2', resourceId: 'shop', level: 'read', endsAt: inOneHour() })).rejects.toMatchObject({ code: 'database_error' });
      await drawing.revoke({ grantId: 'g-collide', resourceId: 'shop', username: cred.username });
    } finally {
      await drawing.close();
      await db.query(`DROP USER '${taken}'@'127.0.0.1'`);
    }
  });

  it('revoke and extend act only on accounts Stint made; extend of a dropped account says not_found', async () => {
    await expect(provider.revoke({ grantId: 'x', resourceId: 'shop', username: 'root' })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(provider.extend({ grantId: 'x', resourceId: 'shop', username: 'stint_g_bbbbbbbbbbbbbbbbbbbb', endsAt: inOneHour() })).rejects.toMatchObject({ code: 'not_found' });
    await expect(provider.issue({ grantId: 'x', resourceId: 'shop', level: 'admin', endsAt: inOneHour() })).rejects.toMatchObject({ code: 'unknown_level' });
    await expect(provider.issue({ grantId: 'x', resourceId: 'nope', level: 'read', endsAt: inOneHour() })).rejects.toMatchObject({ code: 'unknown_resource' });
  });

  it('rotate: the old password logs in nowhere and its session ends; the new one works', async () => {
    const cred = await provider.issue({ grantId: 'g-rotate', resourceId: 'shop', level: 'read', endsAt: inOneHour() });
    const old = await login(cred.username, cred.password);
    const { password } = await provider.rotate({ grantId: 'g-rotate', resourceId: 'shop', username: cred.username });
    expect(password).not.toBe(cred.password);
    await expect(old.query('SELECT 1')).rejects.toThrow();
    await expect(login(cred.username, cred.password)).rejects.toThrow(/Access denied/);
    expect(await mariadbClient(cred.username, password, 'SELECT COUNT(*) FROM orders;')).toBe('2');
    await provider.revoke({ grantId: 'g-rotate', resourceId: 'shop', username: cred.username });
    await expect(provider.rotate({ grantId: 'g-rotate', resourceId: 'shop', username: cred.username })).rejects.toMatchObject({ code: 'not_found' });
  });

  it('database down: issue and revoke fail as retryable "unavailable"; the revoke retried after it is back removes the account', async () => {
    const cred = await provider.issue({ grantId: 'g-down', resourceId: 'shop', level: 'read', endsAt: inOneHour() });
    await db.pause();
    try {
      const issue = await provider.issue({ grantId: 'g-down2', resourceId: 'shop', level: 'read', endsAt: inOneHour() }).catch((e: unknown) => e);
      expect(issue).toBeInstanceOf(CredentialError);
      expect(issue).toMatchObject({ code: 'unavailable', retryable: true });
      await expect(provider.revoke({ grantId: 'g-down', resourceId: 'shop', username: cred.username })).rejects.toMatchObject({ code: 'unavailable', retryable: true });
    } finally {
      await db.resume();
    }
    await provider.revoke({ grantId: 'g-down', resourceId: 'shop', username: cred.username });
    await expect(login(cred.username, cred.password)).rejects.toThrow(/Access denied/);
  }, 60_000);

  it('doctor: says accounts cannot expire by date, flags an anonymous account, and knows which versions are too old', async () => {
    expect((await provider.notices()).join('\n')).toMatch(/cannot expire at a date and time.*Stint ends it at the deadline/);
    expect(await provider.isolationProblems()).toEqual([]);
    await db.query("CREATE USER ''@'%'");
    try {
      expect((await provider.isolationProblems()).join('\n')).toMatch(/anonymous account ''@'%'.*DROP USER/);
    } finally {
      await db.query("DROP USER ''@'%'");
    }
    expect(supportsAccountLock(parseVersion('10.11.19-MariaDB-0+deb12u1'))).toBe(true);
    expect(supportsAccountLock(parseVersion('10.3.39-MariaDB'))).toBe(false);
    expect(supportsAccountLock(parseVersion('8.0.36'))).toBe(true);
    expect(supportsAccountLock(parseVersion('5.6.51'))).toBe(false);
  });

  it('stint-server check-targets: the doctor an operator runs says what Stint makes up for, and exits 1 on a problem', async () => {
    const config = testConfig({ issuer: 'http://127.0.0.1:9', audience: 'stint' }, 'sqlite::memory:');
    const shop = config.resources!.find((r) => r.id === 'shop-mariadb')!;
    const file = join(filesDir, 'stint.yaml');
    writeFileSync(file, stringify({ ...config, resources: [{ ...shop, target: { host: '127.0.0.1', port: db.port, database: 'shop' }, accountHost: '127.0.0.1', admin: { url: 'env:SHOP_ADMIN' } }] }));
    const run = async () => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['check-targets', '--config', file], { out: (l) => out.push(l), err: (l) => err.push(l), env: { SHOP_ADMIN: db.adminUrl('') } });
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    const healthy = await run();
    expect(healthy).toMatchObject({ code: 0, err: '' });
    expect(healthy.out).toMatch(/^note: MariaDB\/MySQL at 127\.0\.0\.1:\d+: accounts cannot expire at a date and time/);
    expect(healthy.out).toMatch(/ok: 1 resource\(s\) checked$/);
    await db.query("CREATE USER ''@'localhost'");
    try {
      const flagged = await run();
      expect(flagged.code).toBe(1);
      expect(flagged.err).toMatch(/^problem: .*anonymous account ''@'localhost'/);
    } finally {
      await db.query("DROP USER ''@'localhost'");
    }
  });
});
