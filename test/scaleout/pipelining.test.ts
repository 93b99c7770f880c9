// PostgreSQL connections are pipelined (server/storage/pg-prepared.ts): BEGIN waits for the first statement,
// statements issued together travel together, and COMMIT may leave with a statement nobody has awaited yet. What
// that must never change: a transaction commits all of its statements or none, and a failure is reported.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { openStore, together, type Store } from '../../server/storage/db';

describe('pipelined PostgreSQL connections', () => {
  let pg: PostgresInstance;
  let store: Store;

  beforeAll(async () => {
    pg = await startPostgres({ database: 'stint_pipelined' });
    store = openStore(pg.adminUrl('stint_pipelined'), { pool: { max: 2 } });
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    await pg?.stop();
  });

  const seen = (value: string) => ({ user_sub: 'pipe', kind: 'device', value, first_seen: 1, last_seen: 1 });
  const values = async () => (await store.db.selectFrom('seen').select('value').where('user_sub', '=', 'pipe').orderBy('value').execute()).map((r) => r.value);

  it('statements issued together answer in order and commit together', async () => {
    const [first, second, count] = await store.db.transaction().execute((trx) => together(trx,
      trx.insertInto('seen').values(seen('a')).returning('value'),
      trx.insertInto('seen').values(seen('b')).returning('value'),
      trx.selectFrom('seen').select((eb) => eb.fn.countAll<string>().as('n')).where('user_sub', '=', 'pipe')));
    expect([first.rows[0]?.value, second.rows[0]?.value]).toEqual(['a', 'b']);
    // The third ran after both inserts, inside the same transaction.
    expect(Number(count.rows[0]!.n)).toBe(2);
    expect(await values()).toEqual(['a', 'b']);
  });

  it('a statement that fails unawaited, COMMIT riding with it: nothing is committed and the failure is reported', async () => {
    let unawaited: Promise<unknown> | undefined;
    const outcome = await store.db.transaction().execute(async (trx) => {
      await trx.insertInto('seen').values(seen('c')).execute();
      // Like the write path's last statement: sent, not awaited, and COMMIT follows at once. This one violates the
      // primary key, so PostgreSQL answers the COMMIT with ROLLBACK.
      unawaited = trx.insertInto('seen').values(seen('a')).execute();
      unawaited.catch(() => {});
    }).then(() => 'committed', (error: { code?: string }) => error.code);
    expect(outcome).toBe('transaction_rolled_back');
    await expect(unawaited).rejects.toMatchObject({ code: '23505' });
    expect(await values()).toEqual(['a', 'b']);
  });

  it('transactions that run no statement, or throw before their first, leave the connections usable', async () => {
    // Their BEGIN was never sent: the next transaction on the same connection must not find one open.
    for (let i = 0; i < 3; i++) await store.db.transaction().execute(async () => undefined);
    await expect(store.db.transaction().execute(async () => { throw new Error('changed my mind'); })).rejects.toThrow('changed my mind');
    await store.db.transaction().execute(async (trx) => { await trx.insertInto('seen').values(seen('d')).execute(); });
    await expect(store.db.transaction().execute(async (trx) => {
      await trx.insertInto('seen').values(seen('e')).execute();
      throw new Error('rolled back');
    })).rejects.toThrow('rolled back');
    expect(await values()).toEqual(['a', 'b', 'd']);
  });
});
