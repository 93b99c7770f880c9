// The session of a machine client (a CI job, a bot): no browser, no person, no refresh token. It gets API access
// tokens by the OAuth 2.0 client credentials grant (RFC 6749 §4.4) at the IdP, or reads a workload identity token its
// platform hands it (a CI provider's ID token in a file), and asks the grant server who that makes it (/v1/me: the
// service subject, `service:<name>`, that requests and grants carry). It implements the agent's SessionLike like the
// person's OIDC session (session.ts), so everything above it is the same agent. The client secret lives in memory
// only; nothing is written anywhere.
import * as oidc from 'openid-client';
import type { Clock } from '../../shared/domain/clock';
import { systemClock } from '../../shared/domain/clock';
import type { SessionLike } from './agent';
import { AgentError } from './errors';
import type { SessionStatus, SessionUser } from './session';

/** How a service proves itself: its IdP client's credentials, or a token file its platform keeps fresh. */
export type ServiceCredentials =
  | { kind: 'client_credentials'; issuer: string; clientId: string; clientSecret: string; audience: string; audienceParameter?: 'resource' | 'audience' | 'none' }
  | { kind: 'token_file'; path: string; read: (path: string) => Promise<string> };

export interface ServiceSessionOptions {
  credentials: ServiceCredentials;
  /** Who the grant server says this token is (GET /v1/me). */
  whoAmI: (accessToken: string) => Promise<SessionUser>;
  clock?: Clock;
  /** Get a new token this long before the current one expires. */
  refreshSkewMs?: number;
  /** Plain http only for a loopback issuer (the dev IdP) unless set. */
  allowInsecureRequests?: boolean;
  onChange?: (status: SessionStatus) => void;
}

const isLoopback = (url: URL) => ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);

/** A JWT's `exp` (epoch ms), unverified: only to know when to fetch the next one (the server verifies tokens). */
function expiresAtMs(token: string): number | undefined {
  try {
    const exp = (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The IdP's own words when it answered and refused (openid-client: an OAuth error body, or a 401's WWW-Authenticate
 * challenge for a wrong secret), or undefined when it did not answer at all.
 */
function oauthRefusal(cause: unknown): string | undefined {
  const err = cause as { error?: string; error_description?: string; cause?: unknown };
  if (err?.error) return err.error_description ?? err.error;
  if (cause instanceof oidc.WWWAuthenticateChallengeError) {
    const params = (Array.isArray(err.cause) ? err.cause[0] : undefined) as { parameters?: { error?: string; error_description?: string } } | undefined;
    return params?.parameters?.error_description ?? params?.parameters?.error ?? 'the client was not accepted';
  }
  return undefined;
}

export class ServiceSession implements SessionLike {
  private readonly clock: Clock;
  private config?: oidc.Configuration;
  private access?: { token: string; expiresAtMono: number };
  private fetching?: Promise<string>;
  private current: SessionStatus = { status: 'signed_out' };

  constructor(private readonly options: ServiceSessionOptions) {
    this.clock = options.clock ?? systemClock;
  }

  get status(): SessionStatus {
    return this.current;
  }

  private set(status: SessionStatus): void {
    this.current = status;
    this.options.onChange?.(status);
  }

  /** A service is always ready to sign in: it has its credentials. */
  async restore(): Promise<boolean> {
    await this.signIn();
    return true;
  }

  async signIn(): Promise<SessionUser> {
    try {
      const user = await this.options.whoAmI(await this.refresh());
      this.set({ status: 'signed_in', user });
      return user;
    } catch (error) {
      this.access = undefined;
      this.set({ status: 'signed_out', ...(error instanceof AgentError ? { message: error.message } : {}) });
      throw error;
    }
  }

  cancelSignIn(): void {}

  async accessToken(): Promise<string> {
    const skew = this.options.refreshSkewMs ?? 30_000;
    if (this.access && this.clock.monotonic() < this.access.expiresAtMono - skew) return this.access.token;
    return this.refresh();
  }

  /** A new token now (single-flight): the IdP is asked again, or the token file read again. */
  refresh(): Promise<string> {
    this.fetching ??= this.obtain().finally(() => { this.fetching = undefined; });
    return this.fetching;
  }

  /** Forget the token; there is nothing to revoke (client credentials tokens are short-lived and not refreshable). */
  async signOut(): Promise<{ revoked: boolean }> {
    this.access = undefined;
    this.set({ status: 'signed_out' });
    return { revoked: false };
  }

  private async obtain(): Promise<string> {
    const { credentials } = this.options;
    let token: string;
    let lifetimeMs: number | undefined;
    if (credentials.kind === 'token_file') {
      try {
        token = (await credentials.read(credentials.path)).trim();
      } catch (cause) {
        throw new AgentError('login_failed', `The workload identity token cannot be read from ${credentials.path}.`, cause);
      }
      if (!token) throw new AgentError('login_failed', `The workload identity token file ${credentials.path} is empty.`);
      const exp = expiresAtMs(token);
      lifetimeMs = exp === undefined ? undefined : exp - this.clock.now();
    } else {
      const tokens = await this.clientCredentials(credentials).catch((cause: unknown) => {
        const refused = oauthRefusal(cause);
        if (refused) throw new AgentError('login_failed', `The sign-in service refused the client credentials of ${credentials.clientId}: ${refused}.`, cause);
        throw new AgentError('idp_unreachable', `The sign-in service at ${new URL(credentials.issuer).origin} cannot be reached.`, cause);
      });
      token = tokens.access_token;
      lifetimeMs = tokens.expiresIn() === undefined ? undefined : tokens.expiresIn()! * 1000;
    }
    this.access = { token, expiresAtMono: this.clock.monotonic() + (lifetimeMs ?? 300_000) };
    return token;
  }

  private async clientCredentials(c: Extract<ServiceCredentials, { kind: 'client_credentials' }>) {
    if (!this.config) {
      const issuer = new URL(c.issuer);
      const insecure = this.options.allowInsecureRequests ?? isLoopback(issuer);
      this.config = await oidc.discovery(issuer, c.clientId, undefined, oidc.ClientSecretBasic(c.clientSecret), { execute: insecure ? [oidc.allowInsecureRequests] : [], timeout: 10 });
    }
    const audience = c.audienceParameter ?? 'resource';
    return oidc.clientCredentialsGrant(this.config, audience === 'none' ? {} : { [audience]: c.audience });
  }
}
