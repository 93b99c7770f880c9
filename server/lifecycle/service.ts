// The grant lifecycle: requests, approvals, step-up, activation, extension, ends and revocation. The server is the
// source of truth; every state change goes through the transition table in shared/domain, is written in one
// transaction together with its audit row and its events, and the events are published after commit.
// Timed transitions (request TTL, activation window, grant deadline) have one exact timer each, plus a durable
// sweep on start (and every few seconds as a safety net) so ends that passed while the server was down happen.
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import type {
  AccessRequest, ActivateBody, ApproveBody, CreateRequestBody, ExtendBody, Grant, Me, RevokeBody, StepUpMethod, StepUpProof,
} from '../../shared/contract/http';
import type { RequestState, GrantState } from '../../shared/contract/http';
import { grantTransition, requestTransition, REQUEST_STATES, type GrantEvent, type RequestEvent } from '../../shared/domain/lifecycle';
import type { z } from 'zod';
import type { ServerConfig } from '../config';
import { canonicalJson, policyHash } from '../config';
import type { Clock } from '../clock';
import { together, type Store, type Db } from '../storage/db';
import type { CredentialProvider } from '../credentials/provider';
import type { StepUpAction, StepUpActionResolver, StepUpGate } from '../stepup/seam';
import { stepUpFailureStatus } from '../stepup/routes';
import type { BastionGrant, BastionGrantLookup, GrantEndedForBastion } from '../bastion/seam';
import type { AuthUser } from '../identity/user';
import { fail, ok, type DomainError, type Outcome } from '../errors';
import type { Metrics } from '../metrics';
import { Catalog, matchApprovals, type ApprovalRule, type CatalogEntry } from './catalog';
import { AuditChain, type AuditInput } from './audit';
import type { EventBus } from './events';
import { hasRemoteEvents } from './pg-bus';
import { ADD_APPROVALS, unapprovable } from './approvability';
import { assessRisk, BURST_WINDOW_MS } from './risk';
import { WriteQueue, type TxContext } from './write-queue';
import {
  CLAIM_RETRY_MS, iso, lockRow, newId, parseJson, Refusals, safeMessage, sha256, SYSTEM,
  type GrantRow, type Logger, type RefusalRefs, type RequestRow, type Tx,
} from './support';

export type { Logger } from './support';
export type { TxContext } from './write-queue';

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
}

export interface RequestContext { ip?: string }

// Predicates that match a partial index's WHERE are written as literals: a prepared statement's generic plan
// cannot prove that a parameter satisfies the index predicate, and falls back to scanning the whole table.
const REVOKING = [sql.lit('pending'), sql.lit('retrying')];
const REVOKE_BACKOFF_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 60_000];
/** A grant stuck without credentials this long after activation began (server died mid-issue) is failed. */
const ISSUE_STALE_MS = 2 * 60_000;

const PRUNE_EVERY_MS = 3600_000;
const EVENT_RETENTION_MS = 7 * 86400_000;
/** PostgreSQL: revocation batches in flight per instance (each holds a connection across its provider calls). */
const REVOKE_CONCURRENCY = 2;
/** Most revocations claimed in one batch. */
const REVOKE_BATCH = 50;
/**
 * First revocation attempts (see revokeJustEnded) calling the provider at once, per instance; the rest wait their
 * turn. The same bound as the claimed batches: a thousand deadlines in one second must not queue a thousand calls on
 * the provider's small pool, where a call waiting longer than its connect timeout fails.
 */
const FIRST_ATTEMPTS_AT_ONCE = REVOKE_CONCURRENCY * REVOKE_BATCH;
/** The request states an activation may start from (see shared/domain/lifecycle.ts). */
const ACTIVATABLE = REQUEST_STATES.filter((state) => requestTransition(state, 'activated').ok);
const ENDED_STATES = new Set<GrantState>(['ended', 'released', 'revoked', 'failed']);

export class Lifecycle implements StepUpActionResolver, BastionGrantLookup {
  catalog!: Catalog;
  readonly audit = new AuditChain();
  private readonly db: Db;
  /** Short reads by key (see Store.reads): on PostgreSQL, those issued together share one write. */
  private readonly reads: Db;
  private readonly timers = new Map<string, () => void>();
  private readonly revoking = new Set<string>();
  /** First revocation attempts calling the provider, and those waiting for their turn (see firstAttemptTurn). */
  private firstAttemptsRunning = 0;
  private readonly firstAttemptsWaiting: (() => void)[] = [];
  /** Grants revoked in this turn of the event loop, to be recorded in one change (see recordRevokedSoon). */
  private readonly revokedToRecord: { row: GrantRow; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private readonly endedListeners = new Set<{ listener: (event: GrantEndedForBastion) => void; wanted: () => boolean }>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastPrune = 0;
  private readonly writes: WriteQueue;
  private readonly refusals: Refusals;
  /** PostgreSQL: revocations waiting for the next claimed batch (see revokeClaimed). */
  private readonly revokeWaiting = new Map<string, { resolve: (retryAt: number | undefined) => void; reject: (error: unknown) => void }>();
  private revokePumpScheduled = false;
  private revokeBatchesRunning = 0;
  private inflight = new Set<Promise<unknown>>();
  /** True when other server instances may write the same database (PostgreSQL). */
  private readonly shared: boolean;
  /** Grant ends from other instances already announced to this instance's bastion listeners. */
  private readonly remoteEnds = new Set<string>();
  /** Approved requests this instance created, by id: their fixed fields (see rememberFacts). */
  private readonly requestFacts = new Map<string, RequestFacts>();

  constructor(private readonly deps: LifecycleDeps) {
    this.db = deps.store.db;
    this.reads = deps.store.reads;
    this.shared = deps.store.dialect === 'postgres';
    const now = () => this.now();
    this.writes = new WriteQueue({ db: this.db, shared: this.shared, writeSlots: deps.config.storage.writeConcurrency, bus: deps.bus, metrics: deps.metrics, audit: this.audit, now });
    this.refusals = new Refusals({ mutate: (fn) => this.writes.mutate(fn), metrics: deps.metrics, now });
    // A bastion streams grant ends from whichever instance it is connected to: ends committed by other instances
    // reach this instance's listeners through the bus.
    if (this.shared && hasRemoteEvents(deps.bus)) {
      deps.bus.onRemote((events) => {
        const ended = events.flatMap((e) => (e.event.type === 'grant.updated' && e.event.grant.endedAt && ENDED_STATES.has(e.event.grant.state) ? [e.event.grant.id] : []));
        if (ended.length > 0) void this.track(this.announceRemoteEnds(ended)).catch((error) => this.deps.log.error({ err: error }, 'could not announce grant ends from another instance'));
      }, () => this.wantsEnds());
    }
  }

  private async announceRemoteEnds(ids: string[]): Promise<void> {
    // Later updates of an ended grant (its revocation finishing) carry endedAt too: announce each end once.
    const fresh = ids.filter((id) => !this.remoteEnds.has(id));
    for (const id of fresh) {
      this.remoteEnds.add(id);
      if (this.remoteEnds.size > 10_000) this.remoteEnds.delete(this.remoteEnds.values().next().value!);
    }
    if (!this.wantsEnds() || fresh.length === 0) return;
    const rows = await this.db.selectFrom('grants').select(['id', 'bastion_id', 'key_base64', 'ended_at']).where('id', 'in', fresh).where('ended_at', 'is not', null).execute();
    for (const row of rows) {
      const ended: GrantEndedForBastion = { grantId: row.id, bastionId: row.bastion_id, keyBase64: row.key_base64, at: new Date(Number(row.ended_at)) };
      for (const { listener } of this.endedListeners) {
        try { listener(ended); } catch (error) { this.deps.log.error({ err: error }, 'grant-ended listener failed'); }
      }
    }
  }

  private now(): number {
    return this.deps.clock.now().getTime();
  }

  // ---------------------------------------------------------------- start / stop

  /** Record policy versions (a changed policy gets the next version) and build the catalog. */
  async init(): Promise<void> {
    const versions = new Map<string, number>();
    // Exclusive: instances starting together must not both insert the same next version.
    await this.mutate(async ({ trx, audit }) => {
      for (const [policyId, policy] of Object.entries(this.deps.config.policies)) {
        const hash = policyHash(policy);
        const latest = await trx.selectFrom('policy_versions').selectAll().where('policy_id', '=', policyId).orderBy('version', 'desc').limit(1).executeTakeFirst();
        if (latest && latest.hash === hash) {
          versions.set(policyId, latest.version);
          continue;
        }
        const version = (latest?.version ?? 0) + 1;
        await trx.insertInto('policy_versions').values({ policy_id: policyId, version, hash, created_at: this.now() }).execute();
        await audit({ at: this.now(), actor: SYSTEM, action: 'policy.version', reason: latest ? 'policy changed' : 'policy added', policyVersion: version, detail: { policyId, hash } });
        versions.set(policyId, version);
      }
    }, { exclusive: true });
    this.catalog = new Catalog(this.deps.config, versions);
  }

  /** Process every deadline that passed while we were down, resume revocations, arm timers for the rest. */
  async start(): Promise<void> {
    await this.sweep(true);
    const every = this.deps.sweepEveryMs ?? 5_000;
    this.sweepTimer = setInterval(() => { void this.track(this.sweep(false)).catch((error) => this.deps.log.error({ err: error }, 'sweep failed')); }, every);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
    await Promise.allSettled([...this.inflight]);
    // Let queued changes commit before storage closes.
    await this.writes.drain();
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inflight.add(promise);
    void promise.finally(() => this.inflight.delete(promise)).catch(() => {});
    return promise;
  }

  /** Expire requests and end grants whose instant has passed; arm timers for the future ones when `arm`. */
  async sweep(arm: boolean): Promise<void> {
    const now = this.now();
    if (now - this.lastPrune > PRUNE_EVERY_MS) {
      // Idempotency answers are kept a day; events a week (a client offline longer reloads its lists instead).
      this.lastPrune = now;
      await this.db.deleteFrom('idempotency').where('created_at', '<', now - 24 * 3600_000).execute();
      await this.db.deleteFrom('events').where('at', '<', now - EVENT_RETENTION_MS).execute();
    }
    const deadlineStates: RequestState[] = ['pending_stepup', 'pending_approval', 'approved'];
    const requests = await this.db.selectFrom('requests').select(['id', 'expires_at']).where('state', 'in', deadlineStates).where('grant_id', 'is', null)
      .$if(!arm, (q) => q.where('expires_at', '<=', now)).execute();
    // Due transitions are started together so the write queue batches them (a thousand deadlines in the same
    // second cost a few commits, not a thousand).
    const due: Promise<unknown>[] = [];
    for (const r of requests) {
      if (Number(r.expires_at) <= now) due.push(this.expireRequest(r.id));
      else this.schedule(`req:${r.id}`, Number(r.expires_at), () => this.expireRequest(r.id));
    }
    const grants = await this.db.selectFrom('grants').select(['id', 'ends_at', 'db_username', 'starts_at']).where('state', '=', sql.lit('active'))
      .$if(!arm, (q) => q.where((eb) => eb.or([eb('ends_at', '<=', now), eb('db_username', 'is', null)]))).execute();
    for (const g of grants) {
      if (g.db_username === null && Number(g.starts_at) + ISSUE_STALE_MS <= now && !this.timers.has(`issuing:${g.id}`)) {
        due.push(this.endGrant(g.id, 'failed', SYSTEM, 'activation did not complete (server restarted while issuing credentials)'));
      } else if (Number(g.ends_at) <= now) {
        due.push(this.endAtDeadline(g.id));
      } else if (arm) {
        this.schedule(`grant:${g.id}`, Number(g.ends_at), () => this.endAtDeadline(g.id));
      }
    }
    const settled = await Promise.allSettled(due);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const revocations = await this.db.selectFrom('grants').select(['id', 'next_revoke_at']).where('revocation', 'in', REVOKING).execute();
    for (const g of revocations) {
      if (this.revoking.has(g.id) || (!arm && this.timers.has(`revoke:${g.id}`))) continue;
      const at = Number(g.next_revoke_at ?? now);
      if (at <= now) void this.track(this.revokeCredentials(g.id));
      else this.schedule(`revoke:${g.id}`, at, () => this.revokeCredentials(g.id));
    }
  }

  private schedule(key: string, at: number, fn: () => Promise<unknown>): void {
    if (this.stopped) return;
    this.timers.get(key)?.();
    const cancel = this.deps.clock.setTimeout(() => {
      this.timers.delete(key);
      if (this.stopped) return;
      void this.track(fn()).catch((error) => this.deps.log.error({ err: error, key }, 'timed transition failed'));
    }, Math.max(0, at - this.now()));
    this.timers.set(key, cancel);
  }

  private unschedule(key: string): void {
    this.timers.get(key)?.();
    this.timers.delete(key);
  }

  // ---------------------------------------------------------------- transactions, audit, events

  /** Run one change (its writes, audit rows and events) atomically, grouped with others (see WriteQueue.mutate). */
  mutate<T>(fn: (tx: TxContext) => Promise<T>, options: { exclusive?: boolean; key?: string | readonly string[] } = {}): Promise<T> {
    return this.writes.mutate(fn, options);
  }

  /**
   * Lock a grant for a change (end, extension) without queueing behind a revocation: a revocation holds the rows of
   * ended grants across its provider calls (seconds, if the target database hangs), and with one write batch at a
   * time a batch waiting there would hold up every write of this instance. An ended grant has nothing left to change,
   * so it is answered from a plain read; an active one held by another change (briefly) is waited for.
   */
  private async lockGrantForChange(trx: Tx, id: string): Promise<GrantRow | undefined> {
    const query = () => trx.selectFrom('grants').selectAll().where('id', '=', id);
    if (!this.shared) return query().executeTakeFirst();
    const locked = await query().forNoKeyUpdate().skipLocked().executeTakeFirst();
    if (locked) return locked;
    const row = await query().executeTakeFirst();
    if (!row || row.state !== 'active') return row;
    return query().forNoKeyUpdate().executeTakeFirst();
  }

  /** Audit a refused action (authorization failure, illegal transition) in its own transaction. */
  refuse<T>(user: { sub: string }, action: string, error: DomainError, refs: RefusalRefs = {}): Promise<Outcome<T>> {
    return this.refusals.refuse<T>(user, action, error, refs);
  }

  // ---------------------------------------------------------------- mapping

  private async toRequests(rows: RequestRow[]): Promise<AccessRequest[]> {
    if (rows.length === 0) return [];
    const approvals = await this.db.selectFrom('approvals').selectAll().where('request_id', 'in', rows.map((r) => r.id)).orderBy('at').execute();
    const byRequest = new Map<string, typeof approvals>();
    for (const a of approvals) {
      const list = byRequest.get(a.request_id) ?? [];
      list.push(a);
      byRequest.set(a.request_id, list);
    }
    return rows.map((row) => this.toRequest(row, byRequest.get(row.id) ?? []));
  }

  private toRequest(row: RequestRow, approvals: { approver: string; approver_name: string | null; groups: string; at: number }[]): AccessRequest {
    const rules = parseJson<ApprovalRule[]>(row.approval_rules);
    const people = approvals.map((a) => ({ sub: a.approver, groups: parseJson<string[]>(a.groups) }));
    const match = matchApprovals(rules, people);
    return {
      id: row.id,
      requester: row.requester,
      ...(row.requester_name ? { requesterName: row.requester_name } : {}),
      resourceId: row.resource_id,
      level: row.level,
      durationSeconds: row.duration_seconds,
      reason: row.reason,
      ...(row.ticket ? { ticket: row.ticket } : {}),
      breakGlass: row.break_glass === 1,
      state: row.state as RequestState,
      policyVersion: row.policy_version,
      risk: { score: row.risk_score, reasons: parseJson<string[]>(row.risk_reasons) },
      approvals: approvals.map((a) => ({ approver: a.approver, ...(a.approver_name ? { approverName: a.approver_name } : {}), group: match.assignment.get(a.approver) ?? parseJson<string[]>(a.groups)[0] ?? '', at: iso(a.at)! })),
      approvalsNeeded: rules.map((r, i) => ({ group: r.group, count: r.count, have: match.have[i] ?? 0 })),
      stepUpRequired: row.step_up_required === 1,
      stepUpMethods: parseJson<StepUpMethod[]>(row.step_up_methods),
      createdAt: iso(row.created_at)!,
      expiresAt: iso(row.expires_at)!,
      ...(row.decided_at !== null ? { decidedAt: iso(row.decided_at) } : {}),
      ...(row.decision_reason ? { decisionReason: row.decision_reason } : {}),
      ...(row.grant_id ? { grantId: row.grant_id } : {}),
      ...(row.extends_grant_id ? { extendsGrantId: row.extends_grant_id } : {}),
    };
  }

  private toGrant(row: GrantRow): Grant {
    return {
      id: row.id,
      requestId: row.request_id,
      owner: row.owner,
      resourceId: row.resource_id,
      level: row.level,
      state: row.state as GrantState,
      startsAt: iso(row.starts_at)!,
      endsAt: iso(row.ends_at)!,
      ...(row.ended_at !== null ? { endedAt: iso(row.ended_at) } : {}),
      ...(row.end_reason ? { endReason: row.end_reason } : {}),
      extendedSeconds: row.extended_seconds,
      revocation: row.revocation as Grant['revocation'],
      breakGlass: row.break_glass === 1,
    };
  }

  async requestById(id: string): Promise<AccessRequest | undefined> {
    const row = await this.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? (await this.toRequests([row]))[0] : undefined;
  }

  async grantById(id: string): Promise<Grant | undefined> {
    const row = await this.reads.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toGrant(row) : undefined;
  }

  /** Events for a request change: the requester always; approvers while (or when leaving) pending approval. */
  private async emitRequest(ctx: TxContext, row: RequestRow, before: RequestState | undefined): Promise<AccessRequest> {
    // Requests without approval rules (auto-approve, break-glass) never have approval rows.
    const approvals = row.approval_rules === '[]' ? [] : await ctx.trx.selectFrom('approvals').selectAll().where('request_id', '=', row.id).orderBy('at').execute();
    const request = this.toRequest(row, approvals);
    const groups = parseJson<ApprovalRule[]>(row.approval_rules).map((r) => r.group);
    const involvesApprovers = row.state === 'pending_approval' || before === 'pending_approval';
    await ctx.emit({ type: 'request.updated', request }, { users: [row.requester], groups: involvesApprovers ? groups : [], exclude: [] });
    if (row.state === 'pending_approval' && before !== 'pending_approval') {
      await ctx.emit({ type: 'approval.asked', request }, { users: [], groups, exclude: [row.requester] });
    }
    if (before === 'pending_approval' && row.state !== 'pending_approval') {
      await ctx.emit({ type: 'approval.withdrawn', requestId: row.id }, { users: [], groups, exclude: [row.requester] });
    }
    return request;
  }

  private async emitGrant(ctx: TxContext, row: GrantRow): Promise<Grant> {
    const grant = this.toGrant(row);
    await ctx.emit({ type: 'grant.updated', grant }, { users: [row.owner], groups: [], exclude: [] });
    return grant;
  }

  // ---------------------------------------------------------------- identity-level views

  me(user: AuthUser): Me {
    return { sub: user.sub, email: user.email, name: user.name, groups: user.groups, admin: user.admin, approver: this.catalog.isApprover(user), serverTime: new Date(this.now()).toISOString() };
  }

  // ---------------------------------------------------------------- create

  async createRequest(user: AuthUser, body: z.output<typeof CreateRequestBody>, context: RequestContext): Promise<Outcome<{ request: AccessRequest }>> {
    const entry = this.catalog.entry(body.resourceId);
    const refs = { resourceId: body.resourceId, subject: user.sub };
    if (!entry || !this.catalog.canRequest(user, entry)) {
      return this.refuse(user, 'request.create', { status: 404, code: 'resource_not_found', message: `no resource ${body.resourceId} that you may request` }, refs);
    }
    const { policy, resource } = entry;
    const policyVersion = this.catalog.policyVersion(entry.policyId);
    const refsV = { ...refs, policyVersion };
    if (body.breakGlass) {
      if (!this.catalog.canBreakGlass(user, entry)) return this.refuse(user, 'request.create', { status: 403, code: 'breakglass_not_allowed', message: 'you may not use break-glass on this resource' }, refsV);
      if (!body.reason.trim()) return fail(422, 'reason_required', 'break-glass needs a reason', { errors: [{ path: 'reason', message: 'required for break-glass' }] });
    } else if (!user.groups.some((g) => policy.requesters.includes(g))) {
      return this.refuse(user, 'request.create', { status: 403, code: 'not_a_requester', message: 'you may request this resource only with break-glass' }, refsV);
    }
    if (!Object.hasOwn(resource.levels, body.level)) {
      return fail(422, 'unknown_level', `level ${body.level} does not exist on ${resource.id} (levels: ${Object.keys(resource.levels).join(', ')})`, { errors: [{ path: 'level', message: 'unknown access level' }] });
    }
    const duration = body.durationSeconds ?? policy.duration.default;
    if (duration > policy.duration.max) {
      return fail(422, 'duration_over_limit', `at most ${policy.duration.max} seconds may be requested on ${resource.id}`, { errors: [{ path: 'durationSeconds', message: `at most ${policy.duration.max}` }] });
    }
    if (policy.reason === 'required' && !body.reason.trim()) return fail(422, 'reason_required', 'this policy needs a reason', { errors: [{ path: 'reason', message: 'required' }] });
    if (policy.ticket) {
      if (body.ticket !== undefined && !new RegExp(policy.ticket.pattern).test(body.ticket)) {
        return fail(422, 'ticket_invalid', `the ticket must match ${policy.ticket.pattern}`, { errors: [{ path: 'ticket', message: `must match ${policy.ticket.pattern}` }] });
      }
      if (policy.ticket.required && !body.ticket) return fail(422, 'ticket_required', 'this policy needs a ticket', { errors: [{ path: 'ticket', message: 'required' }] });
    }

    const now = this.now();
    const risk = await this.assess(user, resource.sensitivity, body.deviceId, context.ip, now);
    const stepUp = this.catalog.stepUpNeeded(policy.stepUp.request, policy, risk.score);
    if (stepUp && !this.deps.gate) {
      return this.refuse(user, 'request.create', { status: 409, code: 'stepup_unavailable', message: 'this request needs a step-up but the server has no step-up configured; ask an administrator' }, { ...refsV });
    }
    const auto = body.breakGlass ? { ok: true, why: 'break-glass' } : this.catalog.autoApproves(user, entry, risk.score, new Date(now));
    const state: RequestState = stepUp ? 'pending_stepup' : auto.ok ? 'approved' : 'pending_approval';
    const rules = body.breakGlass ? [] : this.catalog.rules(entry);
    // Never leave a request waiting for nobody: the config load refuses such a policy, this holds if one got past it.
    if (!auto.ok && rules.length === 0) {
      const fix = unapprovable(resource, entry.policyId, policy)?.fix ?? ADD_APPROVALS;
      return this.refuse(user, 'request.create', { status: 409, code: 'no_approval_route', message: `nobody could approve this request on ${resource.id}: policy ${entry.policyId} has no approvals rule and does not auto-approve it (${auto.why}); ask an administrator to ${fix}` }, refsV);
    }
    const row: RequestRow = {
      id: newId('req'),
      requester: user.sub,
      requester_name: user.name ?? null,
      resource_id: resource.id,
      level: body.level,
      duration_seconds: duration,
      reason: body.reason,
      ticket: body.ticket ?? null,
      break_glass: body.breakGlass ? 1 : 0,
      state,
      policy_id: entry.policyId,
      policy_version: policyVersion,
      risk_score: risk.score,
      risk_reasons: JSON.stringify(risk.reasons),
      step_up_required: stepUp ? 1 : 0,
      step_up_methods: JSON.stringify(stepUp ? policy.stepUp.methods : []),
      approval_rules: JSON.stringify(rules),
      device_id: body.deviceId ?? null,
      source_ip: context.ip ?? null,
      created_at: now,
      expires_at: now + (state === 'approved' ? policy.activationWindow : policy.requestTtl) * 1000,
      decided_at: state === 'approved' ? now : null,
      decision_reason: state === 'approved' ? auto.why : null,
      grant_id: null,
      extends_grant_id: null,
      auto_approve: auto.ok ? 1 : 0,
    };
    const request = await this.mutate(async (ctx) => {
      await ctx.trx.insertInto('requests').values(row).execute();
      // A device or address is learnt only with a request that was granted (here: at once); a denied or abandoned
      // request must not make the next one from the same place look familiar.
      if (state === 'approved') await this.remember(ctx.trx, user.sub, risk.newDevice ? body.deviceId : undefined, risk.newIp ? context.ip : undefined, now);
      const base: Omit<AuditInput, 'action'> = { at: now, actor: user.sub, subject: user.sub, requestId: row.id, resourceId: resource.id, policyVersion, risk: risk.score };
      await ctx.audit({ ...base, action: 'request.created', reason: body.reason || undefined, detail: { level: body.level, durationSeconds: duration, state, riskReasons: risk.reasons, ticket: body.ticket, breakGlass: body.breakGlass } });
      if (state === 'approved') await ctx.audit({ ...base, actor: SYSTEM, action: 'request.approved', reason: auto.why });
      const mapped = await this.emitRequest(ctx, row, undefined);
      if (state === 'approved' && body.breakGlass) await this.breakGlassUsed(ctx, entry, row, mapped);
      return mapped;
    }, { key: `request:${row.id}` });
    // Once committed (a change that is retried or fails must not leave facts of a request that does not exist).
    this.rememberFacts(row);
    this.deps.metrics.transitions.inc({ kind: 'request', to: state });
    this.schedule(`req:${row.id}`, row.expires_at, () => this.expireRequest(row.id));
    return ok({ request });
  }

  private async breakGlassUsed(ctx: TxContext, entry: CatalogEntry, row: RequestRow, request: AccessRequest): Promise<void> {
    await ctx.audit({ at: this.now(), actor: row.requester, subject: row.requester, action: 'breakglass.used', requestId: row.id, resourceId: row.resource_id, reason: row.reason, policyVersion: row.policy_version, risk: row.risk_score, detail: { review: true } });
    await ctx.emit({ type: 'breakglass.used', request }, { users: [], groups: this.catalog.breakGlassAudience(entry), exclude: [row.requester] });
  }

  private async assess(user: AuthUser, sensitivity: 'low' | 'medium' | 'high', deviceId: string | undefined, ip: string | undefined, now: number) {
    // One round trip (each costs a syscall each way on a busy server): the scalar signals, joined to the recent history
    // (one row per past request, the signals repeated; a user with no history still gets the one row of signals).
    const seenValue = (kind: 'device' | 'ip', value: string) => this.reads.selectFrom('seen').select('value').where('user_sub', '=', user.sub).where('kind', '=', kind).where('value', '=', value);
    const signalsQuery = this.reads.selectNoFrom((eb) => [
      eb.exists(seenValue('device', deviceId ?? '')).as('device_seen'),
      eb.exists(seenValue('ip', ip ?? '')).as('ip_seen'),
      eb.selectFrom('audit').select((f) => f.fn.countAll<number>().as('n')).where('actor', '=', user.sub).where('action', '=', sql.lit('stepup.failed')).where('at', '>', now - 3600_000).as('failures'),
    ]).as('signals');
    const historyQuery = this.reads.selectFrom('requests').select('created_at').where('requester', '=', user.sub).where('created_at', '>', now - 30 * 86400_000)
      .orderBy('created_at', 'desc').limit(50).as('history');
    const rows = await this.reads.selectFrom(signalsQuery).leftJoin(historyQuery, (join) => join.onTrue())
      .select(['signals.device_seen', 'signals.ip_seen', 'signals.failures', 'history.created_at'])
      .execute();
    const signals = rows[0]!;
    const history = rows.filter((r) => r.created_at !== null).map((r) => ({ created_at: r.created_at! }));
    // SQLite answers EXISTS with 0/1, PostgreSQL with a boolean.
    const deviceSeen = Boolean(signals.device_seen);
    const ipSeen = Boolean(signals.ip_seen);
    const failures = { n: Number(signals.failures ?? 0) };
    const assessment = assessRisk({
      sensitivity,
      deviceId,
      deviceSeen,
      ip,
      ipSeen,
      usualHours: history.map((h) => new Date(Number(h.created_at)).getUTCHours()),
      hourNow: new Date(now).getUTCHours(),
      recentRequests: history.filter((h) => Number(h.created_at) > now - BURST_WINDOW_MS).length,
      recentFailedStepUps: failures.n,
    });
    return { ...assessment, newDevice: !!deviceId && !deviceSeen, newIp: !!ip && !ipSeen };
  }

  private async remember(trx: Tx, sub: string, deviceId: string | undefined, ip: string | undefined, now: number): Promise<void> {
    for (const [kind, value] of [['device', deviceId], ['ip', ip]] as const) {
      if (!value) continue;
      // Only new values are written: an ordinary request by a known device touches no page of this table.
      await trx.insertInto('seen').values({ user_sub: sub, kind, value, first_seen: now, last_seen: now })
        .onConflict((oc) => oc.columns(['user_sub', 'kind', 'value']).doNothing()).execute();
    }
  }

  // ---------------------------------------------------------------- step-up

  private requestActionHash(row: RequestRow): string {
    return sha256(canonicalJson({ kind: 'request', requestId: row.id, requester: row.requester, resourceId: row.resource_id, level: row.level, durationSeconds: row.duration_seconds, reason: row.reason, ticket: row.ticket, breakGlass: row.break_glass === 1, extendsGrantId: row.extends_grant_id }));
  }

  private approveActionHash(row: RequestRow, approver: string): string {
    return sha256(canonicalJson({ kind: 'approve', approver, requestId: row.id, requester: row.requester, resourceId: row.resource_id, level: row.level, durationSeconds: row.duration_seconds, reason: row.reason, ticket: row.ticket, extendsGrantId: row.extends_grant_id }));
  }

  private approveNeedsStepUp(row: RequestRow): { needed: boolean; methods: StepUpMethod[]; userVerification: boolean } {
    const entry = this.catalog.entry(row.resource_id);
    if (!entry) return { needed: false, methods: [], userVerification: true };
    const policy = entry.policy;
    return { needed: this.catalog.stepUpNeeded(policy.stepUp.approve, policy, row.risk_score), methods: policy.stepUp.methods as StepUpMethod[], userVerification: policy.stepUp.userVerification };
  }

  /** StepUpActionResolver: what a challenge for this action must be bound to, if the caller may take it. */
  async resolve(user: { sub: string; groups: string[] }, action: StepUpAction) {
    const row = await this.reads.selectFrom('requests').selectAll().where('id', '=', action.requestId).executeTakeFirst();
    if (!row) return { ok: false as const, status: 404 as const, code: 'request_not_found', message: `no request ${action.requestId}` };
    const entry = this.catalog.entry(row.resource_id);
    if (action.kind === 'request') {
      if (row.requester !== user.sub) return { ok: false as const, status: 404 as const, code: 'request_not_found', message: `no request ${action.requestId}` };
      if (row.state !== 'pending_stepup') return { ok: false as const, status: 409 as const, code: 'stepup_not_pending', message: `the request is ${row.state}, not waiting for a step-up` };
      const policy = entry?.policy;
      return { ok: true as const, actionHash: this.requestActionHash(row), methods: parseJson<StepUpMethod[]>(row.step_up_methods), userVerification: policy?.stepUp.userVerification ?? true, summary: `Request ${row.level} on ${row.resource_id} for ${Math.round(row.duration_seconds / 60)} min` };
    }
    const can = await this.approverCheck(user, row);
    if (!can.ok) return { ok: false as const, status: can.error.status === 404 ? 404 as const : can.error.status === 403 ? 403 as const : 409 as const, code: can.error.code, message: can.error.message };
    const need = this.approveNeedsStepUp(row);
    return { ok: true as const, actionHash: this.approveActionHash(row, user.sub), methods: need.methods, userVerification: need.userVerification, summary: `Approve ${row.requester}'s ${row.level} access to ${row.resource_id}` };
  }

  async completeStepUp(user: AuthUser, id: string, proof: StepUpProof): Promise<Outcome<{ request: AccessRequest }>> {
    const row = await this.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || row.requester !== user.sub) return this.refuse(user, 'request.stepup', { status: 404, code: 'request_not_found', message: `no request ${id}` }, { requestId: id });
    if (row.state !== 'pending_stepup') return this.refuse(user, 'request.stepup', { status: 409, code: 'illegal_transition', message: `the request is ${row.state}, not waiting for a step-up` }, { requestId: id, subject: row.requester });
    if (!this.deps.gate) return fail(409, 'stepup_unavailable', 'the server has no step-up configured');
    const methods = parseJson<StepUpMethod[]>(row.step_up_methods);
    const policy = this.catalog.entry(row.resource_id)?.policy;
    const result = await this.deps.gate.verify({ userId: user.sub, action: { kind: 'request', requestId: id }, actionHash: this.requestActionHash(row), methods, userVerification: policy?.stepUp.userVerification ?? true, proof });
    if (!result.ok) return this.stepUpFailed(user, row, 'request', result);
    const event: RequestEvent = row.auto_approve === 1 ? 'auto_approved' : 'stepup_passed';
    const outcome = await this.transitionRequest(id, event, user.sub, { method: result.method }, (r) => {
      const p = this.catalog.entry(r.resource_id)?.policy;
      return event === 'auto_approved'
        ? { expires_at: this.now() + (p?.activationWindow ?? 900) * 1000, decided_at: this.now(), decision_reason: r.break_glass ? 'break-glass' : 'auto-approved by policy' }
        : {};
    });
    if (!outcome.ok) return outcome;
    return ok({ request: outcome.value });
  }

  private async stepUpFailed<T>(user: AuthUser, row: RequestRow, kind: 'request' | 'approve', result: Extract<Awaited<ReturnType<StepUpGate['verify']>>, { ok: false }>): Promise<Outcome<T>> {
    await this.mutate(({ audit }) => audit({ at: this.now(), actor: user.sub, subject: row.requester, action: 'stepup.failed', requestId: row.id, resourceId: row.resource_id, reason: result.message, policyVersion: row.policy_version, detail: { code: result.code, kind } }));
    const status = stepUpFailureStatus(result.code) as DomainError['status'];
    return fail(status, result.code, result.message, { extra: { ...(result.reason ? { reason: result.reason } : {}), ...(result.attemptsLeft !== undefined ? { attemptsLeft: result.attemptsLeft } : {}), ...(result.retryAfter ? { retryAfter: result.retryAfter.toISOString() } : {}) } });
  }

  // ---------------------------------------------------------------- transitions on requests

  /**
   * Apply one table transition to a request inside a transaction: re-read, check, update, audit, emit.
   * `patch` adds columns to change (deadline, decision…).
   */
  private async transitionRequest(id: string, event: RequestEvent, actor: string, detail: Record<string, unknown> | undefined, patch: (row: RequestRow) => Partial<RequestRow>, reason?: string, options: { claim?: boolean } = {}): Promise<Outcome<AccessRequest>> {
    const result = await this.mutate(async (ctx): Promise<Outcome<{ request: AccessRequest; row: RequestRow }>> => {
      const row = await lockRow(this.shared, ctx.trx.selectFrom('requests').selectAll().where('id', '=', id), options.claim).executeTakeFirst();
      if (!row && options.claim) return fail(409, 'busy', `request ${id} is being changed by another transaction`, { audit: false });
      if (!row) return fail(404, 'request_not_found', `no request ${id}`);
      const step = requestTransition(row.state as RequestState, event);
      if (!step.ok) return fail(409, step.code, step.message, { audit: true });
      if ((event === 'cancelled' || event === 'expired') && row.grant_id) return fail(409, 'illegal_transition', 'the request was already activated', { audit: true });
      const changes: Partial<RequestRow> = { state: step.to, ...patch(row) };
      if (['denied', 'cancelled', 'expired'].includes(step.to)) { changes.decided_at ??= this.now(); changes.decision_reason ??= reason ?? null; }
      await ctx.trx.updateTable('requests').set(changes).where('id', '=', id).execute();
      const updated = { ...row, ...changes } as RequestRow;
      await ctx.audit({ at: this.now(), actor, subject: row.requester, action: `request.${event}`, requestId: id, resourceId: row.resource_id, reason, policyVersion: row.policy_version, risk: row.risk_score, detail });
      const request = await this.emitRequest(ctx, updated, row.state as RequestState);
      if (event === 'auto_approved' && row.break_glass === 1) {
        const entry = this.catalog.entry(row.resource_id);
        if (entry) await this.breakGlassUsed(ctx, entry, updated, request);
      }
      return ok({ request, row: updated });
    });
    if (!result.ok) return result;
    const { row, request } = result.value;
    this.deps.metrics.transitions.inc({ kind: 'request', to: row.state });
    if (['pending_stepup', 'pending_approval', 'approved'].includes(row.state) && !row.grant_id) this.schedule(`req:${id}`, Number(row.expires_at), () => this.expireRequest(id));
    else this.unschedule(`req:${id}`);
    return ok(request);
  }

  async expireRequest(id: string): Promise<void> {
    const row = await this.reads.selectFrom('requests').select(['state', 'expires_at', 'grant_id']).where('id', '=', id).executeTakeFirst();
    if (!row || row.grant_id || Number(row.expires_at) > this.now()) {
      if (row && !row.grant_id && Number(row.expires_at) > this.now() && ['pending_stepup', 'pending_approval', 'approved'].includes(row.state)) {
        this.schedule(`req:${id}`, Number(row.expires_at), () => this.expireRequest(id));
      }
      return;
    }
    if (!['pending_stepup', 'pending_approval', 'approved'].includes(row.state)) return;
    const why = row.state === 'approved' ? 'not activated within the activation window' : 'request TTL passed';
    // Claimed: if another instance (or change) holds the row, it is acting on it; look again shortly.
    const outcome = await this.transitionRequest(id, 'expired', SYSTEM, undefined, () => ({}), why, { claim: true });
    if (!outcome.ok && outcome.error.code === 'busy') this.schedule(`req:${id}`, this.now() + CLAIM_RETRY_MS, () => this.expireRequest(id));
  }

  /** Common checks for an approver acting on a request (approve, and the step-up challenge for approving). */
  private async approverCheck(user: { sub: string; groups: string[] }, row: RequestRow): Promise<Outcome<{ rules: ApprovalRule[] }>> {
    if (row.requester === user.sub) return fail(403, 'self_approval', 'you cannot approve your own request', { audit: true });
    if (row.state !== 'pending_approval') return fail(409, 'illegal_transition', `the request is ${row.state.replace('_', ' ')}; it cannot be approved`, { audit: true });
    if (Number(row.expires_at) <= this.now()) return fail(409, 'request_expired', 'the request has expired', { audit: true });
    const rules = parseJson<ApprovalRule[]>(row.approval_rules);
    const mine = rules.map((r) => r.group).filter((g) => user.groups.includes(g));
    if (mine.length === 0) return fail(403, 'not_an_approver', `you are not in an approval group of this request (${rules.map((r) => r.group).join(', ')})`, { audit: true });
    const existing = await this.reads.selectFrom('approvals').select(['approver', 'groups']).where('request_id', '=', row.id).execute();
    if (existing.some((a) => a.approver === user.sub)) return fail(409, 'already_approved', 'you already approved this request; one person fills one slot', { audit: true });
    const people = existing.map((a) => ({ sub: a.approver, groups: parseJson<string[]>(a.groups) }));
    const before = matchApprovals(rules, people);
    const after = matchApprovals(rules, [...people, { sub: user.sub, groups: mine }]);
    const filled = (m: typeof before) => m.have.reduce((a, b) => a + b, 0);
    if (filled(after) <= filled(before)) return fail(409, 'approval_not_needed', 'the approval slots you could fill are already filled by others', { audit: true });
    return ok({ rules });
  }

  async approve(user: AuthUser, id: string, body: z.output<typeof ApproveBody>): Promise<Outcome<{ request: AccessRequest }>> {
    const row = await this.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return this.refuse(user, 'request.approve', { status: 404, code: 'request_not_found', message: `no request ${id}` }, { requestId: id });
    const refs = { requestId: id, subject: row.requester, resourceId: row.resource_id, policyVersion: row.policy_version };
    if (row.state === 'pending_approval' && Number(row.expires_at) <= this.now()) await this.expireRequest(id);
    const check = await this.approverCheck(user, row);
    if (!check.ok) return this.refuse(user, 'request.approve', check.error, refs);
    const need = this.approveNeedsStepUp(row);
    let method: StepUpMethod | undefined;
    if (need.needed) {
      if (!this.deps.gate) return this.refuse(user, 'request.approve', { status: 409, code: 'stepup_unavailable', message: 'approving needs a step-up but the server has no step-up configured' }, refs);
      if (!body.stepUp) {
        return fail(403, 'stepup_required', 'approving this request needs a fresh step-up: get a challenge for {kind: "approve"} and send its proof as stepUp', { extra: { stepUp: { methods: need.methods, action: { kind: 'approve', requestId: id } } } });
      }
      const result = await this.deps.gate.verify({ userId: user.sub, action: { kind: 'approve', requestId: id }, actionHash: this.approveActionHash(row, user.sub), methods: need.methods, userVerification: need.userVerification, proof: body.stepUp });
      if (!result.ok) return this.stepUpFailed(user, row, 'approve', result);
      method = result.method;
    }
    const mine = check.value.rules.map((r) => r.group).filter((g) => user.groups.includes(g));
    const result = await this.mutate(async (ctx): Promise<Outcome<{ request: AccessRequest; row: RequestRow }>> => {
      // Re-check inside the transaction: another approver or a timer may have moved the request meanwhile.
      const current = await lockRow(this.shared, ctx.trx.selectFrom('requests').selectAll().where('id', '=', id)).executeTakeFirstOrThrow();
      if (current.state !== 'pending_approval') return fail(409, 'illegal_transition', `the request is ${current.state.replace('_', ' ')}; it cannot be approved`, { audit: true });
      const existing = await ctx.trx.selectFrom('approvals').select(['approver', 'groups']).where('request_id', '=', id).execute();
      if (existing.some((a) => a.approver === user.sub)) return fail(409, 'already_approved', 'you already approved this request', { audit: true });
      const now = this.now();
      await ctx.trx.insertInto('approvals').values({ request_id: id, approver: user.sub, approver_name: user.name ?? null, groups: JSON.stringify(mine), comment: body.comment ?? null, at: now }).execute();
      const people = [...existing.map((a) => ({ sub: a.approver, groups: parseJson<string[]>(a.groups) })), { sub: user.sub, groups: mine }];
      const match = matchApprovals(check.value.rules, people);
      const base = { at: now, actor: user.sub, subject: current.requester, requestId: id, resourceId: current.resource_id, policyVersion: current.policy_version, risk: current.risk_score };
      await ctx.audit({ ...base, action: 'request.approval_added', reason: body.comment, detail: { group: match.assignment.get(user.sub), stepUp: method } });
      let updated = current;
      if (match.complete) {
        const step = requestTransition('pending_approval', 'approved');
        if (!step.ok) return fail(409, step.code, step.message);
        const policy = this.catalog.entry(current.resource_id)?.policy;
        const changes: Partial<RequestRow> = { state: step.to, decided_at: now, decision_reason: 'approved', expires_at: now + (policy?.activationWindow ?? 900) * 1000 };
        await ctx.trx.updateTable('requests').set(changes).where('id', '=', id).execute();
        updated = { ...current, ...changes };
        await ctx.audit({ ...base, action: 'request.approved', detail: { approvers: people.map((p) => p.sub) } });
        await this.remember(ctx.trx, current.requester, current.device_id ?? undefined, current.source_ip ?? undefined, now);
      }
      const request = await this.emitRequest(ctx, updated, 'pending_approval');
      return ok({ request, row: updated });
    });
    if (!result.ok) return this.refuse(user, 'request.approve', result.error, refs);
    const updated = result.value.row;
    if (updated.state === 'approved') {
      this.deps.metrics.transitions.inc({ kind: 'request', to: 'approved' });
      if (updated.extends_grant_id) {
        this.unschedule(`req:${id}`);
        await this.applyApprovedExtension(updated);
        return ok({ request: (await this.requestById(id))! });
      }
      this.schedule(`req:${id}`, Number(updated.expires_at), () => this.expireRequest(id));
    }
    return ok({ request: result.value.request });
  }

  async deny(user: AuthUser, id: string, reason: string): Promise<Outcome<{ request: AccessRequest }>> {
    const row = await this.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return this.refuse(user, 'request.deny', { status: 404, code: 'request_not_found', message: `no request ${id}` }, { requestId: id });
    const refs = { requestId: id, subject: row.requester, resourceId: row.resource_id, policyVersion: row.policy_version };
    if (row.requester === user.sub) return this.refuse(user, 'request.deny', { status: 403, code: 'self_approval', message: 'you cannot decide your own request (cancel it instead)' }, refs);
    const rules = parseJson<ApprovalRule[]>(row.approval_rules);
    if (!user.admin && !rules.some((r) => user.groups.includes(r.group))) return this.refuse(user, 'request.deny', { status: 403, code: 'not_an_approver', message: 'you are not an approver of this request' }, refs);
    const outcome = await this.transitionRequest(id, 'denied', user.sub, undefined, () => ({ decision_reason: reason }), reason);
    if (!outcome.ok) return this.refuse(user, 'request.deny', outcome.error, refs);
    return ok({ request: outcome.value });
  }

  async cancel(user: AuthUser, id: string): Promise<Outcome<{ request: AccessRequest }>> {
    const row = await this.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || row.requester !== user.sub) return this.refuse(user, 'request.cancel', { status: 404, code: 'request_not_found', message: `no request ${id} of yours` }, { requestId: id });
    const outcome = await this.transitionRequest(id, 'cancelled', user.sub, undefined, () => ({ decision_reason: 'cancelled by the requester' }), 'cancelled by the requester');
    if (!outcome.ok) return this.refuse(user, 'request.cancel', outcome.error, { requestId: id, subject: row.requester });
    return ok({ request: outcome.value });
  }

  // ---------------------------------------------------------------- activation

  /**
   * Keep the fields of a request this instance wrote that never change after creation, so that activating it needs
   * no read first: the claim (a conditional update) checks the state, and only a refused claim reads the row to say why.
   * Bounded; another instance, a restart or an evicted entry simply means one read.
   */
  private rememberFacts(row: RequestRow): void {
    if (row.state !== 'approved' || row.extends_grant_id) return;
    this.requestFacts.set(row.id, { id: row.id, requester: row.requester, resource_id: row.resource_id, level: row.level, duration_seconds: row.duration_seconds, break_glass: row.break_glass, policy_version: row.policy_version });
    if (this.requestFacts.size > MAX_REMEMBERED_REQUESTS) this.requestFacts.delete(this.requestFacts.keys().next().value!);
  }

  /** Why this request cannot be activated now (expiring it if its window has passed), or undefined if it can. */
  private async activationRefusal(user: AuthUser, id: string, row: RequestRow | undefined): Promise<Outcome<never> | undefined> {
    if (!row || row.requester !== user.sub) return this.refuse(user, 'request.activate', { status: 404, code: 'request_not_found', message: `no request ${id} of yours` }, { requestId: id });
    const refs = { requestId: id, subject: row.requester, resourceId: row.resource_id, policyVersion: row.policy_version };
    if (row.state === 'approved' && !row.grant_id && Number(row.expires_at) <= this.now()) {
      await this.expireRequest(id);
      return this.refuse(user, 'request.activate', { status: 409, code: 'request_expired', message: 'the activation window has passed' }, refs);
    }
    if (row.state !== 'approved' || row.grant_id || row.extends_grant_id) {
      return this.refuse(user, 'request.activate', { status: 409, code: 'illegal_transition', message: row.grant_id ? 'the request was already activated' : `the request is ${row.state.replace('_', ' ')}; only an approved request can be activated` }, refs);
    }
    return undefined;
  }

  async activate(user: AuthUser, id: string, body: z.output<typeof ActivateBody>): Promise<Outcome<{ grant: Grant; connection: import('../../shared/contract/http').Connection }>> {
    const readRow = () => this.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    let row: RequestFacts | undefined = this.requestFacts.get(id);
    if (!row || row.requester !== user.sub) {
      const stored = await readRow();
      const refused = await this.activationRefusal(user, id, stored);
      if (refused) return refused;
      row = stored!;
    }
    const refs = { requestId: id, subject: row.requester, resourceId: row.resource_id, policyVersion: row.policy_version };
    const credentials = this.deps.credentials;
    if (!credentials) return fail(503, 'credentials_unavailable', 'the server has no credential provider configured');
    const entry = this.catalog.entry(row.resource_id);
    if (!entry) return fail(409, 'resource_gone', `resource ${row.resource_id} is no longer in the catalog`);
    const [keyType, keyBase64] = body.publicKey.split(' ') as [string, string];
    const bastion = this.deps.config.bastions[entry.resource.bastion]!;

    const started = await this.mutate(async (ctx): Promise<Outcome<GrantRow>> => {
      const now = this.now();
      // Built from the request read above: the fields copied are fixed when a request is created.
      const grant: GrantRow = {
        id: newId('gr'), request_id: id, owner: row.requester, resource_id: row.resource_id, level: row.level, state: 'active',
        starts_at: now, ends_at: now + row.duration_seconds * 1000, ended_at: null, end_reason: null, extended_seconds: 0,
        revocation: 'none', revoke_attempts: 0, next_revoke_at: null, last_revoke_error: null, db_username: null,
        key_type: keyType, key_base64: keyBase64, bastion_id: entry.resource.bastion, target_host: entry.resource.target.host,
        target_port: entry.resource.target.port, break_glass: row.break_glass, policy_version: row.policy_version,
      };
      // Two statements, each its own check: the insert meets the unique index on active grants' keys (migration
      // 0004: also between instances), and the update takes the request only while it is approved without a grant.
      // Issued together (one round trip); the rare loser of either check undoes the other within this transaction.
      const [inserted, claim] = await together(ctx.trx,
        ctx.trx.insertInto('grants').values(grant).onConflict((oc) => oc.doNothing()),
        ctx.trx.updateTable('requests').set({ grant_id: grant.id })
          .where('id', '=', id).where('state', 'in', ACTIVATABLE).where('grant_id', 'is', null).where('extends_grant_id', 'is', null).where('expires_at', '>', now)
          .returningAll());
      const claimed = claim.rows[0];
      if (Number(inserted.numAffectedRows ?? 0) === 0) {
        if (claimed) await ctx.trx.updateTable('requests').set({ grant_id: null }).where('id', '=', id).where('grant_id', '=', grant.id).execute();
        return fail(409, 'key_in_use', 'this public key belongs to another active grant; generate a new key per grant', { audit: true });
      }
      if (!claimed) {
        // Activated or ended meanwhile (another instance, a retry): take the grant back within this same transaction.
        await ctx.trx.deleteFrom('grants').where('id', '=', grant.id).execute();
        return fail(409, 'illegal_transition', 'the request was already activated or is no longer approved', { audit: true });
      }
      await ctx.audit({ at: now, actor: user.sub, subject: claimed.requester, action: 'request.activated', requestId: id, grantId: grant.id, resourceId: claimed.resource_id, policyVersion: claimed.policy_version, detail: { keyType, keySha256: sha256(keyBase64) } });
      await this.emitRequest(ctx, claimed, claimed.state as RequestState);
      return ok(grant);
    }, { key: `request:${id}` });
    if (!started.ok) {
      this.requestFacts.delete(id);
      // Refused by the claim: the row says why (expired, decided otherwise, already activated).
      if (started.error.code === 'illegal_transition') {
        const refused = await this.activationRefusal(user, id, await readRow());
        if (refused) return refused;
      }
      return this.refuse(user, 'request.activate', started.error, refs);
    }
    this.requestFacts.delete(id);
    const grant = started.value;
    this.unschedule(`req:${id}`);
    // Mark the issue as in flight so the sweep does not mistake it for one abandoned by a crash.
    this.timers.set(`issuing:${grant.id}`, () => {});
    let issued: { username: string; password: string };
    try {
      issued = await credentials.issue({ grantId: grant.id, resourceId: grant.resource_id, level: grant.level, endsAt: new Date(grant.ends_at) });
    } catch (error) {
      this.timers.delete(`issuing:${grant.id}`);
      this.deps.metrics.issueFailures.inc({ resource: grant.resource_id });
      const message = safeMessage(error);
      this.deps.log.warn({ grantId: grant.id, resourceId: grant.resource_id, code: (error as { code?: string }).code, message }, 'credential issue failed');
      await this.endGrant(grant.id, 'failed', SYSTEM, `credentials could not be issued: ${message}`);
      return fail(503, 'credentials_failed', `the database access could not be created: ${message}`, { extra: { grantId: grant.id } });
    }
    this.timers.delete(`issuing:${grant.id}`);
    const stored = await this.mutate(async (ctx) => {
      // One statement: the update locks the row and only applies while the grant is still active.
      const updated = await ctx.trx.updateTable('grants').set({ db_username: issued.username }).where('id', '=', grant.id).where('state', '=', 'active').returningAll().executeTakeFirst();
      if (!updated) {
        // Ended (revoked) while credentials were being issued: remember the role so revocation removes it.
        await ctx.trx.updateTable('grants').set({ db_username: issued.username, revocation: 'pending' }).where('id', '=', grant.id).execute();
        return undefined;
      }
      await ctx.audit({ at: this.now(), actor: SYSTEM, subject: updated.owner, action: 'grant.activated', requestId: id, grantId: grant.id, resourceId: updated.resource_id, policyVersion: updated.policy_version, detail: { dbUser: issued.username, endsAt: iso(updated.ends_at), breakGlass: updated.break_glass === 1 } });
      return this.emitGrant(ctx, updated);
    }, { key: `grant:${grant.id}` });
    if (!stored) {
      void this.track(this.revokeCredentials(grant.id));
      return fail(409, 'grant_ended', 'the grant ended while it was being activated', { extra: { grantId: grant.id } });
    }
    this.deps.metrics.transitions.inc({ kind: 'grant', to: 'active' });
    this.schedule(`grant:${grant.id}`, grant.ends_at, () => this.endAtDeadline(grant.id));
    return ok({
      grant: stored,
      connection: {
        bastion: { host: bastion.host, port: bastion.port, user: bastion.user, hostKeys: bastion.hostKeys },
        target: { host: entry.resource.target.host, port: entry.resource.target.port, database: entry.resource.target.database },
        dbUser: issued.username,
        dbPassword: issued.password,
      },
    });
  }

  // ---------------------------------------------------------------- grants: end, extend

  /** End an active grant (deadline, release, revoke, failed activation) and start revoking its credentials. */
  async endGrant(id: string, event: Exclude<GrantEvent, 'extended'>, actor: string, reason: string, options: { due?: boolean; owner?: string } = {}): Promise<Outcome<Grant>> {
    const result = await this.mutate(async (ctx): Promise<Outcome<{ grant: Grant; row: GrantRow }>> => {
      const ended = options.due ? await this.endIfDue(ctx.trx, id, event, reason) : await this.endNow(ctx.trx, id, event, reason, options.owner);
      if (!ended.ok) return ended;
      const { updated, now } = ended.value;
      await ctx.audit({ at: now, actor, subject: updated.owner, action: `grant.${event}`, requestId: updated.request_id, grantId: id, resourceId: updated.resource_id, reason, policyVersion: updated.policy_version, detail: updated.break_glass ? { breakGlass: true } : undefined });
      return ok({ grant: await this.emitGrant(ctx, updated), row: updated });
    }, { key: `grant:${id}` });
    if (!result.ok) return result;
    const { row, grant } = result.value;
    this.deps.metrics.transitions.inc({ kind: 'grant', to: row.state });
    if (!options.due) this.unschedule(`grant:${id}`);
    const ended: GrantEndedForBastion = { grantId: id, bastionId: row.bastion_id, keyBase64: row.key_base64, at: new Date(Number(row.ended_at)) };
    for (const { listener } of this.endedListeners) {
      try { listener(ended); } catch (error) { this.deps.log.error({ err: error }, 'grant-ended listener failed'); }
    }
    if (row.revocation === 'pending') void this.track(this.revokeJustEnded(row));
    return ok(grant);
  }

  /** The deadline has come: claim the row (see lockRow) and end the grant unless an extension moved its deadline. */
  private async endIfDue(trx: Tx, id: string, event: GrantEvent, reason: string): Promise<Outcome<{ updated: GrantRow; now: number }>> {
    const row = await lockRow(this.shared, trx.selectFrom('grants').selectAll().where('id', '=', id), true).executeTakeFirst();
    if (!row) return fail(409, 'busy', `grant ${id} is being changed by another transaction`, { audit: false });
    const step = grantTransition(row.state as GrantState, event);
    if (!step.ok) return fail(409, step.code, step.message, { audit: true });
    const now = this.now();
    // A deadline timer armed before an extension (perhaps by another instance) must not end the grant early.
    if (Number(row.ends_at) > now) return fail(409, 'not_due', `grant ${id} now ends at ${iso(row.ends_at)}`, { audit: false, extra: { endsAt: Number(row.ends_at) } });
    const changes: Partial<GrantRow> = { state: step.to, ended_at: now, end_reason: reason, revocation: row.db_username ? 'pending' : 'done', next_revoke_at: row.db_username ? this.othersRevokeFrom(now) : null };
    await trx.updateTable('grants').set(changes).where('id', '=', id).execute();
    return ok({ updated: { ...row, ...changes } as GrantRow, now });
  }

  /**
   * End an active grant now (release, revoke, failed activation) in one statement on the common path: only an active
   * grant can end, so the update's own condition is the transition check, and its row lock orders it after any change
   * holding the row (an ended grant's row, perhaps held by a long revocation, is never waited for: it does not match).
   * When nothing matched, one plain read says why.
   */
  private async endNow(trx: Tx, id: string, event: GrantEvent, reason: string, owner: string | undefined): Promise<Outcome<{ updated: GrantRow; now: number }>> {
    const step = grantTransition('active', event);
    if (!step.ok) return fail(409, step.code, step.message, { audit: true });
    const now = this.now();
    const updated = await trx.updateTable('grants')
      .set({
        state: step.to, ended_at: now, end_reason: reason,
        revocation: sql<string>`case when db_username is null then 'done' else 'pending' end`,
        next_revoke_at: sql<number | null>`case when db_username is null then null else cast(${this.othersRevokeFrom(now)} as bigint) end`,
      })
      .where('id', '=', id).where('state', '=', 'active')
      .$if(owner !== undefined, (q) => q.where('owner', '=', owner!))
      .returningAll().executeTakeFirst();
    if (updated) return ok({ updated, now });
    const row = await trx.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || (owner !== undefined && row.owner !== owner)) return fail(404, 'grant_not_found', `no grant ${id}`);
    const refused = grantTransition(row.state as GrantState, event);
    return fail(409, 'illegal_transition', refused.ok ? `grant ${id} changed meanwhile; try again` : refused.message, { audit: true });
  }

  /** The deadline of an active grant has come: end it, claimed (see lockRow), or look again when it is not yet due. */
  private async endAtDeadline(id: string): Promise<void> {
    const outcome = await this.endGrant(id, 'ended', SYSTEM, 'deadline reached', { due: true });
    if (outcome.ok) return;
    if (outcome.error.code === 'busy') this.schedule(`grant:${id}`, this.now() + CLAIM_RETRY_MS, () => this.endAtDeadline(id));
    else if (outcome.error.code === 'not_due') this.schedule(`grant:${id}`, Number(outcome.error.extra?.endsAt), () => this.endAtDeadline(id));
  }

  /**
   * When other instances may take over the revocation of a grant ended at `now`: not before the instance that ended
   * it has had its go (see revokeJustEnded). One sweep interval: should that instance die at once, another instance's
   * sweep in the meantime has armed a timer for this instant, so the takeover comes no later than a sweep would.
   */
  private othersRevokeFrom(now: number): number {
    return this.shared ? now + (this.deps.sweepEveryMs ?? 5_000) : now;
  }

  /**
   * The first attempt at revoking a grant's credentials, by the instance whose change just ended it: nobody else can
   * be at it yet (the row says to leave it until othersRevokeFrom), so there is nothing to claim. The provider is
   * called at once and the outcome is recorded through the write queue, several grants in one change (a write batch
   * that ended grants is followed by their records in the next batch, not by a transaction of their own). The
   * record is conditional: should another instance have revoked the grant meanwhile (this one stalled past the
   * hand-off), the grant is recorded once. Retries and takeovers are claimed (revokeCredentials).
   */
  private async revokeJustEnded(row: GrantRow): Promise<void> {
    const credentials = this.deps.credentials;
    if (!credentials || !row.db_username || this.revoking.has(row.id) || this.stopped) return this.revokeCredentials(row.id);
    this.revoking.add(row.id);
    this.unschedule(`revoke:${row.id}`);
    try {
      let failed: { error: unknown } | undefined;
      const done = await this.firstAttemptTurn();
      try {
        await credentials.revoke({ grantId: row.id, resourceId: row.resource_id, username: row.db_username });
      } catch (error) {
        failed = { error };
      } finally {
        done();
      }
      if (failed) {
        const retryAt = await this.mutate((ctx) => this.recordRevokeFailure(ctx, row, failed.error), { key: `grant:${row.id}` });
        if (retryAt !== undefined) this.schedule(`revoke:${row.id}`, retryAt, () => this.revokeCredentials(row.id));
        return;
      }
      // Should the record fail (database unreachable), the grant still waits for revoking: a sweep revokes it again
      // (the provider's revoke is idempotent) and records it then.
      await this.recordRevokedSoon(row).catch((error: unknown) => this.deps.log.warn({ grantId: row.id, message: safeMessage(error) }, 'credentials revoked but not yet recorded; a sweep will record it'));
    } finally {
      this.revoking.delete(row.id);
    }
  }

  /** Wait until fewer than FIRST_ATTEMPTS_AT_ONCE first attempts call the provider; returns the call to make when done. */
  private async firstAttemptTurn(): Promise<() => void> {
    // A finished attempt hands its turn straight to the next waiting one, so the count never overshoots.
    if (this.firstAttemptsRunning < FIRST_ATTEMPTS_AT_ONCE) this.firstAttemptsRunning += 1;
    else await new Promise<void>((resolve) => this.firstAttemptsWaiting.push(resolve));
    return () => {
      const next = this.firstAttemptsWaiting.shift();
      if (next) next();
      else this.firstAttemptsRunning -= 1;
    };
  }

  /** Record a revoked grant, together with the others revoked in this turn of the event loop: one change for all. */
  private recordRevokedSoon(row: GrantRow): Promise<void> {
    return new Promise((resolve, reject) => {
      this.revokedToRecord.push({ row, resolve, reject });
      if (this.revokedToRecord.length > 1) return;
      setImmediate(() => {
        const waiting = this.revokedToRecord.splice(0);
        const rows = waiting.map((w) => w.row);
        this.mutate((ctx) => this.recordRevokedTogether(ctx, rows), { key: rows.map((r) => `grant:${r.id}`) })
          .then(() => { for (const w of waiting) w.resolve(); }, (error: unknown) => { for (const w of waiting) w.reject(error); });
      });
    });
  }

  /** Mark these grants' credentials revoked, those still waiting for it (one statement), and audit each. */
  private async recordRevokedTogether(ctx: TxContext, rows: GrantRow[]): Promise<void> {
    if (rows.length === 0) return;
    const ids = rows.map((r) => r.id);
    const updated = await ctx.trx.updateTable('grants').set({ revocation: 'done', next_revoke_at: null, last_revoke_error: null })
      .where(this.shared ? idIn(ids) : (eb) => eb('id', 'in', ids)).where('revocation', 'in', REVOKING).returningAll().execute();
    const byId = new Map(updated.map((r) => [r.id, r]));
    // In the order they were revoked (the update returns rows in no particular order).
    for (const id of ids) {
      const row = byId.get(id);
      if (!row) continue;
      await ctx.audit({ at: this.now(), actor: SYSTEM, subject: row.owner, action: 'grant.credentials_revoked', grantId: row.id, requestId: row.request_id, resourceId: row.resource_id, policyVersion: row.policy_version, detail: { attempts: row.revoke_attempts + 1 } });
      await this.emitGrant(ctx, row);
    }
  }

  /** Remove the grant's database role; on failure retry with backoff (durably: the sweep resumes after restart). */
  async revokeCredentials(id: string): Promise<void> {
    if (this.revoking.has(id) || this.stopped) return;
    const credentials = this.deps.credentials;
    if (!credentials) {
      const row = await this.db.selectFrom('grants').select(['revocation', 'db_username']).where('id', '=', id).executeTakeFirst();
      if (row && ['pending', 'retrying'].includes(row.revocation) && row.db_username) this.deps.log.error({ grantId: id }, 'a grant needs revoking but no credential provider is configured');
      return;
    }
    this.revoking.add(id);
    this.unschedule(`revoke:${id}`);
    try {
      const retryAt = this.shared ? await this.revokeInBatch(id, credentials) : await this.revokeAlone(id, credentials);
      if (retryAt !== undefined) this.schedule(`revoke:${id}`, retryAt, () => this.revokeCredentials(id));
    } finally {
      this.revoking.delete(id);
    }
  }

  /** One writer (SQLite): read the row, call the provider, record the outcome. Returns when to retry, if it failed. */
  private async revokeAlone(id: string, credentials: CredentialProvider): Promise<number | undefined> {
    const row = await this.db.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || !['pending', 'retrying'].includes(row.revocation) || !row.db_username) return undefined;
    try {
      await credentials.revoke({ grantId: id, resourceId: row.resource_id, username: row.db_username });
    } catch (error) {
      return this.mutate((ctx) => this.recordRevokeFailure(ctx, row, error));
    }
    await this.mutate((ctx) => this.recordRevokedTogether(ctx, [row]));
    return undefined;
  }

  /** PostgreSQL: queue a revocation for the next claimed batch; resolves with when to retry, if it failed. */
  private revokeInBatch(id: string, credentials: CredentialProvider): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      this.revokeWaiting.set(id, { resolve, reject });
      // Ends committed in one batch ask in the same turn: gather them into one revocation batch.
      if (!this.revokePumpScheduled) {
        this.revokePumpScheduled = true;
        setImmediate(() => {
          this.revokePumpScheduled = false;
          this.pumpRevocations(credentials);
        });
      }
    });
  }

  private pumpRevocations(credentials: CredentialProvider): void {
    while (this.revokeBatchesRunning < REVOKE_CONCURRENCY && this.revokeWaiting.size > 0) {
      const batch = [...this.revokeWaiting].slice(0, REVOKE_BATCH);
      for (const [id] of batch) this.revokeWaiting.delete(id);
      this.revokeBatchesRunning += 1;
      void this.revokeClaimed(batch.map(([id]) => id), credentials)
        .then((retryAt) => { for (const [id, waiter] of batch) waiter.resolve(retryAt.get(id)); }, (error: unknown) => { for (const [, waiter] of batch) waiter.reject(error); })
        .finally(() => {
          this.revokeBatchesRunning -= 1;
          this.pumpRevocations(credentials);
        });
    }
  }

  /**
   * Several instances (PostgreSQL): revocations are claimed with FOR UPDATE SKIP LOCKED and the row locks are held,
   * in one transaction per batch, across the provider calls. Exactly one instance revokes a grant at a time;
   * another skips a grant being revoked; and if the claiming instance dies, its connection closes, the locks go with
   * it, and the next sweep of any other instance takes the revocations over (dropping a role twice is harmless; it
   * is recorded once, by the transaction that commits). Returns when to retry the ones that failed.
   */
  private async revokeClaimed(ids: string[], credentials: CredentialProvider): Promise<Map<string, number>> {
    return this.writes.transactNow(async (ctx) => {
      const now = this.now();
      // `= any(array)`, not an IN list: one statement text for any batch size, prepared once per connection. With
      // lagging statistics a generic plan may take `id = any(…)` for most of the table; the partial index on
      // revoking grants (the literal REVOKING predicate, here and in the update below) keeps it to those rows.
      const rows = await ctx.trx.selectFrom('grants').selectAll().where(idIn(ids)).where('revocation', 'in', REVOKING).where('db_username', 'is not', null)
        .where((eb) => eb.or([eb('next_revoke_at', 'is', null), eb('next_revoke_at', '<=', now)])).forNoKeyUpdate().skipLocked().execute();
      const outcomes = await Promise.allSettled(rows.map((row) => credentials.revoke({ grantId: row.id, resourceId: row.resource_id, username: row.db_username! })));
      const retryAt = new Map<string, number>();
      await this.recordRevokedTogether(ctx, rows.filter((_, i) => outcomes[i]!.status === 'fulfilled'));
      for (const [i, row] of rows.entries()) {
        const outcome = outcomes[i]!;
        if (outcome.status === 'fulfilled') continue;
        const next = await this.recordRevokeFailure(ctx, row, outcome.reason);
        if (next !== undefined) retryAt.set(row.id, next);
      }
      return retryAt;
    });
  }

  /**
   * Record a failed attempt and return when the next one is due; nothing (and no retry) if the grant no longer waits
   * for revoking: another instance revoked it meanwhile (see revokeJustEnded).
   */
  private async recordRevokeFailure(ctx: TxContext, row: GrantRow, error: unknown): Promise<number | undefined> {
    const attempts = row.revoke_attempts + 1;
    const next = this.now() + REVOKE_BACKOFF_MS[Math.min(attempts - 1, REVOKE_BACKOFF_MS.length - 1)]!;
    const message = safeMessage(error);
    const updated = await ctx.trx.updateTable('grants').set({ revocation: 'retrying', revoke_attempts: attempts, next_revoke_at: next, last_revoke_error: message })
      .where('id', '=', row.id).where('revocation', 'in', REVOKING).executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) return undefined;
    this.deps.metrics.revocationFailures.inc({ resource: row.resource_id });
    this.deps.log.warn({ grantId: row.id, attempts, message }, 'credential revocation failed; will retry');
    // Every failure up to the fifth is audited, then every tenth, so a long outage does not flood the log.
    if (attempts <= 5 || attempts % 10 === 0) {
      await ctx.audit({ at: this.now(), actor: SYSTEM, subject: row.owner, action: 'grant.revoke_failed', grantId: row.id, requestId: row.request_id, resourceId: row.resource_id, reason: message, detail: { attempts, retryAt: iso(next) } });
    }
    if (row.revocation !== 'retrying') await this.emitGrant(ctx, { ...row, revocation: 'retrying' });
    return next;
  }

  /** For the metrics scrape: how many grants still wait for their credentials to be revoked. */
  async pendingRevocations(): Promise<number> {
    const n = await this.db.selectFrom('grants').select((eb) => eb.fn.countAll<number>().as('n')).where('revocation', 'in', REVOKING).executeTakeFirst();
    return Number(n?.n ?? 0);
  }

  private async ownGrant(user: AuthUser, id: string, action: string, allowAdmin = false): Promise<Outcome<GrantRow>> {
    const row = await this.reads.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || (row.owner !== user.sub && !(allowAdmin && user.admin))) return this.refuse(user, action, { status: 404, code: 'grant_not_found', message: `no grant ${id} of yours` }, { grantId: id });
    return ok(row);
  }

  async release(user: AuthUser, id: string): Promise<Outcome<{ grant: Grant }>> {
    // Ownership is checked on the row the end locks (one read, not two).
    const outcome = await this.endGrant(id, 'released', user.sub, 'released by the owner', { owner: user.sub });
    if (!outcome.ok && outcome.error.code === 'grant_not_found') return this.refuse(user, 'grant.release', { status: 404, code: 'grant_not_found', message: `no grant ${id} of yours` }, { grantId: id });
    if (!outcome.ok) return this.refuse(user, 'grant.release', outcome.error, { grantId: id, subject: user.sub });
    return ok({ grant: outcome.value });
  }

  async revoke(user: AuthUser, id: string, body: z.output<typeof RevokeBody>): Promise<Outcome<{ grant: Grant }>> {
    if (!user.admin) return this.refuse(user, 'grant.revoke', { status: 403, code: 'admin_only', message: 'only administrators may revoke grants' }, { grantId: id });
    const row = await this.reads.selectFrom('grants').select(['id', 'owner']).where('id', '=', id).executeTakeFirst();
    if (!row) return this.refuse(user, 'grant.revoke', { status: 404, code: 'grant_not_found', message: `no grant ${id}` }, { grantId: id });
    const outcome = await this.endGrant(id, 'revoked', user.sub, body.reason);
    if (!outcome.ok) return this.refuse(user, 'grant.revoke', outcome.error, { grantId: id, subject: row.owner });
    return ok({ grant: outcome.value });
  }

  async extend(user: AuthUser, id: string, body: z.output<typeof ExtendBody>): Promise<Outcome<{ grant: Grant; request?: AccessRequest }>> {
    const own = await this.ownGrant(user, id, 'grant.extend');
    if (!own.ok) return own;
    const row = own.value;
    const refs = { grantId: id, subject: row.owner, resourceId: row.resource_id, policyVersion: row.policy_version };
    const step = grantTransition(row.state as GrantState, 'extended');
    if (!step.ok || Number(row.ends_at) <= this.now()) return this.refuse(user, 'grant.extend', { status: 409, code: 'illegal_transition', message: step.ok ? 'the grant has reached its deadline' : step.message }, refs);
    const entry = this.catalog.entry(row.resource_id);
    const rules = entry?.policy.extend;
    if (!entry || !rules) return this.refuse(user, 'grant.extend', { status: 409, code: 'extension_not_allowed', message: 'this policy does not allow extensions' }, refs);
    const total = (Number(row.ends_at) - Number(row.starts_at)) / 1000 + body.durationSeconds;
    if (total > rules.maxTotal) {
      return this.refuse(user, 'grant.extend', { status: 409, code: 'extension_over_limit', message: `a grant on ${row.resource_id} may last at most ${rules.maxTotal} s in total; ${Math.floor(rules.maxTotal - (Number(row.ends_at) - Number(row.starts_at)) / 1000)} s are left` }, refs);
    }
    if (rules.reapproval) return this.requestExtension(user, row, entry, body);
    const applied = await this.applyExtension(row.id, body.durationSeconds, user.sub, body.reason);
    if (!applied.ok) return this.refuse(user, 'grant.extend', applied.error, refs);
    return ok({ grant: applied.value });
  }

  /** Push the deadline: the database role's validity first (so access never outlives the record), then the row. */
  private async applyExtension(id: string, seconds: number, actor: string, reason?: string): Promise<Outcome<Grant>> {
    const row = await this.reads.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const endsAt = Number(row.ends_at) + seconds * 1000;
    if (row.db_username && this.deps.credentials) {
      try {
        await this.deps.credentials.extend({ grantId: id, resourceId: row.resource_id, username: row.db_username, endsAt: new Date(endsAt) });
      } catch (error) {
        return fail(503, 'credentials_failed', `the database access could not be extended: ${safeMessage(error)}`);
      }
    }
    const result = await this.mutate(async (ctx): Promise<Outcome<Grant>> => {
      const current = await this.lockGrantForChange(ctx.trx, id);
      if (!current) return fail(404, 'grant_not_found', `no grant ${id}`);
      const step = grantTransition(current.state as GrantState, 'extended');
      if (!step.ok) return fail(409, step.code, step.message, { audit: true });
      const changes = { ends_at: Number(current.ends_at) + seconds * 1000, extended_seconds: current.extended_seconds + seconds };
      await ctx.trx.updateTable('grants').set(changes).where('id', '=', id).execute();
      await ctx.audit({ at: this.now(), actor, subject: current.owner, action: 'grant.extended', grantId: id, requestId: current.request_id, resourceId: current.resource_id, reason, policyVersion: current.policy_version, detail: { seconds, endsAt: iso(changes.ends_at) } });
      return ok(await this.emitGrant(ctx, { ...current, ...changes }));
    });
    if (result.ok) this.schedule(`grant:${id}`, Date.parse(result.value.endsAt), () => this.endAtDeadline(id));
    return result;
  }

  private async requestExtension(user: AuthUser, grant: GrantRow, entry: CatalogEntry, body: z.output<typeof ExtendBody>): Promise<Outcome<{ grant: Grant; request?: AccessRequest }>> {
    const original = await this.reads.selectFrom('requests').selectAll().where('id', '=', grant.request_id).executeTakeFirstOrThrow();
    const now = this.now();
    const row: RequestRow = {
      ...original,
      id: newId('req'),
      duration_seconds: body.durationSeconds,
      reason: body.reason ?? `extend ${grant.id}`,
      state: 'pending_approval',
      policy_version: this.catalog.policyVersion(entry.policyId),
      step_up_required: 0,
      step_up_methods: '[]',
      approval_rules: JSON.stringify(this.catalog.rules(entry)),
      created_at: now,
      expires_at: Math.min(now + entry.policy.requestTtl * 1000, Number(grant.ends_at)),
      decided_at: null,
      decision_reason: null,
      grant_id: null,
      extends_grant_id: grant.id,
      auto_approve: 0,
      break_glass: 0,
    };
    const request = await this.mutate(async (ctx) => {
      await ctx.trx.insertInto('requests').values(row).execute();
      await ctx.audit({ at: now, actor: user.sub, subject: user.sub, action: 'request.created', requestId: row.id, grantId: grant.id, resourceId: row.resource_id, reason: row.reason, policyVersion: row.policy_version, risk: row.risk_score, detail: { extension: true, seconds: body.durationSeconds } });
      return this.emitRequest(ctx, row, undefined);
    });
    this.schedule(`req:${row.id}`, row.expires_at, () => this.expireRequest(row.id));
    return ok({ grant: this.toGrant(grant), request });
  }

  private async applyApprovedExtension(request: RequestRow): Promise<void> {
    const grantId = request.extends_grant_id!;
    const applied = await this.applyExtension(grantId, request.duration_seconds, SYSTEM, `extension ${request.id} approved`);
    await this.mutate(async (ctx) => {
      await ctx.trx.updateTable('requests').set({ grant_id: grantId, decision_reason: applied.ok ? 'extension applied' : `extension not applied: ${applied.error.message}` }).where('id', '=', request.id).execute();
      const row = await ctx.trx.selectFrom('requests').selectAll().where('id', '=', request.id).executeTakeFirstOrThrow();
      await this.emitRequest(ctx, row, 'approved');
    });
  }

  // ---------------------------------------------------------------- listing

  async listRequests(user: AuthUser, role: 'mine' | 'approver', state?: RequestState, limit = 100): Promise<AccessRequest[]> {
    if (role === 'mine') {
      const rows = await this.db.selectFrom('requests').selectAll().where('requester', '=', user.sub).$if(!!state, (q) => q.where('state', '=', state!))
        .orderBy('created_at', 'desc').limit(limit).execute();
      return this.toRequests(rows);
    }
    const rows = await this.db.selectFrom('requests').selectAll().where('state', '=', state ?? 'pending_approval').where('requester', '!=', user.sub)
      .orderBy('created_at', 'desc').limit(1000).execute();
    const mine = rows.filter((r) => parseJson<ApprovalRule[]>(r.approval_rules).some((rule) => user.groups.includes(rule.group))).slice(0, limit);
    return this.toRequests(mine);
  }

  async getRequest(user: AuthUser, id: string): Promise<Outcome<{ request: AccessRequest; grant?: Grant }>> {
    const row = await this.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    const visible = row && (row.requester === user.sub || user.admin || parseJson<ApprovalRule[]>(row.approval_rules).some((r) => user.groups.includes(r.group)));
    if (!row || !visible) return this.refuse(user, 'request.read', { status: 404, code: 'request_not_found', message: `no request ${id}` }, { requestId: id });
    const [request] = await this.toRequests([row]);
    const grant = row.grant_id && row.requester === user.sub ? await this.grantById(row.grant_id) : undefined;
    return ok({ request: request!, ...(grant ? { grant } : {}) });
  }

  async listGrants(user: AuthUser, all: boolean, state?: GrantState, limit = 100): Promise<Outcome<Grant[]>> {
    if (all && !user.admin) return this.refuse(user, 'grant.list_all', { status: 403, code: 'admin_only', message: 'only administrators may list all grants' });
    const rows = await this.db.selectFrom('grants').selectAll().$if(!all, (q) => q.where('owner', '=', user.sub)).$if(!!state, (q) => q.where('state', '=', state!))
      .orderBy('starts_at', 'desc').limit(limit).execute();
    return ok(rows.map((r) => this.toGrant(r)));
  }

  /**
   * The owner asked to see the grant's database password (for a GUI client): on the audit record before the agent
   * shows it, and only while the grant is active. The server never held the password after activation; this is a
   * record, not a read.
   */
  async recordPasswordReveal(user: AuthUser, id: string): Promise<Outcome<{ grant: Grant }>> {
    const own = await this.ownGrant(user, id, 'grant.reveal_password');
    if (!own.ok) return own;
    const row = own.value;
    if (row.state !== 'active') return this.refuse(user, 'grant.reveal_password', { status: 409, code: 'illegal_transition', message: `the grant is ${row.state}: its password no longer works` }, { grantId: id, subject: user.sub });
    await this.mutate(({ audit }) => audit({ at: this.now(), actor: user.sub, subject: user.sub, action: 'grant.password_revealed', grantId: id, requestId: row.request_id, resourceId: row.resource_id, policyVersion: row.policy_version }));
    return ok({ grant: this.toGrant(row) });
  }

  async getGrant(user: AuthUser, id: string): Promise<Outcome<Grant>> {
    const own = await this.ownGrant(user, id, 'grant.read', true);
    return own.ok ? ok(this.toGrant(own.value)) : own;
  }

  /** Audit rows: admins see all; others the rows they wrote or that are about their requests and grants. */
  async auditEntries(user: AuthUser, query: { after: number; limit: number; requestId?: string; grantId?: string; action?: string }) {
    return this.db.selectFrom('audit').selectAll().where('seq', '>', query.after)
      .$if(!user.admin, (q) => q.where((eb) => eb.or([eb('actor', '=', user.sub), eb('subject', '=', user.sub)])))
      .$if(!!query.requestId, (q) => q.where('request_id', '=', query.requestId!))
      .$if(!!query.grantId, (q) => q.where('grant_id', '=', query.grantId!))
      .$if(!!query.action, (q) => q.where('action', '=', query.action!))
      .orderBy('seq').limit(query.limit).execute();
  }

  // ---------------------------------------------------------------- bastion lookup

  async findActiveGrantByKey(bastionId: string, keyType: string, keyBase64: string): Promise<BastionGrant | undefined> {
    // The state is a literal: only then may a prepared statement's generic plan use grants_active_key, the one
    // index over keys (partial: active grants), instead of reading the whole table on every SSH connection.
    const row = await this.reads.selectFrom('grants').select(['id', 'owner', 'ends_at', 'target_host', 'target_port']).where('key_base64', '=', keyBase64)
      .where('key_type', '=', keyType).where('bastion_id', '=', bastionId).where('state', '=', sql.lit('active')).where('ends_at', '>', this.now()).where('db_username', 'is not', null).executeTakeFirst();
    return row ? { grantId: row.id, owner: row.owner, endsAt: new Date(Number(row.ends_at)), target: { host: row.target_host, port: row.target_port } } : undefined;
  }

  async endedSince(bastionId: string, since: Date): Promise<GrantEndedForBastion[]> {
    const rows = await this.db.selectFrom('grants').select(['id', 'bastion_id', 'key_base64', 'ended_at']).where('bastion_id', '=', bastionId)
      .where('ended_at', '>', since.getTime()).orderBy('ended_at').limit(10_000).execute();
    return rows.map((r) => ({ grantId: r.id, bastionId: r.bastion_id, keyBase64: r.key_base64, at: new Date(Number(r.ended_at)) }));
  }

  onGrantEnded(listener: (event: GrantEndedForBastion) => void, wanted: () => boolean = () => true): () => void {
    const entry = { listener, wanted };
    this.endedListeners.add(entry);
    return () => this.endedListeners.delete(entry);
  }

  /** Whether any grant-end listener here wants ends now (else other instances' ends are not even looked up). */
  private wantsEnds(): boolean {
    for (const { wanted } of this.endedListeners) if (wanted()) return true;
    return false;
  }
}


/** The fields of a request that never change after it is created: enough to activate it. */
type RequestFacts = Pick<RequestRow, 'id' | 'requester' | 'resource_id' | 'level' | 'duration_seconds' | 'break_glass' | 'policy_version'>;
const MAX_REMEMBERED_REQUESTS = 10_000;

/** PostgreSQL: `id = any($1)`, the same statement text for any number of ids (an IN list is a new one per length). */
function idIn(ids: string[]): RawBuilder<SqlBool> {
  return sql<SqlBool>`id = any(${ids}::text[])`;
}
