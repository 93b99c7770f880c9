// Changes that arrive together share one commit. A change that throws must fail alone: on SQLite it rolls back to
// its savepoint; on PostgreSQL (no savepoints, the whole transaction aborts) the others run again in a new batch.
// Either way the others commit exactly once, with their audit rows chained in order, and the thrower leaves nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAudit } from '../../server/lifecycle/audit';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, until } from '../server/helpers';

describe.each(['sqlite', 'postgres'] as const)('write batches on %s', (dialect) => {
  let idp: IdpInstance;
  let pg: PostgresInstance | undefined;
  let server: RunningGrantServer;
  const provider = new RecordingProvider();

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    if (dialect === 'postgres') pg = await startPostgres({ database: 'stint_batches' });
    server = await startGrantServer({ idp, credentials: provider, overrides: { storage: { url: pg ? pg.adminUrl('stint_batches') : 'sqlite::memory:' } } });
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
    await pg?.stop();
  });

  it('a change that throws fails alone; the changes batched with it commit once each', async () => {
    const lifecycle = server.lifecycle;
    const db = server.server.store.db;
    const marker = `batch-${Date.now()}`;
    const change = (n: number, fails = false) => lifecycle.mutate(async (ctx) => {
      await ctx.audit({ at: Date.now(), actor: 'test', action: 'test.change', reason: `${marker}-${n}` });
      await ctx.emit({ type: 'approval.withdrawn', requestId: `${marker}-${n}` }, { users: ['alice'], groups: [], exclude: [] });
      // A failing statement, as a constraint violation or a lost connection would be: the database itself refuses.
      if (fails) await ctx.trx.selectFrom('not_a_table' as never).selectAll().execute();
      return n;
    });
    // Queued in the same turn, so they form one batch.
    const outcomes = await Promise.allSettled([change(1), change(2, true), change(3), change(4)]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const rows = await db.selectFrom('audit').select(['reason']).where('action', '=', 'test.change').where('reason', 'like', `${marker}%`).orderBy('seq').execute();
    expect(rows.map((r) => r.reason)).toEqual([`${marker}-1`, `${marker}-3`, `${marker}-4`]);
    const events = await db.selectFrom('events').select(['payload']).where('payload', 'like', `%${marker}%`).orderBy('id').execute();
    expect(events.map((e) => JSON.parse(e.payload).requestId)).toEqual([`${marker}-1`, `${marker}-3`, `${marker}-4`]);
    expect((await verifyAudit(db)).ok).toBe(true);
  });

  it('audit rows with awkward content chain and verify (PostgreSQL hashes them in SQL, Node checks)', async () => {
    const db = server.server.store.db;
    const marker = `awkward-${Date.now()}`;
    const awkward = [
      { reason: `${marker} "quoted" \\ back\\slash, new\nline, tab\t, emoji 🔑, accents éàü, CJK 鍵` , detail: { nested: { list: [1, 'two', null, { 'seq': -1 }], quote: '"seq":-1' }, zero: 0 } },
      { reason: `${marker} plain`, detail: undefined, subject: '"', risk: 0, policyVersion: 7 },
      { reason: `${marker} ${'x'.repeat(5_000)}`, detail: { big: 'y'.repeat(2_000) } },
    ];
    // Queued in one turn: one batch, so the rows chain from each other inside the one statement.
    await Promise.all(awkward.map((a, i) => server.lifecycle.mutate(async (ctx) => {
      await ctx.audit({ at: Date.now() + i, actor: `tester ${i}`, action: 'test.awkward', ...a });
    })));
    const rows = await db.selectFrom('audit').select(['reason', 'detail']).where('action', '=', 'test.awkward').where('reason', 'like', `${marker}%`).orderBy('seq').execute();
    expect(rows.map((r) => r.reason)).toEqual(awkward.map((a) => a.reason));
    expect(JSON.parse(rows[0]!.detail!)).toEqual(awkward[0]!.detail);
    expect(await verifyAudit(db)).toMatchObject({ ok: true });
  });

  it('changes that each declare their own row run side by side and still commit once each, in order; one that fails, fails alone', async () => {
    const lifecycle = server.lifecycle;
    const db = server.server.store.db;
    const marker = `keyed-${Date.now()}`;
    const change = (n: number, fails = false) => lifecycle.mutate(async (ctx) => {
      await ctx.trx.insertInto('seen').values({ user_sub: marker, kind: 'device', value: `d${n}`, first_seen: n, last_seen: n }).execute();
      await ctx.audit({ at: Date.now(), actor: 'test', action: 'test.change', reason: `${marker}-${n}` });
      // Fails in the database, after its first statement, while the others' second statements are in flight (they
      // then meet an aborted transaction).
      if (fails) await ctx.trx.selectFrom('not_a_table' as never).selectAll().execute();
      else await ctx.trx.selectFrom('seen').select('value').where('user_sub', '=', marker).execute();
      return n;
    }, { key: `row:${n}` });
    const outcomes = await Promise.allSettled([change(1), change(2), change(3, true), change(4)]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    // The failing change gets its own error, not the "transaction aborted" its neighbours met.
    expect(String((outcomes[2] as PromiseRejectedResult).reason)).toContain('not_a_table');
    const seen = await db.selectFrom('seen').select('value').where('user_sub', '=', marker).orderBy('value').execute();
    expect(seen.map((r) => r.value)).toEqual(['d1', 'd2', 'd4']);
    const rows = await db.selectFrom('audit').select(['reason']).where('action', '=', 'test.change').where('reason', 'like', `${marker}%`).orderBy('seq').execute();
    expect(rows.map((r) => r.reason)).toEqual([`${marker}-1`, `${marker}-2`, `${marker}-4`]);
    expect((await verifyAudit(db)).ok).toBe(true);
  });

  it('changes that declare the same row run one after another: the second sees what the first wrote', async () => {
    const lifecycle = server.lifecycle;
    const marker = `same-${Date.now()}`;
    const write = lifecycle.mutate(async (ctx) => {
      await ctx.trx.insertInto('seen').values({ user_sub: marker, kind: 'device', value: 'first', first_seen: 1, last_seen: 1 }).execute();
      return 'written';
    }, { key: `row:${marker}` });
    const read = lifecycle.mutate(async (ctx) => (await ctx.trx.selectFrom('seen').select('value').where('user_sub', '=', marker).execute()).map((r) => r.value), { key: `row:${marker}` });
    const other = lifecycle.mutate(async () => 'other', { key: `row:${marker}-other` });
    expect(await Promise.all([write, read, other])).toEqual(['written', ['first'], 'other']);
  });

  it('a burst of ends calls the provider for at most 100 grants at once; the others follow, each recorded once', async () => {
    const alice = clientFor(server.url, await idp.tokenFor('alice'));
    const body = { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' };
    const grants: string[] = [];
    for (let chunk = 0; chunk < 6; chunk++) {
      grants.push(...await Promise.all(Array.from({ length: 20 }, async () => {
        const request = (await alice.post('/v1/requests', body)).body.request;
        const activated = await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
        expect(activated.status, JSON.stringify(activated.body)).toBe(201);
        return activated.body.grant.id as string;
      })));
    }
    const attempts = provider.revokeAttempts;
    let unblock!: () => void;
    provider.holdRevoke = new Promise((resolve) => { unblock = resolve; });
    try {
      const released = await Promise.all(grants.map((id) => alice.post(`/v1/grants/${id}/release`, {})));
      expect(released.map((r) => r.status)).toEqual(grants.map(() => 200));
      await until('the provider to be called for the first hundred', () => provider.revokeAttempts - attempts >= 100);
      await new Promise((r) => setTimeout(r, 300));
      expect(provider.revokeAttempts - attempts).toBe(100);
    } finally {
      provider.holdRevoke = undefined;
      unblock();
    }
    const db = server.server.store.db;
    await until('every grant to be revoked', async () => {
      const rows = await db.selectFrom('grants').select('revocation').where('id', 'in', grants).execute();
      return rows.every((r) => r.revocation === 'done');
    }, 20_000);
    const audits = await db.selectFrom('audit').select('grant_id').where('action', '=', 'grant.credentials_revoked').where('grant_id', 'in', grants).execute();
    expect(audits).toHaveLength(grants.length);
    expect(new Set(audits.map((a) => a.grant_id)).size).toBe(grants.length);
  });

  it('a revocation hanging on its target database holds up no other write', async () => {
    const alice = clientFor(server.url, await idp.tokenFor('alice'));
    const body = { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' };
    const request = (await alice.post('/v1/requests', body)).body.request;
    const grant = (await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() })).body.grant;
    // The first attempt (made at once by the instance that ended the grant, outside any transaction) fails; the
    // retry is the one that hangs: on PostgreSQL a retry claims the grant's row in a transaction held across the call.
    provider.failRevoke = 1;
    let unblock!: () => void;
    try {
      const attempts = provider.revokeAttempts;
      expect((await alice.post(`/v1/grants/${grant.id}/release`, {})).status).toBe(200);
      await until('the first attempt to fail', async () => (await alice.get(`/v1/grants/${grant.id}`)).body.grant.revocation === 'retrying');
      provider.holdRevoke = new Promise((resolve) => { unblock = resolve; });
      await until('the retry to be stuck in the provider', () => provider.revokeAttempts > attempts + 1, 5_000);
      // While it hangs: a second release is answered, and new work is written. Neither may wait for the hung call,
      // which is only let go afterwards.
      expect((await alice.post(`/v1/grants/${grant.id}/release`, {})).status).toBe(409);
      expect((await alice.post('/v1/requests', body)).status).toBe(201);
    } finally {
      provider.failRevoke = 0;
      provider.holdRevoke = undefined;
      unblock?.();
    }
    await until('the revocation to finish', async () => (await alice.get(`/v1/grants/${grant.id}`)).body.grant.revocation === 'done');
  });
});
