// Changes that arrive together share one commit. A change that throws must fail alone: on SQLite it rolls back to
// its savepoint; on PostgreSQL (no savepoints, the whole transaction aborts) the others run again in a new batch.
// Either way the others commit exactly once, with their audit rows chained in order, and the thrower leaves nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAudit } from '../../server/lifecycle/audit';
import { startIdp, type IdpInstance } from '../harness/idp';
import { startGrantServer, type RunningGrantServer } from '../harness/grant-server';
import { startPostgres, type PostgresInstance } from '../harness/postgres';
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

  it('a revocation hanging on its target database holds up no other write', async () => {
    const alice = clientFor(server.url, await idp.tokenFor('alice'));
    const body = { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' };
    const request = (await alice.post('/v1/requests', body)).body.request;
    const grant = (await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() })).body.grant;
    let unblock!: () => void;
    provider.holdRevoke = new Promise((resolve) => { unblock = resolve; });
    try {
      const attempts = provider.revokeAttempts;
      expect((await alice.post(`/v1/grants/${grant.id}/release`, {})).status).toBe(200);
      await until('the revocation to be stuck in the provider', () => provider.revokeAttempts > attempts);
      // While it hangs (holding the ended grant's row on PostgreSQL): a second release is answered, and new work
      // is written. Neither may wait for the hung call, which is only let go afterwards.
      expect((await alice.post(`/v1/grants/${grant.id}/release`, {})).status).toBe(409);
      expect((await alice.post('/v1/requests', body)).status).toBe(201);
    } finally {
      provider.holdRevoke = undefined;
      unblock();
    }
    await until('the revocation to finish', async () => (await alice.get(`/v1/grants/${grant.id}`)).body.grant.revocation === 'done');
  });
});
