import { describe, expect, it } from 'vitest';
import type { AgentNotification, AgentState, LocalGrant } from '../../shared/contract/agent';
import type { AccessRequest } from '../../shared/contract/http';
import {
  APPROVED_TOAST_MS, HOLD_GRACE_MS, OUTCOME_TOAST_MS, PLAIN_TOAST_MS, holdToasts, msUntilReview, reviewToasts,
  shouldNotifyDesktop, shouldOfferDesktop, toastOwner, toastRelevant, type ToastTiming,
} from './notifications';

const T0 = Date.parse('2030-01-01T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const alice = { sub: 'alice', groups: [], admin: false, approver: false };

function state(patch: Partial<AgentState> = {}): AgentState {
  return {
    version: 5, session: { status: 'signed_in', user: alice },
    server: { url: 'https://stint.example.com', status: 'online', clockOffsetMs: 0 },
    resources: [], requests: [], approvals: [], grants: [], ...patch,
  };
}

function request(id: string, patch: Partial<AccessRequest> = {}): AccessRequest {
  return {
    id, resourceId: 'prod-orders', requester: 'erin', level: 'read', durationSeconds: 3600, reason: '', breakGlass: false,
    state: 'pending_approval', policyVersion: 1, risk: { score: 10, reasons: [] }, approvals: [], approvalsNeeded: [],
    stepUpRequired: false, stepUpMethods: [], createdAt: iso(T0), expiresAt: iso(T0 + 3600_000), ...patch,
  };
}

function grant(id: string, endsInMs: number, patch: Partial<LocalGrant> = {}, grantPatch: Partial<LocalGrant['grant']> = {}): LocalGrant {
  return {
    grant: {
      id, requestId: `req-of-${id}`, owner: 'alice', resourceId: 'prod-orders', kind: 'postgres', level: 'read', state: 'active', startsAt: iso(T0),
      endsAt: iso(T0 + endsInMs), extendedSeconds: 0, revocation: 'none', breakGlass: false, ...grantPatch,
    },
    localEndsAt: iso(T0 + endsInMs), localState: 'active', phase: 'active', ...patch,
  };
}

function note(kind: AgentNotification['kind'], ids: { requestId?: string; grantId?: string } = {}): AgentNotification {
  return { id: `${kind}:${ids.requestId ?? ids.grantId ?? 'x'}`, kind, title: kind, body: '', actions: [], ...ids };
}

const shown = (notification?: AgentNotification, shownVersion = 5): ToastTiming => ({ notification, shownAt: T0, shownVersion });

describe('toastRelevant', () => {
  it('a plain toast goes after its time', () => {
    const t = shown();
    expect(toastRelevant(t, state(), T0 + PLAIN_TOAST_MS - 1)).toBe(true);
    expect(toastRelevant(t, state(), T0 + PLAIN_TOAST_MS)).toBe(false);
  });

  it('an approval asked stays while the request waits for me, and goes once it does not', () => {
    const t = shown(note('approval_asked', { requestId: 'r1' }));
    const waiting = state({ version: 6, approvals: [request('r1')] });
    expect(toastRelevant(t, waiting, T0 + 3600_000)).toBe(true); // no time limit while it waits
    expect(toastRelevant(t, state({ version: 7 }), T0 + 1)).toBe(false); // approved or denied by someone
    expect(toastRelevant(t, state({ version: 7, approvals: [request('r1', { state: 'approved' })] }), T0 + 1)).toBe(false);
  });

  it('an approval asked is kept until a snapshot newer than it arrives (the agent notifies just before the state)', () => {
    const t = shown(note('approval_asked', { requestId: 'r1' }), 5);
    expect(toastRelevant(t, state({ version: 5 }), T0 + 1)).toBe(true);
    expect(toastRelevant(t, state({ version: 6 }), T0 + 1)).toBe(false);
  });

  it('approved goes when its grant has ended, or after a while', () => {
    const t = shown(note('approved', { requestId: 'req-of-g1', grantId: 'g1' }));
    const live = state({ grants: [grant('g1', 3600_000)] });
    expect(toastRelevant(t, live, T0 + 1000)).toBe(true);
    expect(toastRelevant(t, live, T0 + APPROVED_TOAST_MS)).toBe(false);
    expect(toastRelevant(t, state({ grants: [grant('g1', 3600_000, { localState: 'ended', phase: 'ended' })] }), T0 + 1000)).toBe(false);
    expect(toastRelevant(t, state({ grants: [grant('g1', 3600_000, { phase: 'ended' }, { state: 'released' })] }), T0 + 1000)).toBe(false);
    // Past its end by this clock, the grant lasts until the agent publishes that it ended: the agent decides.
    expect(toastRelevant(t, state({ grants: [grant('g1', 10_000)] }), T0 + 10_000)).toBe(true);
    // Matched by request when the notification came without the grant id.
    const byRequest = shown(note('approved', { requestId: 'req-of-g1' }));
    expect(toastRelevant(byRequest, state({ grants: [grant('g1', 3600_000, { localState: 'ended', phase: 'ended' })] }), T0 + 1000)).toBe(false);
    // The grant not in the state yet (still being set up): only the time limit ends it.
    expect(toastRelevant(t, state({ version: 9 }), T0 + 1000)).toBe(true);
  });

  it('expiring stays while the agent says the grant is ending soon, and goes once it ended or was extended', () => {
    const t = shown(note('expiring', { grantId: 'g1' }));
    const warned = (endsInMs: number, patch: Partial<LocalGrant> = {}) => state({ version: 6, grants: [grant('g1', endsInMs, { warnedMinutes: 5, phase: 'ending_soon', ...patch })] });
    expect(toastRelevant(t, warned(5 * 60_000), T0 + 1000)).toBe(true);
    expect(toastRelevant(t, warned(5 * 60_000), T0 + 4 * 60_000)).toBe(true); // no time limit while it is true
    expect(toastRelevant(t, warned(5 * 60_000), T0 + 5 * 60_000)).toBe(true); // at 0:00 until the agent says it ended
    expect(toastRelevant(t, warned(5 * 60_000, { localState: 'ended', phase: 'ended' }), T0 + 1000)).toBe(false);
    expect(toastRelevant(t, warned(65 * 60_000, { warnedMinutes: undefined, phase: 'active' }), T0 + 1000)).toBe(false); // extended by 1h
    expect(toastRelevant(t, state({ version: 6 }), T0 + 1000)).toBe(false); // the grant is gone
    expect(toastRelevant(t, state({ version: 5 }), T0 + 1000)).toBe(true); // …or not in the state yet
    // A snapshot no newer than the warning may not say "ending soon" yet: kept.
    expect(toastRelevant(t, state({ grants: [grant('g1', 3600_000)] }), T0 + 1000)).toBe(true);
  });

  it('ended, revoked and denied go after a while', () => {
    for (const kind of ['ended', 'revoked', 'denied'] as const) {
      const t = shown(note(kind, { grantId: 'g1', requestId: 'r1' }));
      expect(toastRelevant(t, state(), T0 + OUTCOME_TOAST_MS - 1)).toBe(true);
      expect(toastRelevant(t, state(), T0 + OUTCOME_TOAST_MS)).toBe(false);
    }
  });
});

describe('reviewing the toasts', () => {
  it('keeps the same array when nothing goes', () => {
    const list = [shown(), shown(note('denied', { requestId: 'r1' }))];
    expect(reviewToasts(list, state(), T0 + 1)).toBe(list);
    expect(reviewToasts(list, state(), T0 + PLAIN_TOAST_MS)).toEqual([list[1]]);
  });

  it('says when to look again: the next time limit (a grant ending or extended comes as a new state)', () => {
    expect(msUntilReview([], T0)).toBeUndefined();
    expect(msUntilReview([shown(note('approval_asked', { requestId: 'r1' }))], T0)).toBeUndefined();
    expect(msUntilReview([shown(), shown(note('denied', { requestId: 'r1' }))], T0 + 1000)).toBe(PLAIN_TOAST_MS - 1000);
    expect(msUntilReview([shown(note('expiring', { grantId: 'g1' }))], T0 + 1000)).toBeUndefined();
  });

  it('gives time-limited toasts a little more while the user points at or is in them', () => {
    const list = [shown(), shown(note('approval_asked', { requestId: 'r1' }))];
    expect(holdToasts(list, T0 + 1000)).toBe(list); // plenty of time left
    const held = holdToasts(list, T0 + PLAIN_TOAST_MS + 60_000);
    expect(held[0]!.shownAt).toBe(T0 + 60_000 + HOLD_GRACE_MS);
    expect(held[1]).toBe(list[1]);
    expect(toastRelevant(held[0]!, state(), T0 + PLAIN_TOAST_MS + 60_000 + HOLD_GRACE_MS - 1)).toBe(true);
  });

  it('belongs to the signed-in user', () => {
    expect(toastOwner(state())).toBe('alice');
    expect(toastOwner(state({ session: { status: 'signed_out' } }))).toBeUndefined();
    expect(toastOwner(undefined)).toBeUndefined();
  });
});

describe('desktop notifications (web host)', () => {
  it('are offered once there is a reason, in a browser not asked before and not told "Not now"', () => {
    expect(shouldOfferDesktop({ electron: false, permission: 'default', declined: false })).toBe(true);
    expect(shouldOfferDesktop({ electron: false, permission: 'default', declined: true })).toBe(false);
    expect(shouldOfferDesktop({ electron: false, permission: 'granted', declined: false })).toBe(false);
    expect(shouldOfferDesktop({ electron: false, permission: 'denied', declined: false })).toBe(false);
    expect(shouldOfferDesktop({ electron: false, permission: 'unsupported', declined: false })).toBe(false);
    expect(shouldOfferDesktop({ electron: true, permission: 'default', declined: false })).toBe(false);
  });

  it('are shown only when allowed and the page is hidden, never inside the Electron app', () => {
    expect(shouldNotifyDesktop({ electron: false, permission: 'granted', visibility: 'hidden' })).toBe(true);
    expect(shouldNotifyDesktop({ electron: false, permission: 'granted', visibility: 'visible' })).toBe(false);
    expect(shouldNotifyDesktop({ electron: false, permission: 'default', visibility: 'hidden' })).toBe(false);
    expect(shouldNotifyDesktop({ electron: true, permission: 'granted', visibility: 'hidden' })).toBe(false);
  });
});
