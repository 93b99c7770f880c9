// HTTP contract of the step-up routes (/v1/stepup/...): enrollment of WebAuthn credentials and TOTP, challenges bound
// to one action, and the failures a client must explain. Request bodies are strict; responses are not.
import { z } from 'zod';
import { Id, Instant, StepUpMethod, StepUpProof } from './http';
import { ProblemCode } from './problem';

/** The action a challenge is for. `enroll` is step-up's own action: adding a factor when one already exists. */
export const StepUpActionRef = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('request'), requestId: Id }),
  z.strictObject({ kind: z.literal('approve'), requestId: Id }),
  z.strictObject({ kind: z.literal('enroll') }),
]);
export type StepUpActionRef = z.infer<typeof StepUpActionRef>;

/** The problem codes a refused step-up proof or challenge answers with (a part of ProblemCode). */
export const StepUpFailureCode = ProblemCode.extract([
  'stepup_invalid', 'stepup_expired', 'stepup_replayed', 'stepup_wrong_action', 'stepup_locked', 'stepup_method_not_allowed',
  'stepup_no_credential', 'stepup_not_enrolled', 'stepup_required',
]);
export type StepUpFailureCode = z.infer<typeof StepUpFailureCode>;

// ---- request bodies (strict) ----
export const ChallengeBody = z.strictObject({ action: StepUpActionRef });
export const RegisterOptionsBody = z.strictObject({
  label: z.string().trim().min(1).max(64).optional(),
  stepUp: StepUpProof.optional().describe('required when the user already has a factor: adding one is itself a step-up action'),
});
export const RegisterVerifyBody = z.strictObject({
  challengeId: Id,
  response: z.record(z.string(), z.unknown()).describe('RegistrationResponseJSON from @simplewebauthn/browser startRegistration'),
  label: z.string().trim().min(1).max(64).optional(),
});
export const TotpEnrollBody = z.strictObject({ stepUp: StepUpProof.optional() });
/** Removing a factor: a fresh proof with a factor the user has (an `enroll` challenge), like adding one. */
export const RemoveFactorBody = z.strictObject({ stepUp: StepUpProof.optional() });
export type RemoveFactorBody = z.infer<typeof RemoveFactorBody>;
export const TotpConfirmBody = z.strictObject({ code: z.string().regex(/^[0-9]{6}$/, 'six digits') });

// ---- responses ----
export const StepUpChallenge = z.object({
  challengeId: Id,
  expiresAt: Instant,
  summary: z.string().describe('what is being requested or approved, in words, for the user to check'),
  methods: z.array(StepUpMethod).describe('methods this user can use now: allowed by policy and enrolled'),
  policyMethods: z.array(StepUpMethod).describe('methods policy allows for this action'),
  userVerification: z.boolean(),
  webauthn: z.record(z.string(), z.unknown()).optional().describe('PublicKeyCredentialRequestOptionsJSON for startAuthentication'),
  totp: z.object({ attemptsLeft: z.number().int(), lockedUntil: Instant.optional() }).optional(),
});
export type StepUpChallenge = z.infer<typeof StepUpChallenge>;

export const RegisterOptionsResult = z.object({
  challengeId: Id,
  options: z.record(z.string(), z.unknown()).describe('PublicKeyCredentialCreationOptionsJSON for startRegistration'),
});
export type RegisterOptionsResult = z.infer<typeof RegisterOptionsResult>;

export const CredentialInfo = z.object({
  id: z.string(),
  label: z.string(),
  transports: z.array(z.string()),
  createdAt: Instant,
  lastUsedAt: Instant.optional(),
});
export type CredentialInfo = z.infer<typeof CredentialInfo>;
export const CredentialList = z.object({ credentials: z.array(CredentialInfo) });

export const TotpEnrollResult = z.object({
  secret: z.string().describe('base32; shown once, for typing into an app that cannot scan'),
  uri: z.string().startsWith('otpauth://'),
  qrDataUrl: z.string().startsWith('data:image/png;base64,'),
});
export type TotpEnrollResult = z.infer<typeof TotpEnrollResult>;
export const TotpConfirmResult = z.object({ confirmed: z.literal(true) });

export const StepUpStatus = z.object({
  webauthnCredentials: z.number().int(),
  totp: z.enum(['none', 'pending', 'confirmed']),
  attemptsLeft: z.number().int(),
  lockedUntil: Instant.optional(),
});
export type StepUpStatus = z.infer<typeof StepUpStatus>;

// ---- an admin's reset of a user's factors (POST /v1/admin/users/:sub/factors/reset[/challenge]) ----
export const ResetSubject = z.string().min(1).max(255).describe("the user's subject (`sub`), as the identity provider names them");
export const ResetChallengeBody = z.strictObject({});
export const ResetFactorsBody = z.strictObject({
  reason: z.string().trim().min(3).max(500).describe('why (e.g. the ticket of the lost phone); on the audit record'),
  stepUp: StepUpProof.optional().describe("the admin's own proof, for a challenge from …/factors/reset/challenge"),
});
export const ResetFactorsResult = z.object({
  subject: z.string(),
  removed: z.object({
    passkeys: z.number().int(),
    totp: z.enum(['none', 'pending', 'confirmed']).describe('the authenticator app that was removed, if any'),
  }),
});
export type ResetFactorsResult = z.infer<typeof ResetFactorsResult>;
