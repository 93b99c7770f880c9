// Who is asked to approve a request, by its policy's nudge plan (issue #24; the timed part is nudges.ts): the approval
// rules' groups, and the escalation group once the request waited long enough without a decision. Pure functions of
// the request row, used wherever the lifecycle decides who may see, approve or be told of a request.
import type { AccessRequest } from '../../shared/contract/http';
import type { PolicyConfig } from '../config';
import type { ApprovalRule } from './catalog';
import { iso, parseJson, type RequestRow } from './support';

export interface NudgePlan {
  /** Seconds after the request was made, ascending. */
  reminders: number[];
  escalation?: { group: string; afterSeconds: number };
}

/** The plan a request made now keeps (null when its policy has none). */
export function nudgePlanFor(policy: PolicyConfig): string | null {
  if (!policy.reminders.length && !policy.escalation) return null;
  const plan: NudgePlan = {
    reminders: [...new Set(policy.reminders)].sort((a, b) => a - b),
    ...(policy.escalation ? { escalation: { group: policy.escalation.group, afterSeconds: policy.escalation.after } } : {}),
  };
  return JSON.stringify(plan);
}

export type NudgeFacts = Pick<RequestRow, 'nudges' | 'escalated_at' | 'reminders_sent' | 'created_at' | 'approval_rules'>;

export function planOf(row: Pick<RequestRow, 'nudges'>): NudgePlan | undefined {
  return row.nudges ? parseJson<NudgePlan>(row.nudges) : undefined;
}

/** The groups asked to approve now: the rules' groups, and the escalation group once it is eligible. */
export function askedGroups(row: NudgeFacts): string[] {
  const groups = parseJson<ApprovalRule[]>(row.approval_rules).map((r) => r.group);
  const escalation = planOf(row)?.escalation;
  return escalation && row.escalated_at !== null && !groups.includes(escalation.group) ? [...groups, escalation.group] : groups;
}

/** The rule groups whose slots this user may fill: their own, or every one once escalated to a group of theirs. */
export function fillableGroups(userGroups: readonly string[], row: NudgeFacts): string[] {
  const groups = parseJson<ApprovalRule[]>(row.approval_rules).map((r) => r.group);
  const escalation = planOf(row)?.escalation;
  if (escalation && row.escalated_at !== null && userGroups.includes(escalation.group)) return groups;
  return groups.filter((g) => userGroups.includes(g));
}

/** What the requester (and the approvers) see of it: who is asked, reminders sent and due, the escalation. */
export function askedView(row: NudgeFacts): NonNullable<AccessRequest['asked']> {
  const plan = planOf(row);
  const next = plan?.reminders[Number(row.reminders_sent)];
  const escalation = plan?.escalation;
  return {
    groups: askedGroups(row),
    remindersSent: Number(row.reminders_sent),
    ...(next !== undefined ? { nextReminderAt: iso(Number(row.created_at) + next * 1000)! } : {}),
    ...(escalation ? { escalation: { group: escalation.group, at: iso(row.escalated_at ?? Number(row.created_at) + escalation.afterSeconds * 1000)!, reached: row.escalated_at !== null } } : {}),
  };
}

/** When the next nudge of a waiting request is due (epoch ms), if it has one left. */
export function nextNudgeAt(row: NudgeFacts): number | undefined {
  const plan = planOf(row);
  if (!plan) return undefined;
  const created = Number(row.created_at);
  const times: number[] = [];
  const reminder = plan.reminders[Number(row.reminders_sent)];
  if (reminder !== undefined) times.push(created + reminder * 1000);
  if (plan.escalation && row.escalated_at === null) times.push(created + plan.escalation.afterSeconds * 1000);
  return times.length ? Math.min(...times) : undefined;
}
