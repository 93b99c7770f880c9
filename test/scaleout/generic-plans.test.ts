// The PostgreSQL store keeps its statements prepared, and PostgreSQL may then run them with a generic plan: one
// made without the parameters' values. A query whose index is partial (`where action = 'stepup.failed'`) can only
// use that index if the generic plan can prove the predicate, so such predicates are literals, not parameters.
// Otherwise every request would read the whole audit trail to count failed step-ups, slower with every day of use.
// Here the database forces generic plans, so a table scan cannot hide behind a lucky custom plan.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, until } from '../server/helpers';

const DB = 'stint_plans';

describe('lifecycle statements under generic plans (PostgreSQL)', () => {
  let idp: IdpInstance;
  let pg: PostgresInstance;
  const servers: RunningGrantServer[] = [];

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    pg = await startPostgres({ database: DB });
    await pg.query(`alter database ${DB} set plan_cache_mode = force_generic_plan`, [], 'postgres');
  });
  afterAll(async () => {
    for (const server of servers) await server.close().catch(() => {});
    await idp?.close();
    await pg?.stop();
  });

  const start = async () => {
    const server = await startGrantServer({
      idp, credentials: new RecordingProvider(),
      overrides: { storage: { url: pg.adminUrl(DB) }, policies: { 'staging-self-service': { autoApprove: { when: { riskBelow: 101 } } } } },
    });
    servers.push(server);
    return server;
  };
  const stop = async (server: RunningGrantServer) => {
    await server.close();
    // A backend adds its table counters to the statistics when it exits: wait for the server's connections to go.
    await until('the server\'s connections to close', async () => Number((await pg.query<{ n: string }>('select count(*) as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [DB], 'postgres'))[0]!.n) === 0 || undefined);
  };
  const lifecycles = async (server: RunningGrantServer, count: number) => {
    const alice = clientFor(server.url, await idp.tokenFor('alice'));
    for (let i = 0; i < count; i++) {
      const created = await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', durationSeconds: 600, deviceId: 'laptop-1' });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const activated = await alice.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
      expect(activated.status, JSON.stringify(activated.body)).toBe(201);
      expect((await alice.post(`/v1/grants/${activated.body.grant.id}/release`)).status).toBe(200);
    }
  };
  const scans = async () => Object.fromEntries((await pg.query<{ relname: string; seq_scan: string }>(
    "select relname, seq_scan from pg_stat_user_tables where relname in ('audit', 'requests', 'grants')", [], DB)).map((r) => [r.relname, Number(r.seq_scan)]));
  const grantRowsRead = async () => Number((await pg.query<{ n: string }>("select coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) as n from pg_stat_user_tables where relname = 'grants'", [], DB))[0]!.n);

  it('request, activate and release read no table whole, however long the audit trail and the user\'s grant history', async () => {
    // A history worth indexing: a few hundred requests, grants and audit rows, all of one user.
    const seeding = await start();
    await lifecycles(seeding, 150);
    await stop(seeding);
    // No ANALYZE: a busy table's statistics lag behind it, and plans must be sound meanwhile.
    const before = await scans();
    const readBefore = await grantRowsRead();

    const server = await start();
    await lifecycles(server, 40);
    await server.lifecycle.sweep(false);
    await stop(server);
    const after = await scans();
    // Each lifecycle reads its own grant a few times; none reads all of alice's 150 earlier grants to find it.
    expect(await grantRowsRead() - readBefore).toBeLessThan(40 * 10);
    expect({ audit: after.audit! - before.audit!, requests: after.requests! - before.requests!, grants: after.grants! - before.grants! })
      .toEqual({ audit: 0, requests: 0, grants: 0 });
  }, 120_000);

  it('a bastion finds an active grant by its key through the index of active keys, not by reading every grant', async () => {
    const server = await start();
    const alice = clientFor(server.url, await idp.tokenFor('alice'));
    for (let i = 0; i < 5; i++) {
      const created = await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', durationSeconds: 600, deviceId: 'laptop-1' });
      expect((await alice.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine() })).status).toBe(201);
    }
    const active = await pg.query<{ id: string; bastion_id: string; key_type: string; key_base64: string }>(
      "select id, bastion_id, key_type, key_base64 from grants where state = 'active'", [], DB);
    expect(active).toHaveLength(5);
    const [ended] = await pg.query<{ key_type: string; key_base64: string }>("select key_type, key_base64 from grants where state <> 'active' limit 1", [], DB);
    const before = await scans();
    const readBefore = await grantRowsRead();
    for (let round = 0; round < 8; round++) {
      for (const grant of active) {
        expect((await server.lifecycle.findActiveGrantByKey(grant.bastion_id, grant.key_type, grant.key_base64))?.grantId).toBe(grant.id);
      }
      // The key of a grant that has ended (one of the earlier test's) opens nothing.
      expect(await server.lifecycle.findActiveGrantByKey(active[0]!.bastion_id, ended!.key_type, ended!.key_base64)).toBeUndefined();
    }
    await stop(server);
    // The 190 ended grants of the earlier test are not read to find 5 active ones: a scan per lookup would read
    // ~8,800 rows (what the server did besides, starting and activating, stays well below the bound).
    expect((await scans()).grants! - before.grants!).toBe(0);
    expect(await grantRowsRead() - readBefore).toBeLessThan(45 * 10);
  }, 120_000);
});
