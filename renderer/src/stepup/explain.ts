// Plain-words explanations of every way a step-up can fail: the browser's WebAuthn errors (which overload
// NotAllowedError for "cancelled", "timed out" and "no matching authenticator") and the server's problems.
// Pure functions, so the words are tested without a DOM.
import { problemWords, type ProblemFacts } from '../problem-words';

export type Explanation = {
  kind: 'cancelled' | 'timed_out' | 'no_authenticator' | 'not_supported' | 'wrong_site' | 'already_registered' | 'wrong_code'
    | 'locked' | 'expired' | 'replayed' | 'wrong_action' | 'not_yours' | 'not_enrolled' | 'method_not_allowed' | 'needs_stepup'
    | 'not_verified' | 'network' | 'other';
  title: string;
  message: string;
  /** What the user can do next. */
  next?: 'retry' | 'use_code' | 'enroll' | 'wait' | 'new_challenge';
};

/** HH:MM in the user's locale, for "locked until". */
export function clockTime(iso: string | Date, locale?: string): string {
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  return d.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
}

const NO_AUTHENTICATOR = 'This device has no passkey for your Stint account. Add one under “Security keys and codes”, use a security key you registered, or use a code from your authenticator app if this action allows it.';

/**
 * A thrown error from @simplewebauthn/browser's startAuthentication / startRegistration.
 * `elapsedMs` and `timeoutMs` tell a timeout from a cancel: browsers report both as NotAllowedError.
 */
export function explainWebAuthnError(error: unknown, ctx: { elapsedMs: number; timeoutMs: number; ceremony: 'get' | 'create'; codeAllowed: boolean }): Explanation {
  const e = error as { name?: string; code?: string; cause?: { name?: string }; message?: string };
  const name = e?.cause?.name ?? e?.name;
  if (e?.code === 'ERROR_INVALID_DOMAIN' || e?.code === 'ERROR_INVALID_RP_ID' || name === 'SecurityError') {
    return { kind: 'wrong_site', title: 'This page cannot use your passkey', message: 'Passkeys only work on the Stint server’s own address. Open the step-up from the Stint app, not from a copied link.' };
  }
  if (e?.code === 'ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED' || name === 'InvalidStateError') {
    return { kind: 'already_registered', title: 'Already registered', message: 'This authenticator is already registered to your account. You can use it as it is.' };
  }
  if (e?.code === 'ERROR_AUTHENTICATOR_MISSING_USER_VERIFICATION_SUPPORT' || e?.code === 'ERROR_AUTHENTICATOR_MISSING_DISCOVERABLE_CREDENTIAL_SUPPORT') {
    return { kind: 'no_authenticator', title: 'This authenticator cannot verify you', message: 'Stint needs an authenticator that checks it is you (fingerprint, face or PIN). Try Touch ID, Windows Hello or a security key with a PIN.', next: 'enroll' };
  }
  if (name === 'NotSupportedError') {
    return { kind: 'not_supported', title: 'Passkeys are not available here', message: 'This browser or device does not support passkeys.' + (ctx.codeAllowed ? ' Use a code from your authenticator app instead.' : ''), next: ctx.codeAllowed ? 'use_code' : undefined };
  }
  if (name === 'AbortError' || e?.code === 'ERROR_CEREMONY_ABORTED') {
    return { kind: 'cancelled', title: 'Cancelled', message: 'The passkey prompt was closed. Try again when you are ready.', next: 'retry' };
  }
  if (name === 'NotAllowedError') {
    if (ctx.elapsedMs >= ctx.timeoutMs - 1000) {
      return { kind: 'timed_out', title: 'Timed out', message: 'The passkey prompt timed out before you answered it. Try again.', next: 'new_challenge' };
    }
    if (ctx.ceremony === 'get') {
      return {
        kind: 'cancelled',
        title: 'Cancelled, or no passkey here',
        message: `The passkey prompt was cancelled, or this device has none for your account. ${ctx.codeAllowed ? 'Try again, or use a code from your authenticator app.' : 'Try again; if this device has no passkey, add one under “Security keys and codes”.'}`,
        next: ctx.codeAllowed ? 'use_code' : 'retry',
      };
    }
    return { kind: 'cancelled', title: 'Cancelled', message: 'The registration was cancelled or not allowed. Try again when you are ready.', next: 'retry' };
  }
  return { kind: 'other', title: 'Something went wrong', message: e?.message ? `The authenticator reported: ${e.message}` : 'The authenticator reported an error.', next: 'retry' };
}

/** Explanation when the device offers no WebAuthn at all (checked before the prompt). */
export function explainNoWebAuthn(codeAllowed: boolean): Explanation {
  return codeAllowed
    ? { kind: 'no_authenticator', title: 'No passkey on this device', message: `${NO_AUTHENTICATOR}`, next: 'use_code' }
    : { kind: 'no_authenticator', title: 'No passkey on this device', message: 'This action needs a passkey or security key, and this device offers none. Plug in your security key, or add a passkey under “Security keys and codes” on a device that has one.', next: 'enroll' };
}

/**
 * A problem from the server (step-up routes, or the action's own endpoint refusing the proof) as the agent passed it
 * on, or one of the UI's own. Step-up codes get their own words and next step; any other code the UI's words.
 */
export function explainProblem(p: ProblemFacts, locale?: string): Explanation {
  switch (p.code) {
    case 'stepup_locked':
      return { kind: 'locked', title: 'Too many wrong codes', message: `Codes are locked${p.retryAfter ? ` until ${clockTime(p.retryAfter, locale)}` : ' for a few minutes'}. You can still use a passkey if you have one.`, next: 'wait' };
    case 'stepup_invalid':
      if (p.reason === 'wrong_code') {
        const left = p.attemptsLeft ?? 0;
        return { kind: 'wrong_code', title: 'Wrong code', message: `That code is not right. ${left} attempt${left === 1 ? '' : 's'} left before codes are locked for a while. Check that your phone’s clock is correct and type the current code.`, next: 'retry' };
      }
      if (p.reason === 'user_verification') return { kind: 'not_verified', title: 'You were not verified', message: 'Your authenticator confirmed you were there but did not check it is you (fingerprint, face or PIN). This action needs that check.', next: 'retry' };
      if (p.reason === 'origin' || p.reason === 'rp_id') return { kind: 'wrong_site', title: 'Wrong site', message: 'The proof was made on a page that is not the Stint server’s. Start again from the Stint app.', next: 'new_challenge' };
      if (p.reason === 'unknown_challenge' || p.reason === 'challenge') return { kind: 'expired', title: 'Start again', message: 'That confirmation does not match this request any more. Start again.', next: 'new_challenge' };
      return { kind: 'other', title: 'Not accepted', message: p.detail ?? 'The server did not accept the proof.', next: 'retry' };
    case 'stepup_expired':
      return { kind: 'expired', title: 'Took too long', message: 'The confirmation window (2 minutes) closed. Start again.', next: 'new_challenge' };
    case 'stepup_replayed':
      return p.reason === 'replayed_code'
        ? { kind: 'replayed', title: 'Code already used', message: 'Each code works once. Wait for your app to show the next code, then type it.', next: 'retry' }
        : { kind: 'replayed', title: 'Already used', message: 'This confirmation was already used. Each one works once; start again.', next: 'new_challenge' };
    case 'stepup_wrong_action':
      return { kind: 'wrong_action', title: 'Confirmation is for something else', message: 'That confirmation was made for a different request or approval, so it cannot be used here.', next: 'new_challenge' };
    case 'stepup_no_credential':
      return p.reason === 'not_enrolled'
        ? { kind: 'not_enrolled', title: 'No authenticator app set up', message: 'Set up an authenticator app under “Security keys and codes” first.', next: 'enroll' }
        : { kind: 'not_yours', title: 'Passkey not registered', message: 'The passkey you used is not registered to your Stint account. Use one you registered, or add this one under “Security keys and codes”.', next: 'enroll' };
    case 'stepup_not_enrolled': {
      const words = (p.methods ?? []).map((m) => (m === 'webauthn' ? 'a passkey or security key' : 'an authenticator app')).join(' or ');
      return { kind: 'not_enrolled', title: 'Set up a way to confirm', message: `This action needs ${words || 'a second factor'}, and you have not set one up yet. Add it under “Security keys and codes”.`, next: 'enroll' };
    }
    case 'stepup_method_not_allowed':
      return { kind: 'method_not_allowed', title: 'Not allowed for this action', message: p.detail ?? 'This method is not allowed here.' };
    case 'stepup_required':
      return { kind: 'needs_stepup', title: 'Confirm it is you first', message: 'You already have a way to confirm. Confirm with it before adding another.' };
    case 'totp_wrong_code':
      return { kind: 'wrong_code', title: 'Wrong code', message: 'That code does not match. Check that your phone’s clock is correct and type the current code.', next: 'retry' };
    case 'unknown_method':
      return { kind: 'other', title: 'Not available', message: problemWords(p) };
    case 'network_error':
    case 'agent_unreachable':
    case 'server_unreachable':
      return { kind: 'network', title: 'Cannot reach Stint', message: problemWords(p), next: 'retry' };
    default:
      return { kind: 'other', title: 'Not accepted', message: problemWords(p), next: 'retry' };
  }
}
