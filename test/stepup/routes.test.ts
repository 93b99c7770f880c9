// The step-up routes over HTTP (Fastify inject): TOTP enrollment and confirmation, problem+json for bad bodies and
// refusals, resolver refusals passed through, lockout reported with Retry-After.
import Fastify, { type FastifyInstance } from 'fastify';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthUser } from '../../server/identity/user';
import { createStepUp, stepUpProblem, type StepUpAuditEntry } from '../../server/stepup';
import type { StepUpActionResolver } from '../../server/stepup/seam';
import type { StepUpProof } from '../../shared/contract/http';
import { Problem } from '../../shared/contract/problem';
import { StepUpChallenge, TotpEnrollResult } from '../../shared/contract/stepup';
import { memoryDb, testConfig, TestClock } from '../../dev/stepup';

const resolver: StepUpActionResolver = {
  async resolve(user, action) {
    if (action.requestId === 'missing') return { ok: false, status: 404, code: 'request_not_found', message: 'No such request.' };
    if (action.requestId === 'not-yours') return { ok: false, status: 403, code: 'not_an_approver', message: 'You cannot approve this request.' };
    return { ok: true, actionHash: `${action.kind}:${action.requestId}:${user.sub}`, methods: ['webauthn', 'totp'], userVerification: true, summary: `Request ${action.requestId}` };
  },
};

let app: FastifyInstance;
let clock: TestClock;
const audit: StepUpAuditEntry[] = [];

beforeAll(async () => {
  clock = new TestClock(Date.parse('2030-01-01T00:00:10Z'));
  // Built the way the server builds it (server/stepup/index.ts).
  const stepUp = createStepUp({ db: await memoryDb(), config: testConfig(), now: clock.now });
  const service = stepUp.gate;
  app = Fastify();
  await app.register(async (scope) => {
    scope.decorateRequest('user', null as unknown as AuthUser);
    // onRequest, before the routes' own check (they refuse a request no host hook authenticated).
    scope.addHook('onRequest', async (request) => {
      request.user = { sub: String(request.headers['x-test-user'] ?? 'alice'), groups: [], admin: false };
    });
    await scope.register(stepUp.routes({ resolver, audit: async (e) => { audit.push(e); } }), { prefix: '/v1/stepup' });
    scope.post<{ Body: { proof: StepUpProof } }>('/test/prove/:id', async (request, reply) => {
      const id = (request.params as { id: string }).id;
      const result = await service.verify({ userId: request.user.sub, action: { kind: 'request', requestId: id }, actionHash: `request:${id}:${request.user.sub}`, methods: ['webauthn', 'totp'], userVerification: true, proof: request.body.proof });
      if (result.ok) return result;
      const p = stepUpProblem(result);
      if (result.retryAfter !== undefined) void reply.header('retry-after', String(Math.ceil((result.retryAfter - clock.t) / 1000)));
      return reply.code(p.status).type('application/problem+json').send(p);
    });
  });
  await app.ready();
});
afterAll(async () => { await app?.close(); });

const post = (url: string, payload: unknown, user = 'alice') => app.inject({ method: 'POST', url, payload: payload as object, headers: { 'x-test-user': user } });

describe('step-up routes', () => {
  it('answers a bad body with problem+json naming the field', async () => {
    const r = await post('/v1/stepup/challenges', { action: { kind: 'request' }, extra: 1 });
    expect(r.statusCode).toBe(400);
    expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
    const p = Problem.parse(r.json());
    expect(p.code).toBe('validation_failed');
    expect(p.errors?.map((e) => e.path)).toEqual(expect.arrayContaining(['action.requestId']));
  });

  it('passes the lifecycle\'s refusal through', async () => {
    expect(await post('/v1/stepup/challenges', { action: { kind: 'request', requestId: 'missing' } })).toMatchObject({ statusCode: 404 });
    const r = await post('/v1/stepup/challenges', { action: { kind: 'approve', requestId: 'not-yours' } });
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ code: 'not_an_approver', type: 'https://stint.dev/problems/not_an_approver', title: 'Not an approver' });
  });

  it('tells a user with nothing enrolled which methods would do', async () => {
    const r = await post('/v1/stepup/challenges', { action: { kind: 'request', requestId: 'r1' } }, 'newbie');
    expect(r.statusCode).toBe(409);
    expect(r.json()).toMatchObject({ code: 'stepup_not_enrolled', methods: ['webauthn', 'totp'] });
  });

  it('enrolls TOTP, confirms it, steps up with a code, and locks after five wrong codes with Retry-After', async () => {
    const e = await post('/v1/stepup/totp/enroll', {});
    expect(e.statusCode).toBe(200);
    expect(e.headers['cache-control']).toBe('no-store');
    const { secret } = TotpEnrollResult.parse(e.json());
    const code = (ms: number) => generate({ secret, epoch: Math.floor(ms / 1000) });

    expect((await post('/v1/stepup/totp/confirm', { code: '12345' })).statusCode).toBe(400);
    const confirmed = await post('/v1/stepup/totp/confirm', { code: await code(clock.t - 30_000) });
    expect(confirmed.json()).toEqual({ confirmed: true });
    expect(audit).toContainEqual({ actor: 'alice', action: 'stepup.totp.confirmed' });

    const c = StepUpChallenge.parse((await post('/v1/stepup/challenges', { action: { kind: 'request', requestId: 'r1' } })).json());
    expect(c).toMatchObject({ methods: ['totp'], policyMethods: ['webauthn', 'totp'], summary: 'Request r1', totp: { attemptsLeft: 5 } });
    expect(c.webauthn).toBeUndefined();
    expect(Date.parse(c.expiresAt) - clock.t).toBe(120_000);
    expect((await post('/test/prove/r1', { proof: { method: 'totp', challengeId: c.challengeId, code: await code(clock.t) } })).json()).toEqual({ ok: true, method: 'totp' });

    const good = await code(clock.t + 60_000);
    const wrong = good === '000000' ? '111111' : '000000';
    let last;
    for (let i = 0; i < 5; i++) {
      const c2 = StepUpChallenge.parse((await post('/v1/stepup/challenges', { action: { kind: 'request', requestId: 'r2' } })).json());
      last = await post('/test/prove/r2', { proof: { method: 'totp', challengeId: c2.challengeId, code: wrong } });
    }
    expect(last!.statusCode).toBe(429);
    expect(last!.headers['retry-after']).toBe('300');
    expect(last!.json()).toMatchObject({ code: 'stepup_locked', retryAfter: new Date(clock.t + 300_000).toISOString(), attemptsLeft: 0 });
    expect((await app.inject({ method: 'GET', url: '/v1/stepup/status' })).json()).toMatchObject({ totp: 'confirmed', attemptsLeft: 0, lockedUntil: new Date(clock.t + 300_000).toISOString() });
  });
});
