// The PostgreSQL store prepares its statements (server/storage/pg-prepared.ts). What a rolling upgrade needs from
// that: a migration that adds a column under a running instance must not break it. A plain read runs on, now with
// the new column; a transaction that meets the stale plan fails once and the next one works on a fresh connection.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { openStore, type Store } from '../../server/storage/db';
import { isStalePlan } from '../../server/storage/pg-prepared';

describe('prepared statements on PostgreSQL', () => {
  let pg: PostgresInstance;
  let store: Store;

  beforeAll(async () => {
    pg = await startPostgres({ database: 'stint_prepared' });
    store = openStore(pg.adminUrl('stint_prepared'), { pool: { max: 1 } });
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    await pg?.stop();
  });

  const seen = (sub: string) => store.db.selectFrom('seen').selectAll().where('user_sub', '=', sub).execute();
  const session = (sub: string) => store.db.selectFrom('seen').select(['value', 'user_sub']).where('user_sub', '=', sub).where('kind', '=', 'device').execute();

  it('runs one statement as a prepared one on its connection (parsed once, executed many times)', async () => {
    await store.db.insertInto('seen').values({ user_sub: 'alice', kind: 'device', value: 'd1', first_seen: 1, last_seen: 1 }).execute();
    for (let i = 0; i < 3; i++) expect(await session('alice')).toEqual([{ value: 'd1', user_sub: 'alice' }]);
    const prepared = await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(store.db);
    expect(prepared.rows.some((r) => r.statement.includes('"kind" = $2'))).toBe(true);
  });

  it('prepares nothing when storage.preparedStatements is off (for a pooler that cannot carry them)', async () => {
    const plain = openStore(pg.adminUrl('stint_prepared'), { pool: { max: 1 }, preparedStatements: false });
    try {
      for (let i = 0; i < 3; i++) expect(await plain.db.selectFrom('seen').select('value').where('user_sub', '=', 'alice').execute()).toEqual([{ value: 'd1' }]);
      const prepared = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements`.execute(plain.db);
      expect(prepared.rows[0]!.n).toBe(0);
    } finally {
      await plain.close();
    }
  });

  it('a column added under it: a plain read runs on with the new column, a transaction fails once then works', async () => {
    expect(Object.keys((await seen('alice'))[0]!)).not.toContain('note');
    await pg.query('alter table seen add column note text', [], 'stint_prepared');

    const after = await seen('alice');
    expect(after).toHaveLength(1);
    expect(Object.keys(after[0]!)).toContain('note');

    // Prepare it again in its old shape, then change the table once more under it, inside a transaction.
    await seen('alice');
    await pg.query('alter table seen add column note2 text', [], 'stint_prepared');
    const failed = await store.db.transaction().execute(async (trx) => trx.selectFrom('seen').selectAll().where('user_sub', '=', 'alice').execute()).then(() => undefined, (error: unknown) => error);
    expect(isStalePlan(failed)).toBe(true);
    const retried = await store.db.transaction().execute(async (trx) => trx.selectFrom('seen').selectAll().where('user_sub', '=', 'alice').execute());
    expect(Object.keys(retried[0]!)).toContain('note2');
  });
});
