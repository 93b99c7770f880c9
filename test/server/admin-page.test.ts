// The admin console at the server's own origin (/admin/, #25) over plain HTTP, against the real dev IdP and grant
// server: it signs in like the approve page and comes back to /admin/; a signed-in non-admin is refused the page and
// every /admin/api route (audited); a POST without the page's CSRF token, or a call another site's page makes, is
// refused before anything happens; a bearer token opens no console route and the page's cookie opens no /v1 route.
// (The page itself in a browser, with a live psql session cut, is test/e2e/journey-admin-origin.spec.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_APPROVE_CLIENT_ID } from '../../server/dev-idp/index';
import { driveDevInteractions, startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { ActivateResult, CreateRequestResult } from '../../shared/contract/http';
import { call, clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens } from './helpers';

let idp: IdpInstance;
let server: RunningGrantServer;
let tokens: Tokens;

beforeAll(async () => {
  idp = await startIdp();
  tokens = new Tokens(idp);
  server = await startGrantServer({ idp, credentials: new RecordingProvider(), overrides: { approvalPage: { clientId: DEV_APPROVE_CLIENT_ID } } });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await idp?.close();
});

/** Open /admin as a browser would, sign in on the IdP's pages as `user`, and come back with the session cookie. */
async function signIn(user: string): Promise<string> {
  const root = await fetch(`${server.url}/admin`, { redirect: 'manual' });
  expect([root.status, root.headers.get('location')]).toEqual([302, '/admin/']);
  const first = await fetch(`${server.url}/admin/`, { redirect: 'manual' });
  expect(first.status).toBe(302);
  const loginCookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
  const callback = await driveDevInteractions(first.headers.get('location')!, user, idp.issuer, (location) => location.startsWith(`${server.url}/approve/auth/callback`));
  const back = await fetch(callback, { redirect: 'manual', headers: { cookie: loginCookie } });
  expect([back.status, back.headers.get('location')]).toEqual([302, '/admin/']);
  return back.headers.getSetCookie().find((c) => c.startsWith('stint_approve_session='))!.split(';')[0]!;
}

/** An active grant of alice's on staging (auto-approved, activated). */
async function aliceGrant(): Promise<string> {
  const alice = clientFor(server.url, await tokens.for('alice'));
  const created = await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', reason: 'admin page test', deviceId: 'device-alice-1' });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const activated = await alice.post(`/v1/requests/${CreateRequestResult.parse(created.body).request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
  expect(activated.status, JSON.stringify(activated.body)).toBe(201);
  return ActivateResult.parse(activated.body).grant.id;
}

describe('the admin console at /admin', () => {
  it('signs an admin in and serves the console with the strict CSP; its API answers to the page session only', async () => {
    const cookie = await signIn('carol');
    const page = await fetch(`${server.url}/admin/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toMatch(/<script type="module" crossorigin src="\.\/assets\/admin-[^"]+\.js"><\/script>/);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const script = html.match(/src="\.\/(assets\/admin-[^"]+\.js)"/)![1]!;
    expect((await fetch(`${server.url}/admin/${script}`)).status).toBe(200);

    const grantId = await aliceGrant();
    const live = await call(server.url, 'GET', '/admin/api/live', { headers: { cookie } });
    expect(live.status).toBe(200);
    expect(live.body.active.map((g: { grant: { id: string } }) => g.grant.id)).toContain(grantId);
    // A bearer token opens no console route, and the console's cookie opens no /v1 route.
    const bearer = await call(server.url, 'GET', '/admin/api/live', { token: await tokens.for('carol') });
    expect([bearer.status, bearer.body.code]).toEqual([401, 'page_session_required']);
    const cookieOnV1 = await call(server.url, 'GET', '/v1/admin/live', { headers: { cookie } });
    expect([cookieOnV1.status, cookieOnV1.body.code]).toEqual([401, 'token_missing']);
  });

  it('refuses a POST without the CSRF token, and any call another site makes; with the token the revoke goes through', async () => {
    const cookie = await signIn('carol');
    const grantId = await aliceGrant();
    const { csrfToken } = (await call(server.url, 'GET', '/admin/api/session', { headers: { cookie } })).body as { csrfToken: string };
    const revoke = (headers: Record<string, string>) => call(server.url, 'POST', `/admin/api/grants/${grantId}/revoke`, { headers: { cookie, ...headers }, body: { reason: 'laptop lost' } });
    expect([(await revoke({})).status, (await revoke({})).body.code]).toEqual([403, 'csrf_refused']);
    expect((await revoke({ 'x-stint-csrf': `${csrfToken}x` })).body.code).toBe('csrf_refused');
    expect((await revoke({ 'x-stint-csrf': csrfToken, origin: 'http://evil.example' })).body.code).toBe('csrf_refused');
    // A link on another site to the export: the browser sends the cookie on a top-level GET, and says where it came from.
    const crossSite = await call(server.url, 'GET', '/admin/api/audit/export?format=csv', { headers: { cookie, 'sec-fetch-site': 'cross-site' } });
    expect([crossSite.status, crossSite.body.code]).toEqual([403, 'csrf_refused']);
    // Nothing was revoked by the refused calls.
    const alice = clientFor(server.url, await tokens.for('alice'));
    expect((await alice.get(`/v1/grants/${grantId}`)).body.grant.state).toBe('active');

    const revoked = await revoke({ 'x-stint-csrf': csrfToken, origin: new URL(server.url).origin, 'sec-fetch-site': 'same-origin' });
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    expect(revoked.body.grant).toMatchObject({ id: grantId, state: 'revoked' });
    const exported = await call(server.url, 'GET', `/admin/api/audit/export?format=csv&grantId=${grantId}&action=grant.revoked`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } });
    expect(exported.status).toBe(200);
    expect(exported.headers.get('content-disposition')).toMatch(/^attachment; filename="stint-audit-.+\.csv"$/);
    expect(exported.body).toMatch(new RegExp(`,carol,grant\\.revoked,alice,[^,]*,${grantId},staging-users,laptop lost,`));
  });

  it('a signed-in user who is not an admin is refused the page and every console route, on the record', async () => {
    const cookie = await signIn('alice');
    const page = await fetch(`${server.url}/admin/`, { headers: { cookie }, redirect: 'manual' });
    expect(page.status).toBe(403);
    expect(await page.text()).toContain('You are signed in as alice@example.com, who is not a Stint administrator');
    for (const path of ['/admin/api/session', '/admin/api/live', '/admin/api/audit', '/admin/api/audit/export?format=jsonl']) {
      const answer = await call(server.url, 'GET', path, { headers: { cookie } });
      expect([path, answer.status, answer.body.code]).toEqual([path, 403, 'admin_only']);
    }
    const carol = clientFor(server.url, await tokens.for('carol'));
    const refusals = (await carol.get('/v1/admin/audit?user=alice&limit=20')).body.entries.map((e: { action: string }) => e.action);
    expect(refusals).toContain('refused.admin.console');
    expect(refusals).toContain('refused.adminAudit');
  });
});
