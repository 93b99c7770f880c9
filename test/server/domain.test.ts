// The lifecycle rules as properties a user relies on, checked over every (state, event) pair of the tables in
// shared/domain — the tables themselves are not copied here, so changing one is judged by what it breaks.
import { describe, expect, it } from 'vitest';
import {
  GRANT_EVENTS, GRANT_STATES, REQUEST_EVENTS, REQUEST_STATES, grantTransition, isTerminalGrant, isTerminalRequest, requestTransition,
  type GrantEvent, type RequestEvent,
} from '../../shared/domain/lifecycle';
import { formatDuration, parseDuration } from '../../shared/domain/duration';
import type { GrantState, RequestState } from '../../shared/contract/http';

const next = (state: RequestState, event: RequestEvent) => { const r = requestTransition(state, event); return r.ok ? r.to : undefined; };
const nextGrant = (state: GrantState, event: GrantEvent) => { const r = grantTransition(state, event); return r.ok ? r.to : undefined; };

describe('request transitions', () => {
  it('a decided request stays decided: denied, expired and cancelled accept no event', () => {
    expect(REQUEST_STATES.filter(isTerminalRequest)).toEqual(['denied', 'expired', 'cancelled']);
    for (const state of REQUEST_STATES.filter(isTerminalRequest)) for (const event of REQUEST_EVENTS) expect(next(state, event), `${state} + ${event}`).toBeUndefined();
  });

  it('no request waits forever: every open request can expire, and its requester can cancel it', () => {
    for (const state of REQUEST_STATES.filter((s) => !isTerminalRequest(s))) {
      expect(next(state, 'expired'), state).toBe('expired');
      expect(next(state, 'cancelled'), state).toBe('cancelled');
    }
  });

  it('access needs an approval: only approving (or policy auto-approval) leads to approved, and only from a waiting request', () => {
    for (const state of REQUEST_STATES) for (const event of REQUEST_EVENTS) {
      if (next(state, event) !== 'approved' || state === 'approved') continue;
      expect(['approved', 'auto_approved'], `${state} + ${event}`).toContain(event);
    }
    expect(next('pending_stepup', 'approved')).toBeUndefined(); // an approver cannot skip the requester's step-up
    expect(next('pending_approval', 'stepup_passed')).toBeUndefined();
  });

  it('activating keeps the request approved (one grant per request, checked by the service) and a decided request cannot be activated', () => {
    expect(next('approved', 'activated')).toBe('approved');
    for (const state of REQUEST_STATES.filter((s) => s !== 'approved')) expect(next(state, 'activated'), state).toBeUndefined();
  });

  it('a refusal says in words what the request is and what was tried', () => {
    const result = requestTransition('pending_approval', 'stepup_passed');
    expect(result).toMatchObject({ ok: false, code: 'illegal_transition' });
    if (!result.ok) expect(result.message).toBe('a request that is pending approval cannot be stepped up');
  });
});

describe('grant transitions', () => {
  it('an active grant can always be ended: by its deadline, its owner, an admin, or a failure', () => {
    expect(GRANT_STATES.filter((s) => !isTerminalGrant(s))).toEqual(['active']);
    for (const event of ['ended', 'released', 'revoked', 'failed'] as const) expect(nextGrant('active', event)).toBe(event);
  });

  it('an ended grant never comes back: no event leads out of ended, released, revoked or failed', () => {
    for (const state of GRANT_STATES.filter(isTerminalGrant)) for (const event of GRANT_EVENTS) {
      expect(grantTransition(state, event), `${state} + ${event}`).toMatchObject({ ok: false, code: 'illegal_transition' });
    }
  });

  it('extending keeps the grant active', () => {
    expect(nextGrant('active', 'extended')).toBe('active');
  });
});

describe('durations', () => {
  it.each([
    ['90s', 90], ['15m', 900], ['1h', 3600], ['1h30m', 5400], ['2d', 172800], ['3600', 3600], [45, 45],
  ] as const)('%s is %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toEqual({ ok: true, seconds });
  });
  it.each(['', 'soon', '1x', '0s', '-5m', 'h1', '1h junk', 0, 1.5])('%s is refused with a hint', (text) => {
    const result = parseDuration(text as string);
    expect(result.ok).toBe(false);
  });
  it('formats compactly', () => {
    expect([0, 59, 61, 900, 3600, 3725, 5400, 90000, 86400 + 1800, 2 * 86400].map(formatDuration))
      .toEqual(['0s', '59s', '1m 1s', '15m', '1h', '1h 2m', '1h 30m', '1d 1h', '1d 30m', '2d']);
  });
});
