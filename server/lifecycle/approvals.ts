// Approvals and step-up: the checks on an approver, N-of-M approval, and the step-up proofs a request or an approval
// needs (the action hashes a challenge is bound to, and StepUpActionResolver for the step-up routes).
import type { AccessRequest, ApproveBody, StepUpMethod, StepUpProof } from '../../shared/contract/http';
import { requestTransition, type RequestEvent } from '../../shared/domain/lifecycle';
import type { z } from 'zod';
import { canonicalJson } from '../config';
import type { StepUpAction, StepUpActionResolver, StepUpGate } from '../stepup/seam';
import { stepUpFailureStatus } from '../stepup/routes';
import type { AuthUser } from '../identity/user';
import { fail, ok, type DomainError, type Outcome } from '../errors';
import { matchApprovals, type ApprovalRule } from './catalog';
import { fillableGroups } from './asked';
import type { GrantRules } from './grants';
import type { Rekeying } from './rekey';
import type { RequestRules } from './requests';
import type { Timers } from './timers';
import { emitRequest, type Views } from './views';
import { approveStepUpNeed, type ApproveStepUpNeed } from './approve-stepup';
import { lockRow, parseJson, sha256, type RulesDeps, type RequestRow } from './support';

export interface ApprovalsDeps extends RulesDeps {
  gate?: StepUpGate;
  timers: Pick<Timers, 'schedule' | 'unschedule'>;
  requests: Pick<RequestRules, 'expireRequest' | 'transitionRequest' | 'remember'>;
  grants: Pick<GrantRules, 'applyApprovedExtension'>;
  views: Pick<Views, 'requestById'>;
  /** A challenge for a request that became the caller's active grant is one for taking that grant back. */
  rekey: Pick<Rekeying, 'stepUpTarget'>;
}

export class Approvals implements StepUpActionResolver {

  constructor(private readonly deps: ApprovalsDeps) {}

  private get catalog() {
    return this.deps.policies.catalog;
  }

  private requestActionHash(row: RequestRow): string {
    return sha256(canonicalJson({ kind: 'request', requestId: row.id, requester: row.requester, resourceId: row.resource_id, level: row.level, durationSeconds: row.duration_seconds, reason: row.reason, ticket: row.ticket, breakGlass: row.break_glass === 1, extendsGrantId: row.extends_grant_id }));
  }

  private approveActionHash(row: RequestRow, approver: string): string {
    return sha256(canonicalJson({ kind: 'approve', approver, requestId: row.id, requester: row.requester, resourceId: row.resource_id, level: row.level, durationSeconds: row.duration_seconds, reason: row.reason, ticket: row.ticket, extendsGrantId: row.extends_grant_id }));
  }

  private approveNeedsStepUp(row: RequestRow): Promise<ApproveStepUpNeed> {
    return approveStepUpNeed(this.deps.policies, row);
  }

  /** StepUpActionResolver: what a challenge for this action must be bound to, if the caller may take it. */
  async resolve(user: { sub: string; groups: string[] }, action: StepUpAction): ReturnType<StepUpActionResolver['resolve']> {
    const row = await this.deps.reads.selectFrom('requests').selectAll().where('id', '=', action.requestId).executeTakeFirst();
    if (!row) return { ok: false as const, status: 404 as const, code: 'request_not_found', message: `no request ${action.requestId}` };
    const policy = await this.deps.policies.recordedPolicy(row);
    if (action.kind === 'request') {
      if (row.requester !== user.sub) return { ok: false as const, status: 404 as const, code: 'request_not_found', message: `no request ${action.requestId}` };
      if (row.state === 'approved' && row.grant_id) return this.deps.rekey.stepUpTarget(user, row);
      if (row.state !== 'pending_stepup') return { ok: false as const, status: 409 as const, code: 'stepup_not_pending', message: `the request is ${row.state}, not waiting for a step-up` };
      return { ok: true as const, actionHash: this.requestActionHash(row), methods: parseJson<StepUpMethod[]>(row.step_up_methods), userVerification: policy?.stepUp.userVerification ?? true, summary: `Request ${row.level} on ${row.resource_id} for ${Math.round(row.duration_seconds / 60)} min` };
    }
    const can = await this.approverCheck(user, row);
    if (!can.ok) return { ok: false as const, status: can.error.status === 404 ? 404 as const : can.error.status === 403 ? 403 as const : 409 as const, code: can.error.code, message: can.error.message };
    const need = await this.approveNeedsStepUp(row);
    return { ok: true as const, actionHash: this.approveActionHash(row, user.sub), methods: need.methods, userVerification: need.userVerification, summary: `Approve ${row.requester}'s ${row.level} access to ${row.resource_id}` };
  }

  async completeStepUp(user: AuthUser, id: string, proof: StepUpProof): Promise<Outcome<{ request: AccessRequest }>> {
    const row = await this.deps.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || row.requester !== user.sub) return this.deps.refuse(user, 'request.stepup', { status: 404, code: 'request_not_found', message: `no request ${id}` }, { requestId: id });
    if (row.state !== 'pending_stepup') return this.deps.refuse(user, 'request.stepup', { status: 409, code: 'illegal_transition', message: `the request is ${row.state}, not waiting for a step-up` }, { requestId: id, subject: row.requester });
    if (!this.deps.gate) return fail(409, 'stepup_unavailable', 'the server has no step-up configured');
    const methods = parseJson<StepUpMethod[]>(row.step_up_methods);
    const policy = await this.deps.policies.recordedPolicy(row);
    const result = await this.deps.gate.verify({ userId: user.sub, action: { kind: 'request', requestId: id }, actionHash: this.requestActionHash(row), methods, userVerification: policy?.stepUp.userVerification ?? true, proof });
    if (!result.ok) return this.stepUpFailed(user, row, 'request', result);
    const event: RequestEvent = row.auto_approve === 1 ? 'auto_approved' : 'stepup_passed';
    const outcome = await this.deps.requests.transitionRequest(id, event, user.sub, { method: result.method }, (r) => {
      return event === 'auto_approved'
        ? { expires_at: this.deps.now() + (policy?.activationWindow ?? 900) * 1000, decided_at: this.deps.now(), decision_reason: r.break_glass ? 'break-glass' : 'auto-approved by policy' }
        : {};
    });
    if (!outcome.ok) return outcome;
    return ok({ request: outcome.value });
  }

  private async stepUpFailed<T>(user: AuthUser, row: RequestRow, kind: 'request' | 'approve', result: Extract<Awaited<ReturnType<StepUpGate['verify']>>, { ok: false }>): Promise<Outcome<T>> {
    this.deps.metrics.stepUpFailures.inc({ kind, code: result.code });
    await this.deps.writes.mutate(({ audit }) => audit({ at: this.deps.now(), actor: user.sub, subject: row.requester, action: 'stepup.failed', requestId: row.id, resourceId: row.resource_id, reason: result.message, policyVersion: row.policy_version, detail: { code: result.code, kind } }));
    const status = stepUpFailureStatus(result.code) as DomainError['status'];
    return fail(status, result.code, result.message, { extra: { ...(result.reason ? { reason: result.reason } : {}), ...(result.attemptsLeft !== undefined ? { attemptsLeft: result.attemptsLeft } : {}), ...(result.retryAfter !== undefined ? { retryAfter: new Date(result.retryAfter).toISOString() } : {}) } });
  }

  /** Common checks for an approver acting on a request (approve, and the step-up challenge for approving). */
  private async approverCheck(user: { sub: string; groups: string[] }, row: RequestRow): Promise<Outcome<{ rules: ApprovalRule[] }>> {
    if (row.requester === user.sub) return fail(403, 'self_approval', 'you cannot approve your own request', { audit: true });
    if (row.state !== 'pending_approval') return fail(409, 'illegal_transition', `the request is ${row.state.replace('_', ' ')}; it cannot be approved`, { audit: true });
    if (Number(row.expires_at) <= this.deps.now()) return fail(409, 'request_expired', 'the request has expired', { audit: true });
    const rules = parseJson<ApprovalRule[]>(row.approval_rules);
    const mine = fillableGroups(user.groups, row);
    if (mine.length === 0) return fail(403, 'not_an_approver', `you are not in an approval group of this request (${rules.map((r) => r.group).join(', ')})`, { audit: true });
    const existing = await this.deps.reads.selectFrom('approvals').select(['approver', 'groups']).where('request_id', '=', row.id).execute();
    if (existing.some((a) => a.approver === user.sub)) return fail(409, 'already_approved', 'you already approved this request; one person fills one slot', { audit: true });
    const people = existing.map((a) => ({ sub: a.approver, groups: parseJson<string[]>(a.groups) }));
    const before = matchApprovals(rules, people);
    const after = matchApprovals(rules, [...people, { sub: user.sub, groups: mine }]);
    const filled = (m: typeof before) => m.have.reduce((a, b) => a + b, 0);
    if (filled(after) <= filled(before)) return fail(409, 'approval_not_needed', 'the approval slots you could fill are already filled by others', { audit: true });
    return ok({ rules });
  }

  async approve(user: AuthUser, id: string, body: z.output<typeof ApproveBody>): Promise<Outcome<{ request: AccessRequest }>> {
    const row = await this.deps.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return this.deps.refuse(user, 'request.approve', { status: 404, code: 'request_not_found', message: `no request ${id}` }, { requestId: id });
    const refs = { requestId: id, subject: row.requester, resourceId: row.resource_id, policyVersion: row.policy_version };
    if (row.state === 'pending_approval' && Number(row.expires_at) <= this.deps.now()) await this.deps.requests.expireRequest(id);
    const check = await this.approverCheck(user, row);
    if (!check.ok) return this.deps.refuse(user, 'request.approve', check.error, refs);
    const need = await this.approveNeedsStepUp(row);
    let method: StepUpMethod | undefined;
    if (need.needed) {
      if (!this.deps.gate) return this.deps.refuse(user, 'request.approve', { status: 409, code: 'stepup_unavailable', message: 'approving needs a step-up but the server has no step-up configured' }, refs);
      if (!body.stepUp) {
        return fail(403, 'stepup_required', 'approving this request needs a fresh step-up: get a challenge for {kind: "approve"} and send its proof as stepUp', { extra: { stepUp: { methods: need.methods, action: { kind: 'approve', requestId: id } } } });
      }
      const result = await this.deps.gate.verify({ userId: user.sub, action: { kind: 'approve', requestId: id }, actionHash: this.approveActionHash(row, user.sub), methods: need.methods, userVerification: need.userVerification, proof: body.stepUp });
      if (!result.ok) return this.stepUpFailed(user, row, 'approve', result);
      method = result.method;
    }
    const mine = fillableGroups(user.groups, row);
    const result = await this.deps.writes.mutate(async (ctx): Promise<Outcome<{ request: AccessRequest; row: RequestRow }>> => {
      // Re-check inside the transaction: another approver or a timer may have moved the request meanwhile.
      const current = await lockRow(this.deps.shared, ctx.trx.selectFrom('requests').selectAll().where('id', '=', id)).executeTakeFirstOrThrow();
      if (current.state !== 'pending_approval') return fail(409, 'illegal_transition', `the request is ${current.state.replace('_', ' ')}; it cannot be approved`, { audit: true });
      const existing = await ctx.trx.selectFrom('approvals').select(['approver', 'groups']).where('request_id', '=', id).execute();
      if (existing.some((a) => a.approver === user.sub)) return fail(409, 'already_approved', 'you already approved this request', { audit: true });
      const now = this.deps.now();
      await ctx.trx.insertInto('approvals').values({ request_id: id, approver: user.sub, approver_name: user.name ?? null, groups: JSON.stringify(mine), comment: body.comment ?? null, at: now }).execute();
      const people = [...existing.map((a) => ({ sub: a.approver, groups: parseJson<string[]>(a.groups) })), { sub: user.sub, groups: mine }];
      const match = matchApprovals(check.value.rules, people);
      const base = { at: now, actor: user.sub, subject: current.requester, requestId: id, resourceId: current.resource_id, policyVersion: current.policy_version, risk: current.risk_score };
      await ctx.audit({ ...base, action: 'request.approval_added', reason: body.comment, detail: { group: match.assignment.get(user.sub), stepUp: method } });
      let updated = current;
      if (match.complete) {
        const step = requestTransition('pending_approval', 'approved');
        if (!step.ok) return fail(409, step.code, step.message);
        const policy = await this.deps.policies.recordedPolicy(current);
        const changes: Partial<RequestRow> = { state: step.to, decided_at: now, decision_reason: 'approved', expires_at: now + (policy?.activationWindow ?? 900) * 1000 };
        await ctx.trx.updateTable('requests').set(changes).where('id', '=', id).execute();
        updated = { ...current, ...changes };
        await ctx.audit({ ...base, action: 'request.approved', detail: { approvers: people.map((p) => p.sub) } });
        await this.deps.requests.remember(ctx.trx, current.requester, current.device_id ?? undefined, current.source_ip ?? undefined, now);
      }
      const request = await emitRequest(ctx, updated, 'pending_approval', this.deps.policies);
      return ok({ request, row: updated });
    });
    if (!result.ok) return this.deps.refuse(user, 'request.approve', result.error, refs);
    const updated = result.value.row;
    if (updated.state === 'approved') {
      this.deps.metrics.transitions.inc({ kind: 'request', to: 'approved' });
      if (updated.extends_grant_id) {
        this.deps.timers.unschedule(`req:${id}`);
        await this.deps.grants.applyApprovedExtension(updated);
        return ok({ request: (await this.deps.views.requestById(id))! });
      }
      this.deps.timers.schedule(`req:${id}`, Number(updated.expires_at), () => this.deps.requests.expireRequest(id));
    }
    return ok({ request: result.value.request });
  }
}
