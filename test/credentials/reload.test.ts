// Credentials across a live config reload (#25), against a real PostgreSQL: a resource the reload adds can be
// granted at once, and a resource the reload removes keeps its admin connection, so the role of a grant on it is
// still revoked (a reload must never strand a database role).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { merge, testConfig } from '../../dev/grant-server';
import { validateConfig, type ServerConfig } from '../../server/config';
import { reloadableCredentials } from '../../server/policy/reloadable-credentials';

let db: PostgresInstance;

const LEVELS = { read: ['GRANT CONNECT ON DATABASE {{database}} TO {{role}}', 'GRANT USAGE ON SCHEMA public TO {{role}}', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{role}}'] };

function configWith(databases: string[]): ServerConfig {
  const resources = databases.map((database) => ({
    id: database, name: database, environment: 'staging', sensitivity: 'low', kind: 'postgres', bastion: 'main', policy: 'staging-self-service',
    target: { host: db.host, port: db.port, database }, admin: { url: db.adminUrl('postgres') }, levels: LEVELS,
  }));
  return validateConfig(merge(testConfig({ issuer: 'http://127.0.0.1:9/', audience: 'stint' }, 'sqlite::memory:'), { resources }), 'reload test');
}

async function canLogin(database: string, user: string, password: string): Promise<boolean> {
  const client = new pg.Client({ host: db.host, port: db.port, database, user, password });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

beforeAll(async () => {
  db = await startPostgres();
  await db.query('create database ledger');
});
afterAll(async () => {
  await db?.stop();
});

describe('credentials across a reload', () => {
  it('grants on a resource the reload added, and still revokes on one it removed', async () => {
    const credentials = reloadableCredentials(configWith([db.database]).resources, {});
    try {
      const onOld = await credentials.provider.issue({ grantId: 'g-old', resourceId: db.database, level: 'read', endsAt: Date.now() + 3_600_000 });
      expect(await canLogin(db.database, onOld.username, onOld.password)).toBe(true);
      await expect(credentials.provider.issue({ grantId: 'g-early', resourceId: 'ledger', level: 'read', endsAt: Date.now() + 3_600_000 })).rejects.toThrow(/ledger/);

      credentials.reconfigure(configWith(['ledger']));
      const onNew = await credentials.provider.issue({ grantId: 'g-new', resourceId: 'ledger', level: 'read', endsAt: Date.now() + 3_600_000 });
      expect(await canLogin('ledger', onNew.username, onNew.password)).toBe(true);

      await credentials.provider.revoke({ grantId: 'g-old', resourceId: db.database, username: onOld.username });
      expect(await canLogin(db.database, onOld.username, onOld.password)).toBe(false);
      expect(await db.query('select rolname from pg_roles where rolname = $1', [onOld.username])).toEqual([]);
      await credentials.provider.revoke({ grantId: 'g-new', resourceId: 'ledger', username: onNew.username });
    } finally {
      await credentials.provider.close();
    }
  });
});
