// Real identity providers differ in what they accept: some refuse a scope they do not know (`groups`), some refuse
// the RFC 8707 `resource` parameter (Keycloak and Entra add the audience by their own configuration; Auth0 wants
// `audience`). The agent asks for exactly the scopes and the audience parameter its settings say, and Settings refuse
// scopes the IdP does not offer before saving. Against the real dev OpenID provider (oidc-provider).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdp, driveDevInteractions, type IdpInstance } from '../../dev/idp';
import { Session } from '../../agent/core/session';
import { checkSignInSettings } from '../../agent/core/settings-check';
import { AgentSettings } from '../../shared/contract/agent';
import { MemorySecretStore } from './memory-secrets';

let idp: IdpInstance;
beforeAll(async () => { idp = await startIdp(); });
afterAll(async () => { await idp?.close(); });

/** Sign in as `user`, recording the authorization request the agent sent. */
async function signIn(options: { scopes?: string; audienceParameter?: 'resource' | 'audience' | 'none' }) {
  let asked: URL | undefined;
  const session = new Session({
    issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience, secrets: new MemorySecretStore(), ...options,
    openUrl: async (url) => {
      asked = new URL(url);
      const port = new URL(asked.searchParams.get('redirect_uri')!).port;
      const callback = new URL(await driveDevInteractions(url, 'alice', idp.issuer));
      callback.port = port;
      await fetch(callback);
    },
  });
  const user = await session.signIn();
  const token = await session.accessToken();
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
  await session.signOut();
  return { user, asked: asked!, claims };
}

describe('identity provider options', () => {
  it('asks for the configured scopes and the audience as RFC 8707 resource by default', async () => {
    const { asked, claims } = await signIn({});
    expect(asked.searchParams.get('scope')).toBe('openid offline_access email profile groups');
    expect(asked.searchParams.get('resource')).toBe(idp.audience);
    expect(claims.aud).toBe(idp.audience);
  });

  it('without the groups scope and without any audience parameter (an IdP that adds the audience itself)', async () => {
    const { user, asked, claims } = await signIn({ scopes: 'openid offline_access email profile', audienceParameter: 'none' });
    expect(asked.searchParams.get('scope')).toBe('openid offline_access email profile');
    expect(asked.searchParams.has('resource')).toBe(false);
    expect(asked.searchParams.has('audience')).toBe(false);
    expect(user.sub).toBe('alice');
    expect(claims.aud).toBe(idp.audience); // the dev IdP's default resource, as a Keycloak audience mapper would
  });

  it('Auth0 style: the audience parameter instead of resource', async () => {
    const { asked } = await signIn({ audienceParameter: 'audience' });
    expect(asked.searchParams.get('audience')).toBe(idp.audience);
    expect(asked.searchParams.has('resource')).toBe(false);
  });

  it('settings refuse scopes the sign-in service does not offer, and scopes without openid', async () => {
    const before = { issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience, scopes: 'openid offline_access email profile groups' };
    await expect(checkSignInSettings(before, { scopes: 'openid offline_access email profile roles' })).rejects.toThrow(/does not offer the scope roles \(it offers .*groups.*\); remove it from Scopes/);
    await expect(checkSignInSettings(before, { scopes: 'openid profile' })).resolves.toBeUndefined();
    expect(AgentSettings.safeParse({ deviceId: 'device-1234', scopes: 'profile email' }).success).toBe(false);
  });
});
