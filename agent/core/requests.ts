// Requests as this agent knows them: mine (pending or decided recently) and the ones waiting for my approval. An
// approved request of mine that should connect is handed to local access to activate; the snapshot shows it
// approved only once that is done.
import { waitsForApprover } from '../../shared/domain/approvals';
import type { ConnectResult } from '../../shared/contract/agent';
import type { AccessRequest } from '../../shared/contract/http';
import type { SessionStatus } from './session';

/** Requests only move forward (step-up → approval → approved → activated, or an end): the further one is newer. */
function requestProgress(r: AccessRequest): number {
  if (r.state === 'pending_stepup') return 0;
  if (r.state === 'pending_approval') return 1;
  if (r.state === 'approved') return r.grantId ? 3 : 2;
  return 4;
}

export interface RequestsOptions {
  session: { readonly status: SessionStatus };
  /** Activation of approved requests (local access). */
  activation: { activate(requestId: string): Promise<ConnectResult>; isActivating(requestId: string): boolean };
  /** Something the published state shows has changed. */
  publish: () => void;
  /** A failure in the background, for the shells to show. */
  problem: (error: unknown) => void;
}

export class Requests {
  private readonly options: RequestsOptions;
  private requests = new Map<string, AccessRequest>();
  private approvals = new Map<string, AccessRequest>();
  /** Requests made from this device that should connect as soon as they are approved. */
  private readonly autoConnect = new Set<string>();
  /** Updates to my requests that arrived while their activation (tunnel) was still in progress: applied after it. */
  private readonly heldWhileActivating = new Map<string, AccessRequest>();
  /** My groups as the server sees them (from /v1/me): which approval slots I can still fill. */
  private myGroups: string[] | undefined;

  constructor(options: RequestsOptions) {
    this.options = options;
  }

  /** My requests, for the published state. */
  mine(): AccessRequest[] {
    return [...this.requests.values()];
  }

  /** Requests waiting for my approval, for the published state. */
  waitingForMe(): AccessRequest[] {
    return [...this.approvals.values()];
  }

  setGroups(groups: string[] | undefined): void {
    this.myGroups = groups;
  }

  /** A reload starts: returns how to take in the lists it fetches. */
  reloading(): (mine: AccessRequest[], asked: AccessRequest[]) => void {
    // What was known before the fetch: anything set while it runs (a request just created, an event) is at least as
    // fresh as the lists fetched, which must not erase it.
    const before = new Map(this.requests);
    return (mine, asked) => {
      const kept = new Map([...this.requests].filter(([id, r]) => this.options.activation.isActivating(id) || before.get(id) !== r));
      this.requests = new Map(kept);
      for (const request of mine) {
        const local = kept.get(request.id);
        if (local && (this.options.activation.isActivating(request.id) || requestProgress(local) >= requestProgress(request))) continue;
        this.applyRequest(request);
      }
      this.approvals = new Map(asked.filter((r) => this.waitsForMe(r)).map((r) => [r.id, r]));
    };
  }

  /** My request as the server answered a call about it. */
  put(request: AccessRequest): void {
    this.requests.set(request.id, request);
  }

  /** Connect as soon as this request (made here) is approved. */
  connectWhenApproved(requestId: string): void {
    this.autoConnect.add(requestId);
  }

  cancelled(requestId: string): void {
    this.autoConnect.delete(requestId);
  }

  /** The server asks for my approval (an event). */
  approvalAsked(request: AccessRequest): void {
    if (this.waitsForMe(request)) this.approvals.set(request.id, request);
  }

  /** My approval was recorded: the request may still wait for me (another slot of my groups), or not. */
  approvedByMe(request: AccessRequest): void {
    if (this.waitsForMe(request)) this.approvals.set(request.id, request);
    else this.approvals.delete(request.id);
  }

  approvalGone(requestId: string): void {
    this.approvals.delete(requestId);
  }

  clear(): void {
    this.requests.clear();
    this.approvals.clear();
  }

  /**
   * "Needs you": still pending approval, not mine, not already approved by me, and a slot of one of my groups is
   * still open (once bob fills the only dba slot, the request no longer waits for carol, also in dba).
   */
  waitsForMe(request: AccessRequest): boolean {
    const me = this.options.session.status;
    return waitsForApprover(request, { ...(me.status === 'signed_in' ? { sub: me.user.sub } : {}), ...(this.myGroups ? { groups: this.myGroups } : {}) });
  }

  applyRequest(request: AccessRequest): void {
    const me = this.options.session.status;
    const mine = me.status === 'signed_in' && request.requester === me.user.sub;
    if (!mine) {
      if (this.approvals.has(request.id)) {
        if (this.waitsForMe(request)) this.approvals.set(request.id, request);
        else this.approvals.delete(request.id);
      }
      return;
    }
    if (request.state === 'approved' && this.autoConnect.has(request.id) && !request.grantId) {
      this.autoConnect.delete(request.id);
      // The snapshot shows "approved" only once the tunnel is open, so the notification can say where.
      const latest = () => {
        const held = this.heldWhileActivating.get(request.id) ?? request;
        this.heldWhileActivating.delete(request.id);
        return held;
      };
      void this.options.activation.activate(request.id).then(
        (connection) => { this.requests.set(request.id, { ...latest(), grantId: connection.grantId }); this.options.publish(); },
        (error) => { this.requests.set(request.id, latest()); this.options.publish(); this.options.problem(error); },
      );
      return;
    }
    // The server's own "activated" update can arrive before our tunnel is open; showing it now would announce
    // "approved" without the address. Hold it until the activation above finishes.
    if (request.state === 'approved' && this.options.activation.isActivating(request.id) && this.requests.get(request.id)?.state !== 'approved') {
      this.heldWhileActivating.set(request.id, request);
      return;
    }
    this.requests.set(request.id, request);
  }
}
