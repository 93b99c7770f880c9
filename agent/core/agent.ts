// The agent: composes session, grant client, event stream, deadline scheduler, vault and tunnels into the AgentApi.
// Each responsibility is a unit of its own, and this class only wires them: the link with the grant server
// (server-link.ts), my requests and the approvals waiting for me (requests.ts), local access to grants — activation,
// tunnels, deadlines, ending (local-access.ts) —, the published state (published-state.ts) and the AgentApi
// handlers (agent-api.ts). Local access ends at the deadline whatever the server does.
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { AgentApiHandlers, AgentEvent, AgentState } from '../../shared/contract/agent';
import type { AgentCore } from './agent-core';
import { agentApiHandlers } from './agent-api';
import type { Clipboard } from './clipboard';
import { noClipboard } from './clipboard';
import type { ClientFiles } from './client-files';
import type { Clock } from '../../shared/domain/clock';
import { systemClock } from '../../shared/domain/clock';
import { DeadlineScheduler } from './deadlines';
import { Heartbeat } from './heartbeat';
import { LocalAccess } from './local-access';
import { Publisher } from './published-state';
import { Requests } from './requests';
import type { SecretStore } from './secrets/secret-store';
import { ServerLink } from './server-link';
import type { SessionStatus, SessionUser } from './session';
import type { SettingsStore } from './settings';
import type { Tunnel, TunnelOptions } from './tunnels';
import { Vault, type WipeReport } from './vault';

/** What the agent needs from the OIDC session (agent/core/session.ts implements it). */
export interface SessionLike {
  readonly status: SessionStatus;
  restore(): Promise<boolean>;
  signIn(): Promise<SessionUser>;
  cancelSignIn(): void;
  accessToken(): Promise<string>;
  refresh(): Promise<string>;
  signOut(): Promise<{ revoked: boolean }>;
}

export interface PsqlTarget { host: string; port: number; user: string; password: string; database: string; uri: string }
/** Opens a client in the user's terminal (per OS; provided by the host). */
export interface Launcher {
  openPsql(target: PsqlTarget): Promise<void>;
  /** Run a command line that needs no secret on it (a client reading the grant's option file) in a new terminal. */
  openCommand?(command: string): Promise<void>;
}

export interface AgentOptions {
  settings: SettingsStore;
  secrets: SecretStore;
  /** Built by the host from settings (issuer, client id, audience) with the host's openUrl. */
  session: SessionLike;
  clock?: Clock;
  clipboard?: Clipboard;
  launcher?: Launcher;
  /** Where per-grant client files (the psql passfile) go; without it the UI offers the URI only. */
  clientFiles?: ClientFiles;
  fetch?: typeof fetch;
  /** For tests and benchmarks: how tunnels are opened (default: ssh2 through the bastion). */
  openTunnel?: (options: TunnelOptions) => Promise<Tunnel>;
  eventStream?: { initialBackoffMs?: number; maxBackoffMs?: number };
  /** Where the admin console saves audit exports (default: ~/Downloads). */
  exportDir?: string;
  /** Called once local access to a grant is fully gone (tunnel closed, secrets wiped): for logs and benchmarks. */
  onEnded?: (ended: { grantId: string; reason: string; wipe: WipeReport }) => void;
}

export class Agent implements AgentCore {
  readonly api: AgentApiHandlers;
  private readonly options: AgentOptions;
  private readonly clock: Clock;
  private readonly vault: Vault;
  private readonly scheduler: DeadlineScheduler;
  private readonly access: LocalAccess;
  private readonly requests: Requests;
  private readonly link: ServerLink;
  private readonly published: Publisher;
  private readonly heartbeat: Heartbeat;

  constructor(options: AgentOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.vault = new Vault({ secrets: options.secrets, clipboard: options.clipboard ?? noClipboard });
    this.scheduler = new DeadlineScheduler({ clock: this.clock, onEvent: (e) => this.access.onDeadline(e) });
    this.access = new LocalAccess({
      clock: this.clock, vault: this.vault, scheduler: this.scheduler, settings: options.settings, server: () => this.link.api(),
      ...(options.clientFiles ? { clientFiles: options.clientFiles } : {}),
      ...(options.openTunnel ? { openTunnel: options.openTunnel } : {}),
      ...(options.onEnded ? { onEnded: options.onEnded } : {}),
      publish: () => this.publish(), problem: (error) => this.problem(error),
    });
    this.requests = new Requests({
      session: options.session, activation: this.access, publish: () => this.publish(), problem: (error) => this.problem(error),
    });
    this.link = new ServerLink({
      settings: options.settings, session: options.session, clock: this.clock,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.eventStream ? { eventStream: options.eventStream } : {}),
      serverTime: this.scheduler, requests: this.requests, grants: this.access,
      publish: () => this.publish(), problem: (error) => this.problem(error),
      announce: (notification) => this.published.announce(notification),
    });
    this.heartbeat = new Heartbeat({ clock: this.clock, held: () => this.vault.grantIds(), send: async (ids) => this.link.api().heartbeat(ids) });
    this.published = new Publisher({
      session: options.session, settings: options.settings, link: this.link, scheduler: this.scheduler, requests: this.requests, grants: this.access,
    }, this.clock);
    this.api = agentApiHandlers({
      session: options.session, settings: options.settings,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.launcher ? { launcher: options.launcher } : {}),
      link: this.link, requests: this.requests, access: this.access, vault: this.vault, published: this.published,
      exportDir: options.exportDir ?? join(homedir(), 'Downloads'), now: () => this.clock.now(),
    });
  }

  // ---------- lifecycle ----------

  /** On process start: wipe leftovers of a crashed run, sign in from the keychain if possible, load, listen. */
  async start(): Promise<void> {
    await this.vault.wipeLeftovers();
    await this.options.clientFiles?.wipeAll();
    try {
      if (await this.options.session.restore()) await this.link.online();
    } catch (error) {
      this.problem(error);
    }
    this.heartbeat.start();
    this.publish();
  }

  /** The machine woke up: deadlines first (access may have to end now), then catch up with the server. */
  resume(): void {
    this.scheduler.resume();
    this.link.reconnectNow();
  }

  clockChanged(): void {
    this.scheduler.clockChanged();
    // Every shell shows the published snapshot: without a new one the countdown kept the time from before the jump.
    this.publish();
  }

  subscribe(listener: (event: AgentEvent) => void): () => void {
    return this.published.subscribe(listener);
  }

  async dispose(): Promise<void> {
    this.link.dispose();
    this.heartbeat.stop();
    this.scheduler.stop();
    await this.access.endAll('quit');
    this.published.clear();
  }

  /** For hosts and tests: the current snapshot. */
  state(): AgentState {
    return this.published.state();
  }

  /** The session changed on its own (sign-in page opened, token refresh failed…): show it. */
  sessionChanged(): void {
    this.publish();
  }

  private publish(): void {
    this.published.publish();
  }

  private problem(error: unknown): void {
    this.published.problem(error);
  }
}
