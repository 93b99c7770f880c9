// Whether a pending request still waits for this person: not their own, not already approved by them, and one of
// their groups still has an open slot. The server decides approvals; this only keeps an approver's inbox honest
// (a request whose slot someone else filled leaves the inbox).
import type { AccessRequest } from '../contract/http';

export function waitsForApprover(request: AccessRequest, approver: { sub?: string; groups?: string[] }): boolean {
  if (request.state !== 'pending_approval') return false;
  if (approver.sub && (request.requester === approver.sub || request.approvals.some((a) => a.approver === approver.sub))) return false;
  if (!approver.groups || request.approvalsNeeded.length === 0) return true;
  // Escalated (policy `escalation`): its group may fill any open slot.
  const escalated = request.asked?.escalation?.reached === true && approver.groups.includes(request.asked.escalation.group);
  return request.approvalsNeeded.some((slot) => slot.have < slot.count && (escalated || approver.groups!.includes(slot.group)));
}

/**
 * Whether approving needs a step-up, in words every host shows before the approver clicks (the server's own answer,
 * `approvalStepUp`); undefined when the server did not say (an older server).
 */
export function approvalStepUpWords(request: AccessRequest): string | undefined {
  const need = request.approvalStepUp;
  if (!need) return undefined;
  if (!need.required) return 'Approving needs no step-up';
  const ways = need.methods.map((m) => (m === 'webauthn' ? 'a passkey' : 'a one-time code'));
  return `Approving needs ${ways.length ? ways.join(' or ') : 'a step-up'}`;
}
