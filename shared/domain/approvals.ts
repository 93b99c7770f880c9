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
