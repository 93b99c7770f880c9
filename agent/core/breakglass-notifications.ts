// What an approver or admin is told when someone uses break-glass, and when its review is overdue (issue #24): said
// once, as the server's event arrives (not derived from state); "Open" leads to the reviews in Approvals.
import type { AgentNotification } from '../../shared/contract/agent';
import type { ServerEvent } from '../../shared/contract/events';

export type BreakGlassEvent = Extract<ServerEvent, { type: 'breakglass.used' | 'breakglass.review_due' }>;

export function breakGlassNotification(event: BreakGlassEvent, resourceName: (id: string) => string): AgentNotification {
  if (event.type === 'breakglass.used') {
    const r = event.request;
    return {
      id: `breakglass:${r.id}`,
      kind: 'breakglass',
      title: 'Break-glass used',
      body: `${r.requesterName ?? r.requester} took ${r.level} on ${resourceName(r.resourceId)} without approval${r.reason ? ` — ${r.reason}` : ''}. Review it in Approvals.`,
      actions: ['open'],
      requestId: r.id,
    };
  }
  const review = event.review;
  return {
    id: `breakglass_review:${review.id}`,
    kind: 'breakglass',
    title: 'Break-glass review overdue',
    body: `${review.requester}’s break-glass use on ${resourceName(review.resourceId)} still needs a review — ${review.reason}`,
    actions: ['open'],
    requestId: review.requestId,
  };
}
