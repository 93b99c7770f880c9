// The approve page's sign-in and session over plain HTTP, against the real dev IdP and grant server (#24): the link
// sends a browser without a session to the IdP with a sign-in cookie that works once; the session cookie is httpOnly
// and SameSite=Lax and holds a random id only; a bearer token opens no page route; every POST needs the page's CSRF
// token and the server's own origin; a session ends when it expires or the user signs out. (The page itself, passkeys
// and the decisions are in test/e2e/journey-approve-link.spec.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_APPROVE_CLIENT_ID } from '../../server/dev-idp/index';
import { driveDevInteractions, startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { FakeClock } from '../../dev/fake-clock';
import { call, Tokens } from './helpers';

let idp: IdpInstance;
let server: RunningGrantServer;
let bare: RunningGrantServer;
let tokens: Tokens;
const clock = new FakeClock(Date.now());
const SESSION_TTL_S = 120;

beforeAll(async () => {
  idp = await startIdp();
  tokens = new Tokens(idp);
  server = await startGrantServer({ idp, clock, overrides: { approvalPage: { clientId: DEV_APPROVE_CLIENT_ID, sessionTtl: SESSION_TTL_S } } });
  bare = await startGrantServer({ idp });
}, 60_000);

afterAll(async () => {
  await bare?.close();
  await server?.close();
  await idp?.close();
});

const cookiePair = (setCookie: string) => setCookie.split(';')[0]!;

/** Open the link as a browser would, sign in on the IdP's pages as `user`, and come back with the session cookie. */
async function signIn(user: string, requestId: string): Promise<{ cookie: string; setCookie: string; loginSetCookie: string; callback: string; loginCookie: string }> {
  const first = await fetch(`${server.url}/approve/${requestId}`, { redirect: 'manual' });
  expect(first.status).toBe(302);
  const loginSetCookie = first.headers.getSetCookie()[0]!;
  const callback = await driveDevInteractions(first.headers.get('location')!, user, idp.issuer, (location) => location.startsWith(`${server.url}/approve/auth/callback`));
  const loginCookie = cookiePair(loginSetCookie);
  const back = await fetch(callback, { redirect: 'manual', headers: { cookie: loginCookie } });
  expect(back.status).toBe(302);
  expect(back.headers.get('location')).toBe(`/approve/${requestId}`);
  const setCookie = back.headers.getSetCookie().find((c) => c.startsWith('stint_approve_session='))!;
  return { cookie: cookiePair(setCookie), setCookie, loginSetCookie, callback, loginCookie };
}

async function aliceRequest(): Promise<string> {
  const created = await call(server.url, 'POST', '/v1/requests', { token: await tokens.for('alice'), body: { resourceId: 'prod-orders', level: 'read', reason: 'approve page test' } });
  expect(created.status).toBe(201);
  return created.body.request.id as string;
}

describe('approve page sign-in and session', () => {
  it('signs in at the IdP with a single-use sign-in cookie and gives an httpOnly, SameSite=Lax session cookie', async () => {
    const id = await aliceRequest();
    const s = await signIn('bob', id);
    expect(s.loginSetCookie).toMatch(/^stint_approve_login=[A-Za-z0-9_-]{43}; Path=\/approve\/auth; Max-Age=600; HttpOnly; SameSite=Lax$/);
    expect(s.setCookie).toMatch(new RegExp(`^stint_approve_session=[A-Za-z0-9_-]{43}; Path=/; Max-Age=${SESSION_TTL_S}; HttpOnly; SameSite=Lax$`));
    // The same callback again (the code, the sign-in cookie) opens nothing.
    const again = await fetch(s.callback, { redirect: 'manual', headers: { cookie: s.loginCookie } });
    expect(again.status).toBe(400);
    expect(again.headers.getSetCookie().some((c) => c.startsWith('stint_approve_session='))).toBe(false);
    // The page itself, with its strict CSP and no inline script.
    const page = await fetch(`${server.url}/approve/${id}`, { headers: { cookie: s.cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toMatch(/<script type="module" crossorigin src="\.\/assets\/approve-[^"]+\.js"><\/script>/);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const session = await call(server.url, 'GET', '/approve/api/session', { headers: { cookie: s.cookie } });
    expect(session.status).toBe(200);
    expect(session.body.user).toMatchObject({ sub: 'bob', name: 'Bob (DBA)' });
    const view = await call(server.url, 'GET', `/approve/api/requests/${id}`, { headers: { cookie: s.cookie } });
    expect(view.body).toMatchObject({ request: { id, requester: 'alice', reason: 'approve page test' }, resource: { name: 'Orders (production)' }, approve: { allowed: true }, deny: { allowed: true } });
  });

  it('a callback from a browser that did not start the sign-in is refused', async () => {
    const id = await aliceRequest();
    const first = await fetch(`${server.url}/approve/${id}`, { redirect: 'manual' });
    const callback = await driveDevInteractions(first.headers.get('location')!, 'bob', idp.issuer, (location) => location.startsWith(`${server.url}/approve/auth/callback`));
    const stranger = await fetch(callback, { redirect: 'manual' });
    expect(stranger.status).toBe(400);
    expect(await stranger.text()).toContain('was not started in this browser');
  });

  it('refuses POSTs without the CSRF token or from another origin, and a bearer token opens no page route', async () => {
    const id = await aliceRequest();
    const s = await signIn('dave', id);
    const { csrfToken } = (await call(server.url, 'GET', '/approve/api/session', { headers: { cookie: s.cookie } })).body as { csrfToken: string };
    const deny = (headers: Record<string, string>) => call(server.url, 'POST', `/approve/api/requests/${id}/deny`, { headers: { cookie: s.cookie, ...headers }, body: { reason: 'not now' } });
    expect((await deny({})).body.code).toBe('csrf_refused');
    expect((await deny({ 'x-stint-csrf': `${csrfToken}x` })).body.code).toBe('csrf_refused');
    expect((await deny({ 'x-stint-csrf': csrfToken, origin: 'http://evil.example' })).body.code).toBe('csrf_refused');
    expect((await deny({ 'x-stint-csrf': csrfToken, 'sec-fetch-site': 'cross-site' })).body.code).toBe('csrf_refused');
    const bearer = await call(server.url, 'GET', `/approve/api/requests/${id}`, { token: await tokens.for('dave') });
    expect([bearer.status, bearer.body.code]).toEqual([401, 'page_session_required']);
    const denied = await deny({ 'x-stint-csrf': csrfToken, origin: new URL(server.url).origin, 'sec-fetch-site': 'same-origin' });
    expect(denied.status).toBe(200);
    expect(denied.body.request).toMatchObject({ state: 'denied', decisionReason: 'not now' });
  });

  it('a session ends when it expires, and when the user signs out', async () => {
    const id = await aliceRequest();
    const first = await signIn('bob', id);
    const second = await signIn('bob', id);
    const { csrfToken } = (await call(server.url, 'GET', '/approve/api/session', { headers: { cookie: first.cookie } })).body as { csrfToken: string };
    const out = await call(server.url, 'POST', '/approve/api/session/end', { headers: { cookie: first.cookie, 'x-stint-csrf': csrfToken }, body: {} });
    expect(out.status).toBe(204);
    expect(out.headers.getSetCookie()[0]).toMatch(/^stint_approve_session=; Path=\/; Max-Age=0/);
    expect((await call(server.url, 'GET', '/approve/api/session', { headers: { cookie: first.cookie } })).body.code).toBe('page_session_required');
    // The other session lives until its time is up; then the link signs in again.
    expect((await call(server.url, 'GET', '/approve/api/session', { headers: { cookie: second.cookie } })).status).toBe(200);
    await clock.advance(SESSION_TTL_S * 1000 + 1000);
    expect((await call(server.url, 'GET', '/approve/api/session', { headers: { cookie: second.cookie } })).body.code).toBe('page_session_required');
    expect((await fetch(`${server.url}/approve/${id}`, { redirect: 'manual', headers: { cookie: second.cookie } })).status).toBe(302);
  });

  it('a server without `approvalPage` serves no page', async () => {
    expect((await call(bare.url, 'GET', '/approve/some-request')).body.code).toBe('route_not_found');
    expect((await call(bare.url, 'GET', '/approve/api/session')).body.code).toBe('route_not_found');
  });
});
