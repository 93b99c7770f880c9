// The grant lifecycle: requests, approvals, step-up, activation, extension, ends and revocation. The server is the
// source of truth; every state change goes through the transition table in shared/domain, is written in one
// transaction together with its audit row and its events, and the events are published after commit.
// Timed transitions (request TTL, activation window, grant deadline) have one exact timer each, plus a durable
// sweep on start (and every few seconds as a safety net) so ends that passed while the server was down happen.
import { sql } from 'kysely';
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
import { ADD_APPROVALS, unapprovable } from './approvability';
import { assessRisk, BURST_WINDOW_MS } from './risk';
import { WriteQueue, type TxContext } from './write-queue';
import { DeadlineSweep, Timers } from './timers';
import { emitGrant, emitRequest, toGrant, Views } from './views';
import { Revocation } from './revocation';
import { BastionQueries } from './bastion-queries';
import {
  CLAIM_RETRY_MS, iso, lockRow, newId, parseJson, Refusals, safeMessage, sha256, SYSTEM,
  type GrantRow, type Logger, type RefusalRefs, type Refuse, type RequestRow, type Tx,
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

/** The request states an activation may start from (see shared/domain/lifecycle.ts). */
const ACTIVATABLE = REQUEST_STATES.filter((state) => requestTransition(state, 'activated').ok);

export class Lifecycle implements StepUpActionResolver, BastionGrantLookup {
  catalog!: Catalog;
  readonly audit = new AuditChain();
  /** Short reads by key (see Store.reads): on PostgreSQL, those issued together share one write. */
  private readonly reads: Db;
  /** True when other server instances may write the same database (PostgreSQL). */
  private readonly shared: boolean;
  private readonly writes: WriteQueue;
  private readonly refusals: Refusals;
  private readonly timers: Timers;
  private readonly deadlines: DeadlineSweep;
  private readonly views: Views;
  private readonly revocation: Revocation;
  private readonly bastion: BastionQueries;
  /** Approved requests this instance created, by id: their fixed fields (see rememberFacts). */
  private readonly requestFacts = new Map<string, RequestFacts>();

  constructor(private readonly deps: LifecycleDeps) {
    const db = deps.store.db;
    this.reads = deps.store.reads;
    this.shared = deps.store.dialect === 'postgres';
    const now = () => this.now();
    this.writes = new WriteQueue({ db, shared: this.shared, writeSlots: deps.config.storage.writeConcurrency, bus: deps.bus, metrics: deps.metrics, audit: this.audit, now });
    this.refusals = new Refusals({ mutate: (fn) => this.writes.mutate(fn), metrics: deps.metrics, now });
    const refuse: Refuse = (user, action, error, refs) => this.refusals.refuse(user, action, error, refs);
    this.timers = new Timers({ clock: deps.clock, log: deps.log });
    this.views = new Views({ db, reads: this.reads, now, refuse, policies: this });
    this.revocation = new Revocation({
      db, shared: this.shared, now, credentials: deps.credentials, metrics: deps.metrics, log: deps.log, sweepEveryMs: deps.sweepEveryMs, writes: this.writes, timers: this.timers,
    });
    this.bastion = new BastionQueries({ db, reads: this.reads, shared: this.shared, bus: deps.bus, now, log: deps.log, timers: this.timers });
    this.deadlines = new DeadlineSweep({
      db, clock: deps.clock, log: deps.log, timers: this.timers,
      work: {
        expireRequest: (id) => this.expireRequest(id),
        endGrant: (id, event, actor, reason) => this.endGrant(id, event, actor, reason),
        endAtDeadline: (id) => this.endAtDeadline(id),
        revokeCredentials: (id) => this.revocation.revokeCredentials(id),
        isRevoking: (id) => this.revocation.isRevoking(id),
      },
    });
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
    await this.deadlines.start(this.deps.sweepEveryMs ?? 5_000);
  }

  async stop(): Promise<void> {
    this.deadlines.stop();
    await this.timers.stop();
    // Let queued changes commit before storage closes.
    await this.writes.drain();
  }

  /** Expire requests and end grants whose instant has passed; arm timers for the future ones when `arm`. */
  sweep(arm: boolean): Promise<void> {
    return this.deadlines.sweep(arm);
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
  auditEntries(user: AuthUser, query: { after: number; limit: number; requestId?: string; grantId?: string; action?: string }) {
    return this.views.auditEntries(user, query);
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
      const mapped = await emitRequest(ctx, row, undefined);
      if (state === 'approved' && body.breakGlass) await this.breakGlassUsed(ctx, entry, row, mapped);
      return mapped;
    }, { key: `request:${row.id}` });
    // Once committed (a change that is retried or fails must not leave facts of a request that does not exist).
    this.rememberFacts(row);
    this.deps.metrics.transitions.inc({ kind: 'request', to: state });
    this.timers.schedule(`req:${row.id}`, row.expires_at, () => this.expireRequest(row.id));
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
      const request = await emitRequest(ctx, updated, row.state as RequestState);
      if (event === 'auto_approved' && row.break_glass === 1) {
        const entry = this.catalog.entry(row.resource_id);
        if (entry) await this.breakGlassUsed(ctx, entry, updated, request);
      }
      return ok({ request, row: updated });
    });
    if (!result.ok) return result;
    const { row, request } = result.value;
    this.deps.metrics.transitions.inc({ kind: 'request', to: row.state });
    if (['pending_stepup', 'pending_approval', 'approved'].includes(row.state) && !row.grant_id) this.timers.schedule(`req:${id}`, Number(row.expires_at), () => this.expireRequest(id));
    else this.timers.unschedule(`req:${id}`);
    return ok(request);
  }

  async expireRequest(id: string): Promise<void> {
    const row = await this.reads.selectFrom('requests').select(['state', 'expires_at', 'grant_id']).where('id', '=', id).executeTakeFirst();
    if (!row || row.grant_id || Number(row.expires_at) > this.now()) {
      if (row && !row.grant_id && Number(row.expires_at) > this.now() && ['pending_stepup', 'pending_approval', 'approved'].includes(row.state)) {
        this.timers.schedule(`req:${id}`, Number(row.expires_at), () => this.expireRequest(id));
      }
      return;
    }
    if (!['pending_stepup', 'pending_approval', 'approved'].includes(row.state)) return;
    const why = row.state === 'approved' ? 'not activated within the activation window' : 'request TTL passed';
    // Claimed: if another instance (or change) holds the row, it is acting on it; look again shortly.
    const outcome = await this.transitionRequest(id, 'expired', SYSTEM, undefined, () => ({}), why, { claim: true });
    if (!outcome.ok && outcome.error.code === 'busy') this.timers.schedule(`req:${id}`, this.now() + CLAIM_RETRY_MS, () => this.expireRequest(id));
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
      const request = await emitRequest(ctx, updated, 'pending_approval');
      return ok({ request, row: updated });
    });
    if (!result.ok) return this.refuse(user, 'request.approve', result.error, refs);
    const updated = result.value.row;
    if (updated.state === 'approved') {
      this.deps.metrics.transitions.inc({ kind: 'request', to: 'approved' });
      if (updated.extends_grant_id) {
        this.timers.unschedule(`req:${id}`);
        await this.applyApprovedExtension(updated);
        return ok({ request: (await this.views.requestById(id))! });
      }
      this.timers.schedule(`req:${id}`, Number(updated.expires_at), () => this.expireRequest(id));
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
      await emitRequest(ctx, claimed, claimed.state as RequestState);
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
    this.timers.unschedule(`req:${id}`);
    // Mark the issue as in flight so the sweep does not mistake it for one abandoned by a crash.
    this.timers.hold(`issuing:${grant.id}`);
    let issued: { username: string; password: string };
    try {
      issued = await credentials.issue({ grantId: grant.id, resourceId: grant.resource_id, level: grant.level, endsAt: new Date(grant.ends_at) });
    } catch (error) {
      this.timers.letGo(`issuing:${grant.id}`);
      this.deps.metrics.issueFailures.inc({ resource: grant.resource_id });
      const message = safeMessage(error);
      this.deps.log.warn({ grantId: grant.id, resourceId: grant.resource_id, code: (error as { code?: string }).code, message }, 'credential issue failed');
      await this.endGrant(grant.id, 'failed', SYSTEM, `credentials could not be issued: ${message}`);
      return fail(503, 'credentials_failed', `the database access could not be created: ${message}`, { extra: { grantId: grant.id } });
    }
    this.timers.letGo(`issuing:${grant.id}`);
    const stored = await this.mutate(async (ctx) => {
      // One statement: the update locks the row and only applies while the grant is still active.
      const updated = await ctx.trx.updateTable('grants').set({ db_username: issued.username }).where('id', '=', grant.id).where('state', '=', 'active').returningAll().executeTakeFirst();
      if (!updated) {
        // Ended (revoked) while credentials were being issued: remember the role so revocation removes it.
        await ctx.trx.updateTable('grants').set({ db_username: issued.username, revocation: 'pending' }).where('id', '=', grant.id).execute();
        return undefined;
      }
      await ctx.audit({ at: this.now(), actor: SYSTEM, subject: updated.owner, action: 'grant.activated', requestId: id, grantId: grant.id, resourceId: updated.resource_id, policyVersion: updated.policy_version, detail: { dbUser: issued.username, endsAt: iso(updated.ends_at), breakGlass: updated.break_glass === 1 } });
      return emitGrant(ctx, updated);
    }, { key: `grant:${grant.id}` });
    if (!stored) {
      void this.timers.track(this.revocation.revokeCredentials(grant.id));
      return fail(409, 'grant_ended', 'the grant ended while it was being activated', { extra: { grantId: grant.id } });
    }
    this.deps.metrics.transitions.inc({ kind: 'grant', to: 'active' });
    this.timers.schedule(`grant:${grant.id}`, grant.ends_at, () => this.endAtDeadline(grant.id));
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
      return ok({ grant: await emitGrant(ctx, updated), row: updated });
    }, { key: `grant:${id}` });
    if (!result.ok) return result;
    const { row, grant } = result.value;
    this.deps.metrics.transitions.inc({ kind: 'grant', to: row.state });
    if (!options.due) this.timers.unschedule(`grant:${id}`);
    this.bastion.announce({ grantId: id, bastionId: row.bastion_id, keyBase64: row.key_base64, at: new Date(Number(row.ended_at)) });
    if (row.revocation === 'pending') void this.timers.track(this.revocation.revokeJustEnded(row));
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
    const changes: Partial<GrantRow> = { state: step.to, ended_at: now, end_reason: reason, revocation: row.db_username ? 'pending' : 'done', next_revoke_at: row.db_username ? this.revocation.othersRevokeFrom(now) : null };
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
        next_revoke_at: sql<number | null>`case when db_username is null then null else cast(${this.revocation.othersRevokeFrom(now)} as bigint) end`,
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
    if (outcome.error.code === 'busy') this.timers.schedule(`grant:${id}`, this.now() + CLAIM_RETRY_MS, () => this.endAtDeadline(id));
    else if (outcome.error.code === 'not_due') this.timers.schedule(`grant:${id}`, Number(outcome.error.extra?.endsAt), () => this.endAtDeadline(id));
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
    const own = await this.views.ownGrant(user, id, 'grant.extend');
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
      return ok(await emitGrant(ctx, { ...current, ...changes }));
    });
    if (result.ok) this.timers.schedule(`grant:${id}`, Date.parse(result.value.endsAt), () => this.endAtDeadline(id));
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
      return emitRequest(ctx, row, undefined);
    });
    this.timers.schedule(`req:${row.id}`, row.expires_at, () => this.expireRequest(row.id));
    return ok({ grant: toGrant(grant), request });
  }

  private async applyApprovedExtension(request: RequestRow): Promise<void> {
    const grantId = request.extends_grant_id!;
    const applied = await this.applyExtension(grantId, request.duration_seconds, SYSTEM, `extension ${request.id} approved`);
    await this.mutate(async (ctx) => {
      await ctx.trx.updateTable('requests').set({ grant_id: grantId, decision_reason: applied.ok ? 'extension applied' : `extension not applied: ${applied.error.message}` }).where('id', '=', request.id).execute();
      const row = await ctx.trx.selectFrom('requests').selectAll().where('id', '=', request.id).executeTakeFirstOrThrow();
      await emitRequest(ctx, row, 'approved');
    });
  }

  /**
   * The owner asked to see the grant's database password (for a GUI client): on the audit record before the agent
   * shows it, and only while the grant is active. The server never held the password after activation; this is a
   * record, not a read.
   */
  async recordPasswordReveal(user: AuthUser, id: string): Promise<Outcome<{ grant: Grant }>> {
    const own = await this.views.ownGrant(user, id, 'grant.reveal_password');
    if (!own.ok) return own;
    const row = own.value;
    if (row.state !== 'active') return this.refuse(user, 'grant.reveal_password', { status: 409, code: 'illegal_transition', message: `the grant is ${row.state}: its password no longer works` }, { grantId: id, subject: user.sub });
    await this.mutate(({ audit }) => audit({ at: this.now(), actor: user.sub, subject: user.sub, action: 'grant.password_revealed', grantId: id, requestId: row.request_id, resourceId: row.resource_id, policyVersion: row.policy_version }));
    return ok({ grant: toGrant(row) });
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

  endedSince(bastionId: string, since: Date): Promise<GrantEndedForBastion[]> {
    return this.bastion.endedSince(bastionId, since);
  }

  onGrantEnded(listener: (event: GrantEndedForBastion) => void, wanted: () => boolean = () => true): () => void {
    return this.bastion.onGrantEnded(listener, wanted);
  }
}


/** The fields of a request that never change after it is created: enough to activate it. */
type RequestFacts = Pick<RequestRow, 'id' | 'requester' | 'resource_id' | 'level' | 'duration_seconds' | 'break_glass' | 'policy_version'>;
const MAX_REMEMBERED_REQUESTS = 10_000;

