// The proof and write classes of the rate limits (step-up, factor changes, password reveals; requests, approvals)
// hold across instances: counted in the shared PostgreSQL, so a caller spreading calls over two instances behind a
// balancer gets one budget, not two. Reads stay per instance (test/security/rate-limits.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { usePostgresStorage } from './pg-env';

describe('rate limits across two instances on one PostgreSQL', () => {
  usePostgresStorage();
  let idp: IdpInstance;
  let a: RunningGrantServer;
  let b: RunningGrantServer;
  const dataDir = serviceDir('grant-server-rate-limits');
  const limits = { server: { rateLimits: { read: 100, write: 2, proof: 3, public: 100 } } };

  beforeAll(async () => {
    idp = await startIdp();
    a = await startGrantServer({ idp, dataDir, overrides: limits });
    b = await startGrantServer({ idp, dataDir, overrides: limits });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await idp?.close();
  });

  it('a proof budget of 3 is 3 in all, whichever instance each call reaches; another user keeps theirs', async () => {
    const reveal = async (server: RunningGrantServer, token: string, n: number) => (await fetch(`${server.url}/v1/grants/missing-${n}/reveal-password`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}',
    })).status;
    const alice = await idp.tokenFor('alice');
    expect([await reveal(a, alice, 1), await reveal(b, alice, 2), await reveal(a, alice, 3), await reveal(b, alice, 4)]).toEqual([404, 404, 404, 429]);
    expect(await reveal(a, alice, 5)).toBe(429);
    expect(await reveal(b, await idp.tokenFor('bob'), 6)).toBe(404);
    // Reads are still counted per instance: not part of the shared budget.
    expect((await fetch(`${a.url}/v1/me`, { headers: { authorization: `Bearer ${alice}` } })).status).toBe(200);
  });

  it('so is the write budget: the third cancel in a minute is refused on the other instance', async () => {
    const dave = await idp.tokenFor('dave');
    const cancel = async (server: RunningGrantServer, n: number) => (await fetch(`${server.url}/v1/requests/missing-${n}/cancel`, {
      method: 'POST', headers: { authorization: `Bearer ${dave}`, 'content-type': 'application/json' }, body: '{}',
    })).status;
    expect([await cancel(a, 1), await cancel(b, 2), await cancel(a, 3)]).toEqual([404, 404, 429]);
  });
});
