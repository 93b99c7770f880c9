// The request/grant lifecycle over HTTP against the harness IdP: auto-approve, N-of-M with distinct people,
// self-approval, deny, cancel, TTL and deadline timers, activation (and its failure), extension within and over
// limits (with and without re-approval), release, admin revoke with retried credential revocation, break-glass
// broadcast, and live events with resume.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessRequest, ActivateResult, AuditList, CreateRequestResult, ExtendResult, Grant, GrantList, Problem, RequestList } from '../../shared/contract/http';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { BASTION_TOKEN, startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens, until } from './helpers';
import { openEvents } from './sse';

describe('request and grant lifecycle', () => {
  let idp: IdpInstance;
  let server: RunningGrantServer;
  let tokens: Tokens;
  const provider = new RecordingProvider();
  type Client = ReturnType<typeof clientFor>;
  let alice: Client, bob: Client, carol: Client, dave: Client, erin: Client;

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    server = await startGrantServer({ idp, credentials: provider, sweepEveryMs: 500 });
    const client = async (u: string) => clientFor(server.url, await tokens.for(u));
    [alice, bob, carol, dave, erin] = await Promise.all([client('alice'), client('bob'), client('carol'), client('dave'), client('erin')]);
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  const create = async (client: Client, body: Record<string, unknown>) => {
    const answer = await client.post('/v1/requests', body);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    return CreateRequestResult.parse(answer.body).request;
  };
  const activate = async (client: Client, requestId: string) => {
    const answer = await client.post(`/v1/requests/${requestId}/activate`, { publicKey: ed25519PublicKeyLine() });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    return ActivateResult.parse(answer.body);
  };
  const prodRequest = (client: Client, extra: Record<string, unknown> = {}) =>
    create(client, { resourceId: 'prod-orders', level: 'read', reason: 'investigate INC-7', ticket: 'INC-7', deviceId: 'device-alice-1', ...extra });

  it('auto-approves a low-risk request; activation returns the connection once; release ends it and revokes the role', async () => {
    const request = await create(alice, { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    expect(request).toMatchObject({ state: 'approved', requester: 'alice', durationSeconds: 7200, stepUpRequired: false, decisionReason: 'auto-approved by policy' });
    expect(request.risk.score).toBeLessThan(30);
    expect(Date.parse(request.expiresAt) - Date.parse(request.createdAt)).toBe(15 * 60_000);

    const { grant, connection } = await activate(alice, request.id);
    expect(grant).toMatchObject({ state: 'active', owner: 'alice', resourceId: 'staging-users', level: 'read', revocation: 'none' });
    expect(Date.parse(grant.endsAt) - Date.parse(grant.startsAt)).toBe(7200_000);
    expect(connection).toMatchObject({ bastion: { host: '127.0.0.1', port: 22, user: 'stintbastion' }, target: { host: '127.0.0.1', port: 5432, database: 'users' }, dbUser: expect.stringMatching(/^stint_g_/) });
    expect(provider.issued.at(-1)).toMatchObject({ grantId: grant.id, resourceId: 'staging-users', level: 'read', endsAt: Date.parse(grant.endsAt) });

    // Activating again is refused; the password is never shown again.
    const again = await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
    expect(again.status).toBe(409);
    const listed = GrantList.parse((await alice.get('/v1/grants')).body).grants.find((g) => g.id === grant.id)!;
    expect(JSON.stringify(listed)).not.toContain(connection.dbPassword);
    const after = (await alice.get(`/v1/requests/${request.id}`)).body;
    expect(after.request.grantId).toBe(grant.id);
    expect(after.grant.id).toBe(grant.id);

    const released = await alice.post(`/v1/grants/${grant.id}/release`, {});
    expect(released.status).toBe(200);
    expect(Grant.parse(released.body.grant)).toMatchObject({ state: 'released', endReason: 'released by the owner' });
    await until('the role to be revoked', () => provider.revoked.some((r) => r.grantId === grant.id));
    await until('revocation done', async () => (await alice.get(`/v1/grants/${grant.id}`)).body.grant.revocation === 'done');
    // A released grant cannot be extended or released again.
    expect((await alice.post(`/v1/grants/${grant.id}/extend`, { durationSeconds: 60 })).status).toBe(409);
    expect((await alice.post(`/v1/grants/${grant.id}/release`, {})).status).toBe(409);
  });

  it('one SSH key opens one active grant: a second activation with it is refused and leaves its request activatable', async () => {
    const key = ed25519PublicKeyLine();
    const first = await create(alice, { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    const second = await create(alice, { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    const opened = await alice.post(`/v1/requests/${first.id}/activate`, { publicKey: key });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    const grant = ActivateResult.parse(opened.body).grant;

    const refused = await alice.post(`/v1/requests/${second.id}/activate`, { publicKey: key });
    expect(refused.status).toBe(409);
    expect(Problem.parse(refused.body).code).toBe('key_in_use');
    const untouched = (await alice.get(`/v1/requests/${second.id}`)).body;
    expect(untouched.request).toMatchObject({ state: 'approved' });
    expect(untouched.request.grantId ?? null).toBeNull();
    expect(GrantList.parse((await alice.get('/v1/grants')).body).grants.filter((g) => g.requestId === second.id)).toEqual([]);

    // Once the first grant has ended the key is free again (the agent still makes a fresh one per grant).
    expect((await alice.post(`/v1/grants/${grant.id}/release`, {})).status).toBe(200);
    const reused = await alice.post(`/v1/requests/${second.id}/activate`, { publicKey: key });
    expect(reused.status, JSON.stringify(reused.body)).toBe(201);
    await alice.post(`/v1/grants/${ActivateResult.parse(reused.body).grant.id}/release`, {});
  });

  it('needs N-of-M distinct approvers: one person fills one slot, and the rules all hold', async () => {
    const request = await prodRequest(alice);
    expect(request.state).toBe('pending_approval');
    expect(request.risk.reasons).toContain('high-sensitivity resource');
    expect(request.approvalsNeeded).toEqual([{ group: 'dba', count: 1, have: 0 }, { group: 'sre-leads', count: 1, have: 0 }]);

    const queue = RequestList.parse((await bob.get('/v1/requests?role=approver')).body).requests;
    expect(queue.map((r) => r.id)).toContain(request.id);
    // Approving this one needs no step-up, and the inbox says so before bob clicks (the approve below proves it).
    expect(queue.find((r) => r.id === request.id)?.approvalStepUp).toEqual({ required: false, methods: [] });
    expect(RequestList.parse((await erin.get('/v1/requests?role=approver')).body).requests).toEqual([]);

    const first = await bob.post(`/v1/requests/${request.id}/approve`, { comment: 'ok' });
    expect(first.status).toBe(200);
    expect(AccessRequest.parse(first.body.request)).toMatchObject({ state: 'pending_approval', approvalsNeeded: [{ group: 'dba', have: 1 }, { group: 'sre-leads', have: 0 }] });

    const twice = await bob.post(`/v1/requests/${request.id}/approve`, {});
    expect(twice.status).toBe(409);
    expect(twice.body.code).toBe('already_approved');
    // carol is another dba: the dba slot is filled, and she cannot fill sre-leads.
    const carolTry = await carol.post(`/v1/requests/${request.id}/approve`, {});
    expect(carolTry.status).toBe(409);
    expect(carolTry.body.code).toBe('approval_not_needed');
    const erinTry = await erin.post(`/v1/requests/${request.id}/approve`, {});
    expect(erinTry.status).toBe(403);
    expect(erinTry.body.code).toBe('not_an_approver');

    const last = await dave.post(`/v1/requests/${request.id}/approve`, {});
    expect(last.status).toBe(200);
    const approved = AccessRequest.parse(last.body.request);
    expect(approved.state).toBe('approved');
    expect(approved.approvals.map((a) => [a.approver, a.group])).toEqual([['bob', 'dba'], ['dave', 'sre-leads']]);
    expect(Date.parse(approved.expiresAt) - Date.parse(approved.decidedAt!)).toBe(15 * 60_000);
    expect((await carol.post(`/v1/requests/${request.id}/approve`, {})).status).toBe(409);
  });

  it('never lets the requester approve their own request, and audits the attempt', async () => {
    const request = await prodRequest(dave, { deviceId: 'device-dave-1' });
    const own = await dave.post(`/v1/requests/${request.id}/approve`, {});
    expect(own.status).toBe(403);
    expect(Problem.parse(own.body).code).toBe('self_approval');
    const ownDeny = await dave.post(`/v1/requests/${request.id}/deny`, { reason: 'no' });
    expect(ownDeny.status).toBe(403);
    const audit = AuditList.parse((await carol.get(`/v1/audit?requestId=${request.id}`)).body).entries;
    expect(audit.map((e) => e.action)).toEqual(['request.created', 'refused.request.approve', 'refused.request.deny']);
    expect(audit[1]).toMatchObject({ actor: 'dave', detail: { code: 'self_approval' }, policyVersion: 1 });
    expect((await dave.get(`/v1/requests/${request.id}`)).body.request.state).toBe('pending_approval');
  });

  it('deny needs a reason; cancel is for the requester; decided requests stay decided', async () => {
    const one = await prodRequest(alice);
    const noReason = await bob.post(`/v1/requests/${one.id}/deny`, {});
    expect(noReason.status).toBe(400);
    expect(noReason.body.errors).toEqual([{ path: 'reason', message: expect.stringMatching(/expected string|required/) }]);
    const denied = await bob.post(`/v1/requests/${one.id}/deny`, { reason: 'use the read replica' });
    expect(denied.body.request).toMatchObject({ state: 'denied', decisionReason: 'use the read replica' });
    expect((await dave.post(`/v1/requests/${one.id}/approve`, {})).status).toBe(409);

    const two = await prodRequest(alice);
    expect((await bob.post(`/v1/requests/${two.id}/cancel`, {})).status).toBe(404);
    const cancelled = await alice.post(`/v1/requests/${two.id}/cancel`, {});
    expect(cancelled.body.request.state).toBe('cancelled');
    expect((await alice.post(`/v1/requests/${two.id}/cancel`, {})).status).toBe(409);
  });

  it('expires a pending request at its TTL; approving it afterwards is an illegal transition', async () => {
    const request = await create(alice, { resourceId: 'quick-orders', level: 'read', deviceId: 'device-alice-1' });
    expect(request.state).toBe('pending_approval');
    await until('the request to expire', async () => (await alice.get(`/v1/requests/${request.id}`)).body.request.state === 'expired', 5_000);
    const late = await bob.post(`/v1/requests/${request.id}/approve`, {});
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('illegal_transition');
  });

  it('expires an approved request not activated within its window', async () => {
    const request = await create(alice, { resourceId: 'quick-orders', level: 'read', deviceId: 'device-alice-1' });
    await bob.post(`/v1/requests/${request.id}/approve`, {});
    await until('the approved request to expire', async () => (await alice.get(`/v1/requests/${request.id}`)).body.request.state === 'expired', 6_000);
    const late = await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
    expect(late.status).toBe(409);
  });

  it('ends a grant at its deadline and revokes its credentials', async () => {
    const request = await create(alice, { resourceId: 'quick-orders', level: 'read', deviceId: 'device-alice-1' });
    await bob.post(`/v1/requests/${request.id}/approve`, {});
    const { grant } = await activate(alice, request.id);
    const ended = await until('the grant to end', async () => {
      const g = (await alice.get(`/v1/grants/${grant.id}`)).body.grant;
      return g.state === 'ended' && g.revocation === 'done' ? g : undefined;
    }, 6_000);
    // The timer is exact: the end is recorded at the deadline (within timer slack), not at a later sweep.
    expect(Date.parse(ended.endedAt) - Date.parse(grant.endsAt)).toBeLessThan(400);
    expect(provider.revoked.some((r) => r.grantId === grant.id)).toBe(true);
  });

  it('extends within the limit and refuses beyond it', async () => {
    const request = await create(alice, { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1', durationSeconds: 3600 });
    const { grant } = await activate(alice, request.id);
    const ok = await alice.post(`/v1/grants/${grant.id}/extend`, { durationSeconds: 3600, reason: 'migration runs long' });
    expect(ok.status).toBe(200);
    const extended = ExtendResult.parse(ok.body).grant;
    expect(Date.parse(extended.endsAt) - Date.parse(grant.endsAt)).toBe(3600_000);
    expect(extended.extendedSeconds).toBe(3600);
    expect(provider.extended.at(-1)).toEqual({ grantId: grant.id, endsAt: Date.parse(extended.endsAt) });
    const over = await alice.post(`/v1/grants/${grant.id}/extend`, { durationSeconds: 11 * 3600 });
    expect(over.status).toBe(409);
    expect(over.body.code).toBe('extension_over_limit');
    expect((await bob.post(`/v1/grants/${grant.id}/extend`, { durationSeconds: 60 })).status).toBe(404);
    await alice.post(`/v1/grants/${grant.id}/release`, {});
  });

  it('files an extension for re-approval when the policy says so, and applies it once approved', async () => {
    const request = await prodRequest(alice);
    await bob.post(`/v1/requests/${request.id}/approve`, {});
    await dave.post(`/v1/requests/${request.id}/approve`, {});
    const { grant } = await activate(alice, request.id);
    const asked = ExtendResult.parse((await alice.post(`/v1/grants/${grant.id}/extend`, { durationSeconds: 1800, reason: 'need more time' })).body);
    expect(asked.request).toMatchObject({ state: 'pending_approval', extendsGrantId: grant.id, durationSeconds: 1800 });
    expect(asked.grant.endsAt).toBe(grant.endsAt);
    await bob.post(`/v1/requests/${asked.request!.id}/approve`, {});
    const done = await dave.post(`/v1/requests/${asked.request!.id}/approve`, {});
    expect(done.body.request).toMatchObject({ state: 'approved', grantId: grant.id });
    const after = Grant.parse((await alice.get(`/v1/grants/${grant.id}`)).body.grant);
    expect(Date.parse(after.endsAt) - Date.parse(grant.endsAt)).toBe(1800_000);
    // The extension request is not a second grant.
    expect((await alice.post(`/v1/requests/${asked.request!.id}/activate`, { publicKey: ed25519PublicKeyLine() })).status).toBe(409);
  });

  it('lets only admins revoke; revocation is retried with backoff until the role is gone', async () => {
    const request = await create(alice, { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    const { grant } = await activate(alice, request.id);
    const byBob = await bob.post(`/v1/grants/${grant.id}/revoke`, { reason: 'tidy up' });
    expect(byBob.status).toBe(403);
    expect(byBob.body.code).toBe('admin_only');
    expect((await carol.post(`/v1/grants/${grant.id}/revoke`, {})).status).toBe(400);

    provider.failRevoke = 2;
    const before = provider.revokeAttempts;
    const revoked = await carol.post(`/v1/grants/${grant.id}/revoke`, { reason: 'suspicious activity' });
    expect(revoked.status).toBe(200);
    expect(revoked.body.grant).toMatchObject({ state: 'revoked', endReason: 'suspicious activity' });
    await until('a retrying revocation', async () => (await alice.get(`/v1/grants/${grant.id}`)).body.grant.revocation === 'retrying');
    await until('revocation done after retries', async () => (await alice.get(`/v1/grants/${grant.id}`)).body.grant.revocation === 'done', 8_000);
    expect(provider.revokeAttempts - before).toBe(3);
    const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/stint_revocation_failures_total\{resource="staging-users"\} 2/);
    const audit = AuditList.parse((await carol.get(`/v1/audit?grantId=${grant.id}`)).body).entries.map((e) => e.action);
    expect(audit).toEqual(['request.activated', 'grant.activated', 'refused.grant.revoke', 'grant.revoked', 'grant.revoke_failed', 'grant.revoke_failed', 'grant.credentials_revoked']);
    expect((await alice.post(`/v1/grants/${grant.id}/extend`, { durationSeconds: 60 })).status).toBe(409);
  });

  it('marks a grant failed when credentials cannot be issued, without leaking the admin URL', async () => {
    const request = await create(alice, { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    provider.failIssue = true;
    try {
      const answer = await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('credentials_failed');
      expect(JSON.stringify(answer.body)).not.toContain('secret');
      const grant = Grant.parse((await alice.get(`/v1/grants/${answer.body.grantId}`)).body.grant);
      expect(grant.state).toBe('failed');
    } finally {
      provider.failIssue = false;
    }
  });

  it('a grant revoked while its credentials are being issued ends, and the role issued late is revoked too', async () => {
    const request = await create(alice, { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    let release!: () => void;
    provider.holdIssue = new Promise((resolve) => { release = resolve; });
    try {
      const activation = alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
      const grantId = await until('the grant to exist while its role is being created', async () =>
        GrantList.parse((await alice.get('/v1/grants')).body).grants.find((g) => g.requestId === request.id)?.id);
      expect((await carol.post(`/v1/grants/${grantId}/revoke`, { reason: 'wrong ticket' })).status).toBe(200);
      release();
      const answer = await activation;
      expect(answer.status).toBe(409);
      expect(answer.body).toMatchObject({ code: 'grant_ended', grantId });
      await until('the late role to be revoked', () => provider.revoked.some((r) => r.grantId === grantId));
      // The provider answered; the server records it in the commit that follows.
      const grant = await until('the revocation to be recorded', async () => {
        const g = Grant.parse((await alice.get(`/v1/grants/${grantId}`)).body.grant);
        return g.revocation === 'done' ? g : undefined;
      }, 5_000);
      expect(grant).toMatchObject({ state: 'revoked', revocation: 'done' });
      const audit = AuditList.parse((await carol.get(`/v1/audit?grantId=${grantId}`)).body).entries.map((e) => e.action);
      expect(audit).toEqual(['request.activated', 'grant.revoked', 'grant.credentials_revoked']);
    } finally {
      provider.holdIssue = undefined;
      release();
    }
  });

  it('break-glass activates at once, is broadcast to approvers and admins, and is flagged for review', async () => {
    const denied = await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'write', reason: 'outage', breakGlass: true });
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('breakglass_not_allowed');
    const noReason = await dave.post('/v1/requests', { resourceId: 'prod-orders', level: 'write', breakGlass: true });
    expect(noReason.status).toBe(422);

    const bobEvents = await openEvents(server.url, await tokens.for('bob'));
    const carolEvents = await openEvents(server.url, await tokens.for('carol'));
    const daveEvents = await openEvents(server.url, await tokens.for('dave'));
    try {
      const request = await create(dave, { resourceId: 'prod-orders', level: 'write', reason: 'orders outage, INC-9', breakGlass: true, deviceId: 'device-dave-1' });
      expect(request).toMatchObject({ state: 'approved', breakGlass: true, approvals: [] });
      for (const stream of [bobEvents, carolEvents]) {
        const seen = await stream.next((e) => e.event.type === 'breakglass.used');
        expect(seen.event).toMatchObject({ request: { id: request.id, requester: 'dave' } });
      }
      await daveEvents.next((e) => e.event.type === 'request.updated' && e.event.request.id === request.id);
      expect(daveEvents.events.some((e) => e.event.type === 'breakglass.used')).toBe(false);
      const { grant } = await activate(dave, request.id);
      expect(grant.breakGlass).toBe(true);
      const audit = AuditList.parse((await carol.get(`/v1/audit?requestId=${request.id}`)).body).entries;
      expect(audit.find((e) => e.action === 'breakglass.used')).toMatchObject({ actor: 'dave', detail: { review: true } });
      const review = AuditList.parse((await carol.get('/v1/audit?action=breakglass.used')).body).entries;
      expect(review.map((e) => e.requestId)).toContain(request.id);
      await dave.post(`/v1/grants/${grant.id}/release`, {});
    } finally {
      bobEvents.close();
      carolEvents.close();
      daveEvents.close();
    }
  });

  it('serves the bastion the key line of an active grant only, and reports its end', async () => {
    const request = await create(alice, { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    const publicKey = ed25519PublicKeyLine();
    const activated = await alice.post(`/v1/requests/${request.id}/activate`, { publicKey });
    const grant = Grant.parse(activated.body.grant);
    const key = encodeURIComponent(publicKey.split(' ')[1]!);
    const asBastion = (path: string, token = BASTION_TOKEN) => fetch(`${server.url}/v1/bastion${path}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await asBastion(`/authorized-keys?type=ssh-ed25519&key=${key}`, 'wrong-token')).status).toBe(401);
    // A user's token is not a bastion's.
    expect((await asBastion(`/authorized-keys?type=ssh-ed25519&key=${key}`, await tokens.for('carol'))).status).toBe(401);
    // sshd names the login user (%u): keys are served for the bastion's configured user only.
    const user = server.config.bastions.main!.user;
    expect(await (await asBastion(`/authorized-keys?type=ssh-ed25519&key=${key}`)).text()).toBe('');
    const line = await (await asBastion(`/authorized-keys?user=${user}&type=ssh-ed25519&key=${key}`)).text();
    expect(line).toContain('permitopen="127.0.0.1:5432"');
    expect(line).toContain(publicKey.split(' ')[1]);
    const since = new Date(Date.now() - 1000).toISOString();
    await alice.post(`/v1/grants/${grant.id}/release`, {});
    expect(await (await asBastion(`/authorized-keys?user=${user}&type=ssh-ed25519&key=${key}`)).text()).toBe('');
    const ended = await (await asBastion(`/ended?since=${encodeURIComponent(since)}`)).json();
    expect(JSON.stringify(ended)).toContain(grant.id);
  });

  it('streams events per user and resumes after a disconnect with Last-Event-ID', async () => {
    const first = await openEvents(server.url, await tokens.for('bob'));
    const one = await prodRequest(alice);
    const asked = await first.next((e) => e.event.type === 'approval.asked' && e.event.request.id === one.id);
    first.close();

    const two = await prodRequest(alice);
    const three = await prodRequest(alice);
    const resumed = await openEvents(server.url, await tokens.for('bob'), asked.id);
    try {
      await resumed.next((e) => e.event.type === 'approval.asked' && e.event.request.id === three.id);
      const ids = resumed.events.map((e) => Number(e.id));
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      expect(ids.every((id) => id > Number(asked.id))).toBe(true);
      expect(resumed.events.filter((e) => e.event.type === 'approval.asked').map((e) => (e.event as { request: { id: string } }).request.id)).toEqual([two.id, three.id]);
      // Live delivery continues after the replay.
      await alice.post(`/v1/requests/${two.id}/cancel`, {});
      await resumed.next((e) => e.event.type === 'approval.withdrawn' && e.event.requestId === two.id);
      // erin is no approver: she sees none of this.
      const erinEvents = await openEvents(server.url, await tokens.for('erin'), '0');
      await new Promise((r) => setTimeout(r, 200));
      expect(erinEvents.events).toEqual([]);
      erinEvents.close();
    } finally {
      resumed.close();
    }
  });
});
