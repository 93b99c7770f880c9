// What a resource's policy means for the person asking, in the words the UI shows. Pure, so the request form,
// the resource list and the tests read policies the same way.
import type { LocalGrant } from '../../shared/contract/agent';
import type { AccessRequest, PolicySummary, Resource } from '../../shared/contract/http';
import { approverText, needsApproval, needsStepUp } from '../../shared/domain/policy-words';
import { formatDuration } from './format';

// The words shared with the tray and the CLI live in shared/domain; the views take them from here with the rest.
export { approverText, needsApproval, needsStepUp, resourceHints } from '../../shared/domain/policy-words';

export const PRESET_SECONDS = [15 * 60, 3600, 4 * 3600] as const;

/** The single primary button of the request form says what will happen. */
export function primaryActionLabel(policy: PolicySummary, breakGlass = false): string {
  if (breakGlass) return needsStepUp(policy) ? 'Verify and break glass' : 'Break glass and connect';
  if (needsApproval(policy)) return `${needsStepUp(policy) ? 'Verify and ask' : 'Ask'} ${approverText(policy.approvals)}`;
  return needsStepUp(policy) ? 'Verify and connect' : 'Connect now';
}

export interface DurationChoice { seconds: number; label: string }

/**
 * Duration presets within policy: 15m / 1h / 4h clipped to the maximum, plus the policy default (and the maximum
 * when every preset is above it), ascending. `initial` is the user's default duration when policy allows it, else
 * the policy default.
 */
export function durationChoices(policy: PolicySummary, preferredSeconds?: number): { choices: DurationChoice[]; initial: number } {
  const max = policy.durationMaxSeconds;
  const set = new Set<number>(PRESET_SECONDS.filter((s) => s <= max));
  const policyDefault = Math.min(policy.durationDefaultSeconds, max);
  set.add(policyDefault);
  const initial = preferredSeconds && preferredSeconds <= max ? preferredSeconds : policyDefault;
  set.add(initial);
  const choices = [...set].sort((a, b) => a - b).map((seconds) => ({ seconds, label: formatDuration(seconds) }));
  return { choices, initial };
}

/** Extension presets: what is left of the policy's total allowance for this grant. */
export function extendChoices(policy: PolicySummary | undefined, grantSeconds: number): DurationChoice[] {
  const allowance = (policy?.extend.maxTotalSeconds ?? 4 * 3600) - grantSeconds;
  if (allowance <= 0) return [];
  const presets: number[] = PRESET_SECONDS.filter((s) => s <= allowance);
  if (presets.length === 0) presets.push(allowance);
  return presets.map((seconds) => ({ seconds, label: formatDuration(seconds) }));
}

/** Checks the ticket against the policy's pattern; an invalid pattern from the server never blocks the user. */
export function ticketProblem(policy: PolicySummary, ticket: string): string | undefined {
  const value = ticket.trim();
  if (!value) return policy.ticketRequired ? 'Enter the ticket this work is for.' : undefined;
  if (!policy.ticketPattern) return undefined;
  let re: RegExp;
  try {
    re = new RegExp(policy.ticketPattern);
  } catch {
    return undefined;
  }
  return re.test(value) ? undefined : `That doesn’t look like a ticket here (expected a match for ${policy.ticketPattern}).`;
}

/** "1 of 2 approvals", for a pending request. */
export function approvalProgress(request: AccessRequest): string {
  const needed = request.approvalsNeeded.reduce((n, r) => n + r.count, 0);
  const have = request.approvalsNeeded.reduce((n, r) => n + Math.min(r.have, r.count), 0);
  if (needed === 0) return '';
  return `${have} of ${needed} approval${needed === 1 ? '' : 's'}`;
}

export function resourceLabel(resources: Resource[], resourceId: string, fallback?: string): string {
  return resources.find((r) => r.id === resourceId)?.name ?? fallback ?? resourceId;
}

/** What a step-up to take back a grant left from before confirms, in the Active view and from the tray alike. */
export function resumeSummary(local: Pick<LocalGrant, 'grant' | 'resourceName'>): string {
  return `Resume your ${local.grant.level} access to ${local.resourceName ?? local.grant.resourceId} with new keys`;
}

/** Access is live until the agent publishes that it ended (the agent decides; the UI only shows it). */
export function isLive(local: Pick<LocalGrant, 'phase'>): boolean {
  return local.phase !== 'ended';
}
