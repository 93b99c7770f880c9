// Policy pieces: N-of-M matching of distinct people, the risk signals and their reasons, forwarded-for trusted only
// from configured proxies, a changed policy getting a new version (requests keep the one they were decided under),
// and an admin who requests is still refused approving their own request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { matchApprovals, inHours, utcMinuteOfDay } from '../../server/lifecycle/catalog';
import { assessRisk } from '../../server/lifecycle/risk';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { clientFor, Tokens } from './helpers';

describe('approval matching', () => {
  const rules = [{ group: 'dba', count: 1 }, { group: 'sre-leads', count: 1 }];
  it('a person in both groups fills one slot only', () => {
    const both = { sub: 'x', groups: ['dba', 'sre-leads'] };
    expect(matchApprovals(rules, [both])).toMatchObject({ complete: false, have: [1, 0] });
    expect(matchApprovals(rules, [both, { sub: 'y', groups: ['dba'] }])).toMatchObject({ complete: true, have: [1, 1] });
  });
  it('the order of approvals does not matter (the person in both moves to the slot only they can fill)', () => {
    const first = matchApprovals(rules, [{ sub: 'x', groups: ['dba', 'sre-leads'] }, { sub: 'y', groups: ['dba'] }]);
    expect(first.assignment.get('x')).toBe('sre-leads');
    expect(first.assignment.get('y')).toBe('dba');
  });
  it('two of one group need two people', () => {
    const two = [{ group: 'dba', count: 2 }];
    expect(matchApprovals(two, [{ sub: 'a', groups: ['dba'] }]).complete).toBe(false);
    expect(matchApprovals(two, [{ sub: 'a', groups: ['dba'] }, { sub: 'b', groups: ['dba'] }]).complete).toBe(true);
  });
  it('hours windows, including across midnight', () => {
    expect(inHours('09:00-18:00', Date.parse('2026-01-01T12:00:00Z'))).toBe(true);
    expect(inHours('09:00-18:00', Date.parse('2026-01-01T18:00:00Z'))).toBe(false);
    expect(inHours('22:00-06:00', Date.parse('2026-01-01T23:30:00Z'))).toBe(true);
    expect(inHours('22:00-06:00', Date.parse('2026-01-01T12:00:00Z'))).toBe(false);
  });
  it('the minute of the UTC day from epoch ms is the one Date reads, before 1970 too', () => {
    fc.assert(fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
      const d = new Date(ms);
      expect(utcMinuteOfDay(ms)).toBe(d.getUTCHours() * 60 + d.getUTCMinutes());
    }), { numRuns: 2000 });
    expect(utcMinuteOfDay(Number.NaN)).toBeNaN();
  });
});

describe('risk', () => {
  const quiet = { sensitivity: 'low' as const, deviceId: 'd', deviceSeen: true, ip: '10.0.0.1', ipSeen: true, usualHours: [9, 10, 11, 9, 10], hourNow: 10, recentRequests: 0, recentFailedStepUps: 0 };
  it('a known device at a usual hour on a low resource is no risk', () => {
    expect(assessRisk(quiet)).toEqual({ score: 0, reasons: [] });
  });
  it('each signal adds its reason', () => {
    const risky = assessRisk({ ...quiet, sensitivity: 'high', deviceSeen: false, ipSeen: false, hourNow: 3, recentRequests: 6, recentFailedStepUps: 5 });
    expect(risky.reasons).toEqual([
      'high-sensitivity resource', 'new device for this user', 'new source address 10.0.0.1 for this user',
      "outside this user's usual hours (03:00 UTC)", 'burst: 6 requests in the last 10 minutes', '5 failed step-up(s) in the last hour',
    ]);
    expect(risky.score).toBe(100);
    expect(assessRisk({ ...quiet, deviceId: undefined }).reasons).toEqual(['no device id sent']);
    // Too little history to know the usual hours: no judgement.
    expect(assessRisk({ ...quiet, usualHours: [9], hourNow: 3 }).reasons).toEqual([]);
  });
});

describe('policy against a running server', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
  });
  afterAll(async () => { await idp?.close(); });

  it('trusts X-Forwarded-For only from configured proxies', async () => {
    const direct = await startGrantServer({ idp, overrides: { storage: { url: 'sqlite::memory:' } } });
    const proxied = await startGrantServer({ idp, overrides: { storage: { url: 'sqlite::memory:' }, server: { trustedProxies: ['127.0.0.1/32'] } } });
    try {
      const headers = { 'x-forwarded-for': '203.0.113.9' };
      const body = { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' };
      const a = await clientFor(direct.url, await tokens.for('alice')).post('/v1/requests', body, headers);
      expect(a.body.request.risk.reasons).toContain('new source address 127.0.0.1 for this user');
      const b = await clientFor(proxied.url, await tokens.for('alice')).post('/v1/requests', body, headers);
      expect(b.body.request.risk.reasons).toContain('new source address 203.0.113.9 for this user');
    } finally {
      await direct.close();
      await proxied.close();
    }
  });

  it('a changed policy gets the next version; requests keep the version they were decided under', async () => {
    const dataDir = serviceDir('grant-server-policy');
    const first = await startGrantServer({ idp, dataDir });
    const alice = async (url: string) => clientFor(url, await tokens.for('alice'));
    const before = (await (await alice(first.url)).post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-1' })).body.request;
    expect(before.policyVersion).toBe(1);
    await first.close();
    const same = await startGrantServer({ idp, dataDir });
    expect((await (await alice(same.url)).get('/v1/resources')).body.resources.find((r: { id: string }) => r.id === 'prod-orders').policy.policyVersion).toBe(1);
    await same.close();
    const changed = await startGrantServer({ idp, dataDir, overrides: { policies: { 'production-db': { duration: { default: '30m', max: '2h' } } } } });
    try {
      const client = await alice(changed.url);
      const after = (await client.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-2' })).body.request;
      expect(after.policyVersion).toBe(2);
      expect(after.durationSeconds).toBe(1800);
      expect((await client.get(`/v1/requests/${before.id}`)).body.request.policyVersion).toBe(1);
      const audit = (await clientFor(changed.url, await tokens.for('carol')).get('/v1/audit')).body.entries;
      expect(audit.filter((e: { action: string }) => e.action === 'policy.version').map((e: { policyVersion: number; reason: string; detail: { policyId: string } }) => [e.detail.policyId, e.policyVersion, e.reason]))
        .toEqual(expect.arrayContaining([['production-db', 1, 'policy added'], ['production-db', 2, 'policy changed']]));
    } finally {
      await changed.close();
    }
  });

  it('an admin who requests cannot approve their own request either', async () => {
    const server = await startGrantServer({ idp, overrides: { storage: { url: 'sqlite::memory:' }, policies: { 'production-db': { requesters: ['engineers', 'admins'] } } } });
    try {
      const carol = clientFor(server.url, await tokens.for('carol'));
      const request = (await carol.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-3' })).body.request;
      const own = await carol.post(`/v1/requests/${request.id}/approve`, {});
      expect(own.status).toBe(403);
      expect(own.body.code).toBe('self_approval');
    } finally {
      await server.close();
    }
  });
});
