// Reminders and escalation for a request nobody decides (issue #24). A policy names reminder times (after the request
// was made) and an escalation group that becomes eligible after a while; the request keeps the plan it was made under
// (`nudges`, like its approval rules). Each reminder tells the groups asked — `approval.reminded`, which agents show
// as a notification — and is audited (`request.reminded`); the escalation is audited (`request.escalated`) and from
// then on members of the escalation group may fill any open slot (fillableGroups), see the request and are told of it.
// The requester sees who has been asked in the request itself (`asked`). One timer per request (`nudge:<id>`), armed
// at creation and by the sweep at start; each nudge is one transaction that re-checks the request is still waiting.
import { sql } from 'kysely';
import type { Db } from '../storage/db';
import { askedGroups, nextNudgeAt, planOf, type NudgeFacts } from './asked';
import type { Timers } from './timers';
import { emitRequest } from './views';
import type { WriteQueue } from './write-queue';
import { lockRow, SYSTEM, type CatalogSource, type Logger, type RequestRow } from './support';

export interface NudgesDeps {
  db: Db;
  shared: boolean;
  now: () => number;
  log: Logger;
  writes: Pick<WriteQueue, 'mutate'>;
  timers: Pick<Timers, 'schedule'>;
  /** What the emitted request tells approvers about step-up (approve-stepup.ts). */
  policies: CatalogSource;
}

export class Nudges {
  constructor(private readonly deps: NudgesDeps) {}

  /** Arm the request's next nudge, if it is waiting for approvers and has one left. */
  arm(row: NudgeFacts & Pick<RequestRow, 'id' | 'state'>): void {
    if (row.state !== 'pending_approval') return;
    const at = nextNudgeAt(row);
    if (at !== undefined) this.deps.timers.schedule(`nudge:${row.id}`, at, () => this.nudge(row.id));
  }

  /** Every waiting request with a plan (the sweep at start): what fell due while the server was down happens now. */
  async armAll(): Promise<void> {
    // The state is a literal so that a generic plan (prepared statements on PostgreSQL) can use the partial index of
    // pending requests (requests_pending_state) instead of reading every request ever made.
    const rows = await this.deps.db.selectFrom('requests').selectAll().where('state', '=', sql.lit('pending_approval')).where('nudges', 'is not', null).execute();
    for (const row of rows) this.arm(row);
  }

  /**
   * What is due now: the escalation, and one reminder (several reminders due at once — a server that was down — are
   * one reminder, counted as all of them).
   */
  async nudge(id: string): Promise<void> {
    const now = this.deps.now();
    const updated = await this.deps.writes.mutate(async (ctx) => {
      const row = await lockRow(this.deps.shared, ctx.trx.selectFrom('requests').selectAll().where('id', '=', id)).executeTakeFirst();
      const plan = row && planOf(row);
      if (!row || !plan || row.state !== 'pending_approval') return undefined;
      const created = Number(row.created_at);
      const changes: Partial<RequestRow> = {};
      const base = { at: now, actor: SYSTEM, subject: row.requester, requestId: id, resourceId: row.resource_id, policyVersion: row.policy_version };
      if (plan.escalation && row.escalated_at === null && created + plan.escalation.afterSeconds * 1000 <= now) {
        changes.escalated_at = now;
        await ctx.audit({ ...base, action: 'request.escalated', detail: { group: plan.escalation.group, afterSeconds: plan.escalation.afterSeconds } });
      }
      const due = plan.reminders.filter((after) => created + after * 1000 <= now).length;
      const remind = due > Number(row.reminders_sent);
      if (remind) changes.reminders_sent = due;
      if (!Object.keys(changes).length) return row;
      await ctx.trx.updateTable('requests').set(changes).where('id', '=', id).execute();
      const next = { ...row, ...changes };
      const groups = askedGroups(next);
      if (remind) await ctx.audit({ ...base, action: 'request.reminded', detail: { groups, reminder: due } });
      // Newly eligible approvers are asked like the first ones; everybody asked (and the requester) sees the change.
      const request = await emitRequest(ctx, next, 'pending_approval', this.deps.policies);
      if (changes.escalated_at !== undefined) await ctx.emit({ type: 'approval.asked', request }, { users: [], groups: [plan.escalation!.group], exclude: [row.requester] });
      if (remind) await ctx.emit({ type: 'approval.reminded', request }, { users: [], groups, exclude: [row.requester] });
      return next;
    }, { key: `request:${id}` });
    if (updated) this.arm(updated);
  }
}
