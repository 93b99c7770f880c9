// The agent: composes session, grant client, event stream, deadline scheduler, vault and tunnels into the AgentApi.
// One observable snapshot (AgentState) is rebuilt on every change and published with the notifications that the
// change calls for. Local access ends at the deadline whatever the server does: the scheduler fires, the tunnel
// closes, the secrets are wiped — the server is told afterwards if it can be reached.
import type { AgentApiHandlers, AgentEvent, AgentInput, AgentOutput, AgentState } from '../../shared/contract/agent';
import { agentApi } from '../../shared/contract/agent';
import type { AgentCore } from './agent-core';
import type { Clipboard } from './clipboard';
import { noClipboard } from './clipboard';
import type { ClientFiles } from './client-files';
import type { Clock } from './clock';
import { systemClock } from './clock';
import { DeadlineScheduler } from './deadlines';
import { AgentError, isAgentError } from './errors';
import { LocalAccess } from './local-access';
import { Requests } from './requests';
import { ServerLink } from './server-link';
import { Publisher } from './published-state';
import type { SecretStore } from './secrets/secret-store';
import type { SessionStatus, SessionUser } from './session';
import type { SettingsStore } from './settings';
import { checkSignInSettings } from './settings-check';
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
/** Opens psql in the user's terminal (per OS; provided by the host). */
export interface Launcher {
  openPsql(target: PsqlTarget): Promise<void>;
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
    this.published = new Publisher({
      session: options.session, settings: options.settings, link: this.link, scheduler: this.scheduler, requests: this.requests, grants: this.access,
    }, this.clock);
    this.api = this.handlers();
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

  private signedIn(): void {
    if (this.options.session.status.status !== 'signed_in') throw new AgentError('not_signed_in', 'Sign in to Stint first.');
  }

  // ---------- AgentApi ----------

  private handlers(): AgentApiHandlers {
    const parse = <M extends keyof typeof agentApi>(method: M, input: AgentInput<M>) => {
      const parsed = agentApi[method].input.safeParse(input);
      if (!parsed.success) throw new AgentError('invalid_input', parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; '));
      return parsed.data as ReturnType<(typeof agentApi)[M]['input']['parse']>;
    };
    const ok = { ok: true as const };
    const h: { [M in keyof typeof agentApi]: (input: AgentInput<M>) => Promise<AgentOutput<M>> } = {
      getState: async () => this.state(),
      signIn: async () => {
        const pending = this.options.session.signIn();
        this.publish(); // show "signing in"
        try {
          await pending;
        } finally {
          this.publish();
        }
        await this.link.online();
        const s = this.state().session;
        if (s.status !== 'signed_in') throw new AgentError('login_failed', 'Sign-in did not complete.');
        return { user: s.user };
      },
      cancelSignIn: async () => {
        this.options.session.cancelSignIn();
        return ok;
      },
      signOut: async () => {
        this.link.stopStream();
        await this.access.endAll('sign-out');
        await this.vault.wipeAll();
        await this.options.session.signOut();
        this.access.clear();
        this.requests.clear();
        this.link.signedOut();
        this.publish();
        return ok;
      },
      refresh: async () => {
        this.signedIn();
        await this.link.reload();
        return this.state();
      },
      createRequest: async (input) => {
        this.signedIn();
        const { connect, ...body } = parse('createRequest', input);
        const { request, grant } = await this.link.api().createRequest(body);
        this.requests.put(request);
        if (grant) this.access.applyGrant(grant, false);
        this.publish();
        if (request.state === 'approved' && connect && !grant) {
          const connection = await this.access.activate(request.id);
          const activated = { ...request, grantId: connection.grantId };
          this.requests.put(activated);
          this.publish();
          return { request: activated, connection };
        }
        if (connect && (request.state === 'pending_approval' || request.state === 'pending_stepup')) this.requests.connectWhenApproved(request.id);
        return { request, ...(grant ? { grant } : {}) };
      },
      cancelRequest: async (input) => {
        const { requestId } = parse('cancelRequest', input);
        const { request } = await this.link.api().cancel(requestId);
        this.requests.cancelled(requestId);
        this.requests.put(request);
        this.publish();
        return { request };
      },
      submitStepUp: async (input) => {
        const { requestId, proof } = parse('submitStepUp', input);
        const { request } = await this.link.api().stepUp(requestId, proof);
        this.requests.applyRequest(request);
        this.publish();
        return { request };
      },
      approve: async (input) => {
        const { requestId, comment, stepUp } = parse('approve', input);
        const { request } = await this.link.api().approve(requestId, { ...(comment ? { comment } : {}), ...(stepUp ? { stepUp } : {}) });
        this.requests.approvedByMe(request);
        this.publish();
        return { request };
      },
      history: async (input) => this.link.api().audit(parse('history', input)),
      stepUpChallenge: async (input) => this.link.api().stepUpChallenge(parse('stepUpChallenge', input)),
      stepUpStatus: async () => this.link.api().stepUpStatus(),
      listCredentials: async () => this.link.api().listCredentials(),
      removeCredential: async (input) => {
        const { id, stepUp } = parse('removeCredential', input);
        await this.link.api().removeCredential(id, stepUp);
        return { ok: true as const };
      },
      registerPasskeyOptions: async (input) => this.link.api().registerPasskeyOptions(parse('registerPasskeyOptions', input)),
      registerPasskeyVerify: async (input) => this.link.api().registerPasskeyVerify(parse('registerPasskeyVerify', input)),
      enrollTotp: async (input) => this.link.api().enrollTotp(parse('enrollTotp', input)),
      confirmTotp: async (input) => this.link.api().confirmTotp(parse('confirmTotp', input)),
      deny: async (input) => {
        const { requestId, reason } = parse('deny', input);
        const { request } = await this.link.api().deny(requestId, reason);
        this.requests.approvalGone(request.id);
        this.publish();
        return { request };
      },
      connect: async (input) => {
        const { grantId } = parse('connect', input);
        return this.access.openFor(grantId);
      },
      connectionUri: async (input) => {
        const { grantId } = parse('connectionUri', input);
        const uri = this.vault.get(grantId)?.uri;
        if (!uri) throw new AgentError('not_found', 'There is no open connection for this access. Connect first.');
        return { uri };
      },
      revealPassword: async (input) => {
        const { grantId } = parse('revealPassword', input);
        const secrets = this.vault.get(grantId);
        if (!this.access.isActive(grantId) || !secrets) throw new AgentError('not_found', 'This access has ended: its password no longer works.');
        // Audited before it is shown: with no server to record it, the password stays hidden (psql needs no password).
        await this.link.api().recordPasswordReveal(grantId);
        return { password: secrets.dbPassword, user: secrets.dbUser, endsAt: new Date(this.access.localEndsAt(grantId)).toISOString() };
      },
      copyConnectionUri: async (input) => {
        const { grantId } = parse('copyConnectionUri', input);
        if (!(await this.vault.copyUri(grantId))) throw new AgentError('not_found', 'There is no open connection for this access. Connect first.');
        return ok;
      },
      openPsql: async (input) => {
        const { grantId } = parse('openPsql', input);
        const connection = await this.access.openFor(grantId);
        const secrets = this.vault.get(grantId);
        if (!secrets?.uri) throw new AgentError('not_found', 'There is no open connection for this access.');
        // Where no terminal can be opened, say exactly what to run instead.
        const instead = this.access.psql(grantId);
        const insteadText = instead ? ` Run this in a terminal instead: ${instead}` : ' Copy the connection URI instead.';
        if (!this.options.launcher) throw new AgentError('launcher_failed', `This Stint host cannot open a terminal.${insteadText}`);
        try {
          await this.options.launcher.openPsql({ host: connection.host, port: connection.port, user: connection.user, database: connection.database, password: secrets.dbPassword, uri: secrets.uri });
        } catch (error) {
          if (isAgentError(error) && error.code === 'launcher_failed' && instead) throw new AgentError('launcher_failed', `${error.message.replace(/ Copy the connection URI instead\.$/, '')}${insteadText}`, error);
          throw error;
        }
        return ok;
      },
      extend: async (input) => {
        const { grantId, durationSeconds, reason } = parse('extend', input);
        const out = await this.link.api().extend(grantId, { durationSeconds, ...(reason ? { reason } : {}) });
        this.access.applyGrant(out.grant, false);
        if (out.request) this.requests.put(out.request);
        this.publish();
        return { grant: out.grant, ...(out.request ? { request: out.request } : {}) };
      },
      release: async (input) => {
        const { grantId } = parse('release', input);
        await this.access.release(grantId);
        const grant = await this.link.api().release(grantId);
        this.access.serverSaid(grant);
        this.publish();
        return { grant };
      },
      getSettings: async () => this.options.settings.get(),
      updateSettings: async (input) => {
        const patch = parse('updateSettings', input);
        const before = this.options.settings.get();
        // A changed server URL, issuer, client ID or audience is checked (over the network) before anything is
        // saved; other fields never touch the network. A failed check saves nothing.
        await checkSignInSettings(before, patch, this.options.fetch ? { fetch: this.options.fetch } : {});
        const after = this.options.settings.update(patch);
        if (after.serverUrl !== before.serverUrl) {
          this.link.serverChanged();
        }
        return after;
      },
    };
    // A call that found the session gone (refresh token revoked or expired) changes what the UI must show.
    for (const [name, fn] of Object.entries(h) as Array<[string, (input: unknown) => Promise<unknown>]>) {
      (h as Record<string, (input: unknown) => Promise<unknown>>)[name] = async (input: unknown) => {
        try {
          return await fn(input);
        } catch (error) {
          if (isAgentError(error, 'session_expired') || isAgentError(error, 'not_signed_in')) this.publish();
          throw error;
        }
      };
    }
    return h as AgentApiHandlers;
  }
}
