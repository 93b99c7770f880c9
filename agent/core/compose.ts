// Composition root for hosts (Electron main, web host, CLI): the real effects, chosen in one place. Hosts pass what
// only they can provide (settings store, how to open a browser, clipboard, terminal launcher).
import { join } from 'node:path';
import { Agent, type Launcher, type SessionLike } from './agent';
import { ClientFiles } from './client-files';
import type { Clipboard } from './clipboard';
import type { Clock } from '../../shared/domain/clock';
import { systemClock } from '../../shared/domain/clock';
import { AgentError } from './errors';
import { KeytarSecretStore } from './secrets/keytar-store';
import type { SecretStore } from './secrets/secret-store';
import { MemorySecretStore } from './secrets/memory-store';
import { Session, type SessionStatus, type SessionUser } from './session';
import { ServiceSession, type ServiceCredentials } from './service-session';
import { refusal } from './api-client';
import { Me } from '../../shared/contract/http';
import type { SettingsStore } from './settings';
import type { AgentSettings } from '../../shared/contract/agent';

/** The tray app's keychain namespace. Every other agent profile (CLI, each demo user) has its own, because an agent
 * wipes on start every grant item in its namespace that it does not hold: a shared one would erase another
 * running profile's secrets. */
export const KEYCHAIN_SERVICE = 'stint';

/** The keychain service of a named agent profile: `stint` for the tray app, `stint-<profile>` for the others. */
export function keychainServiceFor(profile?: string): string {
  if (!profile) return KEYCHAIN_SERVICE;
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(profile)) throw new AgentError('invalid_input', `Profile names are lower-case letters, digits and dashes (got "${profile}").`);
  return `${KEYCHAIN_SERVICE}-${profile}`;
}

export interface CreateAgentOptions {
  settings: SettingsStore;
  /** Open the system browser for sign-in. */
  openUrl: (url: string) => void | Promise<void>;
  clipboard?: Clipboard;
  launcher?: Launcher;
  /** Default: the OS keychain through keytar, in this profile's namespace (see keychainServiceFor). */
  secrets?: SecretStore;
  /** The agent profile: tray app (none), `cli`, `demo-alice`, … — each keeps its secrets apart. */
  profile?: string;
  /** The agent's own data folder: per-grant client files (the psql passfile) go in its `grants/` folder. */
  dataDir?: string;
  /** Where the admin console saves audit exports (default: ~/Downloads). */
  exportDir?: string;
  /** Pre-filled account on the IdP's sign-in page (OIDC login_hint). */
  loginHint?: string;
  clock?: Clock;
  fetch?: typeof fetch;
}

/** What a sign-in is made of: a change to any of these is another session. */
type SignInSettings = Pick<AgentSettings, 'clientId' | 'scopes' | 'audienceParameter'> & { issuer: string; audience: string };

/**
 * The OIDC session, built from the settings when first needed (and again when the sign-in service changes), so the
 * agent can start before the user has configured a server.
 */
export class SettingsSession implements SessionLike {
  private inner?: { key: string; session: Session };

  constructor(private readonly settings: SettingsStore, private readonly make: (s: SignInSettings) => Session) {}

  private current(required: boolean): Session | undefined {
    const s = this.settings.get();
    if (!s.issuer || !s.audience) {
      if (required) throw new AgentError('invalid_input', 'Set the sign-in service (issuer) and API audience in Settings first.');
      return undefined;
    }
    const signIn: SignInSettings = { issuer: s.issuer, clientId: s.clientId, audience: s.audience, scopes: s.scopes, audienceParameter: s.audienceParameter };
    const key = JSON.stringify(signIn);
    if (this.inner?.key !== key) this.inner = { key, session: this.make(signIn) };
    return this.inner.session;
  }

  get status(): SessionStatus {
    return this.inner?.session.status ?? { status: 'signed_out' };
  }
  async restore(): Promise<boolean> { return (await this.current(false)?.restore()) ?? false; }
  signIn(): Promise<SessionUser> { return this.current(true)!.signIn(); }
  cancelSignIn(): void { this.inner?.session.cancelSignIn(); }
  accessToken(): Promise<string> { return this.current(true)!.accessToken(); }
  refresh(): Promise<string> { return this.current(true)!.refresh(); }
  async signOut(): Promise<{ revoked: boolean }> { return (await this.inner?.session.signOut()) ?? { revoked: false }; }
}

export function createAgent(options: CreateAgentOptions): Agent {
  const clock = options.clock ?? systemClock;
  const secrets = options.secrets ?? new KeytarSecretStore(keychainServiceFor(options.profile));
  // The session reports its own changes (e.g. the sign-in page URL once built) to the agent's state.
  const built: { agent?: Agent } = {};
  const session = new SettingsSession(options.settings, (s) => new Session({ ...s, secrets, openUrl: options.openUrl, clock, onChange: () => built.agent?.sessionChanged(), ...(options.loginHint ? { loginHint: options.loginHint } : {}) }));
  const agent = new Agent({
    settings: options.settings,
    secrets,
    session,
    clock,
    ...(options.clipboard ? { clipboard: options.clipboard } : {}),
    ...(options.launcher ? { launcher: options.launcher } : {}),
    ...(options.dataDir ? { clientFiles: new ClientFiles(join(options.dataDir, 'grants')) } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.exportDir ? { exportDir: options.exportDir } : {}),
  });
  built.agent = agent;
  return agent;
}

export interface CreateServiceAgentOptions {
  /** In memory: a headless run writes no settings file. serverUrl must be set. */
  settings: SettingsStore;
  credentials: ServiceCredentials;
  /**
   * A folder private to this run for the grant's client files (the MariaDB option file, the SSH key and ssh_config
   * that `connect --exec` names in STINT_MYCNF / STINT_SSH_CONFIG): without it an SSH grant cannot be used at all.
   */
  clientFilesDir?: string;
  clock?: Clock;
  fetch?: typeof fetch;
}

/**
 * The agent of a machine client (CI job, bot): the service's session (client credentials or a workload token) and
 * secrets in memory only — no keychain. On disk only the client files of a grant while its tunnel is open, in the
 * run's own folder when one is given. Everything else is the same agent as a person's.
 */
export function createServiceAgent(options: CreateServiceAgentOptions): Agent {
  const doFetch = options.fetch ?? fetch;
  const built: { agent?: Agent } = {};
  // Who the server says this token is: the service subject its requests and grants carry.
  const whoAmI = async (token: string): Promise<SessionUser> => {
    const serverUrl = options.settings.get().serverUrl;
    if (!serverUrl) throw new AgentError('invalid_input', 'Set the Stint server URL first (STINT_SERVER_URL or --server).');
    let response: Response;
    try {
      response = await doFetch(new URL('v1/me', serverUrl.endsWith('/') ? serverUrl : `${serverUrl}/`), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    } catch (cause) {
      throw new AgentError('server_unreachable', `The Stint server at ${serverUrl} cannot be reached.`, cause);
    }
    const body: unknown = await response.json().catch(() => undefined);
    if (!response.ok) throw refusal(response.status, body);
    const me = Me.parse(body);
    return { sub: me.sub, ...(me.name ? { name: me.name } : {}), groups: me.groups };
  };
  const session = new ServiceSession({ credentials: options.credentials, whoAmI, ...(options.clock ? { clock: options.clock } : {}), onChange: () => built.agent?.sessionChanged() });
  const agent = new Agent({
    settings: options.settings,
    secrets: new MemorySecretStore(),
    session,
    ...(options.clientFilesDir ? { clientFiles: new ClientFiles(options.clientFilesDir) } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  built.agent = agent;
  return agent;
}
