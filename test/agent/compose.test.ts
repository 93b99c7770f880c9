// The composed agent with the real OIDC session: sign in through the dev IdP's pages, then the grant server sees
// the IdP's JWT access token; sign-out revokes and wipes.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { startIdp, driveDevInteractions, type IdpInstance } from '../harness/idp';
import { startKeyring, type KeyringInstance } from '../../dev/keyring';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { startSshd, type SshdInstance } from '../../dev/sshd';
import { createAgent } from '../../electron/core/compose';
import { KeytarSecretStore } from '../../electron/core/secrets/keytar-store';
import { MemorySettingsStore } from '../../electron/core/settings';
import { startFakeGrantServer, type FakeGrantServer } from './fake-grant-server';

let idp: IdpInstance;
let keyring: KeyringInstance;
let db: PostgresInstance;
let sshd: SshdInstance;
let server: FakeGrantServer;

beforeAll(async () => {
  [idp, keyring, db] = await Promise.all([startIdp(), startKeyring(), startPostgres()]);
  Object.assign(process.env, keyring.env);
  sshd = await startSshd({ permitOpen: [`127.0.0.1:${db.port}`] });
  server = await startFakeGrantServer(db, sshd);
});
afterAll(async () => {
  await server?.kill();
  await sshd?.stop();
  await db?.stop();
  await idp?.close();
  await keyring?.stop();
});

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
  it('starts signed out without settings, then signs in through the IdP and calls the server with its JWT', async () => {
    const settings = new MemorySettingsStore({});
    const secrets = new KeytarSecretStore(`stint-compose-${randomUUID()}`);
    const agent = createAgent({ settings, secrets, openUrl: browser('alice') });
    await agent.start();
    expect(agent.state().session.status).toBe('signed_out');
    await expect(agent.api.signIn({})).rejects.toMatchObject({ code: 'invalid_input' });

    await agent.api.updateSettings({ serverUrl: server.url, issuer: idp.issuer, audience: idp.audience });
    const { user } = await agent.api.signIn({});
    expect(user).toMatchObject({ sub: 'alice', email: 'alice@example.com' });
    expect(agent.state().resources.map((r) => r.id)).toEqual(['prod-orders', 'prod-billing']);
    const token = server.authorizations.at(-1)!.replace(/^Bearer /, '');
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
