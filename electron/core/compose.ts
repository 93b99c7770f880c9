// Composition root for hosts (Electron main, web host, CLI): the real effects, chosen in one place. Hosts pass what
// only they can provide (settings store, how to open a browser, clipboard, terminal launcher).
import { Agent, type Launcher, type SessionLike } from './agent';
import type { Clipboard } from './clipboard';
import type { Clock } from './clock';
import { systemClock } from './clock';
import { AgentError } from './errors';
import { KeytarSecretStore } from './secrets/keytar-store';
import type { SecretStore } from './secrets/secret-store';
import { Session, type SessionStatus, type SessionUser } from './session';
import type { SettingsStore } from './settings';

export const KEYCHAIN_SERVICE = 'stint';

export interface CreateAgentOptions {
  settings: SettingsStore;
  /** Open the system browser for sign-in. */
  openUrl: (url: string) => void | Promise<void>;
  clipboard?: Clipboard;
  launcher?: Launcher;
  /** Default: the OS keychain through keytar, service "stint". */
  secrets?: SecretStore;
  clock?: Clock;
  fetch?: typeof fetch;
}

/**
 * The OIDC session, built from the settings when first needed (and again when the sign-in service changes), so the
 * agent can start before the user has configured a server.
 */
export class SettingsSession implements SessionLike {
  private inner?: { key: string; session: Session };

  constructor(private readonly settings: SettingsStore, private readonly make: (s: { issuer: string; clientId: string; audience: string }) => Session) {}

  private current(required: boolean): Session | undefined {
    const s = this.settings.get();
    if (!s.issuer || !s.audience) {
      if (required) throw new AgentError('invalid_input', 'Set the sign-in service (issuer) and API audience in Settings first.');
      return undefined;
    }
    const key = `${s.issuer}\n${s.clientId}\n${s.audience}`;
    if (this.inner?.key !== key) this.inner = { key, session: this.make({ issuer: s.issuer, clientId: s.clientId, audience: s.audience }) };
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
  const secrets = options.secrets ?? new KeytarSecretStore(KEYCHAIN_SERVICE);
  // The session reports its own changes (e.g. the sign-in page URL once built) to the agent's state.
  const built: { agent?: Agent } = {};
  const session = new SettingsSession(options.settings, (s) => new Session({ ...s, secrets, openUrl: options.openUrl, clock, onChange: () => built.agent?.sessionChanged() }));
  const agent = new Agent({
    settings: options.settings,
    secrets,
    session,
    clock,
    ...(options.clipboard ? { clipboard: options.clipboard } : {}),
    ...(options.launcher ? { launcher: options.launcher } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  built.agent = agent;
  return agent;
}
