// The request and grant state machines, as data. The server is the source of truth and applies only the
// transitions listed here; the agent uses the same table to know which actions to offer. Anything not listed is
// an illegal transition (the server answers 409 and audits the attempt).
import type { GrantState, RequestState } from '../contract/http';

export const REQUEST_STATES = ['pending_stepup', 'pending_approval', 'approved', 'denied', 'expired', 'cancelled'] as const satisfies readonly RequestState[];
export const GRANT_STATES = ['active', 'ended', 'released', 'revoked', 'failed'] as const satisfies readonly GrantState[];

export type RequestEvent =
  /** Step-up passed; approvals still needed. */
  | 'stepup_passed'
  /** Approved without people: auto-approve (low risk) or break-glass. From pending_stepup once step-up passed. */
  | 'auto_approved'
  /** The last needed approval arrived (N-of-M for every rule). */
  | 'approved'
  | 'denied'
  | 'cancelled'
  /** Request TTL (pending) or activation window (approved) ran out. */
  | 'expired'
  /** The agent presented its key: a grant was created. The request stays approved and now points at the grant. */
  | 'activated';

export type GrantEvent =
  /** Deadline reached. */
  | 'ended'
  | 'released'
  | 'revoked'
  /** Credentials could not be issued at activation. */
  | 'failed'
  | 'extended';

export const REQUEST_EVENTS = ['stepup_passed', 'auto_approved', 'approved', 'denied', 'cancelled', 'expired', 'activated'] as const satisfies readonly RequestEvent[];
export const GRANT_EVENTS = ['ended', 'released', 'revoked', 'failed', 'extended'] as const satisfies readonly GrantEvent[];

const REQUEST_TABLE: Record<RequestState, Partial<Record<RequestEvent, RequestState>>> = {
  pending_stepup: { stepup_passed: 'pending_approval', auto_approved: 'approved', cancelled: 'cancelled', expired: 'expired' },
  pending_approval: { approved: 'approved', denied: 'denied', cancelled: 'cancelled', expired: 'expired' },
  // Cancel and expire apply to an approved request only while it has no grant (the service checks that guard).
  approved: { activated: 'approved', cancelled: 'cancelled', expired: 'expired' },
  denied: {},
  expired: {},
  cancelled: {},
};

const GRANT_TABLE: Record<GrantState, Partial<Record<GrantEvent, GrantState>>> = {
  active: { ended: 'ended', released: 'released', revoked: 'revoked', failed: 'failed', extended: 'active' },
  ended: {},
  released: {},
  revoked: {},
  failed: {},
};

export type Transition<S> = { ok: true; to: S } | { ok: false; code: 'illegal_transition'; message: string };

export function requestTransition(from: RequestState, event: RequestEvent): Transition<RequestState> {
  const to = REQUEST_TABLE[from][event];
  return to ? { ok: true, to } : { ok: false, code: 'illegal_transition', message: `a request that is ${from.replace('_', ' ')} cannot be ${describe(event)}` };
}

export function grantTransition(from: GrantState, event: GrantEvent): Transition<GrantState> {
  const to = GRANT_TABLE[from][event];
  return to ? { ok: true, to } : { ok: false, code: 'illegal_transition', message: `a grant that is ${from} cannot be ${describe(event)}` };
}

export function isTerminalRequest(state: RequestState): boolean {
  return Object.keys(REQUEST_TABLE[state]).length === 0;
}

export function isTerminalGrant(state: GrantState): boolean {
  return Object.keys(GRANT_TABLE[state]).length === 0;
}

function describe(event: RequestEvent | GrantEvent): string {
  switch (event) {
    case 'stepup_passed': return 'stepped up';
    case 'auto_approved': return 'auto-approved';
    case 'activated': return 'activated';
    case 'ended': return 'ended';
    default: return event;
  }
}
