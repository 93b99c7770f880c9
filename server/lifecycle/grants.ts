// Grant rules: how an active grant ends (deadline, release, admin revoke, failed activation), is extended (within
// the policy's limits, or through a new request when extensions need re-approval), and what its owner may do with it.
import { sql } from 'kysely';
import type { AccessRequest, ExtendBody, Grant, GrantState, RevokeBody } from '../../shared/contract/http';
import { grantTransition, type GrantEvent } from '../../shared/domain/lifecycle';
import type { z } from 'zod';
import type { CredentialProvider } from '../credentials/provider';
import type { AuthUser } from '../identity/user';
import { fail, ok, type Outcome } from '../errors';
import type { CatalogEntry } from './catalog';
import type { BastionQueries } from './bastion-queries';
import type { RequestRules } from './requests';
import type { Revocation } from './revocation';
import { nudgePlanFor } from './asked';
import type { Nudges } from './nudges';
import type { Timers } from './timers';
import { emitGrant, emitRequest, toGrant, type Views } from './views';
import { CLAIM_RETRY_MS, iso, lockRow, newId, safeMessage, SYSTEM, type RulesDeps, type GrantRow, type RequestRow, type Tx } from './support';

export interface GrantRulesDeps extends RulesDeps {
  credentials?: CredentialProvider;
  timers: Pick<Timers, 'schedule' | 'unschedule' | 'track'>;
  views: Pick<Views, 'ownGrant'>;
  requests: Pick<RequestRules, 'expireRequest'>;
  revocation: Pick<Revocation, 'revokeJustEnded' | 'othersRevokeFrom'>;
  bastion: Pick<BastionQueries, 'announce'>;
  /** An extension waiting for re-approval is reminded and escalated like any request (nudges.ts). */
  nudges: Pick<Nudges, 'arm'>;
}

export class GrantRules {

  constructor(private readonly deps: GrantRulesDeps) {}

  private get catalog() {
    return this.deps.policies.catalog;
  }

  /** End an active grant (deadline, release, revoke, failed activation) and start revoking its credentials. */
  async endGrant(id: string, event: Exclude<GrantEvent, 'extended'>, actor: string, reason: string, options: { due?: boolean; owner?: string } = {}): Promise<Outcome<Grant>> {
    const result = await this.deps.writes.mutate(async (ctx): Promise<Outcome<{ grant: Grant; row: GrantRow }>> => {
      const ended = options.due ? await this.endIfDue(ctx.trx, id, event, reason) : await this.endNow(ctx.trx, id, event, reason, options.owner);
      if (!ended.ok) return ended;
      const { updated, now } = ended.value;
      await ctx.audit({ at: now, actor, subject: updated.owner, action: `grant.${event}`, requestId: updated.request_id, grantId: id, resourceId: updated.resource_id, reason, policyVersion: updated.policy_version, detail: updated.break_glass ? { breakGlass: true } : undefined });
      return ok({ grant: await emitGrant(ctx, updated), row: updated });
    }, { key: `grant:${id}` });
    if (!result.ok) return result;
    const { row, grant } = result.value;
    this.deps.metrics.transitions.inc({ kind: 'grant', to: row.state });
    if (!options.due) this.deps.timers.unschedule(`grant:${id}`);
    this.deps.bastion.announce({ grantId: id, bastionId: row.bastion_id, resourceId: row.resource_id, keyBase64: row.key_base64, at: Number(row.ended_at) });
    if (row.revocation === 'pending') void this.deps.timers.track(this.deps.revocation.revokeJustEnded(row));
    return ok(grant);
  }

  /** The deadline has come: claim the row (see lockRow) and end the grant unless an extension moved its deadline. */
  private async endIfDue(trx: Tx, id: string, event: GrantEvent, reason: string): Promise<Outcome<{ updated: GrantRow; now: number }>> {
    const row = await lockRow(this.deps.shared, trx.selectFrom('grants').selectAll().where('id', '=', id), true).executeTakeFirst();
    if (!row) return fail(409, 'busy', `grant ${id} is being changed by another transaction`, { audit: false });
    const step = grantTransition(row.state as GrantState, event);
    if (!step.ok) return fail(409, step.code, step.message, { audit: true });
    const now = this.deps.now();
    // A deadline timer armed before an extension (perhaps by another instance) must not end the grant early.
    if (Number(row.ends_at) > now) return fail(409, 'not_due', `grant ${id} now ends at ${iso(row.ends_at)}`, { audit: false, extra: { endsAt: Number(row.ends_at) } });
    const changes: Partial<GrantRow> = { state: step.to, ended_at: now, end_reason: reason, revocation: row.db_username ? 'pending' : 'done', next_revoke_at: row.db_username ? this.deps.revocation.othersRevokeFrom(now) : null };
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
    const now = this.deps.now();
    const updated = await trx.updateTable('grants')
      .set({
        state: step.to, ended_at: now, end_reason: reason,
        revocation: sql<string>`case when db_username is null then 'done' else 'pending' end`,
        next_revoke_at: sql<number | null>`case when db_username is null then null else cast(${this.deps.revocation.othersRevokeFrom(now)} as bigint) end`,
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
  async endAtDeadline(id: string): Promise<void> {
    let outcome: Outcome<Grant>;
    try {
      outcome = await this.endGrant(id, 'ended', SYSTEM, 'deadline reached', { due: true });
    } catch (error) {
      // The database failed this attempt (restarting after a crash, a pooled connection it cut): look again shortly,
      // not a sweep interval later — the credentials stay alive until the grant has ended.
      this.deps.timers.schedule(`grant:${id}`, this.deps.now() + CLAIM_RETRY_MS, () => this.endAtDeadline(id));
      throw error;
    }
    if (outcome.ok) return;
    if (outcome.error.code === 'busy') this.deps.timers.schedule(`grant:${id}`, this.deps.now() + CLAIM_RETRY_MS, () => this.endAtDeadline(id));
    else if (outcome.error.code === 'not_due') this.deps.timers.schedule(`grant:${id}`, Number(outcome.error.extra?.endsAt), () => this.endAtDeadline(id));
  }

  /**
   * Lock a grant for a change (end, extension) without queueing behind a revocation: a revocation holds the rows of
   * ended grants across its provider calls (seconds, if the target database hangs), and with one write batch at a
   * time a batch waiting there would hold up every write of this instance. An ended grant has nothing left to change,
   * so it is answered from a plain read; an active one held by another change (briefly) is waited for.
   */
  private async lockGrantForChange(trx: Tx, id: string): Promise<GrantRow | undefined> {
    const query = () => trx.selectFrom('grants').selectAll().where('id', '=', id);
    if (!this.deps.shared) return query().executeTakeFirst();
    const locked = await query().forNoKeyUpdate().skipLocked().executeTakeFirst();
    if (locked) return locked;
    const row = await query().executeTakeFirst();
    if (!row || row.state !== 'active') return row;
    return query().forNoKeyUpdate().executeTakeFirst();
  }

  async release(user: AuthUser, id: string): Promise<Outcome<{ grant: Grant }>> {
    // Ownership is checked on the row the end locks (one read, not two).
    const outcome = await this.endGrant(id, 'released', user.sub, 'released by the owner', { owner: user.sub });
    if (!outcome.ok && outcome.error.code === 'grant_not_found') return this.deps.refuse(user, 'grant.release', { status: 404, code: 'grant_not_found', message: `no grant ${id} of yours` }, { grantId: id });
    if (!outcome.ok) return this.deps.refuse(user, 'grant.release', outcome.error, { grantId: id, subject: user.sub });
    return ok({ grant: outcome.value });
  }

  async revoke(user: AuthUser, id: string, body: z.output<typeof RevokeBody>): Promise<Outcome<{ grant: Grant }>> {
    if (!user.admin) return this.deps.refuse(user, 'grant.revoke', { status: 403, code: 'admin_only', message: 'only administrators may revoke grants' }, { grantId: id });
    const row = await this.deps.reads.selectFrom('grants').select(['id', 'owner']).where('id', '=', id).executeTakeFirst();
    if (!row) return this.deps.refuse(user, 'grant.revoke', { status: 404, code: 'grant_not_found', message: `no grant ${id}` }, { grantId: id });
    const outcome = await this.endGrant(id, 'revoked', user.sub, body.reason);
    if (!outcome.ok) return this.deps.refuse(user, 'grant.revoke', outcome.error, { grantId: id, subject: row.owner });
    return ok({ grant: outcome.value });
  }

  async extend(user: AuthUser, id: string, body: z.output<typeof ExtendBody>): Promise<Outcome<{ grant: Grant; request?: AccessRequest }>> {
    const own = await this.deps.views.ownGrant(user, id, 'grant.extend');
    if (!own.ok) return own;
    const row = own.value;
    const refs = { grantId: id, subject: row.owner, resourceId: row.resource_id, policyVersion: row.policy_version };
    const step = grantTransition(row.state as GrantState, 'extended');
    if (!step.ok || Number(row.ends_at) <= this.deps.now()) return this.deps.refuse(user, 'grant.extend', { status: 409, code: 'illegal_transition', message: step.ok ? 'the grant has reached its deadline' : step.message }, refs);
    const entry = this.catalog.entry(row.resource_id);
    const rules = entry?.policy.extend;
    if (!entry || !rules) return this.deps.refuse(user, 'grant.extend', { status: 409, code: 'extension_not_allowed', message: 'this policy does not allow extensions' }, refs);
    const total = (Number(row.ends_at) - Number(row.starts_at)) / 1000 + body.durationSeconds;
    if (total > rules.maxTotal) {
      return this.deps.refuse(user, 'grant.extend', { status: 409, code: 'extension_over_limit', message: `a grant on ${row.resource_id} may last at most ${rules.maxTotal} s in total; ${Math.floor(rules.maxTotal - (Number(row.ends_at) - Number(row.starts_at)) / 1000)} s are left` }, refs);
    }
    if (rules.reapproval) return this.requestExtension(user, row, entry, body);
    const applied = await this.applyExtension(row.id, body.durationSeconds, user.sub, body.reason);
    if (!applied.ok) return this.deps.refuse(user, 'grant.extend', applied.error, refs);
    return ok({ grant: applied.value });
  }

  /** Push the deadline: the database role's validity first (so access never outlives the record), then the row. */
  private async applyExtension(id: string, seconds: number, actor: string, reason?: string): Promise<Outcome<Grant>> {
    const row = await this.deps.reads.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const endsAt = Number(row.ends_at) + seconds * 1000;
    if (row.db_username && this.deps.credentials) {
      try {
        await this.deps.credentials.extend({ grantId: id, resourceId: row.resource_id, username: row.db_username, endsAt });
      } catch (error) {
        return fail(503, 'credentials_failed', `the database access could not be extended: ${safeMessage(error)}`);
      }
    }
    const result = await this.deps.writes.mutate(async (ctx): Promise<Outcome<{ grant: Grant; endsAt: number }>> => {
      const current = await this.lockGrantForChange(ctx.trx, id);
      if (!current) return fail(404, 'grant_not_found', `no grant ${id}`);
      const step = grantTransition(current.state as GrantState, 'extended');
      if (!step.ok) return fail(409, step.code, step.message, { audit: true });
      const changes = { ends_at: Number(current.ends_at) + seconds * 1000, extended_seconds: current.extended_seconds + seconds };
      await ctx.trx.updateTable('grants').set(changes).where('id', '=', id).execute();
      await ctx.audit({ at: this.deps.now(), actor, subject: current.owner, action: 'grant.extended', grantId: id, requestId: current.request_id, resourceId: current.resource_id, reason, policyVersion: current.policy_version, detail: { seconds, endsAt: iso(changes.ends_at) } });
      return ok({ grant: await emitGrant(ctx, { ...current, ...changes }), endsAt: changes.ends_at });
    });
    if (!result.ok) return result;
    this.deps.timers.schedule(`grant:${id}`, result.value.endsAt, () => this.endAtDeadline(id));
    return ok(result.value.grant);
  }

  private async requestExtension(user: AuthUser, grant: GrantRow, entry: CatalogEntry, body: z.output<typeof ExtendBody>): Promise<Outcome<{ grant: Grant; request?: AccessRequest }>> {
    const original = await this.deps.reads.selectFrom('requests').selectAll().where('id', '=', grant.request_id).executeTakeFirstOrThrow();
    const now = this.deps.now();
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
      // The policy's reminders and escalation afresh, not the original request's progress through them.
      nudges: nudgePlanFor(entry.policy),
      reminders_sent: 0,
      escalated_at: null,
    };
    const request = await this.deps.writes.mutate(async (ctx) => {
      await ctx.trx.insertInto('requests').values(row).execute();
      await ctx.audit({ at: now, actor: user.sub, subject: user.sub, action: 'request.created', requestId: row.id, grantId: grant.id, resourceId: row.resource_id, reason: row.reason, policyVersion: row.policy_version, risk: row.risk_score, detail: { extension: true, seconds: body.durationSeconds } });
      return emitRequest(ctx, row, undefined, this.deps.policies);
    });
    this.deps.timers.schedule(`req:${row.id}`, row.expires_at, () => this.deps.requests.expireRequest(row.id));
    this.deps.nudges.arm(row);
    return ok({ grant: toGrant(grant), request });
  }

  async applyApprovedExtension(request: RequestRow): Promise<void> {
    const grantId = request.extends_grant_id!;
    const applied = await this.applyExtension(grantId, request.duration_seconds, SYSTEM, `extension ${request.id} approved`);
    await this.deps.writes.mutate(async (ctx) => {
      await ctx.trx.updateTable('requests').set({ grant_id: grantId, decision_reason: applied.ok ? 'extension applied' : `extension not applied: ${applied.error.message}` }).where('id', '=', request.id).execute();
      const row = await ctx.trx.selectFrom('requests').selectAll().where('id', '=', request.id).executeTakeFirstOrThrow();
      await emitRequest(ctx, row, 'approved', this.deps.policies);
    });
  }

  /**
   * The owner asked to see the grant's database password (for a GUI client): on the audit record before the agent
   * shows it, and only while the grant is active. The server never held the password after activation; this is a
   * record, not a read.
   */
  async recordPasswordReveal(user: AuthUser, id: string): Promise<Outcome<{ grant: Grant }>> {
    const own = await this.deps.views.ownGrant(user, id, 'grant.reveal_password');
    if (!own.ok) return own;
    const row = own.value;
    if (row.state !== 'active') return this.deps.refuse(user, 'grant.reveal_password', { status: 409, code: 'illegal_transition', message: `the grant is ${row.state}: its password no longer works` }, { grantId: id, subject: user.sub });
    await this.deps.writes.mutate(({ audit }) => audit({ at: this.deps.now(), actor: user.sub, subject: user.sub, action: 'grant.password_revealed', grantId: id, requestId: row.request_id, resourceId: row.resource_id, policyVersion: row.policy_version }));
    return ok({ grant: toGrant(row) });
  }
}
