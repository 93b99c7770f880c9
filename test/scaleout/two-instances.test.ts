// Several grant-server instances on one PostgreSQL: events cross instances, timed ends happen exactly once however
// many instances race for them, approvals racing on two instances count each person once, and an instance killed
// mid-run leaves its pending deadlines to the others.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessRequest, CreateRequestResult } from '../../shared/contract/http';
import { verifyAudit } from '../../server/lifecycle/audit';
import { systemClock, type Clock } from '../../server/clock';
import { main } from '../../server/main';
import { startIdp, type IdpInstance } from '../harness/idp';
import { BASTION_TOKEN, spawnGrantServer, startGrantServer, type RunningGrantServer, type SpawnedGrantServer } from '../harness/grant-server';
import { serviceDir } from '../harness/tmp';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens, until } from '../server/helpers';
import { openEvents } from '../server/sse';
import { usePostgresStorage } from './pg-env';

const N_GRANTS = Number(process.env.STINT_SCALEOUT_GRANTS ?? 200);

/** Real time, except that a test may pin it (all activations at one instant) and jump it (all deadlines pass at once). */
function pinnableClock(): Clock & { pin: (ms: number | undefined) => void } {
  let pinned: number | undefined;
  return { now: () => new Date(pinned ?? Date.now()), setTimeout: systemClock.setTimeout, pin: (ms) => { pinned = ms; } };
}

describe('several instances on one PostgreSQL', () => {
  const { pg } = usePostgresStorage();
  let idp: IdpInstance;
  let tokens: Tokens;
  let a: RunningGrantServer;
  let b: RunningGrantServer;
  const providers = [new RecordingProvider(), new RecordingProvider()];
  const clock = pinnableClock();
  const dataDir = serviceDir('grant-server-shared');
  let database: string;
  // Every instance runs the same configuration (as behind a load balancer).
  const overrides = {
    policies: {
      'short-lived': { approvals: [], autoApprove: { when: { riskBelow: 101 } }, duration: { default: '2s', max: '3s' }, requestTtl: '1m', activationWindow: '1m' },
      'production-db': { requestTtl: '4s' },
      'finance-only': { requesters: ['engineers'], approvals: [{ from: 'dba', count: 1 }] },
    },
  };

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    a = await startGrantServer({ idp, dataDir, overrides, credentials: providers[0], clock, sweepEveryMs: 300 });
    b = await startGrantServer({ idp, dataDir, overrides, credentials: providers[1], clock, sweepEveryMs: 300 });
    database = new URL(a.config.storage.url).pathname.slice(1);
    expect(b.config.storage.url).toBe(a.config.storage.url);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await idp?.close();
  });

  const rows = <R extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []) => pg().query<R>(text, params, database);

  it('delivers an event caused on B to an SSE client of A', async () => {
    const aliceToken = await tokens.for('alice');
    const bobOnA = await openEvents(a.url, await tokens.for('bob'));
    const aliceOnA = await openEvents(a.url, aliceToken);
    try {
      const created = await clientFor(b.url, aliceToken).post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-1 on B' });
      expect(created.status).toBe(201);
      const id = CreateRequestResult.parse(created.body).request.id;
      const ask = await bobOnA.next((e) => e.event.type === 'approval.asked' && e.event.request.id === id, 3_000);
      const mine = await aliceOnA.next((e) => e.event.type === 'request.updated' && e.event.request.id === id, 3_000);
      expect(Number(mine.id)).toBeLessThan(Number(ask.id));
      // Delivered once, not once per instance.
      expect(bobOnA.events.filter((e) => e.id === ask.id)).toHaveLength(1);
    } finally {
      bobOnA.close();
      aliceOnA.close();
    }
  });

  it('tells a bastion streaming from A about a grant released on B', async () => {
    const controller = new AbortController();
    const response = await fetch(`${a.url}/v1/bastion/events`, { headers: { authorization: `Bearer ${BASTION_TOKEN}` }, signal: controller.signal });
    expect(response.status).toBe(200);
    let text = '';
    void (async () => {
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString();
      } catch {
        // aborted
      }
    })();
    try {
      await until('the bastion stream to open', () => text.includes(': connected'));
      const onB = clientFor(b.url, await tokens.for('alice'));
      const created = await onB.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', reason: 'bastion check' });
      const activated = await onB.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine('bastion') });
      expect(activated.status).toBe(201);
      const grantId = activated.body.grant.id as string;
      expect((await onB.post(`/v1/grants/${grantId}/release`, {})).status).toBe(200);
      await until('A to stream the end committed on B', () => text.includes(`"grantId":"${grantId}"`), 5_000);
      // Its later revocation update does not announce the end a second time.
      await new Promise((r) => setTimeout(r, 500));
      expect(text.split(`"grantId":"${grantId}"`).length - 1).toBe(1);
    } finally {
      controller.abort();
    }
  });

  it('two approvers approving at once on different instances: one decision, each person counted once', async () => {
    const alice = await tokens.for('alice');
    // prod-orders needs one dba and one sre-lead: bob on A and dave on B complete it together.
    const both = CreateRequestResult.parse((await clientFor(a.url, alice).post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'CHG-7' })).body).request;
    const [byBob, byDave] = await Promise.all([
      clientFor(a.url, await tokens.for('bob')).post(`/v1/requests/${both.id}/approve`, {}),
      clientFor(b.url, await tokens.for('dave')).post(`/v1/requests/${both.id}/approve`, {}),
    ]);
    expect([byBob.status, byDave.status]).toEqual([200, 200]);
    const final = AccessRequest.parse((await clientFor(b.url, alice).get(`/v1/requests/${both.id}`)).body.request);
    expect(final.state).toBe('approved');
    expect(final.approvals.map((p) => p.approver).sort()).toEqual(['bob', 'dave']);
    expect(await rows("select count(*)::int as n from audit where request_id = $1 and action = 'request.approved'", [both.id])).toEqual([{ n: 1 }]);

    // One slot (one dba), two dbas at once on different instances: one fills it, the other is told it is filled.
    const one = CreateRequestResult.parse((await clientFor(b.url, alice).post('/v1/requests', { resourceId: 'finance-ledger', level: 'read', reason: 'month end' })).body).request;
    const [x, y] = await Promise.all([
      clientFor(a.url, await tokens.for('bob')).post(`/v1/requests/${one.id}/approve`, {}),
      clientFor(b.url, await tokens.for('carol')).post(`/v1/requests/${one.id}/approve`, {}),
    ]);
    expect([x.status, y.status].sort()).toEqual([200, 409]);
    expect(await rows("select count(*)::int as n from approvals where request_id = $1", [one.id])).toEqual([{ n: 1 }]);
    expect(await rows("select count(*)::int as n from audit where request_id = $1 and action = 'request.approved'", [one.id])).toEqual([{ n: 1 }]);
  });

  it(`ends ${N_GRANTS} grants reaching their deadline at the same instant exactly once each`, async () => {
    const alice = await tokens.for('alice');
    const pinnedAt = Date.now();
    clock.pin(pinnedAt);
    const grantIds: string[] = [];
    try {
      for (let start = 0; start < N_GRANTS; start += 25) {
        const batch = Array.from({ length: Math.min(25, N_GRANTS - start) }, (_, k) => start + k);
        grantIds.push(...await Promise.all(batch.map(async (i) => {
          // Half the grants are created and activated on each instance, so both hold timers for their deadlines.
          const on = clientFor(i % 2 === 0 ? a.url : b.url, alice);
          const created = await on.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', reason: `bulk ${i}` });
          expect(created.status).toBe(201);
          const activated = await on.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine(`bulk-${i}`) });
          expect(activated.status).toBe(201);
          return activated.body.grant.id as string;
        })));
      }
    } finally {
      // Every deadline (pinned + 2 s) has now passed for both instances' timers and sweeps at once.
      clock.pin(pinnedAt + 3_000);
    }
    const ended = await until('every grant to end and have its credentials revoked', async () => {
      if (Date.now() > pinnedAt + 50_000) clock.pin(undefined);
      const [state] = await rows<{ ended: number; done: number }>(
        "select count(*) filter (where state = 'ended')::int as ended, count(*) filter (where revocation = 'done')::int as done from grants where id = any($1)", [grantIds]);
      return state!.ended === N_GRANTS && state!.done === N_GRANTS ? state : undefined;
    }, 60_000).finally(() => clock.pin(undefined));
    expect(ended).toEqual({ ended: N_GRANTS, done: N_GRANTS });
    const ends = await rows<{ grant_id: string; n: number }>("select grant_id, count(*)::int as n from audit where action = 'grant.ended' and grant_id = any($1) group by grant_id", [grantIds]);
    expect(ends).toHaveLength(N_GRANTS);
    expect(ends.every((e) => e.n === 1)).toBe(true);
    const revokedAudits = await rows<{ n: number }>("select count(*)::int as n from audit where action = 'grant.credentials_revoked' and grant_id = any($1)", [grantIds]);
    expect(revokedAudits).toEqual([{ n: N_GRANTS }]);
    // Each role was dropped by exactly one instance.
    const revoked = providers.flatMap((p) => p.revoked.map((r) => r.grantId)).filter((id) => grantIds.includes(id));
    expect(revoked).toHaveLength(N_GRANTS);
    expect(new Set(revoked).size).toBe(N_GRANTS);
    const chain = await verifyAudit(a.server.store.db);
    expect(chain.ok).toBe(true);
  }, 120_000);

  it('an instance killed mid-run leaves its pending deadlines to the others, and the chain stays whole', async () => {
    let c: SpawnedGrantServer | undefined = await spawnGrantServer({ idp, dataDir, overrides });
    const configPath = c.configPath;
    try {
      const alice = clientFor(c.url, await tokens.for('alice'));
      const created = await Promise.all(Array.from({ length: 20 }, (_, i) => alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: `INC-${100 + i}` })));
      const ids = created.map((r) => { expect(r.status).toBe(201); return r.body.request.id as string; });
      await c.stop('SIGKILL');
      c = undefined;
      // C armed the TTL timers (4 s) and died; A and B find the deadlines in their sweeps.
      await until('the dead instance\'s requests to expire on the others', async () => {
        const [r] = await rows<{ n: number }>("select count(*)::int as n from requests where id = any($1) and state = 'expired'", [ids]);
        return r!.n === ids.length;
      }, 15_000);
      const expired = await rows<{ request_id: string; n: number }>("select request_id, count(*)::int as n from audit where action = 'request.expired' and request_id = any($1) group by request_id", [ids]);
      expect(expired).toHaveLength(ids.length);
      expect(expired.every((e) => e.n === 1)).toBe(true);
      expect((await verifyAudit(b.server.store.db)).ok).toBe(true);
      // The admin CLI on the same (PostgreSQL) configuration agrees.
      const lines: string[] = [];
      const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), env: {} };
      expect(await main(['audit', 'verify', '--config', configPath], io)).toBe(0);
    } finally {
      await c?.stop();
    }
  }, 60_000);
});
