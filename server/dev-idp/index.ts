// DEV ONLY. A local OpenID provider (oidc-provider) with demo users, for the embedded demo and the test harness.
// Any password is accepted on its login page: it must never face a network. The demo refuses to start it unless
// the server config says `identity.dev: true`; production deployments point `identity.issuer` at a real IdP.
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { generateKeyPair, exportJWK } from 'jose';
import Provider, { interactionPolicy } from 'oidc-provider';

export interface DevUser {
  sub: string;
  email: string;
  name: string;
  groups: string[];
}

export const DEMO_USERS: DevUser[] = [
  { sub: 'alice', email: 'alice@example.com', name: 'Alice (engineer)', groups: ['engineers'] },
  { sub: 'erin', email: 'erin@example.com', name: 'Erin (contractor)', groups: ['contractors'] },
  { sub: 'bob', email: 'bob@example.com', name: 'Bob (DBA)', groups: ['engineers', 'approvers', 'dba'] },
  { sub: 'dave', email: 'dave@example.com', name: 'Dave (SRE lead)', groups: ['engineers', 'approvers', 'sre-leads', 'sre-oncall'] },
  { sub: 'carol', email: 'carol@example.com', name: 'Carol (admin)', groups: ['admins', 'approvers', 'dba'] },
];

export const DEV_CLIENT_ID = 'stint-agent';

/** A machine client (CI job, bot): a confidential client that gets API tokens by client credentials. */
export interface DevServiceClient { clientId: string; clientSecret: string }

/** The demo's CI client. Its secret is as public as the demo users' "any password": dev only. */
export const DEV_CI_CLIENT: DevServiceClient = { clientId: 'stint-ci', clientSecret: 'stint-ci-dev-secret' };
export const DEV_REDIRECT_URI = 'http://127.0.0.1/callback';
/** A resource server's client for RFC 7662 introspection of opaque access tokens (config identity.introspection). Dev only. */
export const DEV_INTROSPECTION_CLIENT: DevServiceClient = { clientId: 'stint-introspect', clientSecret: 'stint-introspect-dev-secret' };
/**
 * The grant server's approve page (config `approvalPage.clientId`): a public client with PKCE whose loopback redirect
 * matches any port, so the demo's and the tests' servers sign in wherever they listen.
 */
export const DEV_APPROVE_CLIENT_ID = 'stint-approve';
export const DEV_APPROVE_REDIRECT_URIS = ['http://localhost/approve/auth/callback', 'http://127.0.0.1/approve/auth/callback'];

export interface DevIdpOptions {
  port: number;
  host?: string;
  /** The API audience (resource indicator) whose access tokens are JWTs. */
  audience: string;
  users?: DevUser[];
  accessTokenTtlSeconds?: number;
  /** Extra redirect URIs for other clients (e.g. a web client); loopback ports are ignored for native clients. */
  redirectUris?: string[];
  /** Confidential clients for the client credentials grant (default: DEV_CI_CLIENT). */
  serviceClients?: DevServiceClient[];
  /** A second API audience whose access tokens are opaque (not JWTs), as some IdPs issue: checked by introspection. */
  opaqueAudience?: string;
}

export interface DevIdp {
  issuer: string;
  clientId: string;
  users: DevUser[];
  close: () => Promise<void>;
}

export async function startDevIdp(options: DevIdpOptions): Promise<DevIdp> {
  const host = options.host ?? 'localhost';
  const issuer = `http://${host}:${options.port}`;
  const users = options.users ?? DEMO_USERS;
  const byId = new Map(users.map((u) => [u.sub, u]));
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'dev-1', alg: 'ES256', use: 'sig' };
  const ttl = options.accessTokenTtlSeconds ?? 600;

  // The dev IdP asks which demo user you are at every sign-in, even with a session cookie from an earlier one: one
  // browser can then sign in alice's agent and bob's agent side by side (a real IdP would need a second profile).
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.add(new interactionPolicy.Check('dev_pick_user', 'the dev IdP asks who you are at every sign-in',
    (ctx: any) => (ctx.oidc.result?.login ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT)));

  const provider = new Provider(issuer, {
    interactions: { policy },
    clients: [{
      client_id: DEV_CLIENT_ID,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: [DEV_REDIRECT_URI, ...(options.redirectUris ?? [])],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
    }, {
      client_id: DEV_APPROVE_CLIENT_ID,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: DEV_APPROVE_REDIRECT_URIS,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
    }, ...(options.serviceClients ?? [DEV_CI_CLIENT]).map((c) => ({
      // A machine client: no browser, no user; its tokens carry its client id as subject (what identity.services maps).
      client_id: c.clientId,
      client_secret: c.clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      id_token_signed_response_alg: 'ES256',
    })), {
      // What a resource server (the grant server) introspects opaque tokens as: no grant of its own.
      client_id: DEV_INTROSPECTION_CLIENT.clientId,
      client_secret: DEV_INTROSPECTION_CLIENT.clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [jwk as any] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    claims: { openid: ['sub'], email: ['email'], profile: ['name'], groups: ['groups'] },
    async findAccount(_ctx: unknown, id: string) {
      const user = byId.get(id);
      if (!user) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, email: user.email, name: user.name, groups: user.groups }) };
    },
    async extraTokenClaims(ctx: any, token: any) {
      const user = token.accountId ? byId.get(token.accountId) : undefined;
      // auth_time as Okta and Keycloak put it in access tokens: when the user signed in (kept across refreshes), so the
      // server can ask for a recent sign-in (stepup.firstFactorWindow).
      const authTime: unknown = ctx?.oidc?.entities?.AuthorizationCode?.authTime ?? ctx?.oidc?.entities?.RefreshToken?.authTime;
      return user ? { groups: user.groups, email: user.email, name: user.name, ...(typeof authTime === 'number' ? { auth_time: authTime } : {}) } : {};
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      // Only the resource server's client may ask what a token is worth.
      introspection: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientId: string }) => client.clientId === DEV_INTROSPECTION_CLIENT.clientId },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => options.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => (options.opaqueAudience && resource === options.opaqueAudience
          ? { audience: options.opaqueAudience, accessTokenFormat: 'opaque', scope: 'openid offline_access email profile groups', accessTokenTTL: ttl }
          : { audience: options.audience, accessTokenFormat: 'jwt', scope: 'openid offline_access email profile groups', accessTokenTTL: ttl, jwt: { sign: { alg: 'ES256' } } }),
      },
    },
    renderError: async (ctx: any, out: any) => { ctx.type = 'html'; ctx.body = `<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1><p>${String(out.error)}: ${String(out.error_description ?? '')}</p>`; },
    ttl: { IdToken: 3600, AccessToken: ttl, ClientCredentials: ttl, RefreshToken: 30 * 24 * 3600, Session: 24 * 3600, Grant: 30 * 24 * 3600, Interaction: 3600 },
    issueRefreshToken: async (_ctx: unknown, client: any, code: any) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    loadExistingGrant: async (ctx: any) => {
      // Demo users consent once; the grant covers every scope the client asks for.
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      return undefined;
    },
  } as any);
  provider.on('server_error', (_ctx: unknown, error: Error) => console.error('[dev-idp] server_error', error));

  const server: Server = createServer(provider.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  return {
    issuer,
    clientId: DEV_CLIENT_ID,
    users,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
