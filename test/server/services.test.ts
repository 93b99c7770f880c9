// Service identities (#25): a CI job or bot authenticates with the IdP's client credentials grant or with a CI
// provider's workload identity token, and acts as `service:<name>` — real dev IdPs (the company's, and a second one
// standing for the CI provider), the real grant server in-process. Services ask with a ticket, are auto-approved
// only inside their change window (else humans approve, or the policy refuses), never step up, and may not approve,
// touch factors or act as admins: every route says whether a service may call it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditList, CreateRequestResult, Me, ResourceList } from '../../shared/contract/http';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, testConfig, merge, type RunningGrantServer } from '../../dev/grant-server';
import { DEV_CI_CLIENT } from '../../server/dev-idp/index';
import { ConfigError, validateConfig } from '../../server/config';
import { call, clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens, windowFromNow } from './helpers';

const CI_AUDIENCE = 'https://stint.example/ci';
const DEPLOY = { clientId: 'acme-deploy', clientSecret: 'acme-deploy-secret' };
const STRANGER = { clientId: 'acme-other', clientSecret: 'acme-other-secret' };

const resource = (id: string, policy: string) => ({
  id, name: id, environment: 'production', sensitivity: 'high', kind: 'postgres', bastion: 'main',
  target: { host: '10.9.9.9', port: 5432, database: 'orders' }, admin: { url: 'postgres://admin:pw@10.9.9.9:5432/orders' },
  levels: { migrate: ['GRANT ALL ON SCHEMA public TO {{role}}'] }, policy,
});
const servicePolicy = (services: Record<string, unknown>, approvals: unknown[] = [{ from: 'dba', count: 1 }]) => ({
  duration: { default: '15m', max: '1h' }, reason: 'required', approvals,
  services: { requesters: ['ci-migrations', 'deploy-bot'], ticket: { pattern: '^CHG-[0-9]+$' }, ...services },
});

describe('service identities', () => {
  let idp: IdpInstance;
  let ciProvider: IdpInstance;
  let server: RunningGrantServer;
  let tokens: Tokens;
  const provider = new RecordingProvider();
  let ci: ReturnType<typeof clientFor>;

  beforeAll(async () => {
    [idp, ciProvider] = await Promise.all([startIdp(), startIdp({ audience: CI_AUDIENCE, serviceClients: [DEPLOY, STRANGER] })]);
    tokens = new Tokens(idp);
    server = await startGrantServer({
      idp, credentials: provider,
      overrides: {
        identity: {
          services: [
            { name: 'ci-migrations', subject: DEV_CI_CLIENT.clientId, claims: { client_id: DEV_CI_CLIENT.clientId } },
            { name: 'deploy-bot', issuer: ciProvider.issuer, audience: CI_AUDIENCE, subject: DEPLOY.clientId },
          ],
        },
        resources: [...testConfig(idp, 'sqlite::memory:').resources!, resource('ci-open', 'ci-open'), resource('ci-closed', 'ci-closed'), resource('ci-reviewed', 'ci-reviewed'), resource('ci-nightly', 'ci-nightly')],
        policies: {
          'ci-open': servicePolicy({ autoApprove: { window: windowFromNow(-1, 1) } }),
          'ci-closed': servicePolicy({ autoApprove: { window: windowFromNow(2, 3) } }),
          'ci-reviewed': servicePolicy({}),
          'ci-nightly': servicePolicy({ autoApprove: { window: windowFromNow(2, 3) }, outsideWindow: 'refuse' }, []),
        },
      },
    });
    ci = clientFor(server.url, await idp.serviceToken());
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await Promise.all([idp?.close(), ciProvider?.close()]);
  });

  const ask = (resourceId: string, extra: Record<string, unknown> = {}) => ci.post('/v1/requests', { resourceId, level: 'migrate', reason: 'schema migration 42', ticket: 'CHG-42', ...extra });

  it('a client credentials token of the IdP is the service it maps to: no groups, no admin, only its resources', async () => {
    const me = Me.parse((await ci.get('/v1/me')).body);
    expect(me).toMatchObject({ sub: 'service:ci-migrations', groups: [], admin: false, approver: false });
    const resources = ResourceList.parse((await ci.get('/v1/resources')).body).resources;
    expect(resources.map((r) => r.id).sort()).toEqual(['ci-closed', 'ci-nightly', 'ci-open', 'ci-reviewed']);
    expect(resources.find((r) => r.id === 'ci-open')!.policy).toMatchObject({ ticketRequired: true, ticketPattern: '^CHG-[0-9]+$', stepUp: { request: 'never' } });
    // A person of the same IdP stays a person, and sees none of the services' resources.
    const alice = ResourceList.parse((await call(server.url, 'GET', '/v1/resources', { token: await tokens.for('alice') })).body).resources;
    expect(alice.map((r) => r.id)).not.toContain('ci-open');
  });

  it("a CI provider's workload token maps to its service; one that matches no service is refused", async () => {
    const workload = await ciProvider.serviceToken(DEPLOY);
    expect(Me.parse((await call(server.url, 'GET', '/v1/me', { token: workload })).body).sub).toBe('service:deploy-bot');
    const stranger = await call(server.url, 'GET', '/v1/me', { token: await ciProvider.serviceToken(STRANGER) });
    expect(stranger.status).toBe(401);
    expect(stranger.body).toMatchObject({ code: 'token_invalid', detail: expect.stringContaining('matches no service') });
  });

  it('a service must give a ticket: refused and audited without one', async () => {
    const answer = await ci.post('/v1/requests', { resourceId: 'ci-open', level: 'migrate', reason: 'schema migration 42' });
    expect(answer.status).toBe(422);
    expect(answer.body).toMatchObject({ code: 'ticket_required' });
    expect((await ask('ci-open', { ticket: 'not-a-change' })).body).toMatchObject({ code: 'ticket_invalid' });
    const audit = AuditList.parse((await call(server.url, 'GET', '/v1/audit?limit=50', { token: await tokens.for('carol') })).body);
    expect(audit.entries.some((e) => e.actor === 'service:ci-migrations' && e.action === 'refused.request.create')).toBe(true);
  });

  it('inside the change window a service is approved at once, activates and releases its own grant', async () => {
    const created = CreateRequestResult.parse((await ask('ci-open')).body);
    expect(created.request).toMatchObject({ state: 'approved', requester: 'service:ci-migrations', ticket: 'CHG-42' });
    const activated = await ci.post(`/v1/requests/${created.request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
    expect(activated.status).toBe(201);
    const grantId = activated.body.grant.id as string;
    const released = await ci.post(`/v1/grants/${grantId}/release`, {});
    expect(released.status).toBe(200);
    expect(released.body.grant.state).not.toBe('active');
  });

  it('outside the window, or with no window, a service waits for a person; it may never approve', async () => {
    for (const resourceId of ['ci-closed', 'ci-reviewed']) {
      const created = CreateRequestResult.parse((await ask(resourceId)).body);
      expect(created.request.state, resourceId).toBe('pending_approval');
      // Not its own request, and not another service's: services are never approvers.
      const byService = await ci.post(`/v1/requests/${created.request.id}/approve`, {});
      expect(byService.status).toBe(403);
      expect(byService.body).toMatchObject({ code: 'service_not_allowed' });
      const bob = clientFor(server.url, await tokens.for('bob'));
      expect((await bob.post(`/v1/requests/${created.request.id}/approve`, {})).body.request.state).toBe('approved');
    }
  });

  it('a policy that refuses services outside the window says so', async () => {
    const answer = await ask('ci-nightly');
    expect(answer.status).toBe(409);
    expect(answer.body).toMatchObject({ code: 'outside_change_window' });
  });

  it('every route says whether services may call it: the others refuse a service before their handler runs', async () => {
    const allowed = server.server.served.filter((r) => r.access === 'user_or_service').map((r) => `${r.method} ${r.url}`);
    expect(allowed.sort()).toEqual([
      'GET /v1/events', 'GET /v1/grants', 'GET /v1/grants/:id', 'GET /v1/me', 'GET /v1/requests', 'GET /v1/requests/:id', 'GET /v1/resources',
      'POST /v1/grants/:id/rekey', 'POST /v1/grants/:id/release', 'POST /v1/requests', 'POST /v1/requests/:id/activate', 'POST /v1/requests/:id/cancel',
    ].sort());
    for (const route of server.server.served.filter((r) => r.access === 'user' || r.access === 'admin')) {
      const answer = await call(server.url, route.method, route.url.replace(/:id\b/g, 'unknown_id_1'), { token: await idp.serviceToken(), ...(route.method === 'POST' ? { body: {} } : {}) });
      expect(answer.body?.code, `${route.method} ${route.url}`).toBe('service_not_allowed');
    }
  });
});

describe('service identities in the config', () => {
  const base = (override: Record<string, unknown>) => merge(testConfig({ issuer: 'http://localhost:1', audience: 'api' }, 'sqlite::memory:'), merge({
    identity: { services: [{ name: 'ci-migrations', subject: 'stint-ci' }] },
    resources: [...testConfig({ issuer: 'http://localhost:1', audience: 'api' }, 'sqlite::memory:').resources!, resource('ci-db', 'ci')],
    policies: { ci: servicePolicy({ requesters: ['ci-migrations'] }) },
  }, override));
  const problems = (override: Record<string, unknown>) => {
    try { validateConfig(base(override)); return []; } catch (error) { return (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`); }
  };

  it('accepts a policy for services only', () => {
    expect(problems({})).toEqual([]);
  });

  it('refuses step-up for services, with what to do instead', () => {
    expect(problems({ policies: { ci: { stepUp: { request: 'always' } } } })).toEqual([expect.stringMatching(/^policies\.ci\.stepUp\.request: a policy that names services cannot ask requesters for step-up \(always\): a service has no second factor/)]);
  });

  it('refuses services that would wait for nobody, and names of services nobody configured', () => {
    expect(problems({ policies: { ci: { approvals: [] } } })).toEqual([expect.stringMatching(/^policies\.ci\.services: services' requests wait for approval always .* add an approvals rule/)]);
    expect(problems({ policies: { ci: { services: { requesters: ['ci-ghost'] } } } })).toEqual([expect.stringContaining('expected one of identity.services (ci-migrations), got ci-ghost')]);
    expect(problems({ policies: { ci: { services: { ticket: null } } } }).join()).toContain('services.ticket');
    expect(problems({ policies: { ci: { services: { outsideWindow: 'refuse' } } } })).toEqual([expect.stringContaining('services.outsideWindow: refuse needs a change window')]);
  });

  it('refuses service identities that could never match, or that one token would prove twice', () => {
    expect(problems({ identity: { services: [{ name: 'ci-migrations', subject: 'stint-ci', audience: 'other' }] } })).toEqual([expect.stringContaining('identity.services[0].audience: tokens of identity.issuer are for identity.audience (api)')]);
    expect(problems({ identity: { services: [{ name: 'ci-migrations', subject: 'stint-ci' }, { name: 'ci-other', subject: 'stint-ci' }] } })).toEqual([expect.stringContaining('identity.services[1]: expected tokens that prove one service only')]);
  });
});
