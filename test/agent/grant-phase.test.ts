// The one place a grant's phase is decided (agent/core/grant-phase.ts): every host shows what the core publishes.
import { describe, expect, it } from 'vitest';
import { grantPhase } from '../../agent/core/grant-phase';
import { GrantState } from '../../shared/contract/http';

describe('grantPhase', () => {
  it('active while both this computer and the server say so, and no warning stands', () => {
    expect(grantPhase({ localState: 'active', grantState: 'active' })).toBe('active');
  });

  it('ending soon once an expiry warning was given (5 or 1 minutes left)', () => {
    expect(grantPhase({ localState: 'active', grantState: 'active', warnedMinutes: 5 })).toBe('ending_soon');
    expect(grantPhase({ localState: 'active', grantState: 'active', warnedMinutes: 1 })).toBe('ending_soon');
  });

  it('ended once local access ended, whatever the server still says (offline, or before it is told)', () => {
    expect(grantPhase({ localState: 'ended', grantState: 'active' })).toBe('ended');
    expect(grantPhase({ localState: 'ended', grantState: 'active', warnedMinutes: 1 })).toBe('ended');
  });

  it('ended once the server ended the grant in any way, whatever the local state', () => {
    for (const grantState of GrantState.options.filter((s) => s !== 'active')) {
      expect(grantPhase({ localState: 'active', grantState })).toBe('ended');
      expect(grantPhase({ localState: 'ended', grantState, warnedMinutes: 5 })).toBe('ended');
    }
  });
});
