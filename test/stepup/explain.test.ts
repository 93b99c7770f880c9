// The plain words for each failure the step-up view can meet (browser errors and server problems).
import { describe, expect, it } from 'vitest';
import { explainNoWebAuthn, explainProblem, explainWebAuthnError } from '../../renderer/src/stepup/explain';

const notAllowed = Object.assign(new Error('The operation either timed out or was not allowed.'), { name: 'NotAllowedError' });

describe('explaining browser WebAuthn errors', () => {
  it('tells a timeout from a cancel by how long the prompt was open', () => {
    expect(explainWebAuthnError(notAllowed, { elapsedMs: 119_500, timeoutMs: 120_000, ceremony: 'get', codeAllowed: true })).toMatchObject({ kind: 'timed_out', next: 'new_challenge' });
    const quick = explainWebAuthnError(notAllowed, { elapsedMs: 2_000, timeoutMs: 120_000, ceremony: 'get', codeAllowed: true });
    expect(quick).toMatchObject({ kind: 'cancelled', next: 'use_code' });
    expect(quick.message).toContain('use a code');
    const noCode = explainWebAuthnError(notAllowed, { elapsedMs: 2_000, timeoutMs: 120_000, ceremony: 'get', codeAllowed: false });
    expect(noCode.message).toContain('add one under');
  });

  it('names a page on the wrong site and an already registered authenticator', () => {
    expect(explainWebAuthnError({ name: 'WebAuthnError', code: 'ERROR_INVALID_DOMAIN' }, { elapsedMs: 1, timeoutMs: 1000, ceremony: 'get', codeAllowed: false }).kind).toBe('wrong_site');
    expect(explainWebAuthnError({ name: 'InvalidStateError' }, { elapsedMs: 1, timeoutMs: 1000, ceremony: 'create', codeAllowed: false }).kind).toBe('already_registered');
  });

  it('says what to do when the device has no authenticator', () => {
    expect(explainNoWebAuthn(true)).toMatchObject({ kind: 'no_authenticator', next: 'use_code' });
    expect(explainNoWebAuthn(false)).toMatchObject({ kind: 'no_authenticator', next: 'enroll' });
  });
});

describe('explaining server problems', () => {
  const base = { status: 403 };
  it('counts down wrong codes and gives the lockout end as HH:MM', () => {
    expect(explainProblem({ ...base, code: 'stepup_invalid', reason: 'wrong_code', attemptsLeft: 1 }).message).toContain('1 attempt left');
    expect(explainProblem({ ...base, code: 'stepup_invalid', reason: 'wrong_code', attemptsLeft: 3 }).message).toContain('3 attempts left');
    const locked = explainProblem({ status: 429, code: 'stepup_locked', retryAfter: '2030-01-01T14:05:00Z' }, 'en-GB');
    expect(locked.kind).toBe('locked');
    expect(locked.message).toMatch(/locked until \d\d:\d\d/);
  });

  it('distinguishes a replayed code (wait for the next) from a replayed proof (start again)', () => {
    expect(explainProblem({ status: 409, code: 'stepup_replayed', reason: 'replayed_code' })).toMatchObject({ next: 'retry' });
    expect(explainProblem({ status: 409, code: 'stepup_replayed', reason: 'challenge' })).toMatchObject({ next: 'new_challenge' });
  });

  it('explains expiry, another action, another user\'s passkey, missing UV and missing enrollment', () => {
    expect(explainProblem({ status: 410, code: 'stepup_expired' }).kind).toBe('expired');
    expect(explainProblem({ ...base, code: 'stepup_wrong_action' }).kind).toBe('wrong_action');
    expect(explainProblem({ ...base, code: 'stepup_no_credential', reason: 'unknown_credential' }).kind).toBe('not_yours');
    expect(explainProblem({ ...base, code: 'stepup_invalid', reason: 'user_verification' }).kind).toBe('not_verified');
    expect(explainProblem({ status: 409, code: 'stepup_not_enrolled', methods: ['webauthn'] }).message).toContain('a passkey or security key');
  });
});
