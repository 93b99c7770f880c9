// What a resource's policy means for the person asking, in the words every surface shows: the tray's menu, the
// app's resource list and `stint resources` say "instant", "needs approval" and "step-up" for the same policy.
import type { PolicySummary } from '../contract/http';

/** Needs people to approve (unless the server finds the request low-risk and approves it at once). */
export function needsApproval(policy: PolicySummary): boolean {
  return !policy.autoApprove && policy.approvals.length > 0;
}

export function needsStepUp(policy: PolicySummary): boolean {
  return policy.stepUp.request === 'always';
}

/** Short hints shown beside a resource: `instant`, `needs approval`, `step-up`. */
export function resourceHints(policy: PolicySummary): string[] {
  const hints = [needsApproval(policy) ? 'needs approval' : 'instant'];
  if (needsStepUp(policy)) hints.push('step-up');
  return hints;
}

/** `dba`, `dba and sre-leads`, `2 of dba`. */
export function approverText(rules: { group: string; count: number }[]): string {
  const parts = rules.map((r) => (r.count > 1 ? `${r.count} of ${r.group}` : r.group));
  if (parts.length <= 1) return parts[0] ?? '';
  return `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
}
