// The PostgreSQL credential provider against a real PostgreSQL 15 (scram only): a grant's role can log in with the
// level's privileges only, extension moves VALID UNTIL, and revocation ends live sessions and removes the role —
// also when the database was down at the first attempt.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { createPostgresProvider, scramVerifier, type PostgresCredentialProvider } from '../../server/targets/postgres/provider';
import { CredentialError } from '../../server/credentials/errors';

let db: PostgresInstance;
let provider: PostgresCredentialProvider;
const logLines: string[] = [];
const logger = {
  info: (obj: object, msg?: string) => logLines.push(JSON.stringify({ obj, msg })),
  warn: (obj: object, msg?: string) => logLines.push(JSON.stringify({ obj, msg })),
  error: (obj: object, msg?: string) => logLines.push(JSON.stringify({ obj, msg })),
};

const inOneHour = () => Date.now() + 3_600_000;

async function login(username: string, password: string): Promise<pg.Client> {
  const client = new pg.Client({ host: db.host, port: db.port, database: db.database, user: username, password });
  await client.connect();
  client.on('error', () => undefined); // termination at revoke is expected
  return client;
}

beforeAll(async () => {
  db = await startPostgres();
  await db.query('create table orders (id int primary key, item text)');
  await db.query("insert into orders values (1, 'book'), (2, 'lamp')");
  provider = createPostgresProvider({
    logger,
    resources: {
      orders: {
        adminUrl: db.adminUrl('postgres'),
        database: db.database,
        connectionLimit: 3,
        levels: {
          read: ['GRANT CONNECT ON DATABASE {{database}} TO {{role}}', 'GRANT USAGE ON SCHEMA public TO {{role}}', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{role}}'],
          write: ['GRANT USAGE, CREATE ON SCHEMA public TO {{role}}', 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {{role}}'],
        },
      },
    },
  });
});

afterAll(async () => {
  await provider?.close();
  await db?.stop();
});

describe('PostgreSQL credential provider', () => {
  it('issues a random role that can read but not write at the read level, and never logs the password', async () => {
    const cred = await provider.issue({ grantId: 'g-read', resourceId: 'orders', level: 'read', endsAt: inOneHour() });
    expect(cred.username).toMatch(/^stint_g_[a-z0-9]{20}$/);
    expect(cred.password.length).toBeGreaterThanOrEqual(32);
    const client = await login(cred.username, cred.password);
    try {
      const { rows } = await client.query('select item from orders order by id');
      expect(rows.map((r) => r.item)).toEqual(['book', 'lamp']);
      await expect(client.query("insert into orders values (3, 'pen')")).rejects.toThrow(/permission denied/);
    } finally {
      await client.end();
    }
    const [role] = await db.query('select rolcanlogin, rolconnlimit, rolvaliduntil, rolsuper from pg_roles where rolname = $1', [cred.username]);
    expect(role).toMatchObject({ rolcanlogin: true, rolconnlimit: 3, rolsuper: false });
    expect(logLines.join('\n')).not.toContain(cred.password);
    await provider.revoke({ grantId: 'g-read', resourceId: 'orders', username: cred.username });
  });

  it('stores only a SCRAM verifier, so the clear password never reaches the database', async () => {
    const cred = await provider.issue({ grantId: 'g-scram', resourceId: 'orders', level: 'read', endsAt: inOneHour() });
    const [row] = await db.query('select rolpassword from pg_authid where rolname = $1', [cred.username]);
    expect(row.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(row.rolpassword).not.toContain(cred.password);
    await provider.revoke({ grantId: 'g-scram', resourceId: 'orders', username: cred.username });
    expect(await scramVerifier('x')).not.toEqual(await scramVerifier('x')); // salted
  });

  it('extends VALID UNTIL to the new end', async () => {
    const cred = await provider.issue({ grantId: 'g-ext', resourceId: 'orders', level: 'read', endsAt: inOneHour() });
    const later = Math.floor((Date.now() + 7_200_000) / 1000) * 1000;
    await provider.extend({ grantId: 'g-ext', resourceId: 'orders', username: cred.username, endsAt: later });
    const [role] = await db.query('select rolvaliduntil from pg_roles where rolname = $1', [cred.username]);
    expect((role.rolvaliduntil as Date).toISOString()).toBe(new Date(later).toISOString());
    await provider.revoke({ grantId: 'g-ext', resourceId: 'orders', username: cred.username });
    await expect(provider.extend({ grantId: 'g-ext', resourceId: 'orders', username: cred.username, endsAt: later }))
      .rejects.toMatchObject({ code: 'not_found', retryable: false });
  });

  it('refuses a role whose VALID UNTIL has passed', async () => {
    const cred = await provider.issue({ grantId: 'g-short', resourceId: 'orders', level: 'read', endsAt: Date.now() + 1_500 });
    const client = await login(cred.username, cred.password);
    await client.end();
    await new Promise((r) => setTimeout(r, 1_700));
    await expect(login(cred.username, cred.password)).rejects.toThrow(/password authentication failed/);
    await provider.revoke({ grantId: 'g-short', resourceId: 'orders', username: cred.username });
  });

  it('revoke ends a long-running query within 1 s, blocks new logins, keeps what the role created and drops the role', async () => {
    const cred = await provider.issue({ grantId: 'g-rev', resourceId: 'orders', level: 'write', endsAt: inOneHour() });
    const creator = await login(cred.username, cred.password);
    await creator.query('create table scratch (x int)');
    await creator.end();
    const client = await login(cred.username, cred.password);
    const idle = await login(cred.username, cred.password);
    const running = client.query('select pg_sleep(30)').then(() => 'finished', (error: Error) => error.message);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await provider.revoke({ grantId: 'g-rev', resourceId: 'orders', username: cred.username });
    const outcome = await running;
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(outcome).toMatch(/terminat/i);
    expect(await db.query('select 1 from pg_stat_activity where usename = $1', [cred.username])).toHaveLength(0);
    await expect(idle.query('select 1')).rejects.toThrow();
    await expect(login(cred.username, cred.password)).rejects.toThrow(/password authentication failed|does not exist/);
    expect(await provider.roleExists({ resourceId: 'orders', username: cred.username })).toBe(false);
    const [owner] = await db.query("select tableowner from pg_tables where tablename = 'scratch'");
    expect(owner.tableowner).toBe(db.adminUser);
    // Idempotent: revoking again (a retry after a lost answer) succeeds.
    await provider.revoke({ grantId: 'g-rev', resourceId: 'orders', username: cred.username });
  });

  it('a backend whose client went away mid-query ends within a second, with nobody revoking anything', async () => {
    const cred = await provider.issue({ grantId: 'g-gone', resourceId: 'orders', level: 'read', endsAt: inOneHour() });
    // The role's own default, in the catalog and in a real session of it.
    const [setting] = await db.query(
      'select s.setconfig from pg_db_role_setting s join pg_roles r on r.oid = s.setrole where r.rolname = $1', [cred.username]);
    expect(setting.setconfig).toEqual(['client_connection_check_interval=1s']);
    const client = await login(cred.username, cred.password);
    expect((await client.query('show client_connection_check_interval')).rows[0].client_connection_check_interval).toBe('1s');
    const running = client.query('select pg_sleep(60)').then(() => 'finished', (error: Error) => error.message);
    await expect.poll(async () => db.query("select 1 from pg_stat_activity where usename = $1 and query like 'select pg_sleep%'", [cred.username]), { timeout: 2_000 }).toHaveLength(1);
    // The client's socket closes the way a tunnel's does: no goodbye to PostgreSQL, the query still running.
    const cutAt = Date.now();
    (client as unknown as { connection: { stream: { destroy: () => void } } }).connection.stream.destroy();
    await running;
    const goneAt = await new Promise<number>((resolve, reject) => {
      const poll = async () => {
        if ((await db.query('select 1 from pg_stat_activity where usename = $1', [cred.username])).length === 0) return resolve(Date.now());
        if (Date.now() - cutAt > 10_000) return reject(new Error('the backend is still running 10 s after its client went away'));
        setTimeout(() => void poll().catch(reject), 25);
      };
      void poll().catch(reject);
    });
    expect(goneAt - cutAt).toBeLessThan(1_500);
    await provider.revoke({ grantId: 'g-gone', resourceId: 'orders', username: cred.username });
    // Dropping the role takes its setting with it.
    expect(await db.query('select 1 from pg_db_role_setting s where not exists (select 1 from pg_roles r where r.oid = s.setrole)')).toHaveLength(0);
  });

  it('rotate gives the role a new password: the old one logs in nowhere, its sessions end, privileges and VALID UNTIL stay', async () => {
    const endsAt = inOneHour();
    const cred = await provider.issue({ grantId: 'g-rot', resourceId: 'orders', level: 'read', endsAt });
    const old = await login(cred.username, cred.password);
    const running = old.query('select pg_sleep(30)').then(() => 'finished', (error: Error) => error.message);
    const idle = await login(cred.username, cred.password);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const { password } = await provider.rotate({ grantId: 'g-rot', resourceId: 'orders', username: cred.username });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(password).not.toBe(cred.password);
    expect(await running).toMatch(/terminat/i);
    await expect(idle.query('select 1')).rejects.toThrow();
    expect(await db.query('select 1 from pg_stat_activity where usename = $1', [cred.username])).toHaveLength(0);
    await expect(login(cred.username, cred.password)).rejects.toThrow(/password authentication failed/);
    const fresh = await login(cred.username, password);
    expect((await fresh.query('select count(*)::int as n from orders')).rows[0].n).toBe(2);
    await expect(fresh.query("insert into orders values (9, 'no')")).rejects.toThrow(/permission denied/);
    await fresh.end();
    const [role] = await db.query('select rolvaliduntil, rolcanlogin from pg_roles where rolname = $1', [cred.username]);
    expect(role.rolcanlogin).toBe(true);
    expect(new Date(role.rolvaliduntil).getTime()).toBe(endsAt);
    // Only the verifier reached the log; never a password.
    expect(logLines.some((l) => l.includes(password) || l.includes(cred.password))).toBe(false);
    // A role that is gone (the grant ended meanwhile) is `not_found`; a foreign role name is refused.
    await provider.revoke({ grantId: 'g-rot', resourceId: 'orders', username: cred.username });
    await expect(provider.rotate({ grantId: 'g-rot', resourceId: 'orders', username: cred.username })).rejects.toMatchObject({ code: 'not_found' });
    await expect(provider.rotate({ grantId: 'x', resourceId: 'orders', username: db.adminUser })).rejects.toMatchObject({ code: 'invalid_input' });
  });

  it('overlapping grants of the same resource are independent', async () => {
    const a = await provider.issue({ grantId: 'g-a', resourceId: 'orders', level: 'read', endsAt: inOneHour() });
    const b = await provider.issue({ grantId: 'g-b', resourceId: 'orders', level: 'read', endsAt: inOneHour() });
    expect(a.username).not.toBe(b.username);
    const sessionB = await login(b.username, b.password);
    await provider.revoke({ grantId: 'g-a', resourceId: 'orders', username: a.username });
    expect((await sessionB.query('select count(*)::int as n from orders')).rows[0].n).toBe(2);
    await sessionB.end();
    await provider.revoke({ grantId: 'g-b', resourceId: 'orders', username: b.username });
  });

  it('rolls back the role when a template fails, and rejects unknown resources, levels and foreign role names', async () => {
    const broken = createPostgresProvider({
      resources: { bad: { adminUrl: db.adminUrl(), database: db.database, levels: { read: ['GRANT SELECT ON no_such_table TO {{role}}'] } } },
    });
    try {
      const before = await db.query("select count(*)::int as n from pg_roles where rolname like 'stint_g_%'");
      await expect(broken.issue({ grantId: 'g-bad', resourceId: 'bad', level: 'read', endsAt: inOneHour() }))
        .rejects.toMatchObject({ code: 'database_error' });
      const after = await db.query("select count(*)::int as n from pg_roles where rolname like 'stint_g_%'");
      expect(after[0].n).toBe(before[0].n);
    } finally {
      await broken.close();
    }
    await expect(provider.issue({ grantId: 'x', resourceId: 'nope', level: 'read', endsAt: inOneHour() })).rejects.toMatchObject({ code: 'unknown_resource' });
    await expect(provider.issue({ grantId: 'x', resourceId: 'orders', level: 'admin', endsAt: inOneHour() })).rejects.toMatchObject({ code: 'unknown_level' });
    await expect(provider.revoke({ grantId: 'x', resourceId: 'orders', username: db.adminUser })).rejects.toMatchObject({ code: 'invalid_input' });
    expect((await db.query('select 1 from pg_roles where rolname = $1', [db.adminUser])).length).toBe(1);
  });

  it('issues nothing for a grant that has already ended by the server clock', async () => {
    const before = await db.query("select count(*)::int as n from pg_roles where rolname like 'stint_g_%'");
    await expect(provider.issue({ grantId: 'g-past', resourceId: 'orders', level: 'read', endsAt: Date.now() - 1 })).rejects.toMatchObject({ code: 'invalid_input' });
    const late = createPostgresProvider({ resources: { orders: { adminUrl: db.adminUrl('postgres'), database: db.database, levels: { read: [] } } }, clock: { now: () => Date.now() + 2 * 3_600_000 } });
    try {
      await expect(late.issue({ grantId: 'g-late', resourceId: 'orders', level: 'read', endsAt: inOneHour() })).rejects.toMatchObject({ code: 'invalid_input' });
    } finally {
      await late.close();
    }
    expect((await db.query("select count(*)::int as n from pg_roles where rolname like 'stint_g_%'"))[0].n).toBe(before[0].n);
  });

  it('with the database down, revoke fails with a retryable error and succeeds once it is back', async () => {
    const cred = await provider.issue({ grantId: 'g-down', resourceId: 'orders', level: 'read', endsAt: inOneHour() });
    await db.pause();
    let failure: unknown;
    try {
      await provider.revoke({ grantId: 'g-down', resourceId: 'orders', username: cred.username });
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(CredentialError);
    expect(failure).toMatchObject({ code: 'unavailable', retryable: true });
    expect((failure as CredentialError).cause).toBeDefined();
    await db.resume();
    expect(await provider.roleExists({ resourceId: 'orders', username: cred.username })).toBe(true);
    await provider.revoke({ grantId: 'g-down', resourceId: 'orders', username: cred.username });
    expect(await provider.roleExists({ resourceId: 'orders', username: cred.username })).toBe(false);
  });
});
