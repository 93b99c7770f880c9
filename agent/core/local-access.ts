// Local access to grants: what this computer holds for each grant (its deadline, tunnel, where to connect) and the
// acts on it — activation, opening the tunnel, ending it. Local access ends at the deadline whatever the server
// does: the scheduler fires, the tunnel closes, the secrets are wiped — the server is told afterwards if it can be
// reached.
import type { ConnectResult, LocalGrant, TunnelView } from '../../shared/contract/agent';
import type { Connection, Grant, Resource, ResourceKind, StepUpProof } from '../../shared/contract/http';
import type { ApiClient } from './api-client';
import type { ClientFiles } from './client-files';
import { clientKind } from './kinds';
import { kindWords } from '../../shared/domain/kinds';
import type { Clock } from '../../shared/domain/clock';
import type { DeadlineEvent, DeadlineScheduler } from './deadlines';
import { AgentError, isAgentError } from './errors';
import { grantPhase } from './grant-phase';
import type { SettingsStore } from './settings';
import { openTunnel, portFor, type Tunnel, type TunnelOptions } from './tunnels';
import { generateGrantKey, type Vault, type WipeReport } from './vault';

interface GrantRecord {
  grant: Grant;
  localState: 'active' | 'ended';
  localEndsAt?: number;
  warnedMinutes?: number;
  tunnel?: Tunnel;
  tunnelView?: TunnelView;
  /** Where to connect (no password: that is in the vault). */
  route?: { bastion: Connection['bastion']; target: Connection['target']; dbUser: string };
  /** The environment for `stint connect --exec` (it may hold the password: memory only, never published). */
  execEnv?: Record<string, string>;
  ending?: Promise<void>;
}

const KEEP_ENDED = 20;

export interface LocalAccessOptions {
  clock: Clock;
  vault: Vault;
  scheduler: DeadlineScheduler;
  settings: SettingsStore;
  /** The grant server, for activation, for taking a grant back (rekey) and for telling it of an early local end. */
  server: () => Pick<ApiClient, 'activate' | 'rekey' | 'release'>;
  clientFiles?: ClientFiles;
  openTunnel?: (options: TunnelOptions) => Promise<Tunnel>;
  onEnded?: (ended: { grantId: string; reason: string; wipe: WipeReport }) => void;
  /** Something the published state shows has changed. */
  publish: () => void;
  /** A failure in the background, for the shells to show. */
  problem: (error: unknown) => void;
}

export class LocalAccess {
  private readonly options: LocalAccessOptions;
  private readonly clock: Clock;
  private readonly vault: Vault;
  private readonly scheduler: DeadlineScheduler;
  private readonly grants = new Map<string, GrantRecord>();
  private readonly activating = new Map<string, Promise<ConnectResult>>();
  /** Grants being taken back (rekey), by grant id. */
  private readonly resuming = new Map<string, Promise<ConnectResult>>();

  constructor(options: LocalAccessOptions) {
    this.options = options;
    this.clock = options.clock;
    this.vault = options.vault;
    this.scheduler = options.scheduler;
  }

  /**
   * The grants as the published state shows them, in the order hosts list them: live access soonest end first, then
   * what has ended. Times stay epoch ms up to here; the ISO instant is for the contract.
   */
  views(resources: Resource[]): LocalGrant[] {
    const views = [...this.grants.values()].map((r) => {
      const resource = resources.find((x) => x.id === r.grant.resourceId);
      const localEndsAt = r.localState === 'active' ? (this.scheduler.localEndsAt(r.grant.id) ?? r.localEndsAt ?? this.clock.now()) : (r.localEndsAt ?? this.clock.now());
      const phase = grantPhase({ localState: r.localState, grantState: r.grant.state, ...(r.warnedMinutes !== undefined ? { warnedMinutes: r.warnedMinutes } : {}) });
      const view: LocalGrant = {
        grant: r.grant,
        ...(resource ? { resourceName: resource.name, environment: resource.environment } : {}),
        localEndsAt: new Date(localEndsAt).toISOString(),
        localState: r.localState,
        ...(r.warnedMinutes !== undefined ? { warnedMinutes: r.warnedMinutes } : {}),
        phase,
        ...(r.tunnelView ? { tunnel: r.tunnelView } : {}),
        ...(this.leftFromBefore(r) ? { leftFromBefore: true } : {}),
      };
      return { view, live: phase !== 'ended', localEndsAt };
    });
    // A stable sort: ended ones keep their order (oldest first, as pruneEnded drops them).
    views.sort((a, b) => (a.live && b.live ? a.localEndsAt - b.localEndsAt : Number(b.live) - Number(a.live)));
    return views.map((v) => v.view);
  }

  /**
   * Active on the server for this very device, yet this agent holds none of its keys and is not getting them (no
   * activation of its request, no rekey running): Stint stopped while the access was active. Another device's grant,
   * or one whose device the server does not say, is never left from before — it is not this agent's to take back.
   */
  private leftFromBefore(r: GrantRecord): boolean {
    return r.localState === 'active' && r.grant.state === 'active' && !r.route && !this.vault.has(r.grant.id)
      && r.grant.deviceId !== undefined && r.grant.deviceId === this.options.settings.get().deviceId
      && !this.activating.has(r.grant.requestId);
  }

  /** An activation of this request is still running (its tunnel is not open yet). */
  isActivating(requestId: string): boolean {
    return this.activating.has(requestId);
  }

  /** Local access to this grant has not ended. */
  isActive(grantId: string): boolean {
    return this.grants.get(grantId)?.localState === 'active';
  }

  /** When local access to this grant ends, on this computer's wall clock (ms). */
  localEndsAt(grantId: string): number {
    return this.scheduler.localEndsAt(grantId) ?? this.grants.get(grantId)?.localEndsAt ?? this.clock.now();
  }

  /** What kind of resource the grant is for (how to connect to it: agent/core/kinds). */
  kind(grantId: string): ResourceKind {
    return this.grants.get(grantId)?.grant.kind ?? 'postgres';
  }

  /** The client command (psql, …) for this grant's open tunnel, if any. */
  command(grantId: string): string | undefined {
    return this.grants.get(grantId)?.tunnelView?.command;
  }

  /** The environment `stint connect --exec` gives its command, while the grant's tunnel is open and its files written. */
  execEnv(grantId: string): Record<string, string> | undefined {
    const record = this.grants.get(grantId);
    return record?.tunnel && record.localState === 'active' ? record.execEnv : undefined;
  }

  applyGrant(grant: Grant, fromEvent: boolean): void {
    const record = this.grants.get(grant.id);
    if (grant.state !== 'active') {
      if (record) {
        record.grant = grant;
        if (record.localState === 'active') void this.endLocal(grant.id, grant.state);
      } else if (fromEvent) {
        this.grants.set(grant.id, { grant, localState: 'ended', localEndsAt: this.clock.now() });
      }
      return;
    }
    if (record?.localState === 'ended') return; // ended locally: a late or stale "active" never reopens it
    if (record) record.grant = grant;
    else this.grants.set(grant.id, { grant, localState: 'active' });
    this.scheduler.track(grant.id, Date.parse(grant.endsAt), { startsAtMs: Date.parse(grant.startsAt) });
    // After an extension a warning stands only while the time left is still within it (the scheduler gives it again
    // as the new end nears): the grant is no longer "ending soon".
    if (record?.localState === 'active' && record.warnedMinutes !== undefined) {
      const standing = this.scheduler.warningGivenMs(grant.id);
      record.warnedMinutes = standing === undefined ? undefined : Math.round(standing / 60_000);
    }
  }

  /** End it yourself: local access ends first, whether or not the server can be told. */
  async release(grantId: string): Promise<void> {
    // Marked released so that ending it yourself does not notify you that it ended.
    const local = this.grants.get(grantId);
    if (local?.localState === 'active') local.grant = { ...local.grant, state: 'released' };
    await this.endLocal(grantId, 'released');
  }

  /** What the server says of a grant that has ended here (the answer to a release). */
  serverSaid(grant: Grant): void {
    const record = this.grants.get(grant.id);
    if (record) record.grant = grant;
  }

  // ---------- deadlines and ending ----------

  onDeadline(event: DeadlineEvent): void {
    const record = this.grants.get(event.id);
    if (!record) return;
    if (event.type === 'warning') {
      record.warnedMinutes = Math.round(event.thresholdMs / 60_000);
      this.options.publish();
      return;
    }
    // Only a grant this process holds the keys of is its to end on the server (another agent process may hold it).
    const held = this.vault.has(event.id);
    void this.endLocal(event.id, event.early ? 'clock' : 'deadline');
    // Ended here before the server's own deadline (the wall clock moved on): live sessions would run on until then,
    // so the server is told, as a release. At the real deadline it ends the grant itself.
    if (event.early && held) void this.tellServerEnded(event.id);
  }

  /** Best effort: a server that cannot be reached ends the grant at its own deadline. */
  private async tellServerEnded(grantId: string): Promise<void> {
    try {
      this.serverSaid(await this.options.server().release(grantId));
    } catch {
      // Offline, or it ended meanwhile: nothing more to do here.
    }
  }

  /** End every local access (quit, sign-out). */
  async endAll(reason: string): Promise<void> {
    await Promise.all([...this.grants.keys()].map((id) => this.endLocal(id, reason)));
  }

  /** Forget every grant (after endAll, at sign-out). */
  clear(): void {
    this.grants.clear();
  }

  /** End local access now: stop listening, destroy sockets, end SSH, wipe secrets. Idempotent. */
  endLocal(grantId: string, reason: string): Promise<void> {
    const record = this.grants.get(grantId);
    if (!record) return Promise.resolve();
    if (record.ending) return record.ending;
    const endsAt = this.scheduler.localEndsAt(grantId);
    this.scheduler.untrack(grantId);
    record.localState = 'ended';
    record.localEndsAt = Math.min(endsAt ?? this.clock.now(), this.clock.now());
    const tunnel = record.tunnel;
    record.tunnel = undefined;
    record.execEnv = undefined;
    if (record.tunnelView) record.tunnelView = { ...record.tunnelView, status: 'closed', connections: 0 };
    record.ending = (async () => {
      // close() stops listening and destroys live sockets synchronously; ending the SSH connection politely may
      // take a round trip more, which access does not wait for.
      const sshEnded = tunnel?.close();
      const [wipe] = await Promise.all([this.vault.wipe(grantId), this.options.clientFiles?.wipe(grantId).catch((error) => this.options.problem(error))]);
      void sshEnded?.catch(() => {});
      this.pruneEnded();
      this.options.publish();
      this.options.onEnded?.({ grantId, reason, wipe });
    })();
    return record.ending;
  }

  private pruneEnded(): void {
    const ended = [...this.grants.values()].filter((r) => r.localState === 'ended');
    for (const r of ended.slice(0, Math.max(0, ended.length - KEEP_ENDED))) this.grants.delete(r.grant.id);
  }

  // ---------- activation and tunnels ----------

  activate(requestId: string): Promise<ConnectResult> {
    const running = this.activating.get(requestId);
    if (running) return running;
    const work = this.withNewKey((publicKey) => this.options.server().activate(requestId, publicKey)).finally(() => this.activating.delete(requestId));
    this.activating.set(requestId, work);
    return work;
  }

  /**
   * Take back a grant left from before (see leftFromBefore): a new key, the server's new credentials for the same
   * grant (its old key and password stop working first), and the tunnel opened as at activation. A grant whose keys
   * this agent holds is simply connected.
   */
  resume(grantId: string, stepUp?: StepUpProof): Promise<ConnectResult> {
    const running = this.resuming.get(grantId);
    if (running) return running;
    const record = this.grants.get(grantId);
    if (!record || record.localState !== 'active') return Promise.reject(new AgentError('not_found', 'This access has ended.'));
    if (record.route && this.vault.has(grantId)) return this.openFor(grantId);
    if (!this.leftFromBefore(record)) {
      return Promise.reject(new AgentError('not_found', record.grant.deviceId && record.grant.deviceId !== this.options.settings.get().deviceId
        ? 'This access was activated on another device: it can only be resumed there.'
        : 'This access cannot be resumed from here.'));
    }
    const work = this.withNewKey((publicKey) => this.options.server().rekey(grantId, publicKey, stepUp)).finally(() => this.resuming.delete(grantId));
    this.resuming.set(grantId, work);
    return work;
  }

  /** A new per-grant key for the server to issue credentials to; its private half is wiped if the server refuses. */
  private async withNewKey(issue: (publicKey: string) => Promise<{ grant: Grant; connection: Connection }>): Promise<ConnectResult> {
    const key = generateGrantKey();
    let result;
    try {
      result = await issue(key.publicKey);
    } catch (error) {
      key.privateKey.fill(0);
      throw error;
    }
    return this.hold(result.grant, result.connection, key);
  }

  /** What the server handed out, once (activation or rekey): keep the secrets and open the tunnel. */
  private async hold(grant: Grant, connection: Connection, key: { privateKey: Buffer; publicKey: string }): Promise<ConnectResult> {
    // The keychain write and the SSH handshake overlap: both must succeed before the user gets the connection.
    const stored = this.vault.put(grant.id, { dbUser: connection.dbUser, dbPassword: connection.dbPassword, privateKey: key.privateKey, publicKey: key.publicKey });
    stored.catch(() => {});
    this.applyGrant(grant, false);
    const record = this.grants.get(grant.id)!;
    record.route = { bastion: connection.bastion, target: connection.target, dbUser: connection.dbUser };
    let opened: ConnectResult;
    try {
      opened = await this.openFor(grant.id);
    } catch (error) {
      await stored.catch(() => {});
      throw error; // the grant stays active with its secrets: "Connect" can try again
    }
    try {
      await stored;
    } catch (error) {
      await this.endLocal(grant.id, 'keychain');
      throw error;
    }
    return opened;
  }

  async openFor(grantId: string): Promise<ConnectResult> {
    const record = this.grants.get(grantId);
    if (!record || record.localState !== 'active') throw new AgentError('not_found', 'This access has ended.');
    const secrets = this.vault.get(grantId);
    if (!secrets || !record.route) {
      if (this.leftFromBefore(record)) throw new AgentError('not_found', 'Stint stopped while this access was active, and its keys were wiped. Resume it (new keys, same end) or end it.');
      if (record.grant.deviceId && record.grant.deviceId !== this.options.settings.get().deviceId) {
        throw new AgentError('not_found', 'This access was activated on another device: connect from there, or end it.');
      }
      throw new AgentError('not_found', 'The keys for this access are gone (Stint restarted since it was activated). End it and request access again.');
    }
    const route = record.route;
    const result = (tunnel: Tunnel): ConnectResult => ({
      grantId, host: '127.0.0.1', port: tunnel.port, database: route.target.database, user: route.dbUser,
      ...(tunnel.message ? { message: tunnel.message } : {}),
    });
    if (record.tunnel && !record.tunnel.isClosed) return result(record.tunnel);
    const preferredPort = portFor(record.grant.resourceId, this.options.settings.get().ports);
    record.tunnelView = { status: 'opening', host: '127.0.0.1', preferredPort, connections: 0 };
    this.options.publish();
    let tunnel: Tunnel;
    try {
      tunnel = await (this.options.openTunnel ?? openTunnel)({
        bastion: route.bastion,
        target: { host: route.target.host, port: route.target.port },
        privateKey: secrets.privateKey,
        preferredPort,
        onEvent: (event) => {
          if (!record.tunnelView || record.tunnel !== tunnel) return;
          if (event.type === 'connections') record.tunnelView = { ...record.tunnelView, connections: event.count };
          else if (event.type === 'forward_failed') this.options.problem(new AgentError('tunnel_failed', event.message));
          else if (event.type === 'closed' && event.unexpected) {
            record.tunnel = undefined;
            record.tunnelView = { ...record.tunnelView, status: 'failed', connections: 0, ...(event.message ? { message: event.message } : {}) };
          }
          this.options.publish();
        },
      });
    } catch (error) {
      record.tunnelView = { status: 'failed', host: '127.0.0.1', preferredPort, connections: 0, message: isAgentError(error) ? error.message : 'The tunnel could not be opened.' };
      this.options.publish();
      throw error;
    }
    if (record.localState !== 'active') {
      // The deadline passed while we were connecting.
      await tunnel.close();
      throw new AgentError('not_found', 'This access has ended.');
    }
    const target = { host: '127.0.0.1', port: tunnel.port, database: route.target.database, user: route.dbUser };
    const client = clientKind(record.grant.kind);
    let command: string | undefined;
    let filesEnv: Record<string, string> = {};
    try {
      const files = this.options.clientFiles;
      if (files) ({ command, env: filesEnv } = await client.writeClientFiles(files, grantId, { ...target, password: secrets.dbPassword }, { resourceId: record.grant.resourceId, bastion: route.bastion, target: route.target, privateKey: secrets.privateKey }));
    } catch (error) {
      this.options.problem(new AgentError('launcher_failed', `The ${kindWords(record.grant.kind).client} password file could not be written (${error instanceof Error ? error.message : String(error)}); copy the connection URI instead.`));
    }
    if (record.localState !== 'active') {
      // The access ended while the file was written: its wipe may have run before the write.
      await tunnel.close();
      await this.options.clientFiles?.wipe(grantId);
      throw new AgentError('not_found', 'This access has ended.');
    }
    record.tunnel = tunnel;
    record.execEnv = { ...client.execEnv({ ...target, password: secrets.dbPassword }), ...filesEnv };
    record.tunnelView = {
      status: 'open', host: '127.0.0.1', port: tunnel.port, preferredPort, connections: 0, database: target.database, user: target.user,
      ...(command ? { command } : {}), ...(tunnel.message ? { message: tunnel.message } : {}),
    };
    this.vault.setUri(grantId, client.uri({ ...target, password: secrets.dbPassword }));
    this.options.publish();
    return result(tunnel);
  }
}
