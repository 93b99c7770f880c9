// The link with the grant server: the API client (made when first needed, from the settings), loading everything
// once signed in, the event stream and what its events change, and whether the server can be reached. What the
// server says about me and its catalog (roles, resources) is kept here; requests and grants go to their units.
import type { AgentNotification } from '../../shared/contract/agent';
import { reminderNotification } from './models';
import type { ServerEventEnvelope } from '../../shared/contract/events';
import type { AccessRequest, Resource } from '../../shared/contract/http';
import { ApiClient } from './api-client';
import { breakGlassNotification } from './breakglass-notifications';
import type { Clock } from '../../shared/domain/clock';
import type { DeadlineScheduler } from './deadlines';
import { AgentError } from './errors';
import { EventStream, type StreamStatus } from './event-stream';
import type { LocalAccess } from './local-access';
import type { Requests } from './requests';
import type { SettingsStore } from './settings';

export interface ServerLinkOptions {
  settings: SettingsStore;
  session: { accessToken(): Promise<string>; refresh(): Promise<string> };
  clock: Clock;
  fetch?: typeof fetch;
  eventStream?: { initialBackoffMs?: number; maxBackoffMs?: number };
  /** Where the server's clock, read from its answers, goes. */
  serverTime: Pick<DeadlineScheduler, 'observeServerTime'>;
  requests: Pick<Requests, 'reloading' | 'setGroups' | 'applyRequest' | 'approvalAsked' | 'approvalGone' | 'waitsForMe'>;
  grants: Pick<LocalAccess, 'applyGrant'>;
  /** Something the published state shows has changed. */
  publish: () => void;
  /** A failure in the background, for the shells to show. */
  problem: (error: unknown) => void;
  /** A notification that is not derived from the state: said once, as it happened. */
  announce: (notification: AgentNotification) => void;
}

export class ServerLink {
  private readonly options: ServerLinkOptions;
  private client?: ApiClient;
  private stream?: EventStream;
  private resourceList: Resource[] = [];
  private roles = { approver: false, admin: false };
  private serverStatus: StreamStatus = 'offline';
  private serverMessage?: string;
  private disposed = false;

  constructor(options: ServerLinkOptions) {
    this.options = options;
  }

  get status(): StreamStatus {
    return this.serverStatus;
  }

  get message(): string | undefined {
    return this.serverMessage;
  }

  /** What I may request, as last loaded. */
  get resources(): Resource[] {
    return this.resourceList;
  }

  /** My roles as the server sees them (from /v1/me). */
  get me(): { approver: boolean; admin: boolean } {
    return this.roles;
  }

  /** The grant server's API client, made from the settings when first needed. */
  api(): ApiClient {
    if (this.client) return this.client;
    const settings = this.options.settings.get();
    if (!settings.serverUrl) throw new AgentError('invalid_input', 'Set the Stint server address in Settings first.');
    this.client = new ApiClient({
      baseUrl: settings.serverUrl,
      deviceId: settings.deviceId,
      accessToken: () => this.options.session.accessToken(),
      refreshAccessToken: () => this.options.session.refresh(),
      ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      now: () => this.options.clock.now(),
      onServerTime: (serverMs, receivedAt, uncertainty) => this.options.serverTime.observeServerTime(serverMs, receivedAt, uncertainty),
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
    this.options.publish();
  }

  /** Signed in: load everything and open the event stream. */
  async online(): Promise<void> {
    await this.reload();
    this.startStream();
  }

  async reload(): Promise<void> {
    const api = this.api();
    const takeIn = this.options.requests.reloading();
    const me = await api.me();
    this.roles = { approver: me.approver, admin: me.admin };
    this.options.requests.setGroups(me.groups);
    const [resources, mine, grants, asked] = await Promise.all([
      api.resources(),
      api.requests('mine'),
      api.grants(),
      me.approver ? api.requests('approver') : Promise.resolve([] as AccessRequest[]),
    ]);
    this.resourceList = resources;
    takeIn(mine, asked);
    for (const grant of grants) this.options.grants.applyGrant(grant, false);
    if (this.serverStatus !== 'online' && !this.stream) this.serverStatus = 'online';
    this.options.publish();
  }

  /** The machine woke up: catch up with the server now. */
  reconnectNow(): void {
    this.stream?.reconnectNow();
  }

  stopStream(): void {
    this.stream?.stop();
    this.stream = undefined;
  }

  /** Another server (the URL changed in the settings): the next call makes a new client and stream. */
  serverChanged(): void {
    this.stopStream();
    this.client = undefined;
  }

  /** Signed out: nothing of the server is kept. */
  signedOut(): void {
    this.resourceList = [];
    this.client = undefined;
    this.serverStatus = 'offline';
  }

  dispose(): void {
    this.disposed = true;
    this.stream?.stop();
  }

  private startStream(): void {
    if (this.stream || this.disposed) return;
    const api = this.api();
    this.stream = new EventStream({
      url: api.url('v1/events'),
      headers: () => api.headers(),
      refreshAccessToken: () => this.options.session.refresh(),
      clock: this.options.clock,
      ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      ...this.options.eventStream,
      onEvent: (envelope) => this.onServerEvent(envelope),
      onProblem: (error) => this.options.problem(error),
      onStatus: (status, error) => {
        const wasOnline = this.serverStatus === 'online';
        this.setServer(status, error?.message);
        // Back online after a gap: catch up on anything the event replay cannot tell (e.g. the catalog).
        if (status === 'online' && !wasOnline) void this.reload().catch((e) => this.options.problem(e));
      },
    });
    this.stream.start();
  }

  private onServerEvent(envelope: ServerEventEnvelope): void {
    const event = envelope.event;
    switch (event.type) {
      case 'request.updated':
        this.options.requests.applyRequest(event.request);
        break;
      case 'approval.asked':
        this.options.requests.approvalAsked(event.request);
        break;
      case 'approval.withdrawn':
        this.options.requests.approvalGone(event.requestId);
        break;
      case 'approval.reminded':
        // A reminder is said once, as it comes, to those it still waits for.
        this.options.requests.approvalAsked(event.request);
        if (this.options.requests.waitsForMe(event.request)) this.options.announce(reminderNotification(event.request, envelope.id));
        break;
      case 'grant.updated':
        this.options.grants.applyGrant(event.grant, true);
        break;
      case 'breakglass.used':
      case 'breakglass.review_due':
        this.options.announce(breakGlassNotification(event, (id) => this.resourceList.find((r) => r.id === id)?.name ?? id));
        break;
      case 'factor.changed': {
        // Not derived from state: said once, as it happened (a thief's change must show on the owner's devices).
        const what = `${event.factor === 'passkey' ? 'A passkey' : 'An authenticator app'}${event.label ? ` (“${event.label}”)` : ''}`;
        this.options.announce({
          id: `factor:${envelope.id}`, kind: 'security', title: 'Your sign-in factors changed',
          body: `${what} was ${event.change} ${event.change === 'added' ? 'to' : 'from'} your account. If this wasn’t you, check Settings and tell your security team.`,
          actions: ['open'],
        });
        break;
      }
    }
    this.options.publish();
  }
}
