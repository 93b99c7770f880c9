// The agent: composes session, grant client, event stream, deadline scheduler, vault and tunnels into the AgentApi.
// One observable snapshot (AgentState) is rebuilt on every change and published with the notifications that the
// change calls for. Local access ends at the deadline whatever the server does: the scheduler fires, the tunnel
// closes, the secrets are wiped — the server is told afterwards if it can be reached.
import type { AgentApiHandlers, AgentEvent, AgentInput, AgentOutput, AgentState } from '../../shared/contract/agent';
import { agentApi } from '../../shared/contract/agent';
import type { AccessRequest, Resource } from '../../shared/contract/http';
import type { ServerEventEnvelope } from '../../shared/contract/events';
import type { AgentCore } from './agent-core';
import { toAgentProblem } from './agent-core';
import { ApiClient } from './api-client';
import type { Clipboard } from './clipboard';
import { noClipboard } from './clipboard';
import type { ClientFiles } from './client-files';
import type { Clock } from './clock';
import { systemClock } from './clock';
import { DeadlineScheduler } from './deadlines';
import { AgentError, isAgentError } from './errors';
import { EventStream, type StreamStatus } from './event-stream';
import { LocalAccess } from './local-access';
import { Requests } from './requests';
import { notificationsFor } from './models';
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
  private readonly listeners = new Set<(event: AgentEvent) => void>();
  private readonly access: LocalAccess;
  private readonly requests: Requests;
  private client?: ApiClient;
  private stream?: EventStream;
  private version = 0;
  private snapshot?: AgentState;
  private resources: Resource[] = [];
  private approver = false;
  private admin = false;
  private serverStatus: StreamStatus = 'offline';
  private serverMessage?: string;
  private disposed = false;

  constructor(options: AgentOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.vault = new Vault({ secrets: options.secrets, clipboard: options.clipboard ?? noClipboard });
    this.scheduler = new DeadlineScheduler({ clock: this.clock, onEvent: (e) => this.access.onDeadline(e) });
    this.access = new LocalAccess({
      clock: this.clock, vault: this.vault, scheduler: this.scheduler, settings: options.settings, server: () => this.api_(),
      ...(options.clientFiles ? { clientFiles: options.clientFiles } : {}),
      ...(options.openTunnel ? { openTunnel: options.openTunnel } : {}),
      ...(options.onEnded ? { onEnded: options.onEnded } : {}),
      publish: () => this.publish(), problem: (error) => this.problem(error),
    });
    this.requests = new Requests({
      session: options.session, activation: this.access, publish: () => this.publish(), problem: (error) => this.problem(error),
    });
    this.api = this.handlers();
  }

  // ---------- lifecycle ----------

  /** On process start: wipe leftovers of a crashed run, sign in from the keychain if possible, load, listen. */
  async start(): Promise<void> {
    await this.vault.wipeLeftovers();
    await this.options.clientFiles?.wipeAll();
    try {
      if (await this.options.session.restore()) await this.online();
    } catch (error) {
      this.problem(error);
    }
    this.publish();
  }

  /** The machine woke up: deadlines first (access may have to end now), then catch up with the server. */
  resume(): void {
    this.scheduler.resume();
    this.stream?.reconnectNow();
  }

  clockChanged(): void {
    this.scheduler.clockChanged();
    // Every shell shows the published snapshot: without a new one the countdown kept the time from before the jump.
    this.publish();
  }

  subscribe(listener: (event: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    listener({ type: 'state', state: this.state() });
    return () => this.listeners.delete(listener);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.stream?.stop();
    this.scheduler.stop();
    await this.access.endAll('quit');
    this.listeners.clear();
  }

  /** For hosts and tests: the current snapshot. */
  state(): AgentState {
    this.snapshot ??= this.build();
    return this.snapshot;
  }

  // ---------- state ----------

  private build(): AgentState {
    const s = this.options.session.status;
    const settings = this.options.settings.get();
    const grants = this.access.views(this.resources);
    return {
      version: this.version,
      session: s.status === 'signed_in'
        ? { status: 'signed_in', user: { ...s.user, admin: this.admin, approver: this.approver } }
        : s.status === 'signing_in' ? { status: 'signing_in', ...(s.authorizationUrl ? { authorizationUrl: s.authorizationUrl } : {}) } : { status: 'signed_out', ...(s.message ? { message: s.message } : {}), ...(s.endSessionUrl ? { endSessionUrl: s.endSessionUrl } : {}) },
      server: {
        url: settings.serverUrl ?? '',
        status: this.serverStatus,
        ...(this.serverMessage ? { message: this.serverMessage } : {}),
        clockOffsetMs: this.scheduler.clockOffsetMs,
      },
      resources: this.resources,
      requests: this.requests.mine(),
      approvals: this.requests.waitingForMe(),
      grants,
    };
  }

  /** The session changed on its own (sign-in page opened, token refresh failed…): show it. */
  sessionChanged(): void {
    this.publish();
  }

  private publish(): void {
    const prev = this.snapshot;
    this.version++;
    this.snapshot = undefined;
    const next = this.state();
    const notifications = notificationsFor(prev, next, this.clock.now());
    for (const listener of [...this.listeners]) {
      for (const notification of notifications) listener({ type: 'notification', notification });
      listener({ type: 'state', state: next });
    }
  }

  private problem(error: unknown): void {
    const problem = toAgentProblem(error);
    for (const listener of [...this.listeners]) listener({ type: 'problem', problem });
  }

  // ---------- server ----------

  private api_(): ApiClient {
    if (this.client) return this.client;
    const settings = this.options.settings.get();
    if (!settings.serverUrl) throw new AgentError('invalid_input', 'Set the Stint server address in Settings first.');
    this.client = new ApiClient({
      baseUrl: settings.serverUrl,
      deviceId: settings.deviceId,
      accessToken: () => this.options.session.accessToken(),
      refreshAccessToken: () => this.options.session.refresh(),
      ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      now: () => this.clock.now(),
      onServerTime: (serverMs, receivedAt, uncertainty) => this.scheduler.observeServerTime(serverMs, receivedAt, uncertainty),
      onReachable: (reachable, error) => {
        if (!reachable && this.serverStatus !== 'offline') this.setServer('offline', error?.message);
        else if (reachable && this.serverStatus === 'offline') {
          // A failed call said "offline"; while the event stream stayed up nothing else would say "online" again.
          if (this.stream?.status === 'online') this.setServer('online');
          // The server answers again: the event stream need not wait out its backoff (up to 30 s) to catch up.
          else this.stream?.wake();
        }
      },
    });
    return this.client;
  }

  private setServer(status: StreamStatus, message?: string): void {
    if (status === this.serverStatus && message === this.serverMessage) return;
    this.serverStatus = status;
    this.serverMessage = status === 'online' ? undefined : message;
    this.publish();
  }

  /** Signed in: load everything and open the event stream. */
  private async online(): Promise<void> {
    await this.reload();
    this.startStream();
  }

  private async reload(): Promise<void> {
    const api = this.api_();
    const takeIn = this.requests.reloading();
    const me = await api.me();
    this.approver = me.approver;
    this.admin = me.admin;
    this.requests.setGroups(me.groups);
    const [resources, mine, grants, asked] = await Promise.all([
      api.resources(),
      api.requests('mine'),
      api.grants(),
      me.approver ? api.requests('approver') : Promise.resolve([] as AccessRequest[]),
    ]);
    this.resources = resources;
    takeIn(mine, asked);
    for (const grant of grants) this.access.applyGrant(grant, false);
    if (this.serverStatus !== 'online' && !this.stream) this.serverStatus = 'online';
    this.publish();
  }

  private startStream(): void {
    if (this.stream || this.disposed) return;
    const api = this.api_();
    this.stream = new EventStream({
      url: api.url('v1/events'),
      headers: () => api.headers(),
      refreshAccessToken: () => this.options.session.refresh(),
      clock: this.clock,
      ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      ...this.options.eventStream,
      onEvent: (envelope) => this.onServerEvent(envelope),
      onProblem: (error) => this.problem(error),
      onStatus: (status, error) => {
        const wasOnline = this.serverStatus === 'online';
        this.setServer(status, error?.message);
        // Back online after a gap: catch up on anything the event replay cannot tell (e.g. the catalog).
        if (status === 'online' && !wasOnline) void this.reload().catch((e) => this.problem(e));
      },
    });
    this.stream.start();
  }

  private onServerEvent(envelope: ServerEventEnvelope): void {
    const event = envelope.event;
    switch (event.type) {
      case 'request.updated':
        this.requests.applyRequest(event.request);
        break;
      case 'approval.asked':
        this.requests.approvalAsked(event.request);
        break;
      case 'approval.withdrawn':
        this.requests.approvalGone(event.requestId);
        break;
      case 'grant.updated':
        this.access.applyGrant(event.grant, true);
        break;
      case 'breakglass.used':
        break;
      case 'factor.changed': {
        // Not derived from state: said once, as it happened (a thief's change must show on the owner's devices).
        const what = `${event.factor === 'passkey' ? 'A passkey' : 'An authenticator app'}${event.label ? ` (“${event.label}”)` : ''}`;
        const notification = {
          id: `factor:${envelope.id}`, kind: 'security' as const, title: 'Your sign-in factors changed',
          body: `${what} was ${event.change} ${event.change === 'added' ? 'to' : 'from'} your account. If this wasn’t you, check Settings and tell your security team.`,
          actions: ['open' as const],
        };
        for (const listener of this.listeners) listener({ type: 'notification', notification });
        break;
      }
    }
    this.publish();
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
        await this.online();
        const s = this.state().session;
        if (s.status !== 'signed_in') throw new AgentError('login_failed', 'Sign-in did not complete.');
        return { user: s.user };
      },
      cancelSignIn: async () => {
        this.options.session.cancelSignIn();
        return ok;
      },
      signOut: async () => {
        this.stream?.stop();
        this.stream = undefined;
        await this.access.endAll('sign-out');
        await this.vault.wipeAll();
        await this.options.session.signOut();
        this.access.clear();
        this.requests.clear();
        this.resources = [];
        this.client = undefined;
        this.serverStatus = 'offline';
        this.publish();
        return ok;
      },
      refresh: async () => {
        this.signedIn();
        await this.reload();
        return this.state();
      },
      createRequest: async (input) => {
        this.signedIn();
        const { connect, ...body } = parse('createRequest', input);
        const { request, grant } = await this.api_().createRequest(body);
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
        const { request } = await this.api_().cancel(requestId);
        this.requests.cancelled(requestId);
        this.requests.put(request);
        this.publish();
        return { request };
      },
      submitStepUp: async (input) => {
        const { requestId, proof } = parse('submitStepUp', input);
        const { request } = await this.api_().stepUp(requestId, proof);
        this.requests.applyRequest(request);
        this.publish();
        return { request };
      },
      approve: async (input) => {
        const { requestId, comment, stepUp } = parse('approve', input);
        const { request } = await this.api_().approve(requestId, { ...(comment ? { comment } : {}), ...(stepUp ? { stepUp } : {}) });
        this.requests.approvedByMe(request);
        this.publish();
        return { request };
      },
      history: async (input) => this.api_().audit(parse('history', input)),
      stepUpChallenge: async (input) => this.api_().stepUpChallenge(parse('stepUpChallenge', input)),
      stepUpStatus: async () => this.api_().stepUpStatus(),
      listCredentials: async () => this.api_().listCredentials(),
      removeCredential: async (input) => {
        const { id, stepUp } = parse('removeCredential', input);
        await this.api_().removeCredential(id, stepUp);
        return { ok: true as const };
      },
      registerPasskeyOptions: async (input) => this.api_().registerPasskeyOptions(parse('registerPasskeyOptions', input)),
      registerPasskeyVerify: async (input) => this.api_().registerPasskeyVerify(parse('registerPasskeyVerify', input)),
      enrollTotp: async (input) => this.api_().enrollTotp(parse('enrollTotp', input)),
      confirmTotp: async (input) => this.api_().confirmTotp(parse('confirmTotp', input)),
      deny: async (input) => {
        const { requestId, reason } = parse('deny', input);
        const { request } = await this.api_().deny(requestId, reason);
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
        await this.api_().recordPasswordReveal(grantId);
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
        const out = await this.api_().extend(grantId, { durationSeconds, ...(reason ? { reason } : {}) });
        this.access.applyGrant(out.grant, false);
        if (out.request) this.requests.put(out.request);
        this.publish();
        return { grant: out.grant, ...(out.request ? { request: out.request } : {}) };
      },
      release: async (input) => {
        const { grantId } = parse('release', input);
        await this.access.release(grantId);
        const grant = await this.api_().release(grantId);
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
          this.stream?.stop();
          this.stream = undefined;
          this.client = undefined;
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
