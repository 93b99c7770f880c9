// The published state: one observable snapshot (AgentState), rebuilt on every change from what each unit holds and
// published with the notifications that the change calls for. Every shell renders what is published here.
import type { AgentEvent, AgentNotification, AgentState } from '../../shared/contract/agent';
import { toAgentProblem } from './agent-core';
import type { Clock } from '../../shared/domain/clock';
import type { DeadlineScheduler } from './deadlines';
import type { LocalAccess } from './local-access';
import { notificationsFor } from './models';
import type { Requests } from './requests';
import type { ServerLink } from './server-link';
import type { SessionStatus } from './session';
import type { SettingsStore } from './settings';

/** Where each part of the state comes from. */
export interface StateSources {
  session: { readonly status: SessionStatus };
  settings: Pick<SettingsStore, 'get'>;
  link: Pick<ServerLink, 'status' | 'message' | 'resources' | 'me'>;
  scheduler: Pick<DeadlineScheduler, 'clockOffsetMs'>;
  requests: Pick<Requests, 'mine' | 'waitingForMe'>;
  grants: Pick<LocalAccess, 'views'>;
}

export function buildState(version: number, from: StateSources): AgentState {
  const s = from.session.status;
  const settings = from.settings.get();
  const grants = from.grants.views(from.link.resources);
  return {
    version,
    session: s.status === 'signed_in'
      ? { status: 'signed_in', user: { ...s.user, admin: from.link.me.admin, approver: from.link.me.approver } }
      : s.status === 'signing_in' ? { status: 'signing_in', ...(s.authorizationUrl ? { authorizationUrl: s.authorizationUrl } : {}) } : { status: 'signed_out', ...(s.message ? { message: s.message } : {}), ...(s.endSessionUrl ? { endSessionUrl: s.endSessionUrl } : {}) },
    server: {
      url: settings.serverUrl ?? '',
      status: from.link.status,
      ...(from.link.message ? { message: from.link.message } : {}),
      clockOffsetMs: from.scheduler.clockOffsetMs,
    },
    resources: from.link.resources,
    requests: from.requests.mine(),
    approvals: from.requests.waitingForMe(),
    grants,
  };
}

export class Publisher {
  private readonly listeners = new Set<(event: AgentEvent) => void>();
  private version = 0;
  private snapshot?: AgentState;

  constructor(private readonly sources: StateSources, private readonly clock: Pick<Clock, 'now'>) {}

  /** The current snapshot. */
  state(): AgentState {
    this.snapshot ??= buildState(this.version, this.sources);
    return this.snapshot;
  }

  subscribe(listener: (event: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    listener({ type: 'state', state: this.state() });
    return () => this.listeners.delete(listener);
  }

  publish(): void {
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

  problem(error: unknown): void {
    const problem = toAgentProblem(error);
    for (const listener of [...this.listeners]) listener({ type: 'problem', problem });
  }

  /** A notification not derived from the state (said once, as it happened). */
  announce(notification: AgentNotification): void {
    for (const listener of this.listeners) listener({ type: 'notification', notification });
  }

  /** No more listeners (the agent is disposed). */
  clear(): void {
    this.listeners.clear();
  }
}
