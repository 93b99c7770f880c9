// Identity and catalog against the real harness IdP: who the caller is, what they may request, and every way a
// bearer token can be wrong (missing, malformed, forged, expired, wrong audience) answered as a 401 problem.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Me, Problem, ResourceList } from '../../shared/contract/http';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { DEV_INTROSPECTION_CLIENT } from '../../server/dev-idp/index';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { call, Tokens } from './helpers';
import { createSystemClock, type Clock } from '../../shared/domain/clock';

describe('identity and catalog', () => {
  let idp: IdpInstance;
  let server: RunningGrantServer;
  let tokens: Tokens;

  beforeAll(async () => {
    idp = await startIdp();
    tokens = new Tokens(idp);
    server = await startGrantServer({ idp });
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  it('GET /v1/me reports the caller from the token, with admin and approver flags', async () => {
    const alice = await call(server.url, 'GET', '/v1/me', { token: await tokens.for('alice') });
    expect(alice.status).toBe(200);
    const me = Me.parse(alice.body);
    expect(me).toMatchObject({ sub: 'alice', groups: ['engineers'], admin: false, approver: false, email: 'alice@example.com' });
    const carol = Me.parse((await call(server.url, 'GET', '/v1/me', { token: await tokens.for('carol') })).body);
    expect(carol).toMatchObject({ sub: 'carol', admin: true, approver: true });
  });

  it('GET /v1/resources lists only what the caller may request, with the policy summary', async () => {
    const alice = ResourceList.parse((await call(server.url, 'GET', '/v1/resources', { token: await tokens.for('alice') })).body);
    expect(alice.resources.map((r) => r.id).sort()).toEqual(['prod-orders', 'quick-orders', 'staging-users']);
    const prod = alice.resources.find((r) => r.id === 'prod-orders')!;
    expect(prod.policy).toMatchObject({
      durationDefaultSeconds: 3600, durationMaxSeconds: 4 * 3600, reasonRequired: true, ticketPattern: '^(INC|CHG)-[0-9]+$',
      approvals: [{ group: 'dba', count: 1 }, { group: 'sre-leads', count: 1 }], autoApprove: false, breakGlass: false,
      extend: { maxTotalSeconds: 8 * 3600, reapproval: true },
    });
    expect(prod.levels).toEqual(['read', 'write']);
    const erin = ResourceList.parse((await call(server.url, 'GET', '/v1/resources', { token: await tokens.for('erin') })).body);
    expect(erin.resources.map((r) => r.id)).toEqual(['staging-users']);
    const dave = ResourceList.parse((await call(server.url, 'GET', '/v1/resources', { token: await tokens.for('dave') })).body);
    expect(dave.resources.find((r) => r.id === 'prod-orders')!.policy.breakGlass).toBe(true);
    // carol (admins, dba) is in no requester group: being an admin does not make resources requestable.
    const carol = ResourceList.parse((await call(server.url, 'GET', '/v1/resources', { token: await tokens.for('carol') })).body);
    expect(carol.resources).toEqual([]);
  });

  it('refuses a missing token with 401, a Bearer challenge and a problem', async () => {
    const answer = await call(server.url, 'GET', '/v1/me');
    expect(answer.status).toBe(401);
    expect(answer.contentType).toContain('application/problem+json');
    expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="stint"');
    expect(Problem.parse(answer.body).code).toBe('token_missing');
  });

  it('refuses malformed and forged tokens', async () => {
    const garbage = await call(server.url, 'GET', '/v1/me', { headers: { authorization: 'Basic YWxpY2U6cHc=' } });
    expect(garbage.status).toBe(401);
    expect(garbage.body.code).toBe('token_invalid');
    const real = await tokens.for('alice');
    const [h, p, s] = real.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const forgedPayload = Buffer.from(JSON.stringify({ ...claims, sub: 'carol', groups: ['admins'] })).toString('base64url');
    const forged = await call(server.url, 'GET', '/v1/me', { token: `${h}.${forgedPayload}.${s}` });
    expect(forged.status).toBe(401);
    expect(forged.body.code).toBe('token_invalid');
    expect(forged.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    expect(JSON.stringify(forged.body)).not.toMatch(/\n\s+at |\.ts:\d/); // no stack trace
  });

  it('refuses an expired token and one for another audience', async () => {
    const later: Clock = { ...createSystemClock({ unref: true }), now: () => Date.now() + 3 * 3600_000 };
    const future = await startGrantServer({ idp, clock: later, overrides: { storage: { url: 'sqlite::memory:' } } });
    const other = await startGrantServer({ idp, overrides: { storage: { url: 'sqlite::memory:' }, identity: { audience: 'https://other.example/api' } } });
    try {
      const token = await tokens.for('alice');
      const expired = await call(future.url, 'GET', '/v1/me', { token });
      expect(expired.status).toBe(401);
      expect(expired.body.code).toBe('token_expired');
      const wrongAudience = await call(other.url, 'GET', '/v1/me', { token });
      expect(wrongAudience.status).toBe(401);
      expect(wrongAudience.body.code).toBe('token_wrong_audience');
    } finally {
      await future.close();
      await other.close();
    }
  });

  it('ends an event stream when the token that opened it expires', async () => {
    const shortIdp = await startIdp({ accessTokenTtlSeconds: 2 });
    const short = await startGrantServer({ idp: shortIdp, overrides: { storage: { url: 'sqlite::memory:' } } });
    try {
      const token = await shortIdp.tokenFor('bob');
      const started = Date.now();
      const response = await fetch(`${short.url}/v1/events`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(200);
      await response.text(); // resolves when the server ends the stream
      const lasted = Date.now() - started;
      expect(lasted).toBeGreaterThan(500);
      expect(lasted).toBeLessThan(4_000);
      expect((await call(short.url, 'GET', '/v1/events', { token })).status).toBe(401);
    } finally {
      await short.close();
      await shortIdp.close();
    }
  });

  it('serves health, readiness, metrics and the OpenAPI document without a token', async () => {
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(server.url, 'GET', '/readyz')).body).toEqual({ status: 'ready' });
    const metrics = await call(server.url, 'GET', '/metrics');
    expect(metrics.body).toMatch(/stint_auth_failures_total\{code="token_missing"\} [1-9]/);
    const doc = await call(server.url, 'GET', '/v1/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/me', '/v1/requests/{id}/approve', '/v1/events']));
  });
});

// An IdP that issues opaque (non-JWT) access tokens, as the dev IdP does for its second API audience: the server asks
// the IdP about them by RFC 7662 introspection when identity.introspection says how, and otherwise says what to set.
describe('opaque access tokens', () => {
  const OPAQUE = 'http://localhost/stint-api-opaque';
  let idp: IdpInstance;
  let introspecting: RunningGrantServer;
  let plain: RunningGrantServer;

  beforeAll(async () => {
    idp = await startIdp({ opaqueAudience: OPAQUE });
    const identity = { audience: OPAQUE };
    [introspecting, plain] = await Promise.all([
      startGrantServer({ idp, overrides: { identity: { ...identity, introspection: { clientId: DEV_INTROSPECTION_CLIENT.clientId, clientSecret: 'env:STINT_TEST_INTROSPECTION_SECRET' } } }, env: { ...process.env, STINT_TEST_INTROSPECTION_SECRET: DEV_INTROSPECTION_CLIENT.clientSecret } }),
      startGrantServer({ idp, overrides: { storage: { url: 'sqlite::memory:' }, identity } }),
    ]);
  });
  afterAll(async () => {
    await Promise.allSettled([introspecting?.close(), plain?.close()]);
    await idp?.close();
  });
  const revoke = async (token: string) => {
    const endpoint = (await idp.clientConfig()).serverMetadata().revocation_endpoint!;
    const revoked = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, client_id: idp.clientId }) });
    expect(revoked.status).toBe(200);
  };

  it('accepts a real opaque token from the IdP by introspection, with the groups the IdP gives', async () => {
    const token = await idp.tokenFor('bob', OPAQUE);
    expect(token.split('.')).toHaveLength(1); // not a JWT
    const answer = await call(introspecting.url, 'GET', '/v1/me', { token });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(Me.parse(answer.body)).toMatchObject({ sub: 'bob', groups: ['engineers', 'approvers', 'dba'], approver: true, email: 'bob@example.com' });
    // The answer is kept until the token's exp, as a verified JWT is: revoking it at the IdP is not seen before then.
    await revoke(token);
    expect((await call(introspecting.url, 'GET', '/v1/me', { token })).status).toBe(200);
  });

  it('refuses an opaque token with words that name the fix when introspection is not configured', async () => {
    const answer = await call(plain.url, 'GET', '/v1/me', { token: await idp.tokenFor('alice', OPAQUE) });
    expect(answer.status).toBe(401);
    const problem = Problem.parse(answer.body);
    expect(problem.code).toBe('token_invalid');
    expect(problem.detail).toContain('the access token is opaque (not a JWT)');
    expect(problem.detail).toContain('configure identity.introspection');
  });

  it('refuses a token the IdP no longer vouches for (revoked: active false), without echoing it', async () => {
    const token = await idp.tokenFor('alice', OPAQUE);
    await revoke(token);
    const answer = await call(introspecting.url, 'GET', '/v1/me', { token });
    expect(answer.status).toBe(401);
    const problem = Problem.parse(answer.body);
    expect(problem.code).toBe('token_invalid');
    expect(problem.detail).toBe('the identity provider says this access token is not active (revoked, expired or unknown): sign in again');
    expect(JSON.stringify(answer.body)).not.toContain(token);
  });
});
