// Every route declares who may call it (server/http/access.ts), and the server refuses to start with a route that
// does not — the gap through which a stolen token once stripped step-up was a route nobody had declared. This test
// walks every route the running server really serves: with no credentials, every route that is not anonymous answers
// 401 (user, admin) or 401 (bastion); with a non-admin user's token, admin routes answer 403 and user routes let the
// user through (anything but 401/403 from the access check). A table that drifts from the hooks fails here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { startStack, type Stack } from '../harness/stack';
import { call } from '../server/helpers';
import { ROUTE_ACCESS, requireDeclaredAccess } from '../../server/http/access';

// The full server the demo runs: step-up and bastion routes included.
let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });
const served = () => stack.server().served;

/** A concrete path for a route pattern (ids that exist nowhere). */
const pathOf = (url: string) => url.replace(/:id\b/g, 'unknown_id_1');

describe('route access table', () => {
  it('the server serves exactly the declared routes', () => {
    expect(served().map((r) => `${r.method} ${r.url}`).sort()).toEqual(Object.keys(ROUTE_ACCESS).sort());
  });

  it('without credentials, only anonymous routes answer', async () => {
    for (const route of served()) {
      const answer = await call(stack.serverUrl, route.method, pathOf(route.url), route.method === 'POST' ? { body: {} } : {});
      if (route.access.access === 'anonymous') expect(answer.status, `${route.method} ${route.url}`).not.toBe(401);
      else expect(answer.status, `${route.method} ${route.url} (${route.access.access})`).toBe(401);
    }
  });

  it('with a non-admin user\'s token, admin routes refuse and user routes let the user through', async () => {
    const token = await stack.idp.tokenFor('alice');
    for (const route of served().filter((r) => r.access.access === 'user' || r.access.access === 'admin')) {
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
      const where = `${route.method} ${route.url} (${route.access.access})`;
      if (route.access.access === 'admin') expect(answer.body?.code, where).toBe('admin_only');
      else expect([401, 403].includes(answer.status) && ['token_invalid', 'admin_only', 'token_missing'].includes(answer.body?.code), where).toBe(false);
    }
  });

  it('a route added without a declaration stops the server from starting, naming it', async () => {
    const app = Fastify();
    requireDeclaredAccess(app);
    app.get('/healthz', async () => 'ok'); // declared: fine
    expect(() => app.post('/v1/grants/:id/undeclared', async () => 'oops')).toThrow('POST /v1/grants/:id/undeclared declares no access: add it to ROUTE_ACCESS in server/http/access.ts');
    await app.close();
  });
});
