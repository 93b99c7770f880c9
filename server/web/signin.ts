// The approve page's sign-in at the IdP: OpenID Connect authorization code + PKCE with openid-client, as the server's
// own client (config `approvalPage`). The access token it gets is checked by the same verifier as every API call
// (issuer, audience, groups claim), so a page session is exactly the user the API would see — never more.
import * as oidc from 'openid-client';
import type { ServerConfig } from '../config';
import { requireSecret } from '../config';
import type { AuthUser } from '../identity/user';
import type { TokenVerifier } from '../identity/verify';

export const CALLBACK_PATH = '/approve/auth/callback';

export type SignInResult = { ok: true; user: AuthUser } | { ok: false; message: string };

export interface WebSignIn {
  /** Where to send the browser: the IdP's authorization page for this verifier (the sign-in cookie) and state. */
  authorizationUrl(verifier: string, state: string): Promise<URL>;
  /** Finish at the callback URL the IdP redirected to: code for tokens, then the access token checked as the API does. */
  finish(callbackUrl: URL, verifier: string, state: string): Promise<SignInResult>;
}

export function createWebSignIn(opts: { config: ServerConfig; verifier: TokenVerifier; env?: NodeJS.ProcessEnv }): WebSignIn {
  const page = opts.config.approvalPage!;
  const issuer = new URL(opts.config.identity.issuer);
  const redirectUri = new URL(CALLBACK_PATH, opts.config.server.url).href;
  let discovered: Promise<oidc.Configuration> | undefined;
  const configuration = () => {
    const secret = page.clientSecret ? requireSecret(page.clientSecret, 'approvalPage.clientSecret', opts.env) : undefined;
    // A failed discovery is forgotten, so the next sign-in tries again (the IdP may come up after the server).
    discovered ??= oidc.discovery(issuer, page.clientId, secret ? { client_secret: secret } : undefined, secret ? oidc.ClientSecretBasic(secret) : oidc.None(),
      issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : undefined)
      .catch((error: unknown) => { discovered = undefined; throw error; });
    return discovered;
  };
  return {
    async authorizationUrl(verifier, state) {
      const config = await configuration();
      return oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: page.scope,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        ...(page.resource ? { resource: page.resource } : {}),
      });
    },
    async finish(callbackUrl, verifier, state) {
      let tokens: oidc.TokenEndpointResponse;
      try {
        const config = await configuration();
        tokens = await oidc.authorizationCodeGrant(config, callbackUrl, { pkceCodeVerifier: verifier, expectedState: state });
      } catch (error) {
        const text = error instanceof oidc.AuthorizationResponseError ? `${error.error}: ${error.error_description ?? ''}` : (error as Error).message;
        return { ok: false, message: `the identity provider did not complete the sign-in (${text})` };
      }
      const checked = await opts.verifier.verify(`Bearer ${tokens.access_token}`);
      if (!checked.ok) return { ok: false, message: `the identity provider's token is not one this server accepts: ${checked.message}` };
      // The approve page is for people: a token that maps to a service identity never opens a page session.
      if (checked.user.service) return { ok: false, message: `the token is service ${checked.user.service}'s; services cannot approve` };
      return { ok: true, user: checked.user };
    },
  };
}
