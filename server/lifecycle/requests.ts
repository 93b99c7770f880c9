// Request rules: creating a request (eligibility, limits, risk, step-up and auto-approval, break-glass), the table
// transitions of a request (step-up passed, denied, cancelled, expired) and its deadline.
import { sql } from 'kysely';
import type { AccessRequest, CreateRequestBody, RequestState } from '../../shared/contract/http';
import { requestTransition, type RequestEvent } from '../../shared/domain/lifecycle';
import type { z } from 'zod';
import type { StepUpGate } from '../stepup/seam';
import type { AuthUser } from '../identity/user';
import { fail, ok, type Outcome } from '../errors';
import { utcMinuteOfDay, type CatalogEntry } from './catalog';
import type { AuditInput } from './audit';
import { ADD_APPROVALS, unapprovable } from './approvability';
import { assessRisk, BURST_WINDOW_MS } from './risk';
import type { RememberedFacts } from './activation';
import type { Timers } from './timers';
import { fillableGroups, nudgePlanFor } from './asked';
import type { Nudges } from './nudges';
import type { Reviews } from './reviews';
import { emitRequest } from './views';
import type { TxContext } from './write-queue';
import { CLAIM_RETRY_MS, lockRow, newId, SYSTEM, type RulesDeps, type RequestRow, type Tx } from './support';

export interface RequestContext { ip?: string }

export interface RequestRulesDeps extends RulesDeps {
  gate?: StepUpGate;
  timers: Pick<Timers, 'schedule' | 'unschedule'>;
  facts: Pick<RememberedFacts, 'rememberFacts'>;
  /** Reminders and escalation of a request waiting for approvers (nudges.ts). */
  nudges: Pick<Nudges, 'arm'>;
  reviews: Pick<Reviews, 'open'>;
}

export class RequestRules {

  constructor(private readonly deps: RequestRulesDeps) {}

  private get catalog() {
    return this.deps.policies.catalog;
  }

  async createRequest(user: AuthUser, body: z.output<typeof CreateRequestBody>, context: RequestContext): Promise<Outcome<{ request: AccessRequest }>> {
    const entry = this.catalog.entry(body.resourceId);
    const refs = { resourceId: body.resourceId, subject: user.sub };
    if (!entry || !this.catalog.canRequest(user, entry)) {
      return this.deps.refuse(user, 'request.create', { status: 404, code: 'resource_not_found', message: `no resource ${body.resourceId} that you may request` }, refs);
    }
    const { policy, resource } = entry;
    const policyVersion = this.catalog.policyVersion(entry.policyId);
    const refsV = { ...refs, policyVersion };
    if (body.breakGlass) {
      if (!this.catalog.canBreakGlass(user, entry)) return this.deps.refuse(user, 'request.create', { status: 403, code: 'breakglass_not_allowed', message: 'you may not use break-glass on this resource' }, refsV);
      if (!body.reason.trim()) return fail(422, 'reason_required', 'break-glass needs a reason', { errors: [{ path: 'reason', message: 'required for break-glass' }] });
    } else if (!this.catalog.isRequester(user, entry)) {
      return this.deps.refuse(user, 'request.create', { status: 403, code: 'not_a_requester', message: 'you may request this resource only with break-glass' }, refsV);
    }
    // A service (CI job, bot) always names the change it works for, has no step-up, and its own auto-approval.
    const service = this.catalog.serviceRules(user, entry);
    if (!Object.hasOwn(resource.levels, body.level)) {
      return fail(422, 'unknown_level', `level ${body.level} does not exist on ${resource.id} (levels: ${Object.keys(resource.levels).join(', ')})`, { errors: [{ path: 'level', message: 'unknown access level' }] });
    }
    const duration = body.durationSeconds ?? policy.duration.default;
    if (duration > policy.duration.max) {
      return fail(422, 'duration_over_limit', `at most ${policy.duration.max} seconds may be requested on ${resource.id}`, { errors: [{ path: 'durationSeconds', message: `at most ${policy.duration.max}` }] });
    }
    if (policy.reason === 'required' && !body.reason.trim()) return fail(422, 'reason_required', 'this policy needs a reason', { errors: [{ path: 'reason', message: 'required' }] });
    const ticket = service?.ticket ?? policy.ticket;
    if (ticket) {
      if (body.ticket !== undefined && !new RegExp(ticket.pattern).test(body.ticket)) {
        return fail(422, 'ticket_invalid', `the ticket must match ${ticket.pattern}`, { errors: [{ path: 'ticket', message: `must match ${ticket.pattern}` }] });
      }
      if (ticket.required && !body.ticket) {
        const refusal = { status: 422 as const, code: 'ticket_required' as const, message: service ? 'a service must name the change it works for: send a ticket' : 'this policy needs a ticket', errors: [{ path: 'ticket', message: 'required' }] };
        return service ? this.deps.refuse(user, 'request.create', refusal, refsV) : fail(refusal.status, refusal.code, refusal.message, { errors: refusal.errors });
      }
    }

    const now = this.deps.now();
    const risk = await this.assess(user, resource.sensitivity, body.deviceId, context.ip, now);
    // Services have no second factor: the config load refuses a policy that names them and asks for one.
    const stepUp = !service && this.catalog.stepUpNeeded(policy.stepUp.request, policy, risk.score);
    if (stepUp && !this.deps.gate) {
      return this.deps.refuse(user, 'request.create', { status: 409, code: 'stepup_unavailable', message: 'this request needs a step-up but the server has no step-up configured; ask an administrator' }, { ...refsV });
    }
    const auto = body.breakGlass ? { ok: true, why: 'break-glass' } : this.catalog.autoApproves(user, entry, risk.score, now);
    if (service && !auto.ok && service.outsideWindow === 'refuse') {
      return this.deps.refuse(user, 'request.create', { status: 409, code: 'outside_change_window', message: `services may request ${resource.id} only inside the change window ${service.window} UTC` }, refsV);
    }
    const state: RequestState = stepUp ? 'pending_stepup' : auto.ok ? 'approved' : 'pending_approval';
    const rules = body.breakGlass ? [] : this.catalog.rules(entry);
    // Never leave a request waiting for nobody: the config load refuses such a policy, this holds if one got past it.
    if (!auto.ok && rules.length === 0) {
      const fix = unapprovable(resource, entry.policyId, policy)?.fix ?? ADD_APPROVALS;
      return this.deps.refuse(user, 'request.create', { status: 409, code: 'no_approval_route', message: `nobody could approve this request on ${resource.id}: policy ${entry.policyId} has no approvals rule and does not auto-approve it (${auto.why}); ask an administrator to ${fix}` }, refsV);
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
      nudges: rules.length ? nudgePlanFor(policy) : null,
      reminders_sent: 0,
      escalated_at: null,
    };
    const request = await this.deps.writes.mutate(async (ctx) => {
      await ctx.trx.insertInto('requests').values(row).execute();
      // A device or address is learnt only with a request that was granted (here: at once); a denied or abandoned
      // request must not make the next one from the same place look familiar.
      if (state === 'approved') await this.remember(ctx.trx, user.sub, risk.newDevice ? body.deviceId : undefined, risk.newIp ? context.ip : undefined, now);
      const base: Omit<AuditInput, 'action'> = { at: now, actor: user.sub, subject: user.sub, requestId: row.id, resourceId: resource.id, policyVersion, risk: risk.score };
      await ctx.audit({ ...base, action: 'request.created', reason: body.reason || undefined, detail: { level: body.level, durationSeconds: duration, state, riskReasons: risk.reasons, ticket: body.ticket, breakGlass: body.breakGlass } });
      if (state === 'approved') await ctx.audit({ ...base, actor: SYSTEM, action: 'request.approved', reason: auto.why });
      const mapped = await emitRequest(ctx, row, undefined, this.deps.policies);
      if (state === 'approved' && body.breakGlass) await this.breakGlassUsed(ctx, entry, row, mapped);
      return mapped;
    }, { key: `request:${row.id}` });
    // Once committed (a change that is retried or fails must not leave facts of a request that does not exist).
    this.deps.facts.rememberFacts(row);
    this.deps.metrics.transitions.inc({ kind: 'request', to: state });
    this.deps.timers.schedule(`req:${row.id}`, row.expires_at, () => this.expireRequest(row.id));
    this.deps.nudges.arm(row);
    return ok({ request });
  }

  private async breakGlassUsed(ctx: TxContext, entry: CatalogEntry, row: RequestRow, request: AccessRequest): Promise<void> {
    await ctx.audit({ at: this.deps.now(), actor: row.requester, subject: row.requester, action: 'breakglass.used', requestId: row.id, resourceId: row.resource_id, reason: row.reason, policyVersion: row.policy_version, risk: row.risk_score, detail: { review: true } });
    await ctx.emit({ type: 'breakglass.used', request }, { users: [], groups: this.catalog.breakGlassAudience(entry), exclude: [row.requester] });
    await this.deps.reviews.open(ctx, entry, row);
  }

  private async assess(user: AuthUser, sensitivity: 'low' | 'medium' | 'high', deviceId: string | undefined, ip: string | undefined, now: number) {
    // One round trip (each costs a syscall each way on a busy server): the scalar signals, joined to the recent history
    // (one row per past request, the signals repeated; a user with no history still gets the one row of signals).
    const seenValue = (kind: 'device' | 'ip', value: string) => this.deps.reads.selectFrom('seen').select('value').where('user_sub', '=', user.sub).where('kind', '=', kind).where('value', '=', value);
    const signalsQuery = this.deps.reads.selectNoFrom((eb) => [
      eb.exists(seenValue('device', deviceId ?? '')).as('device_seen'),
      eb.exists(seenValue('ip', ip ?? '')).as('ip_seen'),
      eb.selectFrom('audit').select((f) => f.fn.countAll<number>().as('n')).where('actor', '=', user.sub).where('action', '=', sql.lit('stepup.failed')).where('at', '>', now - 3600_000).as('failures'),
    ]).as('signals');
    const historyQuery = this.deps.reads.selectFrom('requests').select('created_at').where('requester', '=', user.sub).where('created_at', '>', now - 30 * 86400_000)
      .orderBy('created_at', 'desc').limit(50).as('history');
    const rows = await this.deps.reads.selectFrom(signalsQuery).leftJoin(historyQuery, (join) => join.onTrue())
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
      usualHours: history.map((h) => Math.floor(utcMinuteOfDay(Number(h.created_at)) / 60)),
      hourNow: Math.floor(utcMinuteOfDay(now) / 60),
      recentRequests: history.filter((h) => Number(h.created_at) > now - BURST_WINDOW_MS).length,
      recentFailedStepUps: failures.n,
    });
    return { ...assessment, newDevice: !!deviceId && !deviceSeen, newIp: !!ip && !ipSeen };
  }

  async remember(trx: Tx, sub: string, deviceId: string | undefined, ip: string | undefined, now: number): Promise<void> {
    for (const [kind, value] of [['device', deviceId], ['ip', ip]] as const) {
      if (!value) continue;
      // Only new values are written: an ordinary request by a known device touches no page of this table.
      await trx.insertInto('seen').values({ user_sub: sub, kind, value, first_seen: now, last_seen: now })
        .onConflict((oc) => oc.columns(['user_sub', 'kind', 'value']).doNothing()).execute();
    }
  }

  /**
   * Apply one table transition to a request inside a transaction: re-read, check, update, audit, emit.
   * `patch` adds columns to change (deadline, decision…).
   */
  async transitionRequest(id: string, event: RequestEvent, actor: string, detail: Record<string, unknown> | undefined, patch: (row: RequestRow) => Partial<RequestRow>, reason?: string, options: { claim?: boolean } = {}): Promise<Outcome<AccessRequest>> {
    const result = await this.deps.writes.mutate(async (ctx): Promise<Outcome<{ request: AccessRequest; row: RequestRow }>> => {
      const row = await lockRow(this.deps.shared, ctx.trx.selectFrom('requests').selectAll().where('id', '=', id), options.claim).executeTakeFirst();
      if (!row && options.claim) return fail(409, 'busy', `request ${id} is being changed by another transaction`, { audit: false });
      if (!row) return fail(404, 'request_not_found', `no request ${id}`);
      const step = requestTransition(row.state as RequestState, event);
      if (!step.ok) return fail(409, step.code, step.message, { audit: true });
      if ((event === 'cancelled' || event === 'expired') && row.grant_id) return fail(409, 'illegal_transition', 'the request was already activated', { audit: true });
      const changes: Partial<RequestRow> = { state: step.to, ...patch(row) };
      if (['denied', 'cancelled', 'expired'].includes(step.to)) { changes.decided_at ??= this.deps.now(); changes.decision_reason ??= reason ?? null; }
      await ctx.trx.updateTable('requests').set(changes).where('id', '=', id).execute();
      const updated = { ...row, ...changes } as RequestRow;
      await ctx.audit({ at: this.deps.now(), actor, subject: row.requester, action: `request.${event}`, requestId: id, resourceId: row.resource_id, reason, policyVersion: row.policy_version, risk: row.risk_score, detail });
      const request = await emitRequest(ctx, updated, row.state as RequestState, this.deps.policies);
      if (event === 'auto_approved' && row.break_glass === 1) {
        const entry = this.catalog.entry(row.resource_id);
        if (entry) await this.breakGlassUsed(ctx, entry, updated, request);
      }
      return ok({ request, row: updated });
    });
    if (!result.ok) return result;
    const { row, request } = result.value;
    this.deps.metrics.transitions.inc({ kind: 'request', to: row.state });
    if (['pending_stepup', 'pending_approval', 'approved'].includes(row.state) && !row.grant_id) this.deps.timers.schedule(`req:${id}`, Number(row.expires_at), () => this.expireRequest(id));
    else this.deps.timers.unschedule(`req:${id}`);
    return ok(request);
  }

  async expireRequest(id: string): Promise<void> {
    const row = await this.deps.reads.selectFrom('requests').select(['state', 'expires_at', 'grant_id']).where('id', '=', id).executeTakeFirst();
    if (!row || row.grant_id || Number(row.expires_at) > this.deps.now()) {
      if (row && !row.grant_id && Number(row.expires_at) > this.deps.now() && ['pending_stepup', 'pending_approval', 'approved'].includes(row.state)) {
        this.deps.timers.schedule(`req:${id}`, Number(row.expires_at), () => this.expireRequest(id));
      }
      return;
    }
    if (!['pending_stepup', 'pending_approval', 'approved'].includes(row.state)) return;
    const why = row.state === 'approved' ? 'not activated within the activation window' : 'request TTL passed';
    // Claimed: if another instance (or change) holds the row, it is acting on it; look again shortly.
    const outcome = await this.transitionRequest(id, 'expired', SYSTEM, undefined, () => ({}), why, { claim: true });
    if (!outcome.ok && outcome.error.code === 'busy') this.deps.timers.schedule(`req:${id}`, this.deps.now() + CLAIM_RETRY_MS, () => this.expireRequest(id));
  }

  async deny(user: AuthUser, id: string, reason: string): Promise<Outcome<{ request: AccessRequest }>> {
    const row = await this.deps.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return this.deps.refuse(user, 'request.deny', { status: 404, code: 'request_not_found', message: `no request ${id}` }, { requestId: id });
    const refs = { requestId: id, subject: row.requester, resourceId: row.resource_id, policyVersion: row.policy_version };
    if (row.requester === user.sub) return this.deps.refuse(user, 'request.deny', { status: 403, code: 'self_approval', message: 'you cannot decide your own request (cancel it instead)' }, refs);
    if (!user.admin && fillableGroups(user.groups, row).length === 0) return this.deps.refuse(user, 'request.deny', { status: 403, code: 'not_an_approver', message: 'you are not an approver of this request' }, refs);
    const outcome = await this.transitionRequest(id, 'denied', user.sub, undefined, () => ({ decision_reason: reason }), reason);
    if (!outcome.ok) return this.deps.refuse(user, 'request.deny', outcome.error, refs);
    return ok({ request: outcome.value });
  }

  async cancel(user: AuthUser, id: string): Promise<Outcome<{ request: AccessRequest }>> {
    const row = await this.deps.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || row.requester !== user.sub) return this.deps.refuse(user, 'request.cancel', { status: 404, code: 'request_not_found', message: `no request ${id} of yours` }, { requestId: id });
    const outcome = await this.transitionRequest(id, 'cancelled', user.sub, undefined, () => ({ decision_reason: 'cancelled by the requester' }), 'cancelled by the requester');
    if (!outcome.ok) return this.deps.refuse(user, 'request.cancel', outcome.error, { requestId: id, subject: row.requester });
    return ok({ request: outcome.value });
  }
}
