// Every route is declared with who may call it (server/http/table.ts), and the router (server/http/router.ts) serves
// exactly that list, attaching the check each declaration names — the gap through which a stolen token once stripped
// step-up was a route nobody had declared. This test walks every route the running server really serves: with no
// credentials, every route that is not anonymous answers 401 (user, admin, bastion); with a non-admin user's token,
// admin routes answer 403 and user routes let the user through (anything but 401/403 from the access check); with a
// service identity's token (a CI job), every route refuses it but those declared user_or_service. Then, on
// a bare Fastify: the router refuses a non-admin before an admin route's handler runs, and a route registered any
// other way stops the server from starting.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import Fastify from 'fastify';
import { z } from 'zod';
import { startStack, type Stack } from '../harness/stack';
import { call } from '../server/helpers';
import { routerFor, serveRoutes, type Guard, type Route } from '../../server/http/router';
import type { AuthUser } from '../../server/identity/user';

// The full server the demo runs: step-up and bastion routes included.
let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });
const served = () => stack.server().served;

/** A concrete path for a route pattern (ids that exist nowhere). */
const pathOf = (url: string) => url.replace(/:id\b/g, 'unknown_id_1');

describe('route access', () => {
  it('the server serves exactly the declared routes, and documents each of them', async () => {
    const declared = stack.server().declared.map((r) => `${r.method} ${r.url}`).sort();
    expect(served().map((r) => `${r.method} ${r.url}`).sort()).toEqual(declared);
    expect(declared).toEqual(expect.arrayContaining(['POST /v1/grants/:id/revoke', 'POST /v1/stepup/totp/remove', 'GET /v1/bastion/authorized-keys', 'GET /healthz']));
    const doc = (await call(stack.serverUrl, 'GET', '/v1/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`));
    expect(documented.sort()).toEqual(declared);
  });

  it('without credentials, only anonymous routes answer', async () => {
    for (const route of served()) {
      const answer = await call(stack.serverUrl, route.method, pathOf(route.url), route.method === 'POST' ? { body: {} } : {});
      if (route.access === 'anonymous') expect(answer.status, `${route.method} ${route.url}`).not.toBe(401);
      else expect(answer.status, `${route.method} ${route.url} (${route.access})`).toBe(401);
    }
  });

  it('with a non-admin user\'s token, admin routes refuse and user routes let the user through', async () => {
    const token = await stack.idp.tokenFor('alice');
    for (const route of served().filter((r) => r.access === 'user' || r.access === 'user_or_service' || r.access === 'admin')) {
      // /v1/events streams: its headers say it let the user in; the body is not waited for.
      if (route.url === '/v1/events') {
        const abort = new AbortController();
        const response = await fetch(`${stack.serverUrl}/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
        expect(response.status).toBe(200);
        abort.abort();
        continue;
      }
      // A body each route accepts, so what answers is the access check, not the schema.
      const body = route.url.endsWith('/revoke') ? { reason: 'route access test' } : {};
      const answer = await call(stack.serverUrl, route.method, pathOf(route.url), { token, ...(route.method === 'POST' ? { body } : {}) });
      const where = `${route.method} ${route.url} (${route.access})`;
      if (route.access === 'admin') expect(answer.body?.code, where).toBe('admin_only');
      else expect([401, 403].includes(answer.status) && ['token_invalid', 'admin_only', 'token_missing'].includes(answer.body?.code), where).toBe(false);
    }
  });
  it("with a CI job's service token, only the routes that admit services let it through", async () => {
    // The demo config maps the dev IdP's client credentials client (stint-ci) to service:ci-migrations.
    const token = await stack.idp.serviceToken();
    for (const route of served().filter((r) => r.access !== 'anonymous' && r.access !== 'bastion')) {
      const where = `${route.method} ${route.url} (${route.access})`;
      if (route.url === '/v1/events') {
        const abort = new AbortController();
        const response = await fetch(`${stack.serverUrl}/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
        expect(response.status, where).toBe(200);
        abort.abort();
        continue;
      }
      const answer = await call(stack.serverUrl, route.method, pathOf(route.url), { token, ...(route.method === 'POST' ? { body: {} } : {}) });
      if (route.access === 'user_or_service') expect([401, 403].includes(answer.status), where).toBe(false);
      // The pages (approve, admin console) take their own browser session, never a bearer token (nor open one for a service).
      else if (route.access === 'session' || route.access === 'admin-session') expect([401, 403].includes(answer.status), where).toBe(true);
      else expect(answer.body?.code, where).toBe('service_not_allowed');
    }
  });

  it('a bearer token, even an admin\'s, opens no page route (the approve page\'s, the admin console\'s)', async () => {
    const token = await stack.idp.tokenFor('carol');
    const pageRoutes = served().filter((r) => r.access === 'session' || r.access === 'admin-session');
    expect(pageRoutes.map((r) => r.url)).toEqual(expect.arrayContaining(['/approve/api/session', '/admin/api/live', '/admin/api/grants/:id/revoke']));
    for (const route of pageRoutes) {
      const answer = await call(stack.serverUrl, route.method, pathOf(route.url), { token, ...(route.method === 'POST' ? { body: {} } : {}) });
      expect([answer.status, answer.body?.code], `${route.method} ${route.url} (${route.access})`).toEqual([401, 'page_session_required']);
    }
  });
});

describe('the router', () => {
  // A user check standing in for token verification: the header names the user; "admin" is an admin.
  const headerUser: Guard = async (request, reply) => {
    const sub = request.headers['x-user'];
    if (typeof sub !== 'string') return reply.code(401).send({ code: 'token_missing' });
    request.user = { sub, groups: [], admin: sub === 'admin' } satisfies AuthUser;
  };
  const declare = (route: Partial<Route> & Pick<Route, 'method' | 'url' | 'access' | 'handler'>): Route =>
    ({ doc: { operationId: 'test', summary: 'test', tags: [], response: z.object({}) }, ...route });

  it('refuses a non-admin before an admin route\'s handler runs, and says so to the audit', async () => {
    const handler = vi.fn(async () => ({ done: true }));
    const refused = vi.fn(async () => {});
    const app = Fastify();
    app.decorateRequest('user', null as unknown as AuthUser);
    const zap = declare({ method: 'POST', url: '/v1/things/:id/zap', access: 'admin', refusal: { action: 'thing.zap', message: 'only administrators may zap things' }, handler });
    serveRoutes(app, [zap], { user: headerUser, refused });

    const byAlice = await app.inject({ method: 'POST', url: '/v1/things/t1/zap', headers: { 'x-user': 'alice' }, payload: {} });
    expect(byAlice.statusCode).toBe(403);
    expect(byAlice.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(byAlice.json()).toMatchObject({ status: 403, code: 'admin_only', detail: 'only administrators may zap things' });
    expect(handler).not.toHaveBeenCalled();
    expect(refused).toHaveBeenCalledTimes(1);
    expect(refused.mock.calls[0]).toEqual([expect.objectContaining({ user: expect.objectContaining({ sub: 'alice' }) }), zap, expect.objectContaining({ code: 'admin_only' })]);

    expect((await app.inject({ method: 'POST', url: '/v1/things/t1/zap', payload: {} })).statusCode).toBe(401);
    expect(handler).not.toHaveBeenCalled();

    const byAdmin = await app.inject({ method: 'POST', url: '/v1/things/t1/zap', headers: { 'x-user': 'admin' }, payload: {} });
    expect(byAdmin.json()).toEqual({ done: true });
    expect(handler).toHaveBeenCalledTimes(1);
    await app.close();
  });

  it('an admin-session route needs the page session, then refuses a non-admin before its handler runs', async () => {
    const handler = vi.fn(async () => ({ done: true }));
    const refused = vi.fn(async () => {});
    const app = Fastify();
    app.decorateRequest('user', null as unknown as AuthUser);
    const zap = declare({ method: 'POST', url: '/admin/api/things/:id/zap', access: 'admin-session', handler });
    // The page session stands in for the cookie's; no user check is given, so a bearer token could not be it.
    serveRoutes(app, [zap], { session: headerUser, refused });
    expect((await app.inject({ method: 'POST', url: '/admin/api/things/t1/zap', payload: {} })).statusCode).toBe(401);
    const byAlice = await app.inject({ method: 'POST', url: '/admin/api/things/t1/zap', headers: { 'x-user': 'alice' }, payload: {} });
    expect([byAlice.statusCode, byAlice.json().code]).toEqual([403, 'admin_only']);
    expect(refused).toHaveBeenCalledTimes(1);
    expect(handler).not.toHaveBeenCalled();
    expect((await app.inject({ method: 'POST', url: '/admin/api/things/t1/zap', headers: { 'x-user': 'admin' }, payload: {} })).json()).toEqual({ done: true });
    await app.close();
  });

  it('a route registered outside the router stops the server from starting, naming it — even on a declared path', async () => {
    const app = Fastify();
    const router = routerFor(app);
    // Before the list is served, and after: neither is a way in.
    expect(() => app.get('/healthz', async () => 'ok')).toThrow('GET /healthz is not served through the router');
    router.serve([declare({ method: 'GET', url: '/healthz', access: 'anonymous', handler: async () => 'ok' })], {});
    expect(() => app.post('/v1/grants/:id/undeclared', async () => 'oops')).toThrow('POST /v1/grants/:id/undeclared is not served through the router');
    await app.register(async (scope) => {
      expect(() => scope.get('/v1/me', async () => 'who')).toThrow('GET /v1/me is not served through the router');
    });
    expect((await app.inject({ url: '/healthz' })).body).toBe('ok');
    await app.close();
  });

  it('a route whose access has no check to attach stops the server from starting', () => {
    const app = Fastify();
    const handler = vi.fn(async () => 'keys');
    expect(() => serveRoutes(app, [declare({ method: 'GET', url: '/v1/bastion/authorized-keys', access: 'bastion', handler })], { user: headerUser }))
      .toThrow("GET /v1/bastion/authorized-keys is declared 'bastion' but the router was given no bastion token check");
  });
});
