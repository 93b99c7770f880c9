// Identity and catalog against the real harness IdP: who the caller is, what they may request, and every way a
// bearer token can be wrong (missing, malformed, forged, expired, wrong audience) answered as a 401 problem.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Me, Problem, ResourceList } from '../../shared/contract/http';
import { startIdp, type IdpInstance } from '../../dev/idp';
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
