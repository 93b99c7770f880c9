// The scale-out acceptance test: two `stint-server serve` processes (the real CLI, the real PostgreSQL credential
// provider) sharing one harness PostgreSQL, behind no load balancer but called alternately, as one would spread them.
//   - an event caused on B reaches the SSE clients of A, once;
//   - approvers racing on different instances count each person once and give one grant;
//   - 1,000 grants whose deadlines fall in the same second are each ended and revoked exactly once, their roles gone;
//   - killing one instance while those ends are under way loses none of them.
// Every grant here creates a real LOGIN role on the harness PostgreSQL and its end drops it, so "revoked once" is
// checked against the database the credentials live in, not only against the server's own bookkeeping.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessRequest, CreateRequestResult, Grant } from '../../shared/contract/http';
import { main, type Io } from '../../server/main';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { spawnGrantServer, testConfig, type SpawnedGrantServer } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { clientFor, ed25519PublicKeyLine, Tokens, until } from '../server/helpers';
import { openEvents } from '../server/sse';
import { usePostgresStorage } from './pg-env';

const N_GRANTS = Number(process.env.STINT_SCALEOUT_GRANTS ?? 1_000);
/** The second batch, for the kill: large enough that its ends are still running when the kill lands. */
const N_KILL_BATCH = Number(process.env.STINT_SCALEOUT_KILL_GRANTS ?? 200);
const CONCURRENCY = 40;
/** The target database the grants' roles are created for (on the harness PostgreSQL, beside the servers' store). */
const TARGET_DB = 'orders';

function quietIo(): Io & { lines: string[] } {
  const lines: string[] = [];
  return { lines, out: (l) => lines.push(l), err: (l) => lines.push(l), env: {} };
}

describe('two grant-server processes on one PostgreSQL', () => {
  const { pg } = usePostgresStorage();
  let idp: IdpInstance;
  let tokens: Tokens;
  let a: SpawnedGrantServer;
  let b: SpawnedGrantServer;
  let configPath: string;
  let database: string;
  // Both processes share this data dir, hence one store database (see defaultStorageUrl).
  const dataDir = serviceDir('grant-server-2proc');

  /** Rows from the servers' shared store database. */
  const rows = <R extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []) => pg().query<R>(text, params, database);
  /** Which of these role names still exist in the cluster (roles are cluster-wide). */
  const liveRoles = async (names: string[]) => (await pg().query<{ rolname: string }>('select rolname from pg_roles where rolname = any($1)', [names], 'postgres')).map((r) => r.rolname);

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    await pg().query(`create database ${TARGET_DB}`, [], 'postgres');
    const adminUrl = pg().adminUrl(TARGET_DB);
    const target = { host: pg().host, port: pg().port, database: TARGET_DB };
    // Every resource the cases touch creates its roles on the harness PostgreSQL through the real provider.
    const resources = (testConfig(idp, 'unused').resources ?? []).map((r) => (r.id === 'staging-users' ? r : { ...r, target, admin: { url: adminUrl } }));
    const overrides = {
      resources,
      policies: {
        // The bulk grants: auto-approved, and long enough (10 min) that their own activation-time timers never fire
        // during the test; the test moves their deadlines instead (see the 1,000-grant case).
        'short-lived': { approvals: [], autoApprove: { when: { riskBelow: 101 } }, duration: { default: '10m', max: '10m' }, requestTtl: '1m', activationWindow: '1m', extend: { maxTotal: '20m', reapproval: false } },
        // One slot (one dba) for the one-slot race.
        'finance-only': { requesters: ['engineers'], approvals: [{ from: 'dba', count: 1 }] },
      },
    };
    // One after the other: the first creates the store database and runs the migrations, and both write the same
    // config file (same content but for the port), which each reads before it answers /healthz.
    a = await spawnGrantServer({ idp, dataDir, overrides });
    b = await spawnGrantServer({ idp, dataDir, overrides });
    configPath = b.configPath;
    database = (await pg().query<{ datname: string }>("select datname from pg_database where datname like 'stint\\_%' and datname <> 'stint_tests'", [], 'postgres')).map((r) => r.datname)[0]!;
    expect(database).toBeTruthy();
  }, 90_000);
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await idp?.close();
  });

  /** Create and activate `n` auto-approved grants, alternating between A and B, `CONCURRENCY` at a time. */
  async function activateMany(n: number, label: string, on: SpawnedGrantServer[]): Promise<{ id: string; username: string }[]> {
    const alice = await tokens.for('alice');
    const ids: string[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < n; i = next++) {
        const client = clientFor(on[i % on.length]!.url, alice);
        const created = await client.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', reason: `${label} ${i}` });
        expect(created.status, JSON.stringify(created.body)).toBe(201);
        expect(created.body.request.state).toBe('approved');
        const activated = await client.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine(`${label}-${i}`) });
        expect(activated.status, JSON.stringify(activated.body)).toBe(201);
        ids.push(activated.body.grant.id as string);
      }
    }));
    // Their role names, as the store recorded them.
    const names = await rows<{ id: string; db_username: string }>('select id, db_username from grants where id = any($1)', [ids]);
    const byId = new Map(names.map((r) => [r.id, r.db_username]));
    return ids.map((id) => ({ id, username: byId.get(id)! }));
  }

  /**
   * Make every deadline of these grants fall due at one instant T, about 1.5 s from now, with one UPDATE.
   * Activation gave each a 10-minute deadline and armed a timer for it on the instance that activated it; those
   * timers are for later. Rewriting grants.ends_at is how the test makes the 1,000 deadlines fall due in the same
   * second for both instances: their periodic sweeps (every 5 s in a spawned server) find them all due together and
   * race for every one.
   */
  async function dueTogether(ids: string[]): Promise<number> {
    const at = Date.now() + 1_500;
    const updated = await rows<{ id: string }>('update grants set ends_at = $1 where id = any($2) and state = $3 returning id', [at, ids, 'active']);
    expect(updated).toHaveLength(ids.length);
    return at;
  }

  const progress = async (ids: string[]) => (await rows<{ ended: number; done: number }>(
    "select count(*) filter (where state = 'ended')::int as ended, count(*) filter (where revocation = 'done')::int as done from grants where id = any($1)", [ids]))[0]!;

  /** Wait until every grant has ended and had its credentials revoked; on time-out, say what is stuck and why. */
  async function allFinished(ids: string[], withinMs: number): Promise<{ ended: number; done: number }> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const state = await progress(ids);
      if (state.ended === ids.length && state.done === ids.length) return state;
      if (Date.now() > deadline) {
        const stuck = await rows("select state, revocation, revoke_attempts, last_revoke_error, count(*)::int as n from grants where id = any($1) and (state <> 'ended' or revocation <> 'done') group by 1, 2, 3, 4", [ids]);
        const failures = await rows("select count(*)::int as n from audit where action = 'grant.revoke_failed' and grant_id = any($1)", [ids]);
        throw new Error(`not finished within ${withinMs} ms: ${JSON.stringify(state)} of ${ids.length}; unfinished ${JSON.stringify(stuck)}; revoke_failed audits ${JSON.stringify(failures)}`);
      }
      // Polled gently: the servers are busy with exactly this work.
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** For an assertion's message: what the servers answered and what they logged (warn and above). */
  const serverSide = (answers: { status: number; body: unknown }[]) =>
    `answers ${JSON.stringify(answers.map((x) => [x.status, x.body]))}\nA: ${a.proc.output().slice(-2_000)}\nB: ${b.proc.output().slice(-2_000)}`;

  /** Each grant ended once and its credentials revoked once (audit), its role gone, the chain whole. */
  async function expectEachEndedOnce(grants: { id: string; username: string }[]): Promise<void> {
    const ids = grants.map((g) => g.id);
    const ends = await rows<{ grant_id: string; n: number }>("select grant_id, count(*)::int as n from audit where action = 'grant.ended' and grant_id = any($1) group by grant_id", [ids]);
    expect(ends).toHaveLength(ids.length);
    expect(ends.filter((e) => e.n !== 1)).toEqual([]);
    const revoked = await rows<{ grant_id: string; n: number }>("select grant_id, count(*)::int as n from audit where action = 'grant.credentials_revoked' and grant_id = any($1) group by grant_id", [ids]);
    expect(revoked).toHaveLength(ids.length);
    expect(revoked.filter((e) => e.n !== 1)).toEqual([]);
    expect(await liveRoles(grants.map((g) => g.username))).toEqual([]);
    const io = quietIo();
    expect(await main(['audit', 'verify', '--config', configPath], io), io.lines.join('\n')).toBe(0);
  }

  it('delivers an event caused on B to the SSE clients of A, once', async () => {
    const aliceToken = await tokens.for('alice');
    const bobOnA = await openEvents(a.url, await tokens.for('bob'));
    const aliceOnA = await openEvents(a.url, aliceToken);
    try {
      expect([bobOnA.status, aliceOnA.status]).toEqual([200, 200]);
      const created = await clientFor(b.url, aliceToken).post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-1 on B' });
      expect(created.status).toBe(201);
      const id = CreateRequestResult.parse(created.body).request.id;
      const ask = await bobOnA.next((e) => e.event.type === 'approval.asked' && e.event.request.id === id, 3_000);
      const mine = await aliceOnA.next((e) => e.event.type === 'request.updated' && e.event.request.id === id, 3_000);
      // One order across instances: the requester's update was committed before the approvers' ask.
      expect(Number(mine.id)).toBeLessThan(Number(ask.id));
      // Delivered once, not once per instance.
      await new Promise((r) => setTimeout(r, 300));
      expect(bobOnA.events.filter((e) => e.id === ask.id)).toHaveLength(1);
    } finally {
      bobOnA.close();
      aliceOnA.close();
    }
  });

  it('two approvers approving at once on different instances give one decision and one grant', async () => {
    const alice = await tokens.for('alice');
    // prod-orders needs one dba and one sre-lead: bob on A and dave on B complete it together.
    const both = CreateRequestResult.parse((await clientFor(a.url, alice).post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'CHG-7' })).body).request;
    const [byBob, byDave] = await Promise.all([
      clientFor(a.url, await tokens.for('bob')).post(`/v1/requests/${both.id}/approve`, {}),
      clientFor(b.url, await tokens.for('dave')).post(`/v1/requests/${both.id}/approve`, {}),
    ]);
    expect([byBob.status, byDave.status]).toEqual([200, 200]);
    const approved = AccessRequest.parse((await clientFor(b.url, alice).get(`/v1/requests/${both.id}`)).body.request);
    expect(approved.state).toBe('approved');
    expect(approved.approvals.map((p) => p.approver).sort()).toEqual(['bob', 'dave']);
    expect(await rows("select count(*)::int as n from audit where request_id = $1 and action = 'request.approved'", [both.id])).toEqual([{ n: 1 }]);

    // The requester's client retries its activation on the other instance at the same time: one grant, one role.
    const key = ed25519PublicKeyLine('race');
    const [onA, onB] = await Promise.all([
      clientFor(a.url, alice).post(`/v1/requests/${both.id}/activate`, { publicKey: key }),
      clientFor(b.url, alice).post(`/v1/requests/${both.id}/activate`, { publicKey: key }),
    ]);
    expect([onA.status, onB.status].sort(), serverSide([onA, onB])).toEqual([201, 409]);
    const grant = Grant.parse((onA.status === 201 ? onA : onB).body.grant);
    const stored = await rows<{ id: string; db_username: string }>('select id, db_username from grants where request_id = $1', [both.id]);
    expect(stored.map((g) => g.id)).toEqual([grant.id]);
    expect(await liveRoles([stored[0]!.db_username])).toEqual([stored[0]!.db_username]);
    // Exactly one role was created for this request on the target cluster.
    const roles = await pg().query<{ n: number }>("select count(*)::int as n from pg_roles where rolname like 'stint\\_g\\_%' and shobj_description(oid, 'pg_authid') like $1", [`%${grant.id}%`], 'postgres');
    expect(roles).toEqual([{ n: 1 }]);
    // Released on the other instance: the role goes.
    expect((await clientFor(onA.status === 201 ? b.url : a.url, alice).post(`/v1/grants/${grant.id}/release`, {})).status).toBe(200);
    await until('the released grant\'s role to be dropped', async () => (await liveRoles([stored[0]!.db_username])).length === 0, 10_000);

    // One slot (one dba), two dbas at once on different instances: one fills it, the other is told it is filled.
    const one = CreateRequestResult.parse((await clientFor(b.url, alice).post('/v1/requests', { resourceId: 'finance-ledger', level: 'read', reason: 'month end' })).body).request;
    const [x, y] = await Promise.all([
      clientFor(a.url, await tokens.for('bob')).post(`/v1/requests/${one.id}/approve`, {}),
      clientFor(b.url, await tokens.for('carol')).post(`/v1/requests/${one.id}/approve`, {}),
    ]);
    expect([x.status, y.status].sort()).toEqual([200, 409]);
    expect(await rows('select count(*)::int as n from approvals where request_id = $1', [one.id])).toEqual([{ n: 1 }]);
    expect(await rows("select count(*)::int as n from audit where request_id = $1 and action = 'request.approved'", [one.id])).toEqual([{ n: 1 }]);
  }, 30_000);

  it(`revokes ${N_GRANTS} grants whose deadlines fall in the same second exactly once each`, async () => {
    const grants = await activateMany(N_GRANTS, 'bulk', [a, b]);
    expect(new Set(grants.map((g) => g.id)).size).toBe(N_GRANTS);
    // Every grant has its own real role before the ends.
    expect(await liveRoles(grants.map((g) => g.username))).toHaveLength(N_GRANTS);
    const ids = grants.map((g) => g.id);
    const at = await dueTogether(ids);
    // Generous: the sweeps run every 5 s; the ends and revocations themselves take seconds.
    const done = await allFinished(ids, 60_000);
    expect(done).toEqual({ ended: N_GRANTS, done: N_GRANTS });
    // Ended at their deadline, not before it.
    expect(await rows('select count(*)::int as n from grants where id = any($1) and ended_at < $2', [ids, at])).toEqual([{ n: 0 }]);
    await expectEachEndedOnce(grants);
  }, 120_000);

  it('killing one instance while the ends run loses none of them', async () => {
    const grants = await activateMany(N_KILL_BATCH, 'kill', [a, b]);
    const ids = grants.map((g) => g.id);
    // B is frozen (SIGSTOP) while the deadlines fall due, so that A, and only A, starts on them: when A is killed it
    // certainly holds work (ends under way, revocations claimed) that B must take over. Left to chance, B's sweep
    // could have taken everything and the kill would prove nothing.
    const signal = (server: SpawnedGrantServer, name: NodeJS.Signals) => process.kill(-server.proc.child.pid!, name);
    signal(b, 'SIGSTOP');
    let atKill: { ended: number; done: number };
    try {
      await dueTogether(ids);
      atKill = await until('A to start ending them', async () => {
        const state = await progress(ids);
        return state.ended >= 50 ? state : undefined;
      }, 30_000);
      await a.stop('SIGKILL');
    } finally {
      signal(b, 'SIGCONT');
    }
    // The kill landed mid-run: A left work behind.
    expect(atKill.done).toBeLessThan(N_KILL_BATCH);
    // B takes over whatever A held within a few of its 5-second sweeps (not after a minute-long lease).
    const done = await allFinished(ids, 30_000);
    expect(done).toEqual({ ended: N_KILL_BATCH, done: N_KILL_BATCH });
    await expectEachEndedOnce(grants);
  }, 120_000);
});
