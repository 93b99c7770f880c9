// What approvers and admins are told of a break-glass use and of its overdue review (#24): a notification that names
// who took what, where and why, opens the reviews, and — as a toast — stays until dismissed.
import { describe, expect, it } from 'vitest';
import { AgentNotification } from '../../shared/contract/agent';
import { breakGlassNotification } from '../../agent/core/breakglass-notifications';
import { toastLifetime, toastRelevant } from '../../renderer/src/notifications';
import { iso, request, state, T0 } from './builders';

const names = (id: string) => ({ 'prod-orders': 'Orders (production)' })[id] ?? id;

describe('break-glass notifications', () => {
  it('a use names who took what on which resource, and why; Open leads to the review', () => {
    const used = request('req_bg1', { requester: 'dave', requesterName: 'Dave Ops', breakGlass: true, state: 'approved', reason: 'orders outage, INC-9' });
    const n = AgentNotification.parse(breakGlassNotification({ type: 'breakglass.used', request: used }, names));
    expect(n).toEqual({
      id: 'breakglass:req_bg1', kind: 'breakglass', title: 'Break-glass used',
      body: 'Dave Ops took write on Orders (production) without approval — orders outage, INC-9. Review it in Approvals.',
      actions: ['open'], requestId: 'req_bg1',
    });
  });

  it('an overdue review is told with its own id, so a later reminder replaces the earlier one', () => {
    const review = { id: 'rev_1', requestId: 'req_bg1', resourceId: 'prod-orders', requester: 'dave', reason: 'orders outage', groups: ['dba'], createdAt: iso(T0), dueAt: iso(T0 + 1000), overdue: true };
    const n = breakGlassNotification({ type: 'breakglass.review_due', review }, names);
    expect(n).toMatchObject({ id: 'breakglass_review:rev_1', kind: 'breakglass', title: 'Break-glass review overdue', requestId: 'req_bg1', actions: ['open'] });
    expect(n.body).toBe('dave’s break-glass use on Orders (production) still needs a review — orders outage');
  });

  it('as a toast it does not time out: it stays until dismissed', () => {
    const n = breakGlassNotification({ type: 'breakglass.used', request: request('req_bg2', { breakGlass: true, state: 'approved' }) }, names);
    expect(toastLifetime(n)).toBeUndefined();
    expect(toastRelevant({ notification: n, shownAt: T0, shownVersion: 1 }, state({ version: 9 }), T0 + 24 * 3600_000)).toBe(true);
  });
});
