// Step-up as the lifecycle drives it, with a small real TOTP gate (otplib) standing in for server/stepup: requests
// wait in pending_stepup, challenges are bound to the action's hash, a proof for another action or a wrong code is
// refused and audited, approving needs its own fresh proof, and a policy needing step-up on a server without one
// is refused outright (never silently skipped).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { generate, generateSecret, verify } from 'otplib';
import { ActivateResult, AuditList, CreateRequestResult, RequestList } from '../../shared/contract/http';
import type { StepUpGate, StepUpResult, StepUpAction } from '../../server/stepup/seam';
import type { StepUpRouteDeps } from '../../server/app';
import type { Route } from '../../server/http/router';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens } from './helpers';
import { openEvents } from './sse';

class TotpGate implements StepUpGate {
  readonly secrets = new Map<string, string>();
  private readonly challenges = new Map<string, { userId: string; actionHash: string; used: boolean }>();

  secretFor(user: string): string {
    let secret = this.secrets.get(user);
    if (!secret) this.secrets.set(user, (secret = generateSecret()));
    return secret;
  }

  async code(user: string): Promise<string> {
    return generate({ secret: this.secretFor(user) });
  }

  // Declared like the real step-up routes: the server's router checks the caller's token before the handler.
  routes = (deps: StepUpRouteDeps): Route[] => [{
    method: 'POST', url: '/v1/stepup/challenges', access: 'user',
    doc: { operationId: 'createStepUpChallenge', summary: 'A TOTP challenge for one action', tags: ['stepup'], response: z.object({ challengeId: z.string() }) },
    handler: async (request, reply) => {
      const action = (request.body as { action: StepUpAction }).action;
      const resolved = await deps.resolver.resolve(request.user, action);
      if (!resolved.ok) return reply.code(resolved.status).type('application/problem+json').send({ status: resolved.status, code: resolved.code, title: 'refused', type: 'about:blank', detail: resolved.message });
      const challengeId = randomBytes(12).toString('base64url');
      this.challenges.set(challengeId, { userId: request.user.sub, actionHash: resolved.actionHash, used: false });
      await deps.audit({ actor: request.user.sub, action: 'stepup.challenge.issued', detail: { kind: action.kind } });
      return { challengeId, methods: resolved.methods, summary: resolved.summary };
    },
  }];

  async verify(input: Parameters<StepUpGate['verify']>[0]): Promise<StepUpResult> {
    const challenge = this.challenges.get(input.proof.challengeId);
    if (!challenge || challenge.userId !== input.userId) return { ok: false, code: 'stepup_invalid', message: 'unknown challenge' };
    if (challenge.used) return { ok: false, code: 'stepup_replayed', message: 'challenge already used' };
    if (challenge.actionHash !== input.actionHash) return { ok: false, code: 'stepup_wrong_action', message: 'the challenge is for another action' };
    if (input.proof.method !== 'totp' || !input.methods.includes('totp')) return { ok: false, code: 'stepup_method_not_allowed', message: 'totp only' };
    const result = await verify({ secret: this.secretFor(input.userId), token: input.proof.code });
    if (!result.valid) return { ok: false, code: 'stepup_invalid', message: 'wrong code' };
    challenge.used = true;
    return { ok: true, method: 'totp' };
  }
}

const stepUpEverywhere = {
  policies: { 'production-db': { stepUp: { request: 'always', approve: 'always', methods: ['totp'] } } },
};

describe('step-up in the lifecycle', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  let server: RunningGrantServer;
  let bare: RunningGrantServer;
  const gate = new TotpGate();
  const provider = new RecordingProvider();

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    [server, bare] = await Promise.all([
      startGrantServer({ idp, overrides: stepUpEverywhere, stepUp: { gate, routes: gate.routes }, credentials: provider }),
      startGrantServer({ idp, overrides: { ...stepUpEverywhere, storage: { url: 'sqlite::memory:' } } }),
    ]);
  });
  afterAll(async () => {
    await Promise.allSettled([server?.close(), bare?.close()]);
    await idp?.close();
  });

  const body = { resourceId: 'prod-orders', level: 'read', reason: 'INC-1 debugging', deviceId: 'device-alice-1' };

  it('refuses a request that needs step-up when the server has none, without creating anything', async () => {
    const alice = clientFor(bare.url, await tokens.for('alice'));
    const answer = await alice.post('/v1/requests', body);
    expect(answer.status).toBe(409);
    expect(answer.body.code).toBe('stepup_unavailable');
    expect(RequestList.parse((await alice.get('/v1/requests')).body).requests).toEqual([]);
    const audit = AuditList.parse((await alice.get('/v1/audit')).body).entries;
    expect(audit.map((e) => e.action)).toEqual(['refused.request.create']);
  });

  it('holds the request in pending_stepup until a proof bound to it arrives', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    const bob = clientFor(server.url, await tokens.for('bob'));
    const request = CreateRequestResult.parse((await alice.post('/v1/requests', body)).body).request;
    const other = CreateRequestResult.parse((await alice.post('/v1/requests', { ...body, reason: 'another one' })).body).request;
    expect(request).toMatchObject({ state: 'pending_stepup', stepUpRequired: true, stepUpMethods: ['totp'] });
    expect((await bob.post(`/v1/requests/${request.id}/approve`, {})).status).toBe(409);
    expect((await bob.post('/v1/stepup/challenges', { action: { kind: 'request', requestId: request.id } })).status).toBe(404);

    const challenge = (await alice.post('/v1/stepup/challenges', { action: { kind: 'request', requestId: request.id } })).body;
    expect(challenge.methods).toEqual(['totp']);
    const wrongCode = await alice.post(`/v1/requests/${request.id}/stepup`, { method: 'totp', challengeId: challenge.challengeId, code: '000000' });
    expect(wrongCode.status).toBe(403);
    expect(wrongCode.body.code).toBe('stepup_invalid');

    // A proof for `other` does not unlock `request`: the challenge is bound to the action's hash.
    const otherChallenge = (await alice.post('/v1/stepup/challenges', { action: { kind: 'request', requestId: other.id } })).body;
    const crossed = await alice.post(`/v1/requests/${request.id}/stepup`, { method: 'totp', challengeId: otherChallenge.challengeId, code: await gate.code('alice') });
    expect(crossed.body.code).toBe('stepup_wrong_action');
    expect((await alice.get(`/v1/requests/${request.id}`)).body.request.state).toBe('pending_stepup');

    const events = await openEvents(server.url, await tokens.for('bob'));
    try {
      const passed = await alice.post(`/v1/requests/${request.id}/stepup`, { method: 'totp', challengeId: challenge.challengeId, code: await gate.code('alice') });
      expect(passed.status).toBe(200);
      expect(passed.body.request.state).toBe('pending_approval');
      await events.next((e) => e.event.type === 'approval.asked' && e.event.request.id === request.id);
    } finally {
      events.close();
    }
    const audit = AuditList.parse((await alice.get(`/v1/audit?requestId=${request.id}`)).body).entries.map((e) => [e.action, (e.detail as { code?: string } | undefined)?.code]);
    expect(audit).toEqual([['request.created', undefined], ['refused.request.approve', 'illegal_transition'], ['stepup.failed', 'stepup_invalid'], ['stepup.failed', 'stepup_wrong_action'], ['request.stepup_passed', undefined]]);

    // Failed step-ups raise the risk of the next request.
    const next = CreateRequestResult.parse((await alice.post('/v1/requests', body)).body).request;
    expect(next.risk.reasons).toContain('2 failed step-up(s) in the last hour');
  });

  it('asks each approver for a fresh proof bound to their approval', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    const bob = clientFor(server.url, await tokens.for('bob'));
    const request = CreateRequestResult.parse((await alice.post('/v1/requests', body)).body).request;
    const c = (await alice.post('/v1/stepup/challenges', { action: { kind: 'request', requestId: request.id } })).body;
    const events = await openEvents(server.url, await tokens.for('bob'));
    try {
      await alice.post(`/v1/requests/${request.id}/stepup`, { method: 'totp', challengeId: c.challengeId, code: await gate.code('alice') });
      // Before bob clicks Approve, what asks him and his inbox both say a code will be needed (as the refusal below).
      const asked = await events.next((e) => e.event.type === 'approval.asked' && e.event.request.id === request.id);
      expect(asked.event.type === 'approval.asked' && asked.event.request.approvalStepUp).toEqual({ required: true, methods: ['totp'] });
    } finally {
      events.close();
    }
    const inbox = RequestList.parse((await bob.get('/v1/requests?role=approver')).body).requests;
    expect(inbox.find((r) => r.id === request.id)?.approvalStepUp).toEqual({ required: true, methods: ['totp'] });

    const bare = await bob.post(`/v1/requests/${request.id}/approve`, {});
    expect(bare.status).toBe(403);
    expect(bare.body).toMatchObject({ code: 'stepup_required', stepUp: { methods: ['totp'], action: { kind: 'approve', requestId: request.id } } });
    const self = await alice.post('/v1/stepup/challenges', { action: { kind: 'approve', requestId: request.id } });
    expect(self.status).toBe(403);
    expect(self.body.code).toBe('self_approval');
    // alice's own request-step-up challenge cannot be replayed as bob's approval.
    expect((await bob.post(`/v1/requests/${request.id}/approve`, { stepUp: { method: 'totp', challengeId: c.challengeId, code: await gate.code('bob') } })).status).toBe(403);

    const challenge = (await bob.post('/v1/stepup/challenges', { action: { kind: 'approve', requestId: request.id } })).body;
    const approved = await bob.post(`/v1/requests/${request.id}/approve`, { stepUp: { method: 'totp', challengeId: challenge.challengeId, code: await gate.code('bob') } });
    expect(approved.status).toBe(200);
    expect(approved.body.request.approvalsNeeded).toEqual([{ group: 'dba', count: 1, have: 1 }, { group: 'sre-leads', count: 1, have: 0 }]);
  });

  it('taking back a grant whose request needed a step-up needs a fresh proof bound to that grant', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    const bob = clientFor(server.url, await tokens.for('bob'));
    const dave = clientFor(server.url, await tokens.for('dave'));
    const stepUp = async (user: string, action: { kind: 'request' | 'approve'; requestId: string }) => {
      const client = clientFor(server.url, await tokens.for(user));
      const challenge = (await client.post('/v1/stepup/challenges', { action })).body;
      return { method: 'totp', challengeId: challenge.challengeId as string, code: await gate.code(user) };
    };
    const request = CreateRequestResult.parse((await alice.post('/v1/requests', body)).body).request;
    await alice.post(`/v1/requests/${request.id}/stepup`, await stepUp('alice', { kind: 'request', requestId: request.id }));
    for (const [user, client] of [['bob', bob], ['dave', dave]] as const) {
      const approved = await client.post(`/v1/requests/${request.id}/approve`, { stepUp: await stepUp(user, { kind: 'approve', requestId: request.id }) });
      expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    }
    const activated = await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
    expect(activated.status, JSON.stringify(activated.body)).toBe(201);
    const { grant } = ActivateResult.parse(activated.body);

    const publicKey = ed25519PublicKeyLine();
    const bare = await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey });
    expect(bare.status).toBe(403);
    expect(bare.body).toMatchObject({ code: 'stepup_required', stepUp: { methods: ['totp'], action: { kind: 'request', requestId: request.id } } });
    // Nobody else gets a challenge for it; a proof for another action does not take it back.
    expect((await bob.post('/v1/stepup/challenges', { action: { kind: 'request', requestId: request.id } })).status).toBe(404);
    const pending = CreateRequestResult.parse((await alice.post('/v1/requests', body)).body).request;
    const crossed = await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey, stepUp: await stepUp('alice', { kind: 'request', requestId: pending.id }) });
    expect(crossed.body.code).toBe('stepup_wrong_action');
    expect(provider.rotated).toEqual([]);

    const challenge = (await alice.post('/v1/stepup/challenges', { action: { kind: 'request', requestId: request.id } })).body;
    expect(challenge.summary).toMatch(/take back/i);
    const proof = { method: 'totp', challengeId: challenge.challengeId, code: await gate.code('alice') };
    const taken = await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey, stepUp: proof });
    expect(taken.status, JSON.stringify(taken.body)).toBe(200);
    expect(ActivateResult.parse(taken.body)).toMatchObject({ grant: { id: grant.id, endsAt: grant.endsAt }, connection: { dbPassword: expect.stringMatching(/rotated/) } });
    expect(provider.rotated).toEqual([{ grantId: grant.id, username: taken.body.connection.dbUser }]);
    // The proof worked once.
    expect((await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey: ed25519PublicKeyLine(), stepUp: proof })).body.code).toBe('stepup_replayed');
    const audit = AuditList.parse((await alice.get(`/v1/audit?grantId=${grant.id}`)).body).entries.map((e) => [e.action, (e.detail as { code?: string; stepUp?: string } | undefined)?.code ?? (e.detail as { stepUp?: string } | undefined)?.stepUp]);
    expect(audit).toEqual(expect.arrayContaining([['stepup.failed', 'stepup_wrong_action'], ['grant.rekeyed', 'totp'], ['stepup.failed', 'stepup_replayed']]));
    await alice.post(`/v1/grants/${grant.id}/release`, {});
  });
});
