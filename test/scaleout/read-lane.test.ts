// Store.reads on PostgreSQL (server/storage/pg-prepared.ts readLane): short reads from many callers share one
// pipelined connection. What a caller must be able to rely on: each gets its own answer, nothing but a plain read
// runs there, and a connection the database dropped is replaced by the next read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { openStore, type Store } from '../../server/storage/db';

const DATABASE = 'stint_read_lane';

describe('the read lane (Store.reads on PostgreSQL)', () => {
  let pg: PostgresInstance;
  let store: Store;

  beforeAll(async () => {
    pg = await startPostgres({ database: DATABASE });
    const setup = openStore(pg.adminUrl(DATABASE));
    await setup.migrate();
    await setup.db.insertInto('seen').values(Array.from({ length: 40 }, (_, i) => ({ user_sub: `user-${i}`, kind: 'device', value: `device-${i}`, first_seen: i, last_seen: i }))).execute();
    await setup.close();
    store = openStore(pg.adminUrl(DATABASE), { pool: { max: 4 } });
  });
  afterAll(async () => {
    await store?.close();
    await pg?.stop();
  });

  const backends = async () => (await pg.query<{ pid: number }>(`select pid from pg_stat_activity where datname = $1 and application_name = 'stint-server'`, [DATABASE], 'postgres')).map((r) => r.pid);
  const deviceOf = (i: number) => store.reads.selectFrom('seen').select(['value', 'first_seen']).where('user_sub', '=', `user-${i}`).executeTakeFirst();

  it('reads started together each get their own answer, all over one connection', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => deviceOf(i)));
    expect(answers).toEqual(Array.from({ length: 40 }, (_, i) => ({ value: `device-${i}`, first_seen: i })));
    // On pooled connections 40 reads at once would have opened all 4.
    expect(await backends()).toHaveLength(1);
  });

  it('refuses anything but a plain read, and writes nothing', async () => {
    const refused = { code: 'not_a_plain_read' };
    await expect(store.reads.insertInto('seen').values({ user_sub: 'lane', kind: 'device', value: 'x', first_seen: 1, last_seen: 1 }).execute()).rejects.toMatchObject(refused);
    await expect(store.reads.selectFrom('seen').selectAll().where('user_sub', '=', 'user-1').forUpdate().execute()).rejects.toMatchObject(refused);
    await expect(store.reads.transaction().execute(async (trx) => trx.selectFrom('seen').selectAll().execute())).rejects.toMatchObject(refused);
    expect(await store.db.selectFrom('seen').select('value').where('user_sub', '=', 'lane').execute()).toEqual([]);
    // The lane still serves reads afterwards.
    expect(await deviceOf(3)).toEqual({ value: 'device-3', first_seen: 3 });
  });

  it('a connection the database dropped is replaced by the next read', async () => {
    await deviceOf(1);
    const [lanePid] = await backends();
    await pg.query('select pg_terminate_backend($1)', [lanePid], 'postgres');
    // Reads in flight when a connection dies fail (as on a pooled one); the next one after the drop succeeds.
    await expect.poll(() => deviceOf(2).then((row) => row?.value, () => 'failed'), { timeout: 5_000 }).toBe('device-2');
    const after = await backends();
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(lanePid);
  });
});
