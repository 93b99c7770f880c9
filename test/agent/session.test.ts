import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { startIdp, driveDevInteractions, type IdpInstance } from '../../dev/idp';
import { startKeyring, type KeyringInstance } from '../../dev/keyring';
import { freePort } from '../../dev/ports';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { Session, refreshTokenAccount, type SessionStatus } from '../../agent/core/session';
import { FakeClock } from '../../dev/fake-clock';

/** Where the session keeps this IdP's refresh token (one account per issuer, client and audience). */
const refreshAccount = () => refreshTokenAccount({ issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience });
let idp: IdpInstance;
let keyring: KeyringInstance;

beforeAll(async () => {
  [idp, keyring] = await Promise.all([startIdp(), startKeyring()]);
  Object.assign(process.env, keyring.env);
});
afterAll(async () => {
  await idp?.close();
  await keyring?.stop();
});

/** A "browser" that signs in as `user` on the IdP pages and lands on the loopback redirect. */
function browserAs(user: string, seen: string[] = []) {
  return async (url: string) => {
    seen.push(url);
    const redirect = new URL(new URL(url).searchParams.get('redirect_uri')!);
    const callback = new URL(await driveDevInteractions(url, user, idp.issuer).catch((e) => {
      // The harness stops at the registered redirect without a port; with our port in it, it follows the redirect
      // itself and reads our "signed in" page, which has no form.
      if (/without a form/.test(String(e))) return 'http://127.0.0.1/done';
      throw e;
    }));
    if (callback.pathname === '/done') return;
    callback.port = redirect.port;
    await fetch(callback);
  };
}

function newSession(overrides: Partial<ConstructorParameters<typeof Session>[0]> = {}) {
  const changes: SessionStatus[] = [];
  const secrets = new KeytarSecretStore(`stint-session-${randomUUID()}`);
  const session = new Session({
    issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience, secrets,
    openUrl: browserAs('alice'), onChange: (s) => changes.push(s), ...overrides,
  });
  return { session, secrets, changes };
}

describe('OIDC session against the real dev IdP and keychain', () => {
  it('signs in with code + PKCE through a loopback redirect, refresh token to the keychain, JWT access token for the API', async () => {
    const urls: string[] = [];
    const { session, secrets, changes } = newSession({ openUrl: browserAs('alice', urls) });
    const user = await session.signIn();
    expect(user).toMatchObject({ sub: 'alice', email: 'alice@example.com', groups: ['engineers'] });
    expect(changes.map((c) => c.status)).toEqual(['signing_in', 'signing_in', 'signed_in']);
    // The second "signing in" carries the IdP page, for hosts where no browser opened by itself.
    expect(changes[1]).toMatchObject({ status: 'signing_in', authorizationUrl: urls[0] });
    const auth = new URL(urls[0]!);
    expect(auth.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    expect(auth.searchParams.get('resource')).toBe(idp.audience);
    expect(auth.searchParams.get('nonce')).toBeTruthy();
    expect(auth.searchParams.get('scope')).toBe('openid offline_access email profile groups');
    expect(await secrets.get(refreshAccount())).toBeTruthy();
    const token = decodeJwt(await session.accessToken());
    expect(token.aud).toBe(idp.audience);
    expect(token.sub).toBe('alice');
    // The loopback listener is gone once sign-in finished.
    const port = Number(new URL(auth.searchParams.get('redirect_uri')!).port);
    await expect(fetch(`http://127.0.0.1:${port}/callback`)).rejects.toThrow();
    await session.signOut();
  });

  it('two concurrent callers share one refresh (rotated tokens stay valid), and a new process restores from the keychain', async () => {
    const clock = new FakeClock();
    const { session, secrets } = newSession({ clock });
    await session.signIn();
    const first = await session.accessToken();
    const firstRefresh = await secrets.get(refreshAccount());
    clock.advance(11 * 60_000); // past the 10-minute access token
    const [a, b] = await Promise.all([session.accessToken(), session.accessToken()]);
    expect(a).toBe(b);
    expect(a).not.toBe(first);
    const rotated = await secrets.get(refreshAccount());
    expect(rotated).not.toBe(firstRefresh);
    // Had two refreshes raced, the IdP would have revoked the family: the rotated token would now fail.
    const restored = new Session({ issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience, secrets, openUrl: () => { throw new Error('no browser expected'); } });
    expect(await restored.restore()).toBe(true);
    expect(restored.status).toMatchObject({ status: 'signed_in', user: { sub: 'alice' } });
    await restored.signOut();
  });

  it('a refresh token belongs to its sign-in service: another issuer or audience never gets it', async () => {
    const { session, secrets } = newSession();
    await session.signIn();
    // Settings change the audience: the session made for it finds no token of its own and sends none anywhere.
    const other = new Session({ issuer: idp.issuer, clientId: idp.clientId, audience: 'https://other.example/api', secrets, openUrl: () => { throw new Error('no browser expected'); } });
    expect(await other.restore()).toBe(false);
    // Switching back finds the first sign-in's token again.
    const again = new Session({ issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience, secrets, openUrl: () => { throw new Error('no browser expected'); } });
    expect(await again.restore()).toBe(true);
    await again.signOut();
  });

  it('sign-out revokes the refresh token at the IdP and removes it from the keychain', async () => {
    const { session, secrets, changes } = newSession();
    await session.signIn();
    const refreshToken = (await secrets.get(refreshAccount()))!;
    expect(await session.signOut()).toEqual({ revoked: true });
    expect(await secrets.get(refreshAccount())).toBeUndefined();
    // The sign-in service's own session is the user's to end: offered as its RP-initiated logout page, with the hint.
    const last = changes.at(-1) as { status: string; endSessionUrl?: string };
    expect(last.status).toBe('signed_out');
    const end = new URL(last.endSessionUrl!);
    expect(`${end.origin}${end.pathname}`).toBe((await fetch(`${idp.issuer}/.well-known/openid-configuration`).then((r) => r.json())).end_session_endpoint);
    expect(end.searchParams.get('id_token_hint')).toMatch(/^ey/);
    const page = await fetch(end);
    expect(page.status).toBe(200);
    // No session cookie in this fetch, so the IdP goes straight to its logout confirmation (a self-submitting form).
    expect(await page.text()).toMatch(/<form method="post" action="[^"]*\/session\/end\/confirm">/);
    await expect(oidc.refreshTokenGrant(await idp.clientConfig(), refreshToken)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(session.accessToken()).rejects.toMatchObject({ code: 'not_signed_in' });
  });

  it('a refresh token the IdP no longer honours means signing in again (session_expired), not a crash', async () => {
    const { session, secrets } = newSession();
    await session.signIn();
    await secrets.set(refreshAccount(), 'not-a-valid-refresh-token');
    await expect(session.refresh()).rejects.toMatchObject({ code: 'session_expired' });
    expect(session.status.status).toBe('signed_out');
    expect(await secrets.get(refreshAccount())).toBeUndefined();
  });

  it('the user cancelling in the browser gives login_cancelled', async () => {
    const { session, changes } = newSession({
      openUrl: async (url) => {
        const u = new URL(url);
        const cb = new URL(u.searchParams.get('redirect_uri')!);
        cb.searchParams.set('error', 'access_denied');
        cb.searchParams.set('state', u.searchParams.get('state')!);
        await fetch(cb);
      },
    });
    await expect(session.signIn()).rejects.toMatchObject({ code: 'login_cancelled' });
    expect(changes.at(-1)?.status).toBe('signed_out');
  });

  it('a request with the wrong state is refused and ignored; the real redirect still completes', async () => {
    const statuses: number[] = [];
    const { session } = newSession({
      openUrl: async (url) => {
        const cb = new URL(new URL(url).searchParams.get('redirect_uri')!);
        cb.searchParams.set('code', 'forged');
        cb.searchParams.set('state', 'forged');
        statuses.push((await fetch(cb)).status);
        await browserAs('alice')(url);
      },
    });
    await expect(session.signIn()).resolves.toMatchObject({ sub: 'alice' });
    expect(statuses).toEqual([400]);
    await session.signOut();
  });

  it('cancelSignIn() stops waiting for the browser', async () => {
    const { session } = newSession({ openUrl: () => {} });
    const pending = session.signIn();
    setTimeout(() => session.cancelSignIn(), 50);
    await expect(pending).rejects.toMatchObject({ code: 'login_cancelled' });
  });

  it('gives up waiting for the browser after the login timeout', async () => {
    const { session } = newSession({ openUrl: () => {}, loginTimeoutMs: 100 });
    await expect(session.signIn()).rejects.toMatchObject({ code: 'login_timeout' });
  });

  it('an IdP that is down gives idp_unreachable', async () => {
    const { session } = newSession({ issuer: `http://127.0.0.1:${await freePort()}`, timeoutSeconds: 2 });
    await expect(session.signIn()).rejects.toMatchObject({ code: 'idp_unreachable' });
    expect(session.status.status).toBe('signed_out');
  });
});
