// The composed agent with the real OIDC session and the real grant server: a fresh agent (no settings, no STINT_*
// environment variables) is configured from Settings — a wrong issuer is refused and nothing is saved — then signs in
// through the dev IdP's pages, and the grant server accepts the IdP's JWT access token; sign-out revokes and wipes.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { startIdp, driveDevInteractions, type IdpInstance } from '../../dev/idp';
import { startKeyring, type KeyringInstance } from '../../dev/keyring';
import { createAgent } from '../../agent/core/compose';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { MemorySettingsStore } from '../../agent/core/settings';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';

let idp: IdpInstance;
let keyring: KeyringInstance;
let server: RunningGrantServer;
/** The desktop app's environment overrides (desktop/main): a fresh install has none of them. */
const SETTINGS_ENV = ['STINT_SERVER_URL', 'STINT_ISSUER', 'STINT_AUDIENCE'] as const;
const savedEnv: Partial<Record<string, string>> = {};

beforeAll(async () => {
  for (const name of SETTINGS_ENV) { savedEnv[name] = process.env[name]; delete process.env[name]; }
  [idp, keyring] = await Promise.all([startIdp(), startKeyring()]);
  Object.assign(process.env, keyring.env);
  server = await startGrantServer({ idp });
});
afterAll(async () => {
  // The agents' keep-alive connections to the in-process server stay open after they are disposed, and Node 20's
  // server.close() waits for them (the old stand-in server was killed instead): cut them so the close can finish.
  const closing = server?.close();
  server?.app.server.closeAllConnections();
  await closing;
  await idp?.close();
  await keyring?.stop();
  for (const name of SETTINGS_ENV) if (savedEnv[name] !== undefined) process.env[name] = savedEnv[name];
});

/** The agent's fetch, recording the bearer tokens it sends to the grant server. */
const authorizations: string[] = [];
const recordingFetch: typeof fetch = (input, init) => {
  const authorization = new Headers(init?.headers).get('authorization');
  if (authorization && String(input).startsWith(server.url)) authorizations.push(authorization);
  return fetch(input, init);
};

const browser = (user: string) => async (url: string) => {
  const port = new URL(new URL(url).searchParams.get('redirect_uri')!).port;
  const callback = await driveDevInteractions(url, user, idp.issuer).catch((e) => {
    if (/without a form/.test(String(e))) return undefined; // it followed the redirect to our page itself
    throw e;
  });
  if (callback) {
    const u = new URL(callback);
    u.port = port;
    await fetch(u);
  }
};

describe('composed agent with the real session', () => {
  it('a fresh agent is configured from Settings (a wrong issuer is refused), signs in through the IdP and calls the server with its JWT', async () => {
    const settings = new MemorySettingsStore({});
    const secrets = new KeytarSecretStore(`stint-compose-${randomUUID()}`);
    const agent = createAgent({ settings, secrets, openUrl: browser('alice'), fetch: recordingFetch });
    await agent.start();
    expect(agent.state().session.status).toBe('signed_out');
    await expect(agent.api.signIn({})).rejects.toMatchObject({ code: 'invalid_input' });

    // What Settings sends: the four sign-in fields together. The same IdP under another name is not its issuer.
    const typo = idp.issuer.replace('localhost', '127.0.0.1');
    const fields = { serverUrl: server.url, issuer: typo, clientId: idp.clientId, audience: idp.audience };
    await expect(agent.api.updateSettings(fields)).rejects.toMatchObject({
      code: 'invalid_input', message: `${typo}'s discovery document says its issuer is ${idp.issuer}, not ${typo}. Use the issuer exactly as the sign-in service names it. Nothing was saved.`,
    });
    const before = settings.get();
    expect([before.serverUrl, before.issuer, before.audience]).toEqual([undefined, undefined, undefined]);
    await expect(agent.api.signIn({})).rejects.toMatchObject({ code: 'invalid_input' });

    expect(await agent.api.updateSettings({ ...fields, issuer: idp.issuer })).toMatchObject({ ...fields, issuer: idp.issuer });
    const { user } = await agent.api.signIn({});
    expect(user).toMatchObject({ sub: 'alice', email: 'alice@example.com' });
    // What the grant server's test catalogue lets alice (engineers) ask for.
    expect(agent.state().resources.map((r) => r.id).sort()).toEqual(['prod-orders', 'quick-orders', 'staging-users']);
    const token = authorizations.at(-1)!.replace(/^Bearer /, '');
    expect(decodeJwt(token)).toMatchObject({ sub: 'alice', aud: idp.audience });

    // A new process restores the session from the keychain without a browser.
    const again = createAgent({ settings, secrets, openUrl: () => { throw new Error('no browser expected'); } });
    await again.start();
    expect(again.state().session).toMatchObject({ status: 'signed_in', user: { sub: 'alice' } });
    await again.dispose();

    await agent.api.signOut({});
    expect(await secrets.list()).toEqual([]);
    expect(agent.state().session.status).toBe('signed_out');
    await agent.dispose();
  });
});
