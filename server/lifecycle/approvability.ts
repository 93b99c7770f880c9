// Approvability: can every request on a resource be decided? A request its policy does not auto-approve waits for
// the policy's approval rules; with none, it waits for nobody until its TTL passes. The config load refuses such a
// policy on a resource (server/config.ts) and request creation refuses such a request (service.ts), both through
// `unapprovable` below. Pure: the config only, no storage, no IdP.
//
// What the config can decide, and what it cannot:
// - Risk scores run 0–RISK_MAX (assessRisk caps them) and `riskBelow` auto-approves scores strictly below it, so only
//   riskBelow RISK_MAX + 1 (or no riskBelow) covers every score. The ceiling is not narrowed by the resource's
//   sensitivity (a low one cannot reach 100 with today's weights): weights are tuning, and a config must not turn
//   unapprovable when they change.
// - `environments`, `groups` and `hours` narrow auto-approval further: the resource's environment outside
//   `environments`, a requester group outside `groups`, or any minute of the day outside `hours` leaves requests
//   uncovered. Membership lives in the IdP: someone in two requester groups may be covered through the other one,
//   but the config cannot promise that, so every requester group must be covered.
// - Break-glass is not a route for normal requests: it takes its own groups, is an emergency path flagged for review,
//   and a request made without it still waits.
// - Any approval rule is a route. Its count is not checked: who is in `from` is known only to the IdP (the requester
//   never counts, distinct people fill the slots), so any positive count can be met as far as the config can tell,
//   and the schema already refuses counts below 1.
// - Levels do not matter: approval rules, auto-approval and risk belong to the policy and the resource, never a level.
// - Step-up to approve needs a step-up gate, which the config alone does not tell (it is wired at start-up); approving
//   without one is refused with its own clear problem, so it is left out here.
import type { PolicyConfig, ResourceConfig } from '../config';
import { inHours } from './catalog';

/** The highest risk score assessRisk gives (it caps the sum of its signals here). */
export const RISK_MAX = 100;

/** What it takes to approve a request when no rule applies; the start of every fix. */
export const ADD_APPROVALS = 'add an approvals rule (approvals: [{ from: <approver group>, count: 1 }])';

export interface Unapprovable {
  /** Which requests nobody can approve, e.g. `requests with risk 30–100`, `requests from contractors`; empty: all. */
  uncovered: string[];
  /** What to change, starting with adding an approvals rule: `add an approvals rule (…) or raise …`. */
  fix: string;
  /** The whole problem, naming the resource and the policy, for the config load. */
  message: string;
}

const wholeDays = new Map<string, boolean>();

/** Does the window ("09:00-18:00", UTC, may wrap midnight) hold at every minute of the day? Asks inHours itself. */
function wholeDay(window: string): boolean {
  let whole = wholeDays.get(window);
  if (whole === undefined) {
    whole = true;
    for (let minute = 0; minute < 24 * 60 && whole; minute++) whole = inHours(window, minute * 60_000);
    wholeDays.set(window, whole);
  }
  return whole;
}

/**
 * Why some request on `resource` under `policy` could be left pending with nobody able to approve it, or undefined
 * when every request is either auto-approved or has an approval rule to wait for.
 */
export function unapprovable(resource: Pick<ResourceConfig, 'id' | 'environment'>, policyId: string, policy: Pick<PolicyConfig, 'approvals' | 'autoApprove' | 'requesters'>): Unapprovable | undefined {
  // A policy for services only has no human request to leave waiting (servicesUnapprovable checks the services').
  if (policy.approvals.length > 0 || policy.requesters.length === 0) return undefined;
  const when = policy.autoApprove?.when;
  const uncovered: string[] = [];
  const fixes: string[] = [];
  if (!when) {
    fixes.push('add autoApprove');
  } else {
    if (when.environments && !when.environments.includes(resource.environment)) {
      uncovered.push(`requests in environment ${resource.environment}`);
      fixes.push(`add ${resource.environment} to autoApprove.when.environments`);
    }
    const outside = when.groups ? policy.requesters.filter((g) => !when.groups!.includes(g)) : [];
    if (outside.length) {
      uncovered.push(`requests from ${outside.join(', ')}`);
      fixes.push(`add ${outside.join(', ')} to autoApprove.when.groups`);
    }
    if (when.hours && !wholeDay(when.hours)) {
      uncovered.push(`requests outside ${when.hours} UTC`);
      fixes.push('remove autoApprove.when.hours');
    }
    if (when.riskBelow !== undefined && when.riskBelow <= RISK_MAX) {
      uncovered.push(`requests with risk ${when.riskBelow < RISK_MAX ? `${when.riskBelow}–${RISK_MAX}` : RISK_MAX}`);
      fixes.push(`raise autoApprove.when.riskBelow to ${RISK_MAX + 1} (risk scores run 0–${RISK_MAX})`);
    }
    if (uncovered.length === 0) return undefined;
  }
  const fix = `${ADD_APPROVALS}, or ${fixes.join(' and ')}`;
  const gap = when ? `does not auto-approve ${uncovered.join(' or ')}, so those` : 'no autoApprove, so all its';
  return { uncovered, fix, message: `resource ${resource.id}: policy ${policyId} has no approvals rule and ${gap} requests would wait with nobody able to approve them; ${fix}` };
}

/**
 * Why a service's request under `policy` could wait with nobody able to approve it: services are auto-approved only
 * inside their change window, so outside it (or always, without one) they wait for the approval rules — unless the
 * policy refuses them there (`outsideWindow: refuse`).
 */
export function servicesUnapprovable(policy: Pick<PolicyConfig, 'approvals' | 'services'>): string | undefined {
  const services = policy.services;
  if (!services || policy.approvals.length > 0) return undefined;
  const window = services.autoApprove?.window;
  if (window && (wholeDay(window) || services.outsideWindow === 'refuse')) return undefined;
  const when = window ? `outside their change window ${window} UTC` : 'always (no services.autoApprove.window)';
  return `services' requests wait for approval ${when}, but the policy has no approvals rule; ${ADD_APPROVALS}, or set services.outsideWindow: refuse`;
}
