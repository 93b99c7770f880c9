// The grant lifecycle: requests, approvals, step-up, activation, extension, ends and revocation. The server is the
// source of truth; every state change goes through the transition table in shared/domain, is written in one
// transaction together with its audit row and its events, and the events are published after commit.
// Timed transitions (request TTL, activation window, grant deadline) have one exact timer each, plus a durable
// sweep on start (and every few seconds as a safety net) so ends that passed while the server was down happen.
//
// Lifecycle is the one object the rest of the server holds; it builds the units below and hands each the few parts
// of the others it calls (Pick<…> interfaces), so each can be read on its own:
//   write-queue.ts      every change: one transaction per batch, audit rows and events appended last, published after commit
//   timers.ts           one timer per deadline, by key; the start-up and safety-net sweep
//   views.ts            requests and grants as the API shows them, the events a change emits, list/get reads
//   requests.ts         creating a request (risk, step-up, auto-approve, break-glass); deny, cancel, expire
//   approvals.ts        approver checks, N-of-M approval, step-up proofs (StepUpActionResolver)
//   asked.ts, nudges.ts who is asked to approve (rules, then the escalation group); reminders and escalation on timers
//   activation.ts       an approved request becomes a grant and gets its credentials
//   grants.ts           ends (deadline, release, revoke), extensions, password reveal
//   rekey.ts            taking an active grant back with new credentials after its agent lost its keys
//   revocation.ts       removing an ended grant's credentials, with backoff, batched, across instances
//   bastion-queries.ts  what the bastion asks (BastionGrantLookup)
//   support.ts          row types, ids and times, row locks, the audit of refusals
import type {
  AccessRequest, ActivateBody, ApproveBody, Connection, CreateRequestBody, ExtendBody, Grant, GrantState, Me, RekeyBody, RequestState, RevokeBody, StepUpProof,
} from '../../shared/contract/http';
import type { GrantEvent } from '../../shared/domain/lifecycle';
import type { z } from 'zod';
import type { PolicyConfig, ServerConfig } from '../config';
import type { Clock } from '../../shared/domain/clock';
import type { Store } from '../storage/db';
import type { CredentialProvider } from '../credentials/provider';
import type { StepUpAction, StepUpActionResolver, StepUpGate } from '../stepup/seam';
import type { BastionGrant, BastionGrantLookup, GrantEndedForBastion, HostGrant } from '../bastion/seam';
import type { AuthUser } from '../identity/user';
import type { DomainError, Outcome } from '../errors';
import type { Metrics } from '../metrics';
import { Nudges } from './nudges';
import { Catalog } from './catalog';
import { AuditChain, type AuditInput, type ReportedAudit } from './audit';
import { PolicyVersions, type PolicyVersionRef } from '../policy/versions';
import type { EventBus } from './events';
import { hasRemoteEvents } from './pg-bus';
import { WriteQueue, type TxContext } from './write-queue';
import { DeadlineSweep, Timers } from './timers';
import { Views } from './views';
import { RequestRules, type RequestContext } from './requests';
import { Approvals } from './approvals';
import { Activation, RememberedFacts } from './activation';
import { GrantRules } from './grants';
import { Rekeying } from './rekey';
import { Revocation } from './revocation';
import { BastionQueries } from './bastion-queries';
import { Reviews } from './reviews';
import type { BreakGlassReview, ListReviewsQuery, RecordReviewBody } from '../../shared/contract/reviews';
import type { OutboxStage } from '../webhooks/outbox';
import { IdleEnds } from './idle';
import { Refusals, SYSTEM, type Logger, type RefusalRefs, type Refuse } from './support';

export type { Logger } from './support';
export type { TxContext } from './write-queue';
export type { RequestContext } from './requests';

export interface LifecycleDeps {
  config: ServerConfig;
  store: Store;
  clock: Clock;
  bus: EventBus;
  metrics: Metrics;
  log: Logger;
  credentials?: CredentialProvider;
  gate?: StepUpGate;
  /** How often the safety-net sweep runs (ms). */
  sweepEveryMs?: number;
  /** Called after each commit that appended audit rows (the audit stream, #25). */
  audited?: () => void;
  /** The webhook outbox, written with the audit rows (server/webhooks). */
  outbox?: OutboxStage;
}

export class Lifecycle implements StepUpActionResolver, BastionGrantLookup {
  catalog!: Catalog;
  readonly audit = new AuditChain();
  readonly policyVersions: PolicyVersions;
  private readonly writes: WriteQueue;
  private readonly refusals: Refusals;
  private readonly timers: Timers;
  private readonly deadlines: DeadlineSweep;
  private readonly views: Views;
  private readonly requests: RequestRules;
  private readonly approvals: Approvals;
  private readonly activation: Activation;
  private readonly grants: GrantRules;
  private readonly rekeying: Rekeying;
  private readonly revocation: Revocation;
  private readonly bastion: BastionQueries;
  private readonly nudges: Nudges;
  private readonly reviews: Reviews;
  private readonly idle: IdleEnds;

  constructor(private readonly deps: LifecycleDeps) {
    const { db, reads } = deps.store;
    this.policyVersions = new PolicyVersions(db);
    // True when other server instances may write the same database (PostgreSQL).
    const shared = deps.store.dialect === 'postgres';
    const { config, bus, clock, credentials, gate, log, metrics } = deps;
    const now = () => this.now();
    const writes = this.writes = new WriteQueue({ db, shared, writeSlots: config.storage.writeConcurrency, bus, metrics, audit: this.audit, now, audited: deps.audited, outbox: deps.outbox });
    this.refusals = new Refusals({ mutate: (fn) => writes.mutate(fn), metrics, now });
    const refuse: Refuse = (user, action, error, refs) => this.refusals.refuse(user, action, error, refs);
    const timers = this.timers = new Timers({ clock, log });
    // The catalog is built by init, after the units: they read it from here (policies: this) at each use.
    const views = this.views = new Views({ db, reads, now, refuse, policies: this });
    const revocation = this.revocation = new Revocation({ db, shared, now, credentials, metrics, log, writes, timers });
    const bastion = this.bastion = new BastionQueries({ db, reads, shared, bus, now, log, timers });
    const facts = new RememberedFacts();
    const nudges = this.nudges = new Nudges({ db, shared, now, log, writes, timers, policies: this });
    const reviews = this.reviews = new Reviews({ reads, shared, now, refuse, writes, config, log, timers });
    const requests = this.requests = new RequestRules({ reads, shared, now, metrics, gate, refuse, policies: this, writes, timers, facts, nudges, reviews });
    const grants = this.grants = new GrantRules({ reads, shared, now, metrics, credentials, refuse, policies: this, writes, timers, views, requests, revocation, bastion, nudges });
    const rekeying = this.rekeying = new Rekeying({ reads, shared, now, metrics, credentials, gate, log, refuse, policies: this, writes, views, bastion: this.bastion });
    this.approvals = new Approvals({ reads, shared, now, metrics, gate, refuse, policies: this, writes, timers, requests, grants, views, rekey: rekeying });
    const idle = this.idle = new IdleEnds({ reads, now, policies: this, writes, endGrant: (id, reason) => grants.endGrant(id, 'ended', SYSTEM, reason) });
    this.activation = new Activation({ reads, now, credentials, metrics, log, refuse, policies: this, writes, timers, facts, requests, grants, revocation });
    this.deadlines = new DeadlineSweep({
      db, clock, log, timers,
      work: {
        expireRequest: (id) => requests.expireRequest(id),
        endGrant: (id, event, actor, reason) => grants.endGrant(id, event, actor, reason),
        endAtDeadline: (id) => grants.endAtDeadline(id),
        revokeCredentials: (id) => revocation.revokeCredentials(id),
        isRevoking: (id) => revocation.isRevoking(id),
        othersRevokeFrom: (endedAt) => revocation.othersRevokeFrom(endedAt),
        endIdle: () => idle.endIdle(),
      },
    });
    // Enforcement at a deadline must not hang on the one instance that armed it (see DeadlineSweep.armFromOthers).
    if (shared && hasRemoteEvents(bus)) bus.onRemote((events) => this.deadlines.armFromOthers(events));
  }

  private now(): number {
    return this.deps.clock.now();
  }

  // ---------------------------------------------------------------- start / stop

  /** Record policy versions (a changed policy gets the next version) and build the catalog. */
  async init(): Promise<void> {
    this.catalog = await this.catalogFor(this.deps.config);
  }

  /**
   * A live reload (#25): the config's policies, resources and bastions, checked by the caller, become the catalog
   * every later decision reads. Their versions and the reload's audit row (`config.reloaded`) are recorded first, in
   * one change. Requests already made keep the policy version they were evaluated under (recordedPolicy).
   */
  async applyConfig(config: ServerConfig, reload: Omit<AuditInput, 'at' | 'action'>): Promise<PolicyVersionRef[]> {
    const created: PolicyVersionRef[] = [];
    this.catalog = await this.catalogFor(config, reload, created);
    return created;
  }

  private async catalogFor(config: ServerConfig, reload?: Omit<AuditInput, 'at' | 'action'>, created: PolicyVersionRef[] = []): Promise<Catalog> {
    // Exclusive: instances starting together must not both insert the same next version.
    const { current } = await this.mutate(async (tx) => {
      const recorded = await this.policyVersions.record(tx, config.policies, this.now(), { actor: reload?.actor ?? SYSTEM });
      created.push(...recorded.created);
      if (reload) await tx.audit({ ...reload, at: this.now(), action: 'config.reloaded' });
      return recorded;
    }, { exclusive: true });
    this.policyVersions.remember(config, current);
    return new Catalog(config, new Map([...current].map(([id, ref]) => [id, ref.version])));
  }

  /** The policy a request was evaluated under (its recorded version); the running one if that was never kept. */
  async recordedPolicy(row: { policy_id: string; policy_version: number }): Promise<PolicyConfig | undefined> {
    return (await this.policyVersions.policyAt(row.policy_id, row.policy_version)) ?? this.catalog.config.policies[row.policy_id];
  }

  /** Process every deadline that passed while we were down, resume revocations, arm timers for the rest. */
  async start(): Promise<void> {
    await this.deadlines.start(this.deps.sweepEveryMs ?? 5_000);
    // Reminders and escalations that fell due while the server was down happen now; the rest are armed.
    await this.nudges.armAll();
    this.reviews.start(this.deps.sweepEveryMs ?? 5_000);
  }

  async stop(): Promise<void> {
    this.deadlines.stop();
    this.reviews.stop();
    await this.timers.stop();
    // Let queued changes commit before storage closes.
    await this.writes.drain();
  }

  /** Expire requests and end grants whose instant has passed; arm timers for the future ones when `arm`. */
  sweep(arm: boolean): Promise<void> {
    return this.deadlines.sweep(arm);
  }

  // ---------------------------------------------------------------- transactions, audit

  /** Run one change (its writes, audit rows and events) atomically, grouped with others (see WriteQueue.mutate). */
  mutate<T>(fn: (tx: TxContext) => Promise<T>, options: { exclusive?: boolean; key?: string | readonly string[] } = {}): Promise<T> {
    return this.writes.mutate(fn, options);
  }

  /**
   * Audit rows reported from outside the rules (a bastion's SSH sessions, an admin's reset of a user's factors), each
   * stamped now and with the events it tells, in one transaction of the chain (BastionGrantLookup, StepUpActionResolver).
   */
  auditReported(rows: readonly ReportedAudit[]): Promise<void> {
    return this.writes.mutate(async ({ audit, emit }) => {
      for (const { tell, ...row } of rows) {
        await audit({ ...row, at: this.now() });
        for (const { event, users } of tell ?? []) await emit(event, { users, groups: [], exclude: [] });
      }
    });
  }

  /** Audit a refused action (authorization failure, illegal transition) in its own transaction. */
  refuse<T>(user: { sub: string }, action: string, error: DomainError, refs: RefusalRefs = {}): Promise<Outcome<T>> {
    return this.refusals.refuse<T>(user, action, error, refs);
  }

  // ---------------------------------------------------------------- views

  me(user: AuthUser): Me {
    return this.views.me(user);
  }

  requestById(id: string): Promise<AccessRequest | undefined> {
    return this.views.requestById(id);
  }

  grantById(id: string): Promise<Grant | undefined> {
    return this.views.grantById(id);
  }

  listRequests(user: AuthUser, role: 'mine' | 'approver', state?: RequestState, limit = 100): Promise<AccessRequest[]> {
    return this.views.listRequests(user, role, state, limit);
  }

  getRequest(user: AuthUser, id: string): Promise<Outcome<{ request: AccessRequest; grant?: Grant }>> {
    return this.views.getRequest(user, id);
  }

  listGrants(user: AuthUser, all: boolean, state?: GrantState, limit = 100): Promise<Outcome<Grant[]>> {
    return this.views.listGrants(user, all, state, limit);
  }

  getGrant(user: AuthUser, id: string): Promise<Outcome<Grant>> {
    return this.views.getGrant(user, id);
  }

  /** Audit rows: admins see all; others the rows they wrote or that are about their requests and grants. */
  auditEntries(user: AuthUser, query: Parameters<Views['auditEntries']>[1]) {
    return this.views.auditEntries(user, query);
  }

  // ---------------------------------------------------------------- requests, approvals, step-up

  createRequest(user: AuthUser, body: z.output<typeof CreateRequestBody>, context: RequestContext): Promise<Outcome<{ request: AccessRequest }>> {
    return this.requests.createRequest(user, body, context);
  }

  /** StepUpActionResolver: what a challenge for this action must be bound to, if the caller may take it. */
  resolve(user: { sub: string; groups: string[] }, action: StepUpAction) {
    return this.approvals.resolve(user, action);
  }

  completeStepUp(user: AuthUser, id: string, proof: StepUpProof): Promise<Outcome<{ request: AccessRequest }>> {
    return this.approvals.completeStepUp(user, id, proof);
  }

  expireRequest(id: string): Promise<void> {
    return this.requests.expireRequest(id);
  }

  approve(user: AuthUser, id: string, body: z.output<typeof ApproveBody>): Promise<Outcome<{ request: AccessRequest }>> {
    return this.approvals.approve(user, id, body);
  }

  deny(user: AuthUser, id: string, reason: string): Promise<Outcome<{ request: AccessRequest }>> {
    return this.requests.deny(user, id, reason);
  }

  cancel(user: AuthUser, id: string): Promise<Outcome<{ request: AccessRequest }>> {
    return this.requests.cancel(user, id);
  }

  // ---------------------------------------------------------------- grants

  activate(user: AuthUser, id: string, body: z.output<typeof ActivateBody>): ReturnType<Activation['activate']> {
    return this.activation.activate(user, id, body);
  }

  /** End an active grant (deadline, release, revoke, failed activation) and start revoking its credentials. */
  endGrant(id: string, event: Exclude<GrantEvent, 'extended'>, actor: string, reason: string, options: { due?: boolean; owner?: string } = {}): Promise<Outcome<Grant>> {
    return this.grants.endGrant(id, event, actor, reason, options);
  }

  release(user: AuthUser, id: string): Promise<Outcome<{ grant: Grant }>> {
    return this.grants.release(user, id);
  }

  revoke(user: AuthUser, id: string, body: z.output<typeof RevokeBody>): Promise<Outcome<{ grant: Grant }>> {
    return this.grants.revoke(user, id, body);
  }

  extend(user: AuthUser, id: string, body: z.output<typeof ExtendBody>): Promise<Outcome<{ grant: Grant; request?: AccessRequest }>> {
    return this.grants.extend(user, id, body);
  }

  /** Take an active grant back with new credentials (a new SSH key, a new password) after the agent lost its keys. */
  rekey(user: AuthUser, id: string, body: z.output<typeof RekeyBody>): Promise<Outcome<{ grant: Grant; connection: Connection }>> {
    return this.rekeying.rekey(user, id, body);
  }

  /** The owner's agent still holds these grants (idle end); returns those that are active grants of the owner. */
  heartbeat(user: AuthUser, grantIds: string[]): Promise<string[]> {
    return this.idle.heartbeat(user, grantIds);
  }

  /** The owner asked to see the grant's database password: on the audit record first (see GrantRules). */
  recordPasswordReveal(user: AuthUser, id: string): Promise<Outcome<{ grant: Grant }>> {
    return this.grants.recordPasswordReveal(user, id);
  }

  // ---------------------------------------------------------------- break-glass reviews

  /** The break-glass reviews the caller may record (open ones, or all). */
  listReviews(user: AuthUser, query: z.output<typeof ListReviewsQuery>): Promise<BreakGlassReview[]> {
    return this.reviews.list(user, query);
  }

  /** Record a break-glass review: who, when, outcome, note, on the audit chain. */
  recordReview(user: AuthUser, id: string, body: z.output<typeof RecordReviewBody>): Promise<Outcome<{ review: BreakGlassReview }>> {
    return this.reviews.record(user, id, body);
  }

  /** Remind overdue reviews now (the timer does it every sweep interval). */
  remindOverdueReviews(): Promise<number> {
    return this.reviews.remindOverdue();
  }

  // ---------------------------------------------------------------- revocation

  /** Remove the grant's database role; on failure retry with backoff (durably: the sweep resumes after restart). */
  revokeCredentials(id: string): Promise<void> {
    return this.revocation.revokeCredentials(id);
  }

  /** For the metrics scrape: how many grants still wait for their credentials to be revoked. */
  pendingRevocations(): Promise<number> {
    return this.revocation.pendingRevocations();
  }

  // ---------------------------------------------------------------- bastion lookup

  findActiveGrantByKey(bastionId: string, keyType: string, keyBase64: string): Promise<BastionGrant | undefined> {
    return this.bastion.findActiveGrantByKey(bastionId, keyType, keyBase64);
  }

  endedSince(bastionId: string, since: number): Promise<GrantEndedForBastion[]> {
    return this.bastion.endedSince(bastionId, since);
  }

  findActiveHostGrant(resourceId: string, keyType: string, keyBase64: string): Promise<HostGrant | undefined> {
    return this.bastion.findActiveHostGrant(resourceId, keyType, keyBase64);
  }

  endedOnHostSince(resourceId: string, since: number): Promise<GrantEndedForBastion[]> {
    return this.bastion.endedOnHostSince(resourceId, since);
  }

  onGrantEnded(listener: (event: GrantEndedForBastion) => void, wanted: () => boolean = () => true): () => void {
    return this.bastion.onGrantEnded(listener, wanted);
  }
}
