// The admin console's contract (issue #25): the audit searched newest first with a keyset cursor, its export, the
// chain's verify status, and live grants, grants still ending and pending requests with who/what/why. The HTTP
// queries arrive as strings (coerced here); the AgentApi passes the same fields typed (shared/contract/agent.ts).
import { z } from 'zod';
import { AccessRequest, Approval, AuditEntry, Grant, Id, Instant } from './http';

/** What an audit search narrows to; every field optional, all given ones must hold. */
export const AuditFilterFields = z.strictObject({
  /** Rows this user wrote or that are about them (actor or subject). */
  user: z.string().min(1).max(256).optional(),
  resourceId: Id.optional(),
  /** e.g. `grant.revoked`, `breakglass.used`, `refused.request.approve`. */
  action: z.string().min(1).max(64).optional(),
  grantId: Id.optional(),
  requestId: Id.optional(),
  /** From this instant, inclusive. */
  from: Instant.optional(),
  /** Up to this instant, exclusive. */
  to: Instant.optional(),
});
export type AuditFilterFields = z.infer<typeof AuditFilterFields>;

/** GET /v1/admin/audit: newest first; `before` is the `next` of the previous page (a seq: keyset, never an offset). */
export const AdminAuditQuery = AuditFilterFields.extend({
  before: z.coerce.number().int().positive().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

export const AuditPage = z.object({
  entries: z.array(AuditEntry),
  /** Pass as `before` for the next (older) page; absent on the last page. */
  next: z.number().int().positive().optional(),
});
export type AuditPage = z.infer<typeof AuditPage>;

export const AuditExportFormat = z.enum(['jsonl', 'csv']);
export type AuditExportFormat = z.infer<typeof AuditExportFormat>;
/** GET /v1/admin/audit/export: every row the filter matches, oldest first (chain order), streamed. */
export const AuditExportQuery = AuditFilterFields.extend({ format: AuditExportFormat.default('jsonl') });

/** The columns of the CSV export, in order (`detail` as JSON text). */
export const AUDIT_CSV_COLUMNS = ['seq', 'at', 'actor', 'action', 'subject', 'requestId', 'grantId', 'resourceId', 'reason', 'policyVersion', 'risk', 'detail', 'prevHash', 'hash'] as const;

export const VerifyResult = z.object({
  ok: z.boolean(),
  /** Rows verified in order before the answer. */
  count: z.number().int().nonnegative(),
  lastHash: z.string().optional(),
  /** Signed checkpoints the chain was checked against. */
  checkpoints: z.number().int().nonnegative().optional(),
  /** When broken: what kind of tampering it looks like, where, and why. */
  kind: z.enum(['edited', 'deleted', 'truncated', 'rehashed', 'forged_checkpoint']).optional(),
  seq: z.number().int().optional(),
  reason: z.string().optional(),
});

export const SignedCheckpoint = z.object({ seq: z.number().int().positive(), hash: z.string(), at: Instant });

/**
 * The chain's verify status: verifying walks every row (seconds at a million), so it runs on demand in the background
 * and the last result is kept; the page never waits for it.
 */
export const AuditVerifyStatus = z.object({
  state: z.enum(['never', 'running', 'done', 'failed']),
  startedAt: Instant.optional(),
  finishedAt: Instant.optional(),
  result: VerifyResult.optional(),
  /** Why the last run could not complete (storage), when state is failed. */
  error: z.string().optional(),
  /** Whether signed checkpoints are configured (without them a cut-off tail or a re-hashed chain cannot show). */
  checkpointsConfigured: z.boolean(),
  /** The newest signed checkpoint in the checkpoint file. */
  lastCheckpoint: SignedCheckpoint.optional(),
});
export type AuditVerifyStatus = z.infer<typeof AuditVerifyStatus>;

export const VerifyBody = z.strictObject({});

/** A grant as the console shows it: with who asked, why, who approved, and its revocation when it is still ending. */
export const AdminGrant = z.object({
  grant: Grant,
  requesterName: z.string().optional(),
  reason: z.string(),
  ticket: z.string().optional(),
  approvals: z.array(Approval),
  policyVersion: z.number().int(),
  /** While the credentials' revocation is not confirmed (grant.revocation pending or retrying). */
  ending: z.object({
    tries: z.number().int().nonnegative(),
    lastError: z.string().optional(),
    nextTryAt: Instant.optional(),
  }).optional(),
});
export type AdminGrant = z.infer<typeof AdminGrant>;

export const AdminLive = z.object({
  /** Active grants, soonest end first. */
  active: z.array(AdminGrant),
  /** Ended grants whose credentials are not yet confirmed revoked, oldest end first. */
  ending: z.array(AdminGrant),
  /** Requests waiting for a step-up or approvals, oldest first. */
  pending: z.array(AccessRequest),
  serverTime: Instant,
});
export type AdminLive = z.infer<typeof AdminLive>;
