// Several grant-server instances on one PostgreSQL, in-process (A, B) plus one spawned process (C): a bastion
// streaming ended grants from A hears of a release on B, the instance that ended a grant revokes it (another only
// after a hand-off, should it hang), and an instance killed with pending request deadlines leaves them to the others. The acceptance cases (SSE across instances, approval races, 1,000 simultaneous ends,
// a kill mid-run) run on two real server processes in two-processes.test.ts; they are not repeated here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAudit } from '../../server/lifecycle/audit';
import { REVOKE_HANDOFF_MS } from '../../server/lifecycle/revocation';
import { main } from '../../server/main';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { spawnGrantServer, startGrantServer, type RunningGrantServer, type SpawnedGrantServer } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens, until } from '../server/helpers';
import { usePostgresStorage } from './pg-env';
import type { Clock } from '../../shared/domain/clock';
import { bastionStream } from './bastion-stream';

// The instances' safety-net sweep (the hand-off before another instance may take over a revocation is
// REVOKE_HANDOFF_MS, armed from the bus).
const SWEEP_MS = 1_000;

describe('several instances on one PostgreSQL', () => {
  const { pg } = usePostgresStorage();
  let idp: IdpInstance;
  let tokens: Tokens;
  let a: RunningGrantServer;
  let b: RunningGrantServer;
  const providers = [new RecordingProvider(), new RecordingProvider()];
  const dataDir = serviceDir('grant-server-shared');
  let database: string;
  // Every instance runs the same configuration (as behind a load balancer).
  const overrides = {
    policies: {
      'short-lived': { approvals: [], autoApprove: { when: { riskBelow: 101 } }, duration: { default: '2s', max: '3s' }, requestTtl: '1m', activationWindow: '1m' },
      'production-db': { requestTtl: '4s' },
    },
  };

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    a = await startGrantServer({ idp, dataDir, overrides, credentials: providers[0], sweepEveryMs: SWEEP_MS });
    b = await startGrantServer({ idp, dataDir, overrides, credentials: providers[1], sweepEveryMs: SWEEP_MS });
    database = new URL(a.config.storage.url).pathname.slice(1);
    expect(b.config.storage.url).toBe(a.config.storage.url);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await idp?.close();
  });

  const rows = <R extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []) => pg().query<R>(text, params, database);

  it('tells a bastion streaming from A about a grant released on B', async () => {
    const stream = await bastionStream(a.url);
    try {
      const onB = clientFor(b.url, await tokens.for('alice'));
      const created = await onB.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', reason: 'bastion check' });
      const activated = await onB.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine('bastion') });
      expect(activated.status).toBe(201);
      const grantId = activated.body.grant.id as string;
      expect((await onB.post(`/v1/grants/${grantId}/release`, {})).status).toBe(200);
      await until('A to stream the end committed on B', () => stream.ended().some((e) => e.grantId === grantId), 5_000);
      // Its later revocation update does not announce the end a second time.
      await new Promise((r) => setTimeout(r, 500));
      expect(stream.ended().filter((e) => e.grantId === grantId)).toHaveLength(1);
    } finally {
      stream.close();
    }
  });

  it('the instance that ended a grant revokes it; if that hangs, another takes over after the hand-off, recorded once', async () => {
    const onA = clientFor(a.url, await tokens.for('alice'));
    const activate = async (reason: string) => {
      const created = await onA.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', reason });
      const activated = await onA.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine(reason) });
      expect(activated.status, JSON.stringify(activated.body)).toBe(201);
      return activated.body.grant.id as string;
    };
    const revokedAudits = async (grantId: string) => (await rows<{ n: number }>("select count(*)::int as n from audit where action = 'grant.credentials_revoked' and grant_id = $1", [grantId]))[0]!.n;
    const revokedBy = (grantId: string) => providers.map((p) => p.revoked.filter((r) => r.grantId === grantId).length);

    // The common case: A ended it, A revokes it, B never calls its provider for it.
    const quiet = await activate('revoked by the ender');
    expect((await onA.post(`/v1/grants/${quiet}/release`, {})).status).toBe(200);
    await until('the grant to be revoked', async () => (await onA.get(`/v1/grants/${quiet}`)).body.grant.revocation === 'done');
    await new Promise((r) => setTimeout(r, 2 * SWEEP_MS)); // two of B's sweeps
    expect(revokedBy(quiet)).toEqual([1, 0]);
    expect(await revokedAudits(quiet)).toBe(1);

    // A's call to the target database hangs: B takes the revocation over once A's hand-off has passed.
    const stuck = await activate('ender hangs');
    let unblock!: () => void;
    providers[0]!.holdRevoke = new Promise((resolve) => { unblock = resolve; });
    try {
      const attempts = providers[0]!.revokeAttempts;
      expect((await onA.post(`/v1/grants/${stuck}/release`, {})).status).toBe(200);
      await until('A to be stuck in its provider', () => providers[0]!.revokeAttempts > attempts);
      await until('B to take the revocation over', async () => (await onA.get(`/v1/grants/${stuck}`)).body.grant.revocation === 'done');
      const [ended] = await rows<{ ended_at: string }>('select ended_at from grants where id = $1', [stuck]);
      expect(revokedBy(stuck)).toEqual([0, 1]);
      expect(providers[1]!.revoked.find((r) => r.grantId === stuck)!.at).toBeGreaterThanOrEqual(Number(ended!.ended_at) + REVOKE_HANDOFF_MS);
    } finally {
      providers[0]!.holdRevoke = undefined;
      unblock();
    }
    // A's call returns at last (revoking twice is harmless): the grant stays recorded once, with no retry armed.
    await until('A to finish its call', () => revokedBy(stuck)[0] === 1);
    await new Promise((r) => setTimeout(r, 2 * SWEEP_MS));
    expect(await revokedAudits(stuck)).toBe(1);
    const [row] = await rows<{ revocation: string; revoke_attempts: number }>('select revocation, revoke_attempts from grants where id = $1', [stuck]);
    expect(row).toEqual({ revocation: 'done', revoke_attempts: 0 });
  });

  it('a deadline armed by an instance that does not run then (frozen, killed) is enforced by another within a second', async () => {
    // Sweeps a minute apart: what is measured is the takeover armed from the bus, not the safety net.
    const providerA = new RecordingProvider();
    const providerB = new RecordingProvider();
    // A's timers never fire, as in a process that is SIGSTOPped or dead at the deadline.
    const stalled: Clock = { now: () => Date.now(), monotonic: () => performance.now(), setTimer: () => ({ cancel: () => undefined }) };
    const stalledA = await startGrantServer({ idp, dataDir, overrides, credentials: providerA, clock: stalled, sweepEveryMs: 60_000 });
    const watchingB = await startGrantServer({ idp, dataDir, overrides, credentials: providerB, sweepEveryMs: 60_000 });
    try {
      const onA = clientFor(stalledA.url, await tokens.for('alice'));
      const created = await onA.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', reason: 'A stalls' });
      const activated = await onA.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine('stalls') });
      expect(activated.status, JSON.stringify(activated.body)).toBe(201);
      const grantId = activated.body.grant.id as string;
      const endsAt = Date.parse(activated.body.grant.endsAt);
      // B, or the suite's other instances (all watch the bus): whoever claims the row first.
      const others = [providerB, ...providers];
      const revokedByOthers = (id: string) => others.flatMap((p) => p.revoked.filter((r) => r.grantId === id));
      await until('another instance to end and revoke the grant', () => revokedByOthers(grantId).length > 0, 10_000);
      const [row] = await rows<{ state: string; ended_at: string; end_reason: string }>('select state, ended_at, end_reason from grants where id = $1', [grantId]);
      expect(row).toMatchObject({ state: 'ended', end_reason: 'deadline reached' });
      expect(Number(row!.ended_at) - endsAt).toBeLessThan(1_000);
      expect(revokedByOthers(grantId)[0]!.at - endsAt).toBeLessThan(1_000);
      expect(providerA.revoked).toEqual([]);

      // A ends a grant (release) and then hangs in its own revocation: another takes it over at the hand-off, not a
      // sweep later.
      let unblock!: () => void;
      providerA.holdRevoke = new Promise((resolve) => { unblock = resolve; });
      try {
        const second = await onA.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', reason: 'A hangs' });
        const live = await onA.post(`/v1/requests/${second.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine('hangs') });
        const liveId = live.body.grant.id as string;
        const released = await onA.post(`/v1/grants/${liveId}/release`, {});
        expect(released.status).toBe(200);
        const endedAt = Date.parse(released.body.grant.endedAt);
        await until('another instance to take the revocation over', () => revokedByOthers(liveId).length > 0, 10_000);
        const takeover = revokedByOthers(liveId)[0]!.at - endedAt;
        expect(takeover).toBeGreaterThanOrEqual(REVOKE_HANDOFF_MS);
        expect(takeover).toBeLessThan(1_000);
      } finally {
        unblock();
      }
    } finally {
      await stalledA.close();
      await watchingB.close();
    }
  });

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
