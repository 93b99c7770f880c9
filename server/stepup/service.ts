// Step-up: enrollment of WebAuthn credentials and TOTP, challenges bound to one action, and the gate that verifies a
// proof for exactly that action. Rules (see docs/step-up.md):
// - A challenge belongs to one user and one action hash, expires (2 min by default) and is consumed by the first
//   successful proof. A failed proof consumes nothing (the user may retry within the window).
// - WebAuthn: expected RP ID and origins from config, the credential must be this user's, UV when policy says,
//   the signature counter must move forward; challenge use and counter move are one atomic write.
// - TOTP: ±1 time step, each step usable once per user (`afterTimeStep`), wrong codes counted; after `maxAttempts`
//   wrong codes TOTP is locked for `lockoutSeconds`. WebAuthn failures are not counted: an assertion cannot be guessed.
// - Every failure is a typed StepUpResult; the caller audits it and leaves the action where it was.
import type { ProblemCode } from '../../shared/contract/problem';
import { createHash, randomBytes } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { generateSecret, generateURI, verify as verifyOtp } from 'otplib';
import QRCode from 'qrcode';
import type { StepUpMethod, StepUpProof } from '../../shared/contract/http';
import type { CredentialInfo, StepUpStatus, TotpEnrollResult } from '../../shared/contract/stepup';
import type { StepUpConfig } from './config';
import type { StepUpAction, StepUpFailureReason, StepUpGate, StepUpResult } from './seam';
import { SecretBox } from './secret-box';
import type { StepUpStore, StoredChallenge, StoredCredential } from './store';

export type StepUpFailure = Extract<StepUpResult, { ok: false }>;

export interface IssuedChallenge {
  challengeId: string;
  /** Epoch ms. */
  expiresAt: number;
  methods: StepUpMethod[];
  policyMethods: StepUpMethod[];
  userVerification: boolean;
  webauthn?: PublicKeyCredentialRequestOptionsJSON;
  totp?: { attemptsLeft: number; lockedUntil?: number };
}

export type EnrollmentError = { ok: false; code: ProblemCode; message: string; reason?: string };

const TOTP_PERIOD = 30;

/** The action hash for step-up's own action: adding a factor when the user already has one. */
export function enrollActionHash(userId: string): string {
  return createHash('sha256').update(JSON.stringify(['stint-stepup-enroll', userId])).digest('hex');
}

/**
 * The action hash for an administrator resetting another user's factors: bound to both, so a proof for resetting one
 * user's factors cannot reset another's, and only the admin who asked can use it.
 */
export function resetActionHash(adminId: string, subject: string): string {
  return createHash('sha256').update(JSON.stringify(['stint-stepup-reset', adminId, subject])).digest('hex');
}

function fail(code: StepUpFailure['code'], message: string, extra: Partial<StepUpFailure> = {}): StepUpFailure {
  return { ok: false, code, message, ...extra };
}

/** Turns @simplewebauthn's thrown messages into a reason and plain words. */
function classifyWebAuthnError(error: unknown): { reason: StepUpFailureReason; message: string } {
  const text = error instanceof Error ? error.message : String(error);
  if (/origin/i.test(text)) return { reason: 'origin', message: 'The proof was made on a page of another site (unexpected origin).' };
  if (/RP ID/i.test(text)) return { reason: 'rp_id', message: 'The proof was made for another service (unexpected RP ID).' };
  if (/user verification|could not be verified/i.test(text)) return { reason: 'user_verification', message: 'Your authenticator confirmed presence but did not verify you (PIN, fingerprint or face); this action requires it.' };
  if (/counter/i.test(text)) return { reason: 'counter', message: 'The authenticator\'s signature counter went backwards: the credential may have been cloned.' };
  if (/challenge/i.test(text)) return { reason: 'challenge', message: 'The proof answers a different challenge than this one.' };
  return { reason: 'signature', message: 'The proof could not be verified.' };
}

export interface StepUpServiceOptions {
  store: StepUpStore;
  config: StepUpConfig;
  /** The server clock (epoch ms); injected so tests control time. */
  now?: () => number;
}

export class StepUpService implements StepUpGate {
  private readonly store: StepUpStore;
  private readonly config: StepUpConfig;
  /** The server clock, epoch ms (also used by the routes for Retry-After). */
  readonly now: () => number;
  private readonly box: SecretBox;

  constructor(opts: StepUpServiceOptions) {
    this.store = opts.store;
    this.config = opts.config;
    this.now = opts.now ?? (() => Date.now());
    this.box = SecretBox.fromString(opts.config.totpKey);
  }

  // ---------------- enrollment: WebAuthn ----------------

  async registrationOptions(user: { sub: string; name?: string; email?: string }): Promise<{ challengeId: string; options: PublicKeyCredentialCreationOptionsJSON }> {
    const existing = await this.store.listCredentials(user.sub);
    const now = this.now();
    const options = await generateRegistrationOptions({
      rpName: this.config.rpName,
      rpID: this.config.rpId,
      userName: user.email ?? user.name ?? user.sub,
      userDisplayName: user.name ?? user.email ?? user.sub,
      // A stable, opaque handle: the same user re-registering on one authenticator replaces their resident key.
      userID: new Uint8Array(createHash('sha256').update(`stint-user:${user.sub}`).digest()),
      timeout: this.config.challengeTtlSeconds * 1000,
      attestationType: 'none',
      excludeCredentials: existing.map((c) => ({ id: c.id, transports: c.transports })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
    });
    const challengeId = randomBytes(16).toString('base64url');
    await this.store.addChallenge({
      id: challengeId, userId: user.sub, kind: 'register', webauthnChallenge: options.challenge,
      expiresAt: now + this.config.challengeTtlSeconds * 1000, createdAt: now,
    });
    return { challengeId, options };
  }

  async verifyRegistration(userId: string, input: { challengeId: string; response: Record<string, unknown>; label?: string }): Promise<{ ok: true; credential: CredentialInfo } | EnrollmentError> {
    const now = this.now();
    const challenge = await this.store.getChallenge(input.challengeId);
    if (!challenge || challenge.userId !== userId || challenge.kind !== 'register' || !challenge.webauthnChallenge) {
      return { ok: false, code: 'stepup_invalid', reason: 'unknown_challenge', message: 'This registration was not started by you, or is unknown.' };
    }
    if (challenge.usedAt !== undefined) return { ok: false, code: 'stepup_replayed', reason: 'challenge', message: 'This registration was already completed.' };
    if (challenge.expiresAt <= now) return { ok: false, code: 'stepup_expired', message: 'The registration took too long; start again.' };
    let info;
    try {
      const result = await verifyRegistrationResponse({
        response: input.response as unknown as RegistrationResponseJSON,
        expectedChallenge: challenge.webauthnChallenge,
        expectedOrigin: this.config.origins,
        expectedRPID: this.config.rpId,
        requireUserVerification: true,
      });
      if (!result.verified) return { ok: false, code: 'stepup_invalid', reason: 'signature', message: 'The new credential could not be verified.' };
      info = result.registrationInfo;
    } catch (error) {
      const { reason, message } = classifyWebAuthnError(error);
      return { ok: false, code: 'stepup_invalid', reason, message };
    }
    if (!(await this.store.consumeChallenge(challenge.id, now))) return { ok: false, code: 'stepup_replayed', reason: 'challenge', message: 'This registration was already completed.' };
    if (await this.store.getCredential(info.credential.id)) return { ok: false, code: 'stepup_duplicate', message: 'This authenticator is already registered.' };
    const count = (await this.store.listCredentials(userId)).length;
    const stored: StoredCredential = {
      id: info.credential.id,
      userId,
      publicKey: info.credential.publicKey,
      counter: info.credential.counter,
      transports: info.credential.transports ?? [],
      label: input.label ?? `Authenticator ${count + 1}`,
      createdAt: now,
    };
    await this.store.addCredential(stored);
    return { ok: true, credential: toInfo(stored) };
  }

  async listCredentials(userId: string): Promise<CredentialInfo[]> {
    return (await this.store.listCredentials(userId)).map(toInfo);
  }

  removeCredential(userId: string, id: string): Promise<boolean> {
    return this.store.removeCredential(userId, id);
  }

  // ---------------- enrollment: TOTP ----------------

  /** A new (unconfirmed) secret; replaces an earlier one. The caller shows it once; only its ciphertext is kept. */
  async enrollTotp(user: { sub: string; name?: string; email?: string }): Promise<TotpEnrollResult> {
    const secret = generateSecret();
    const uri = generateURI({ issuer: this.config.totpIssuer ?? this.config.rpName, label: user.email ?? user.name ?? user.sub, secret });
    await this.store.putTotp({ userId: user.sub, secretEnc: this.box.seal(secret, user.sub), createdAt: this.now() });
    const qrDataUrl = await QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, width: 240 });
    return { secret, uri, qrDataUrl };
  }

  async confirmTotp(userId: string, code: string): Promise<{ ok: true } | EnrollmentError> {
    const totp = await this.store.getTotp(userId);
    if (!totp) return { ok: false, code: 'totp_not_enrolled', message: 'Start TOTP enrollment first.' };
    if (totp.confirmed) return { ok: false, code: 'totp_already_confirmed', message: 'TOTP is already set up.' };
    const result = await this.checkCode(userId, totp.secretEnc, code, undefined);
    if (!result.valid) return { ok: false, code: 'totp_wrong_code', reason: 'wrong_code', message: 'That code does not match. Check the time on your phone and type the current code.' };
    if (!(await this.store.confirmTotp(userId, result.timeStep))) return { ok: false, code: 'totp_already_confirmed', message: 'TOTP is already set up.' };
    return { ok: true };
  }

  removeTotp(userId: string): Promise<boolean> {
    return this.store.removeTotp(userId);
  }

  /** What a reset would remove: the user's passkeys and the state of their authenticator app. */
  async factorsOf(userId: string): Promise<{ passkeys: { id: string; label: string }[]; totp: StepUpStatus['totp'] }> {
    const [creds, totp] = await Promise.all([this.store.listCredentials(userId), this.store.getTotp(userId)]);
    return { passkeys: creds.map((c) => ({ id: c.id, label: c.label })), totp: !totp ? 'none' : totp.confirmed ? 'confirmed' : 'pending' };
  }

  /** An administrator's reset (the route checks who may, and audits it): the user's next factor is a first one again. */
  resetFactors(userId: string): Promise<void> {
    return this.store.removeAllFactors(userId);
  }

  async enrolledMethods(userId: string): Promise<StepUpMethod[]> {
    const [creds, totp] = await Promise.all([this.store.listCredentials(userId), this.store.getTotp(userId)]);
    const methods: StepUpMethod[] = [];
    if (creds.length > 0) methods.push('webauthn');
    if (totp?.confirmed) methods.push('totp');
    return methods;
  }

  async status(userId: string): Promise<StepUpStatus> {
    const [creds, totp, attempts] = await Promise.all([this.store.listCredentials(userId), this.store.getTotp(userId), this.attemptState(userId)]);
    return {
      webauthnCredentials: creds.length,
      totp: !totp ? 'none' : totp.confirmed ? 'confirmed' : 'pending',
      attemptsLeft: attempts.attemptsLeft,
      ...(attempts.lockedUntil !== undefined ? { lockedUntil: new Date(attempts.lockedUntil).toISOString() } : {}),
    };
  }

  // ---------------- challenges ----------------

  /**
   * A challenge for one action of one user. The WebAuthn challenge bytes are random || SHA-256(actionHash), so the
   * authenticator's signature itself covers the action (visible in clientDataJSON for audit), besides the server-side
   * binding by challenge id.
   */
  async issueChallenge(input: { userId: string; actionHash: string; methods: StepUpMethod[]; userVerification: boolean }): Promise<{ ok: true; challenge: IssuedChallenge } | { ok: false; code: 'stepup_not_enrolled'; message: string; policyMethods: StepUpMethod[] }> {
    const now = this.now();
    const enrolled = await this.enrolledMethods(input.userId);
    const methods = input.methods.filter((m) => enrolled.includes(m));
    if (methods.length === 0) {
      const words = input.methods.map((m) => (m === 'webauthn' ? 'a passkey or security key' : 'an authenticator app code')).join(' or ');
      return { ok: false, code: 'stepup_not_enrolled', message: `This action needs ${words}, and you have not set one up yet.`, policyMethods: input.methods };
    }
    const expiresAt = now + this.config.challengeTtlSeconds * 1000;
    const challengeId = randomBytes(16).toString('base64url');
    let webauthn: PublicKeyCredentialRequestOptionsJSON | undefined;
    let webauthnChallenge: string | undefined;
    if (methods.includes('webauthn')) {
      const creds = await this.store.listCredentials(input.userId);
      const bytes = Buffer.concat([randomBytes(32), createHash('sha256').update(input.actionHash).digest()]);
      webauthn = await generateAuthenticationOptions({
        rpID: this.config.rpId,
        challenge: new Uint8Array(bytes),
        timeout: this.config.challengeTtlSeconds * 1000,
        userVerification: input.userVerification ? 'required' : 'preferred',
        allowCredentials: creds.map((c) => ({ id: c.id, transports: c.transports })),
      });
      webauthnChallenge = webauthn.challenge;
    }
    await this.store.addChallenge({ id: challengeId, userId: input.userId, kind: 'action', actionHash: input.actionHash, webauthnChallenge, expiresAt, createdAt: now });
    // Housekeeping: challenges are worthless an hour after expiry.
    await this.store.purgeChallenges(now - 3600_000);
    const challenge: IssuedChallenge = { challengeId, expiresAt, methods, policyMethods: input.methods, userVerification: input.userVerification, webauthn };
    if (methods.includes('totp')) {
      const a = await this.attemptState(input.userId);
      challenge.totp = { attemptsLeft: a.attemptsLeft, ...(a.lockedUntil !== undefined ? { lockedUntil: a.lockedUntil } : {}) };
    }
    return { ok: true, challenge };
  }

  // ---------------- the gate ----------------

  async verify(input: { userId: string; action: StepUpAction; actionHash: string; methods: StepUpMethod[]; userVerification: boolean; proof: StepUpProof }): Promise<StepUpResult> {
    return this.verifyForHash(input);
  }

  /** The gate without an action object: used for step-up's own `enroll` action. */
  async verifyForHash(input: { userId: string; actionHash: string; methods: StepUpMethod[]; userVerification: boolean; proof: StepUpProof }): Promise<StepUpResult> {
    const { proof } = input;
    const now = this.now();
    if (!input.methods.includes(proof.method)) {
      return fail('stepup_method_not_allowed', proof.method === 'totp' ? 'A one-time code is not accepted for this action; use your passkey or security key.' : 'A passkey is not accepted for this action.');
    }
    const challenge = await this.store.getChallenge(proof.challengeId);
    // Another user's challenge is reported as unknown: its existence is not this caller's business.
    if (!challenge || challenge.userId !== input.userId || challenge.kind !== 'action') {
      return fail('stepup_invalid', 'This step-up challenge is unknown; ask for a new one.', { reason: 'unknown_challenge' });
    }
    if (challenge.actionHash !== input.actionHash) {
      return fail('stepup_wrong_action', 'This proof was made for a different action; it cannot be used here.', { reason: 'challenge' });
    }
    if (challenge.usedAt !== undefined) return fail('stepup_replayed', 'This proof was already used; each proof works once.', { reason: 'challenge' });
    if (challenge.expiresAt <= now) return fail('stepup_expired', 'The step-up took too long and expired; try again.', { reason: 'challenge' });
    return proof.method === 'webauthn'
      ? this.verifyWebAuthn(input.userId, challenge, proof.response, input.userVerification, now)
      : this.verifyTotp(input.userId, challenge, proof.code, now);
  }

  private async verifyWebAuthn(userId: string, challenge: StoredChallenge, response: Record<string, unknown>, userVerification: boolean, now: number): Promise<StepUpResult> {
    if (!challenge.webauthnChallenge) return fail('stepup_method_not_allowed', 'This challenge was issued without a passkey option.');
    const credentialId = typeof response.id === 'string' ? response.id : undefined;
    if (!credentialId) return fail('stepup_invalid', 'The passkey response is malformed.', { reason: 'malformed' });
    const credential = await this.store.getCredential(credentialId);
    if (!credential || credential.userId !== userId) {
      return fail('stepup_no_credential', 'This passkey or security key is not registered to your account.', { reason: 'unknown_credential' });
    }
    let newCounter: number;
    try {
      const result = await verifyAuthenticationResponse({
        response: response as unknown as AuthenticationResponseJSON,
        expectedChallenge: challenge.webauthnChallenge,
        expectedOrigin: this.config.origins,
        expectedRPID: this.config.rpId,
        credential: { id: credential.id, publicKey: credential.publicKey, counter: credential.counter, transports: credential.transports },
        requireUserVerification: userVerification,
      });
      if (!result.verified) return fail('stepup_invalid', 'The passkey signature could not be verified.', { reason: 'signature' });
      newCounter = result.authenticationInfo.newCounter;
    } catch (error) {
      const { reason, message } = classifyWebAuthnError(error);
      return fail('stepup_invalid', message, { reason });
    }
    const done = await this.store.completeWebAuthn({ challengeId: challenge.id, credentialId: credential.id, oldCounter: credential.counter, newCounter, now });
    if (done !== 'ok') return fail('stepup_replayed', 'This proof was already used; each proof works once.', { reason: done === 'counter_changed' ? 'counter' : 'challenge' });
    return { ok: true, method: 'webauthn', credentialId: credential.id };
  }

  private async verifyTotp(userId: string, challenge: StoredChallenge, code: string, now: number): Promise<StepUpResult> {
    // The attempt is taken before the code is checked, atomically: parallel guesses cannot outrun the lock.
    const attempt = await this.store.takeAttempt(userId, this.config.maxAttempts, now);
    if (!attempt.taken) {
      // Locked, or every attempt left is being checked right now (then the lock is a moment away).
      const until = attempt.lockedUntil ?? now + this.config.lockoutSeconds * 1000;
      return fail('stepup_locked', `Too many wrong codes. One-time codes are locked until ${new Date(until).toISOString()}.`, { retryAfter: until, attemptsLeft: 0 });
    }
    const totp = await this.store.getTotp(userId);
    if (!totp?.confirmed) {
      await this.store.refundAttempt(userId);
      return fail('stepup_no_credential', 'You have not set up an authenticator app.', { reason: 'not_enrolled' });
    }
    const result = await this.checkCode(userId, totp.secretEnc, code, totp.lastTimeStep);
    if (!result.valid) {
      // A code from an already spent step is a replay, not a guess: refused without costing an attempt.
      if (totp.lastTimeStep !== undefined && (await this.checkCode(userId, totp.secretEnc, code, undefined)).valid) {
        await this.store.refundAttempt(userId);
        return fail('stepup_replayed', 'That code was already used. Wait for the next code and try again.', { reason: 'replayed_code' });
      }
      if (attempt.failedCount >= this.config.maxAttempts) {
        const lockUntil = now + this.config.lockoutSeconds * 1000;
        await this.store.lock(userId, lockUntil);
        return fail('stepup_locked', `Too many wrong codes. One-time codes are locked until ${new Date(lockUntil).toISOString()}.`, { retryAfter: lockUntil, attemptsLeft: 0, reason: 'wrong_code' });
      }
      const left = Math.max(0, this.config.maxAttempts - attempt.failedCount);
      return fail('stepup_invalid', `That code is not right. ${left} attempt${left === 1 ? '' : 's'} left.`, { attemptsLeft: left, reason: 'wrong_code' });
    }
    const done = await this.store.completeTotp({ challengeId: challenge.id, userId, timeStep: result.timeStep, now });
    if (done === 'step_used') return fail('stepup_replayed', 'That code was already used. Wait for the next code and try again.', { reason: 'replayed_code' });
    if (done !== 'ok') return fail('stepup_replayed', 'This proof was already used; each proof works once.', { reason: 'challenge' });
    await this.store.resetAttempts(userId);
    return { ok: true, method: 'totp' };
  }

  private async checkCode(userId: string, secretEnc: string, code: string, afterTimeStep: number | undefined): Promise<{ valid: false } | { valid: true; timeStep: number }> {
    const secret = this.box.open(secretEnc, userId);
    const r = await verifyOtp({
      secret,
      token: code,
      epoch: Math.floor(this.now() / 1000),
      period: TOTP_PERIOD,
      epochTolerance: TOTP_PERIOD, // ±1 step
      ...(afterTimeStep !== undefined ? { afterTimeStep } : {}),
    });
    return r.valid && 'timeStep' in r ? { valid: true, timeStep: r.timeStep } : { valid: false };
  }

  private async attemptState(userId: string): Promise<{ attemptsLeft: number; lockedUntil?: number }> {
    const a = await this.store.getAttempts(userId);
    const now = this.now();
    if (a.lockedUntil !== undefined && a.lockedUntil > now) return { attemptsLeft: 0, lockedUntil: a.lockedUntil };
    return { attemptsLeft: Math.max(0, this.config.maxAttempts - a.failedCount) };
  }
}

function toInfo(c: StoredCredential): CredentialInfo {
  return {
    id: c.id, label: c.label, transports: c.transports, createdAt: new Date(c.createdAt).toISOString(),
    ...(c.lastUsedAt !== undefined ? { lastUsedAt: new Date(c.lastUsedAt).toISOString() } : {}),
  };
}
