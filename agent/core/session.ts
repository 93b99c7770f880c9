// The user's session with the IdP: OIDC authorization code + PKCE in the system browser, with a loopback redirect
// (RFC 8252) on 127.0.0.1 and an ephemeral port. The refresh token lives in the OS keychain (SecretStore), the
// access token in memory only. Refreshes are single-flight: the IdP rotates refresh tokens and revokes the whole
// family when an old one is reused, so two concurrent refreshes would sign the user out.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import * as oidc from 'openid-client';
import type { SecretStore } from './secrets/secret-store';
import type { Clock } from '../../shared/domain/clock';
import { systemClock } from '../../shared/domain/clock';
import { AgentError, isAgentError } from './errors';
import { DEFAULT_SCOPES } from '../../shared/contract/agent';

/**
 * The keychain account of a sign-in's refresh token: one per issuer, client and audience, so a token from one
 * sign-in service is never sent to another after Settings change (and switching back finds its own again).
 */
export function refreshTokenAccount(o: { issuer: string; clientId: string; audience: string }): string {
  return `session:refresh-token:${createHash('sha256').update(`${o.issuer}\n${o.clientId}\n${o.audience}`).digest('hex').slice(0, 24)}`;
}

export interface SessionUser {
  sub: string;
  email?: string;
  name?: string;
  groups: string[];
}

export type SessionStatus =
  /** endSessionUrl: where to end the sign-in service's own session too (RP-initiated logout), after a sign-out. */
  | { status: 'signed_out'; message?: string; endSessionUrl?: string }
  | { status: 'signing_in'; authorizationUrl?: string }
  | { status: 'signed_in'; user: SessionUser };

export interface SessionOptions {
  issuer: string;
  clientId: string;
  /** The API's resource indicator: access tokens are issued for this audience. */
  audience: string;
  /** Scopes asked for (space-separated); default: openid offline_access email profile groups. */
  scopes?: string;
  /** How the audience is asked for (see AgentSettings.audienceParameter); default RFC 8707 `resource`. */
  audienceParameter?: 'resource' | 'audience' | 'none';
  secrets: SecretStore;
  /** Open the system browser (the shell's shell.openExternal, `open`/`xdg-open`, or a test driver). */
  openUrl: (url: string) => void | Promise<void>;
  clock?: Clock;
  /** How long to wait for the browser to come back. */
  loginTimeoutMs?: number;
  /** Refresh this long before the access token expires. */
  refreshSkewMs?: number;
  /** Plain http is allowed only for loopback issuers (the dev IdP) unless set. */
  allowInsecureRequests?: boolean;
  /** Network timeout for IdP calls, seconds. */
  timeoutSeconds?: number;
  onChange?: (status: SessionStatus) => void;
  /** Suggested account for the IdP's sign-in page (OIDC login_hint), e.g. the demo user an agent belongs to. */
  loginHint?: string;
}

function isLoopback(url: URL): boolean {
  return ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

function page(title: string, text: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:16px system-ui,sans-serif;display:grid;place-items:center;height:90vh;color:#1d1d1f}main{text-align:center}</style>
</head><body><main><h1>${title}</h1><p>${text}</p></main></body></html>`;
}

function userFrom(claims: Record<string, unknown> | undefined): SessionUser | undefined {
  if (!claims || typeof claims.sub !== 'string') return undefined;
  return {
    sub: claims.sub,
    ...(typeof claims.email === 'string' ? { email: claims.email } : {}),
    ...(typeof claims.name === 'string' ? { name: claims.name } : {}),
    groups: Array.isArray(claims.groups) ? claims.groups.filter((g): g is string => typeof g === 'string') : [],
  };
}

/** The payload of a JWT, unverified: only for display when no ID token came back (the server verifies tokens). */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  try {
    const payload = token.split('.')[1];
    return payload ? JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) : undefined;
  } catch {
    return undefined;
  }
}

/** "1 h 37 min" / "12 min" / "45 s": how far off a clock is, in words. */
function howFar(seconds: number): string {
  const s = Math.round(Math.abs(seconds));
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : `${m} min`;
}

function idpError(cause: unknown, doing: string): AgentError {
  if (isAgentError(cause)) return cause;
  const err = cause as { code?: string; error?: string; error_description?: string; message?: string; cause?: unknown };
  // A token dated too far from this computer's clock (openid-client checks exp, iat, nbf): not the network.
  if (err?.code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED') {
    const detail = err.cause as { now?: unknown; claims?: { iat?: unknown } } | undefined;
    const off = typeof detail?.now === 'number' && typeof detail.claims?.iat === 'number' ? detail.now - detail.claims.iat : undefined;
    const how = off === undefined ? 'is off' : `is about ${howFar(off)} ${off > 0 ? 'ahead of' : 'behind'} the sign-in service's`;
    // Not login_failed: that would drop the refresh token, and the session is not what is wrong.
    return new AgentError('idp_unreachable', `This computer's clock ${how}, so the sign-in service's answer could not be checked. Set the date and time right (automatic), then try again.`, cause);
  }
  if (err?.error) return new AgentError('login_failed', `The sign-in service refused to ${doing}: ${err.error_description ?? err.error}.`, cause);
  return new AgentError('idp_unreachable', `The sign-in service cannot be reached (while trying to ${doing}). Check your network and try again.`, cause);
}

export class Session {
  private readonly options: SessionOptions;
  private readonly clock: Clock;
  /** When the sign-in service's time was last read (the configuration made): wall and monotonic, ms. */
  private configuredAt?: { wall: number; mono: number };
  private config?: oidc.Configuration;
  private access?: { token: string; expiresAtMono: number };
  private refreshing?: Promise<string>;
  private pendingLogin?: AbortController;
  private current: SessionStatus = { status: 'signed_out' };

  private readonly refreshAccount: string;
  /** The last ID token (memory only): the hint that lets the sign-in service end its own session at sign-out. */
  private idToken?: string;

  constructor(options: SessionOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.refreshAccount = refreshTokenAccount(options);
  }

  get status(): SessionStatus {
    return this.current;
  }

  private set(status: SessionStatus): void {
    this.current = status;
    this.options.onChange?.(status);
  }

  /** The audience as this IdP wants to be asked for it, in the authorization and refresh requests. */
  private audienceParams(): Record<string, string> {
    switch (this.options.audienceParameter ?? 'resource') {
      case 'resource': return { resource: this.options.audience };
      case 'audience': return { audience: this.options.audience };
      default: return {};
    }
  }

  private async configuration(): Promise<oidc.Configuration> {
    // The wall clock moved since the sign-in service's time was read (a user or NTP set it, a laptop woke): read it
    // again before tokens are checked — openid-client fixes the skew when the configuration is made, and a refresh
    // checked against a stale one is lost (the service has rotated the refresh token by then).
    if (this.config && this.configuredAt) {
      const drift = this.clock.now() - (this.configuredAt.wall + this.clock.monotonic() - this.configuredAt.mono);
      if (Math.abs(drift) > 30_000) this.config = undefined;
    }
    if (this.config) return this.config;
    const issuer = new URL(this.options.issuer);
    const insecure = this.options.allowInsecureRequests ?? isLoopback(issuer);
    // This computer's clock may be off (a laptop that slept across a time change, a wrong time zone set by hand):
    // tokens are checked against the sign-in service's own time, read from the Date of its discovery answer, so a
    // clock an hour off still signs in. The metadata object is read once discovery has answered.
    const metadata: Partial<oidc.ClientMetadata> = {};
    const measuringFetch: oidc.CustomFetch = async (url, options) => {
      const response = await fetch(url, options as RequestInit);
      const date = Date.parse(response.headers.get('date') ?? '');
      // Against Date.now(), not the injected clock: it is the time openid-client's checks add the skew to.
      const skew = Number.isNaN(date) ? 0 : Math.round((date - Date.now()) / 1000);
      if (Math.abs(skew) > 30) metadata[oidc.clockSkew] = skew;
      return response;
    };
    try {
      this.config = await oidc.discovery(issuer, this.options.clientId, metadata, oidc.None(), {
        execute: insecure ? [oidc.allowInsecureRequests] : [],
        timeout: this.options.timeoutSeconds ?? 10,
        [oidc.customFetch]: measuringFetch,
      });
      this.configuredAt = { wall: this.clock.now(), mono: this.clock.monotonic() };
    } catch (cause) {
      throw new AgentError('idp_unreachable', `The sign-in service at ${issuer.origin} cannot be reached. Check your network and try again.`, cause);
    }
    return this.config;
  }

  private async accept(tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers): Promise<SessionUser> {
    // Store the (rotated) refresh token before anything else uses the new tokens: losing it means signing in again.
    if (tokens.refresh_token) await this.options.secrets.set(this.refreshAccount, tokens.refresh_token);
    if (tokens.id_token) this.idToken = tokens.id_token;
    const lifetimeMs = (tokens.expiresIn() ?? 300) * 1000;
    this.access = { token: tokens.access_token, expiresAtMono: this.clock.monotonic() + lifetimeMs };
    const previous = this.current.status === 'signed_in' ? this.current.user : undefined;
    const user = userFrom(tokens.claims() as Record<string, unknown> | undefined) ?? userFrom(jwtClaims(tokens.access_token)) ?? previous;
    if (!user) throw new AgentError('login_failed', 'The sign-in service did not say who you are.');
    this.set({ status: 'signed_in', user });
    return user;
  }

  /** Sign in with the refresh token from the keychain, if there is one. false when a browser sign-in is needed. */
  async restore(): Promise<boolean> {
    if (!(await this.options.secrets.get(this.refreshAccount))) return false;
    try {
      await this.refresh();
      return true;
    } catch (error) {
      if (isAgentError(error, 'session_expired')) return false;
      throw error;
    }
  }

  /** Browser sign-in. Resolves when the IdP redirected back and the code was exchanged. */
  async signIn(): Promise<SessionUser> {
    this.pendingLogin?.abort();
    const abort = new AbortController();
    this.pendingLogin = abort;
    const before = this.current;
    this.set({ status: 'signing_in' });
    try {
      const config = await this.configuration();
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const { port, callback, close } = await this.loopback(state, abort.signal);
      try {
        const redirectUri = `http://127.0.0.1:${port}/callback`;
        const url = oidc.buildAuthorizationUrl(config, {
          redirect_uri: redirectUri,
          scope: this.options.scopes ?? DEFAULT_SCOPES,
          code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
          state,
          nonce,
          prompt: 'consent',
          ...this.audienceParams(),
          ...(this.options.loginHint ? { login_hint: this.options.loginHint } : {}),
        });
        // Shown by the UI too, for machines where no browser opens by itself (the web host on a headless box).
        this.set({ status: 'signing_in', authorizationUrl: url.href });
        // Not awaited on its own: a browser opener may only return once the page is done (tests drive the IdP).
        const opening = Promise.resolve().then(() => this.options.openUrl(url.href)).then(
          () => new Promise<never>(() => {}),
          (cause) => { throw new AgentError('login_failed', 'The browser could not be opened for sign-in.', cause); },
        );
        const { url: returned, respond } = await Promise.race([callback, opening]);
        try {
          const tokens = await oidc.authorizationCodeGrant(config, returned, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
          const user = await this.accept(tokens);
          respond(200, page('You are signed in to Stint', 'You can close this tab and go back to Stint.'));
          return user;
        } catch (cause) {
          const error = idpError(cause, 'complete the sign-in');
          respond(400, page('Sign-in did not complete', `${error.message} Go back to Stint and try again.`));
          throw error;
        }
      } finally {
        close();
      }
    } catch (error) {
      if (this.current.status === 'signing_in') this.set(before.status === 'signed_in' ? before : { status: 'signed_out', ...(isAgentError(error) ? { message: error.message } : {}) });
      throw error;
    } finally {
      if (this.pendingLogin === abort) this.pendingLogin = undefined;
    }
  }

  /** The user closed the sign-in window in the app: stop waiting for the browser. */
  cancelSignIn(): void {
    this.pendingLogin?.abort();
  }

  /**
   * The loopback redirect listener. Only a GET /callback carrying our `state` counts: anything else (another local
   * process guessing the port, a browser prefetch) is answered 400 and ignored.
   */
  private async loopback(state: string, signal: AbortSignal): Promise<{
    port: number;
    callback: Promise<{ url: URL; respond: (status: number, html: string) => void }>;
    close: () => void;
  }> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as { port: number }).port;
    const timeoutMs = this.options.loginTimeoutMs ?? 5 * 60_000;
    let timer: ReturnType<Clock['setTimer']> | undefined;
    const callback = new Promise<{ url: URL; respond: (status: number, html: string) => void }>((resolve, reject) => {
      const onAbort = () => reject(new AgentError('login_cancelled', 'Sign-in was cancelled.'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      timer = this.clock.setTimer(() => reject(new AgentError('login_timeout', 'Sign-in timed out waiting for the browser. Try again.')), timeoutMs);
      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        const send = (status: number, html: string) => {
          res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
          res.end(html);
        };
        const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
        if (req.method !== 'GET' || url.pathname !== '/callback' || url.searchParams.get('state') !== state) {
          return send(400, page('Not a Stint sign-in', 'This address is used by Stint while you sign in.'));
        }
        const error = url.searchParams.get('error');
        if (error) {
          const cancelled = error === 'access_denied';
          send(200, page(cancelled ? 'Sign-in cancelled' : 'Sign-in failed', cancelled ? 'You can close this tab.' : `${url.searchParams.get('error_description') ?? error}. Go back to Stint and try again.`));
          return reject(cancelled
            ? new AgentError('login_cancelled', 'Sign-in was cancelled in the browser.')
            : new AgentError('login_failed', `The sign-in service reported: ${url.searchParams.get('error_description') ?? error}.`));
        }
        resolve({ url, respond: send });
      });
    });
    callback.catch(() => {});
    return {
      port,
      callback,
      close: () => {
        timer?.cancel();
        server.close();
        server.closeAllConnections();
      },
    };
  }

  /** A valid access token, refreshed first when it is (nearly) expired. Concurrent callers share one refresh. */
  async accessToken(): Promise<string> {
    const skew = this.options.refreshSkewMs ?? 30_000;
    if (this.access && this.clock.monotonic() < this.access.expiresAtMono - skew) return this.access.token;
    return this.refresh();
  }

  /** Refresh now (e.g. after the server answered 401). Single-flight. */
  refresh(): Promise<string> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<string> {
    const refreshToken = await this.options.secrets.get(this.refreshAccount);
    if (!refreshToken) {
      this.access = undefined;
      if (this.current.status !== 'signing_in') this.set({ status: 'signed_out' });
      throw new AgentError('not_signed_in', 'You are not signed in.');
    }
    const config = await this.configuration();
    let tokens;
    try {
      tokens = await oidc.refreshTokenGrant(config, refreshToken, this.audienceParams());
    } catch (cause) {
      const error = idpError(cause, 'refresh your session');
      if (error.code === 'login_failed') {
        // The IdP no longer honours this refresh token (expired, revoked, reused): sign in again.
        await this.options.secrets.delete(this.refreshAccount);
        this.access = undefined;
        const expired = new AgentError('session_expired', 'Your session has ended — sign in again.', cause);
        this.set({ status: 'signed_out', message: expired.message });
        throw expired;
      }
      throw error;
    }
    await this.accept(tokens);
    return this.access!.token;
  }

  /** Revoke at the IdP (best effort: a dead IdP must not keep secrets around), then forget every token. */
  async signOut(): Promise<{ revoked: boolean }> {
    this.pendingLogin?.abort();
    const refreshToken = await this.options.secrets.get(this.refreshAccount).catch(() => undefined);
    const accessToken = this.access?.token;
    this.access = undefined;
    const idToken = this.idToken;
    this.idToken = undefined;
    let revoked = false;
    let endSessionUrl: string | undefined;
    try {
      const config = await this.configuration();
      if (config.serverMetadata().revocation_endpoint) {
        if (refreshToken) await oidc.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
        if (accessToken) await oidc.tokenRevocation(config, accessToken, { token_type_hint: 'access_token' }).catch(() => {});
        revoked = true;
      }
      // Stint's own tokens are gone; the sign-in service's session (its cookie in the browser) is the user's to end:
      // offered as a link (RP-initiated logout), not opened behind their back.
      if (config.serverMetadata().end_session_endpoint) {
        endSessionUrl = oidc.buildEndSessionUrl(config, idToken ? { id_token_hint: idToken } : { client_id: this.options.clientId }).href;
      }
    } catch {
      revoked = false;
    }
    await this.options.secrets.delete(this.refreshAccount);
    this.set({ status: 'signed_out', ...(endSessionUrl ? { endSessionUrl } : {}) });
    return { revoked };
  }
}
