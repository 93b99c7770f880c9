// Which audit rows become webhook events, and what such an event says. An event is made from the audit row it tells
// (the same facts, the same transaction): the outbox (outbox.ts) stores it, delivery.ts sends it, slack.ts reformats it.
import type { AuditInput } from '../lifecycle/audit';

/** The Standard Webhooks payload: `type`, `timestamp` (ISO 8601) and `data`. */
export interface WebhookEvent {
  type: string;
  timestamp: string;
  data: {
    /** The audit action this event tells (`grant.released` for a `grant.ended` event, …). */
    action: string;
    actor: string;
    subject?: string;
    requestId?: string;
    grantId?: string;
    resourceId?: string;
    resourceName?: string;
    reason?: string;
    policyVersion?: number;
    risk?: number;
    detail?: Record<string, unknown>;
    /** For a request that waits for approvers: the server's approval page for it. */
    approveUrl?: string;
  };
}

/** Audit action → webhook event type. `stepup.failed` is told only past a threshold (see outbox.ts). */
const TYPES: Record<string, string> = {
  'request.created': 'request.created',
  // After the requester's step-up: the request now waits for approvers (one created waiting says so itself).
  'request.stepup_passed': 'request.awaiting_approval',
  'request.approved': 'request.approved',
  'request.denied': 'request.denied',
  'request.expired': 'request.expired',
  'request.cancelled': 'request.cancelled',
  // The policy's reminders and escalation: the approvers (or the escalation group) are asked again, with the link.
  'request.reminded': 'request.reminded',
  'request.escalated': 'request.escalated',
  'grant.activated': 'grant.active',
  'grant.extended': 'grant.extended',
  'grant.ended': 'grant.ended',
  'grant.released': 'grant.ended',
  'grant.failed': 'grant.ended',
  'grant.revoked': 'grant.revoked',
  'breakglass.used': 'breakglass.used',
  'breakglass.reviewed': 'breakglass.reviewed',
  'breakglass.review_overdue': 'breakglass.review_overdue',
  'stepup.credential.added': 'factor.changed',
  'stepup.credential.removed': 'factor.changed',
  'stepup.totp.confirmed': 'factor.changed',
  'stepup.totp.removed': 'factor.changed',
  'stepup.factors.reset': 'factor.changed',
};

export const STEPUP_FAILURES = 'stepup.failures';

/** Every event type an endpoint may ask for. */
export const WEBHOOK_EVENT_TYPES = [...new Set([...Object.values(TYPES), STEPUP_FAILURES])].sort();

export function webhookTypeOf(action: string): string | undefined {
  return TYPES[action];
}

/** Does an endpoint's filter (`*`, `request.*`, `breakglass.used`) take this event type? */
export function filterTakes(filter: readonly string[], type: string): boolean {
  return filter.some((f) => f === '*' || f === type || (f.endsWith('.*') && type.startsWith(f.slice(0, -1))));
}


/** The event an audit row tells, as type `type`. */
export function eventOf(type: string, audit: AuditInput, context: { serverUrl: string; resourceName?: string; detail?: Record<string, unknown> }): WebhookEvent {
  const detail = context.detail ?? audit.detail;
  // The approval page is linked once approvers can act: not while the requester still has to verify (pending_stepup).
  const waits = type === 'request.awaiting_approval' || type === 'request.reminded' || type === 'request.escalated' || (audit.action === 'request.created' && detail?.state === 'pending_approval');
  return {
    type,
    timestamp: new Date(audit.at).toISOString(),
    data: {
      action: audit.action,
      actor: audit.actor,
      ...(audit.subject ? { subject: audit.subject } : {}),
      ...(audit.requestId ? { requestId: audit.requestId } : {}),
      ...(audit.grantId ? { grantId: audit.grantId } : {}),
      ...(audit.resourceId ? { resourceId: audit.resourceId } : {}),
      ...(context.resourceName ? { resourceName: context.resourceName } : {}),
      ...(audit.reason ? { reason: audit.reason } : {}),
      ...(audit.policyVersion !== undefined ? { policyVersion: audit.policyVersion } : {}),
      ...(audit.risk !== undefined ? { risk: audit.risk } : {}),
      ...(detail ? { detail } : {}),
      ...(waits && audit.requestId ? { approveUrl: approveUrl(context.serverUrl, audit.requestId) } : {}),
    },
  };
}

/** The approval page the server serves for a request (`/approve/<requestId>`). */
export function approveUrl(serverUrl: string, requestId: string): string {
  return new URL(`approve/${encodeURIComponent(requestId)}`, serverUrl.endsWith('/') ? serverUrl : `${serverUrl}/`).toString();
}
