// LOW (review of the first wave): nothing limited how often anyone could call the server. Now every route has a
// per-caller limit by class (server/http/rate-limits.ts): a signed-in user is counted as themself, so one flooding
// user does not lock out another; anonymous callers are counted by address; the answer is the one problem shape with
// Retry-After. Measured on a real server with real IdP tokens and small limits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { countShared, rateClassOf } from '../../server/http/rate-limits';
import { openStore } from '../../server/storage/db';

let idp: IdpInstance;
let server: RunningGrantServer;
let alice: string;
let bob: string;

beforeAll(async () => {
  idp = await startIdp();
  server = await startGrantServer({ idp, overrides: { storage: { url: 'sqlite::memory:' }, server: { rateLimits: { read: 5, write: 3, proof: 2, public: 4 } } } });
  [alice, bob] = await Promise.all([idp.tokenFor('alice'), idp.tokenFor('bob')]);
}, 60_000);
afterAll(async () => { await server?.close(); await idp?.close(); });

const call = (path: string, token?: string, body?: unknown) => fetch(`${server.url}${path}`, {
  method: body === undefined ? 'GET' : 'POST',
  headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
  ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
});

describe('rate limits', () => {
  it('a user over the read limit gets 429 rate_limited with Retry-After; another user is not affected', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await call('/v1/me', alice)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    const refused = await call('/v1/grants', alice);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(await refused.json()).toMatchObject({ type: 'https://stint.dev/problems/rate_limited', status: 429, code: 'rate_limited', title: 'Too many calls' });
    expect((await call('/v1/me', bob)).status).toBe(200);
  });

  it('proofs and secrets have the tightest budget: a third password reveal in a minute is refused before it is looked up', async () => {
    const proof = (n: number) => call(`/v1/grants/missing-${n}/reveal-password`, bob, {});
    const statuses = [(await proof(1)).status, (await proof(2)).status, (await proof(3)).status];
    expect(statuses).toEqual([404, 404, 429]);
  });

  it('anonymous routes are counted by address; a caller without a token cannot spend a user\'s budget', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await call('/healthz')).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    // No token: refused as unauthenticated (401) before any budget is counted, so carol's is intact.
    for (let i = 0; i < 4; i++) expect((await call('/v1/me')).status).toBe(401);
    expect((await call('/v1/me', await idp.tokenFor('carol'))).status).toBe(200);
  });

  it('every declared route has a class: bastions are not limited, proofs and reveals are "proof"', () => {
    const classes = Object.fromEntries(server.server.served.map((r) => [`${r.method} ${r.url}`, rateClassOf({ ...r, method: r.method as 'GET' | 'POST' })]));
    expect(classes['GET /v1/bastion/authorized-keys']).toBe('none');
    expect(classes['POST /v1/grants/:id/reveal-password']).toBe('proof');
    expect(classes['POST /v1/grants/:id/rekey']).toBe('proof');
    expect(rateClassOf({ method: 'POST', url: '/v1/stepup/totp/confirm', access: 'user' })).toBe('proof');
    expect(rateClassOf({ method: 'POST', url: '/v1/requests/:id/stepup', access: 'user' })).toBe('proof');
    expect(classes['POST /v1/requests']).toBe('write');
    expect(classes['GET /v1/requests']).toBe('read');
    expect(classes['GET /metrics']).toBe('public');
  });
});

describe('the shared counter (proof class across instances, server/http/rate-limits.ts)', () => {
  it('counts a caller\'s calls in the window and starts over once it has passed', async () => {
    const store = openStore('sqlite::memory:');
    await store.migrate();
    try {
      const t = Date.parse('2026-12-04T12:00:00Z');
      const counts = [];
      for (const at of [t, t + 1_000, t + 59_000]) counts.push(await countShared(store.db, 'proof:user:alice', at));
      expect(counts).toEqual([{ count: 1, resetInMs: 60_000 }, { count: 2, resetInMs: 59_000 }, { count: 3, resetInMs: 1_000 }]);
      expect(await countShared(store.db, 'proof:user:bob', t + 59_000)).toEqual({ count: 1, resetInMs: 60_000 });
      expect(await countShared(store.db, 'proof:user:alice', t + 60_000)).toEqual({ count: 1, resetInMs: 60_000 });
    } finally {
      await store.close();
    }
  });
});
