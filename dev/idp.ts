// The dev OpenID provider (server/dev-idp) on a free loopback port for tests and benchmarks, plus a scripted
// authorization-code + PKCE login that drives its HTML pages over HTTP (no browser): real tokens without a person.
import * as oidc from 'openid-client';
import { startDevIdp, DEV_CI_CLIENT, DEV_REDIRECT_URI, type DevIdp, type DevServiceClient } from '../server/dev-idp/index';
import { freePort } from './ports';

export const API_AUDIENCE = 'http://localhost/stint-api';

export interface IdpInstance extends DevIdp {
  audience: string;
  /** Log in as a demo user through the IdP pages; returns the token endpoint response (`resource`: default the audience). */
  login: (user: string, resource?: string) => Promise<oidc.TokenEndpointResponse>;
  tokenFor: (user: string, resource?: string) => Promise<string>;
  clientConfig: () => Promise<oidc.Configuration>;
  /** A machine client's API token by the client credentials grant (default: the dev CI client, for this audience). */
  serviceToken: (client?: DevServiceClient, audience?: string) => Promise<string>;
}

export async function startIdp(options: { accessTokenTtlSeconds?: number; audience?: string; serviceClients?: DevServiceClient[]; opaqueAudience?: string } = {}): Promise<IdpInstance> {
  const port = await freePort();
  const audience = options.audience ?? API_AUDIENCE;
  const idp = await startDevIdp({ port, ...options, audience });
  let config: oidc.Configuration | undefined;
  const clientConfig = async () => {
    config ??= await oidc.discovery(new URL(idp.issuer), idp.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    return config;
  };
  const login = async (user: string, resource = audience) => {
    const cfg = await clientConfig();
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(cfg, {
      redirect_uri: DEV_REDIRECT_URI,
      scope: 'openid offline_access email profile groups',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      prompt: 'consent',
      resource,
    });
    const callback = await driveDevInteractions(url.href, user, idp.issuer);
    return oidc.authorizationCodeGrant(cfg, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state });
  };
  const serviceToken = async (client: DevServiceClient = DEV_CI_CLIENT, resource = audience) => {
    const meta = (await clientConfig()).serverMetadata();
    const cfg = new oidc.Configuration(meta, client.clientId, client.clientSecret);
    oidc.allowInsecureRequests(cfg);
    return (await oidc.clientCredentialsGrant(cfg, { resource })).access_token;
  };
  return { ...idp, audience, login, tokenFor: async (user, resource) => (await login(user, resource)).access_token, clientConfig, serviceToken };
}

/**
 * The user's browser for an agent's real OIDC session (agent/core/session.ts `openUrl`): signs in as `user` on the dev
 * IdP's pages and follows the redirect to the session's loopback callback, as a person in a browser would.
 */
export function devBrowser(user: string, issuer: string): (url: string) => Promise<void> {
  return async (url) => {
    const callback = await driveDevInteractions(url, user, issuer);
    await fetch(callback);
  };
}

/** The client's loopback callback, whatever its port (RFC 8252: native clients pick an ephemeral port). */
function isCallback(location: string): boolean {
  const url = new URL(location);
  const registered = new URL(DEV_REDIRECT_URI);
  return url.protocol === registered.protocol && url.hostname === registered.hostname && url.pathname === registered.pathname;
}

/**
 * Follow redirects and submit the dev login and consent forms until the IdP redirects to the client's callback
 * (`isDone`: another client's, e.g. the approve page's `<server>/approve/auth/callback`).
 */
export async function driveDevInteractions(startUrl: string, user: string, issuer: string, isDone: (location: string) => boolean = isCallback): Promise<string> {
  const jar = new Map<string, string>();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const keep = (response: Response) => {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1));
    }
  };
  let next: { url: string; method: 'GET' | 'POST'; body?: URLSearchParams } = { url: startUrl, method: 'GET' };
  for (let step = 0; step < 20; step++) {
    const response = await fetch(next.url, {
      method: next.method,
      redirect: 'manual',
      headers: { cookie: cookieHeader(), ...(next.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body: next.body,
    });
    keep(response);
    if (response.status >= 300 && response.status < 400) {
      const location = new URL(response.headers.get('location')!, next.url).href;
      if (isDone(location)) return location;
      next = { url: location, method: 'GET' };
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) throw new Error(`IdP answered ${response.status}: ${html.replace(/<style[\s\S]*?<\/style>/, "").replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").slice(0, 400)}`);
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
    if (!form) throw new Error(`IdP page without a form: ${html.replace(/<style[\s\S]*?<\/style>/, "").replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").slice(0, 400)}`);
    const body = new URLSearchParams();
    for (const input of form[2]!.matchAll(/<input[^>]*>/g)) {
      const name = /name="([^"]+)"/.exec(input[0])?.[1];
      const value = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
      if (name) body.set(name, value);
    }
    if (body.has('login')) {
      body.set('login', user);
      body.set('password', 'dev');
    }
    next = { url: new URL(form[1]!, issuer).href, method: 'POST', body };
  }
  throw new Error('IdP login did not finish within 20 steps');
}
