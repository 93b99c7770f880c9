// The seam between the lifecycle and step-up (WebAuthn / TOTP). The lifecycle decides *whether* a step-up is needed
// and for which action; server/stepup proves it. A proof is bound to one action by its hash, single-use, short-lived.
import type { StepUpMethod, StepUpProof } from '../../shared/contract/http';
import type { ProblemCode } from '../../shared/contract/problem';
import type { ReportedAudit } from '../lifecycle/audit';

export type StepUpAction =
  | { kind: 'request'; requestId: string }
  | { kind: 'approve'; requestId: string };

export type StepUpResult =
  | { ok: true; method: StepUpMethod; credentialId?: string }
  | { ok: false; code: 'stepup_invalid' | 'stepup_expired' | 'stepup_replayed' | 'stepup_wrong_action' | 'stepup_locked' | 'stepup_method_not_allowed' | 'stepup_no_credential'; message: string; /** Epoch ms. */ retryAfter?: number; attemptsLeft?: number; reason?: StepUpFailureReason };

/** Finer cause of a failure, for the audit entry and the client's explanation (added by server/stepup). */
export type StepUpFailureReason =
  | 'unknown_challenge' | 'challenge' | 'origin' | 'rp_id' | 'user_verification' | 'signature' | 'counter'
  | 'unknown_credential' | 'wrong_code' | 'replayed_code' | 'not_enrolled' | 'malformed';

export interface StepUpGate {
  /**
   * Verify a proof for exactly this action of this user. `actionHash` is computed by the lifecycle over the
   * action's immutable content (request id, requester, resource, level, duration, reason; or approver + request id).
   * Failures are audited by the caller and leave the action where it was.
   */
  verify(input: { userId: string; action: StepUpAction; actionHash: string; methods: StepUpMethod[]; userVerification: boolean; proof: StepUpProof }): Promise<StepUpResult>;
}

/** What the step-up routes ask the lifecycle when a client wants a challenge for an action. */
export interface StepUpActionResolver {
  resolve(user: { sub: string; groups: string[] }, action: StepUpAction): Promise<
    | { ok: true; actionHash: string; methods: StepUpMethod[]; userVerification: boolean; summary: string }
    | { ok: false; status: 403 | 404 | 409; code: ProblemCode; message: string }
  >;
  /**
   * Append rows to the server's audit log with the events they tell (the lifecycle's hash chain): an admin's reset of
   * another user's factors is about that user, and tells that user's agents. Without it the routes' `audit` is used.
   */
  auditReported?(rows: readonly ReportedAudit[]): Promise<void>;
}
