// MEDIUM (review of the first wave): per-grant PostgreSQL roles were not confined to their database. CONNECT stays
// granted to PUBLIC unless an admin revokes it, and the demo's staging level was pg_read_all_data: a grant on staging
// `users` could log in to production `orders` on the same cluster and read it. Now the demo's roles are as narrow as
// production's, its databases admit only roles granted CONNECT, and the server names (with the fix) every managed
// database still open to PUBLIC. On the real stack: a staging grant's own credentials cannot log in to production.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startStack, type Stack } from '../harness/stack';
import { createPostgresProvider } from '../../server/targets/postgres/provider';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

async function query(uri: string, sql: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: uri });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('a grant reaches its own database only', () => {
  it("a staging grant's role reads staging users, and cannot log in to production orders on the same server", async () => {
    const alice = stack.agent('alice');
    await alice.signIn();
    try {
      const created = await alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', reason: 'least privilege', connect: true });
      expect(created.connection?.database).toBe('users');
      const { uri } = await alice.agent.api.connectionUri({ grantId: created.connection!.grantId });
      expect(await query(uri, 'select count(*)::int as n from users')).toEqual([{ n: 25 }]);
      const production = new URL(uri);
      production.pathname = '/orders';
      await expect(query(production.href, 'select count(*) from orders')).rejects.toThrow(/permission denied for database "?orders"?/);
      production.pathname = '/postgres';
      await expect(query(production.href, 'select 1')).rejects.toThrow(/permission denied for database "?postgres"?/);
      await alice.agent.api.release({ grantId: created.connection!.grantId });
    } finally {
      await alice.agent.dispose();
    }
  });

  it('the server names every managed database open to PUBLIC, with the statement that fixes it', async () => {
    const provider = createPostgresProvider({ resources: { 'prod-orders': { adminUrl: stack.pg.adminUrl('orders'), database: 'orders', levels: { read: [] } } } });
    try {
      expect(await provider.isolationProblems()).toEqual([]);
      await stack.pg.query('grant connect on database users to public', [], 'postgres');
      const problems = await provider.isolationProblems();
      expect(problems).toEqual([expect.stringMatching(/every role may connect to database users .*Fix: REVOKE CONNECT ON DATABASE "users" FROM PUBLIC;/)]);
    } finally {
      await stack.pg.query('revoke connect on database users from public', [], 'postgres');
      await provider.close();
    }
  });
});
