// The lifecycle tables, exhaustively: every (state, event) pair is listed here with its expected outcome, so a
// change to the table in shared/domain must be a deliberate change to this test too.
import { describe, expect, it } from 'vitest';
import {
  GRANT_EVENTS, GRANT_STATES, REQUEST_EVENTS, REQUEST_STATES, grantTransition, isTerminalGrant, isTerminalRequest, requestTransition,
  type GrantEvent, type RequestEvent,
} from '../../shared/domain/lifecycle';
import { formatDuration, parseDuration } from '../../shared/domain/duration';
import type { GrantState, RequestState } from '../../shared/contract/http';

const REQUEST_EXPECTED: Record<RequestState, Partial<Record<RequestEvent, RequestState>>> = {
  pending_stepup: { stepup_passed: 'pending_approval', auto_approved: 'approved', cancelled: 'cancelled', expired: 'expired' },
  pending_approval: { approved: 'approved', denied: 'denied', cancelled: 'cancelled', expired: 'expired' },
  approved: { activated: 'approved', cancelled: 'cancelled', expired: 'expired' },
  denied: {},
  expired: {},
  cancelled: {},
};

const GRANT_EXPECTED: Record<GrantState, Partial<Record<GrantEvent, GrantState>>> = {
  active: { ended: 'ended', released: 'released', revoked: 'revoked', failed: 'failed', extended: 'active' },
  ended: {},
  released: {},
  revoked: {},
  failed: {},
};

describe('request transitions', () => {
  for (const state of REQUEST_STATES) {
    for (const event of REQUEST_EVENTS) {
      const expected = REQUEST_EXPECTED[state][event];
      it(`${state} + ${event} → ${expected ?? 'refused'}`, () => {
        const result = requestTransition(state, event);
        if (expected) expect(result).toEqual({ ok: true, to: expected });
        else {
          expect(result.ok).toBe(false);
          if (!result.ok) {
            expect(result.code).toBe('illegal_transition');
            expect(result.message).toContain(state.replace('_', ' '));
          }
        }
      });
    }
  }
  it('terminal states are exactly denied, expired and cancelled', () => {
    expect(REQUEST_STATES.filter(isTerminalRequest)).toEqual(['denied', 'expired', 'cancelled']);
  });
});

describe('grant transitions', () => {
  for (const state of GRANT_STATES) {
    for (const event of GRANT_EVENTS) {
      const expected = GRANT_EXPECTED[state][event];
      it(`${state} + ${event} → ${expected ?? 'refused'}`, () => {
        const result = grantTransition(state, event);
        if (expected) expect(result).toEqual({ ok: true, to: expected });
        else expect(result).toMatchObject({ ok: false, code: 'illegal_transition' });
      });
    }
  }
  it('every state but active is terminal', () => {
    expect(GRANT_STATES.filter((s) => !isTerminalGrant(s))).toEqual(['active']);
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
