// Break-glass reviews: a break-glass use opens a review, in its own transaction, assigned to the resource's approvers
// (admins when the policy names none; admins may always record one). A reviewer records the outcome and a note, on the
// audit chain; a review past its due time is reminded (an audit row, so a webhook, and an event to the reviewers)
// every reviews.remindEvery until it is recorded — once per interval across instances (a conditional update).
import type { Selectable } from 'kysely';
import type { z } from 'zod';
import type { BreakGlassReview, ListReviewsQuery, RecordReviewBody } from '../../shared/contract/reviews';
import type { ServerConfig } from '../config';
import type { AuthUser } from '../identity/user';
import { fail, ok, type Outcome } from '../errors';
import type { BreakglassReviewsTable } from '../storage/schema';
import type { CatalogEntry } from './catalog';
import type { Timers } from './timers';
import type { TxContext } from './write-queue';
import { iso, lockRow, newId, parseJson, SYSTEM, type Logger, type RequestRow, type RulesDeps } from './support';

type ReviewRow = Selectable<BreakglassReviewsTable>;

export interface ReviewsDeps extends Pick<RulesDeps, 'reads' | 'shared' | 'now' | 'refuse' | 'writes'> {
  config: Pick<ServerConfig, 'reviews' | 'identity'>;
  log: Logger;
  timers: Pick<Timers, 'track'>;
}

export class Reviews {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: ReviewsDeps) {}

  /** In the break-glass change's transaction: open its review for the policy's approvers (or the admins). */
  async open(ctx: TxContext, entry: CatalogEntry, request: RequestRow): Promise<void> {
    const approvers = [...new Set(entry.policy.approvals.map((r) => r.from))];
    const now = this.deps.now();
    await ctx.trx.insertInto('breakglass_reviews').values({
      id: newId('rev'), request_id: request.id, resource_id: request.resource_id, requester: request.requester, reason: request.reason,
      groups: JSON.stringify(approvers.length ? approvers : this.deps.config.identity.adminGroups),
      created_at: now, due_at: now + this.deps.config.reviews.dueAfter * 1000, reminded_at: null, reviewed_by: null, reviewed_at: null, outcome: null, note: null,
    }).onConflict((oc) => oc.column('request_id').doNothing()).execute();
  }

  /** The reviews the caller may record (open ones, or all), newest first; never their own break-glass uses. */
  async list(user: AuthUser, query: z.output<typeof ListReviewsQuery>): Promise<BreakGlassReview[]> {
    const rows = await this.deps.reads.selectFrom('breakglass_reviews').selectAll().where('requester', '!=', user.sub)
      .$if(query.state === 'open', (q) => q.where('reviewed_at', 'is', null))
      .orderBy('created_at', 'desc').limit(1000).execute();
    return rows.filter((row) => this.mayRecord(user, row)).slice(0, query.limit).map((row) => this.toReview(row));
  }

  async record(user: AuthUser, id: string, body: z.output<typeof RecordReviewBody>): Promise<Outcome<{ review: BreakGlassReview }>> {
    const outcome = await this.deps.writes.mutate(async (ctx): Promise<Outcome<{ review: BreakGlassReview; row: ReviewRow }>> => {
      const row = await lockRow(this.deps.shared, ctx.trx.selectFrom('breakglass_reviews').selectAll().where('id', '=', id)).executeTakeFirst();
      if (!row || (!this.mayRecord(user, row) && row.requester !== user.sub)) return fail(404, 'review_not_found', `no review ${id} that you may record`);
      if (row.requester === user.sub) return fail(403, 'self_review', 'you cannot review your own break-glass use');
      if (row.reviewed_at !== null) return fail(409, 'review_already_recorded', `${row.reviewed_by ?? 'someone'} already recorded this review`);
      const now = this.deps.now();
      const note = body.note.trim();
      const updated: ReviewRow = { ...row, reviewed_by: user.sub, reviewed_at: now, outcome: body.outcome, note: note || null };
      await ctx.trx.updateTable('breakglass_reviews').set({ reviewed_by: user.sub, reviewed_at: now, outcome: body.outcome, note: note || null }).where('id', '=', id).execute();
      await ctx.audit({ at: now, actor: user.sub, subject: row.requester, action: 'breakglass.reviewed', requestId: row.request_id, resourceId: row.resource_id, ...(note ? { reason: note } : {}), detail: { reviewId: id, outcome: body.outcome } });
      return ok({ review: this.toReview(updated), row: updated });
    });
    if (!outcome.ok) return this.deps.refuse(user, 'breakglass.review', outcome.error);
    return ok({ review: outcome.value.review });
  }

  /** Remind every overdue review not reminded within reviews.remindEvery; returns how many this instance reminded. */
  async remindOverdue(): Promise<number> {
    const now = this.deps.now();
    const cutoff = now - this.deps.config.reviews.remindEvery * 1000;
    const due = await this.deps.reads.selectFrom('breakglass_reviews').select('id').where('reviewed_at', 'is', null).where('due_at', '<=', now)
      .where((eb) => eb.or([eb('reminded_at', 'is', null), eb('reminded_at', '<=', cutoff)])).limit(100).execute();
    let reminded = 0;
    for (const { id } of due) {
      const done = await this.deps.writes.mutate(async (ctx) => {
        // Conditional: another instance that reminded it meanwhile leaves nothing to update here.
        const row = await ctx.trx.updateTable('breakglass_reviews').set({ reminded_at: now }).where('id', '=', id).where('reviewed_at', 'is', null)
          .where((eb) => eb.or([eb('reminded_at', 'is', null), eb('reminded_at', '<=', cutoff)])).returningAll().executeTakeFirst();
        if (!row) return false;
        await ctx.audit({ at: now, actor: SYSTEM, subject: row.requester, action: 'breakglass.review_overdue', requestId: row.request_id, resourceId: row.resource_id, detail: { reviewId: row.id, dueAt: iso(row.due_at) } });
        await ctx.emit({ type: 'breakglass.review_due', review: this.toReview(row) }, { users: [], groups: [...new Set([...parseJson<string[]>(row.groups), ...this.deps.config.identity.adminGroups])], exclude: [row.requester] });
        return true;
      }, { key: `review:${id}` });
      if (done) reminded += 1;
    }
    return reminded;
  }

  start(everyMs: number): void {
    this.timer = setInterval(() => {
      void this.deps.timers.track(this.remindOverdue()).catch((error: unknown) => this.deps.log.error({ message: (error as Error).message }, 'break-glass review reminders failed'));
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Members of the review's groups and admins; never the one who used break-glass. */
  private mayRecord(user: AuthUser, row: ReviewRow): boolean {
    if (row.requester === user.sub) return false;
    return user.admin || parseJson<string[]>(row.groups).some((g) => user.groups.includes(g));
  }

  private toReview(row: ReviewRow): BreakGlassReview {
    return {
      id: row.id, requestId: row.request_id, resourceId: row.resource_id, requester: row.requester, reason: row.reason,
      groups: parseJson<string[]>(row.groups), createdAt: iso(row.created_at)!, dueAt: iso(row.due_at)!,
      overdue: row.reviewed_at === null && Number(row.due_at) <= this.deps.now(),
      ...(row.reviewed_by ? { reviewedBy: row.reviewed_by } : {}),
      ...(row.reviewed_at !== null ? { reviewedAt: iso(row.reviewed_at)! } : {}),
      ...(row.outcome ? { outcome: row.outcome as BreakGlassReview['outcome'] } : {}),
      ...(row.note ? { note: row.note } : {}),
    };
  }
}

