// The HTTP contract between the agent (and any other client) and the grant server.
// Every request body is parsed with these schemas on the server, and every response on the client:
// types are inferred from here, never written twice. Request bodies are strict (unknown fields are an error),
// responses are not, so a newer server can add fields without breaking an older agent.
import { z } from 'zod';
import { Instant, StepUpMethod } from './primitives';
import { ResourceKind } from './kinds';

export { Instant, StepUpMethod } from './primitives';
export { ResourceKind } from './kinds';
/** The one problem shape of every answer that is not a success: see problem.ts. */
export { Problem } from './problem';

export const Id = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only');
export const DurationSeconds = z.number().int().positive().max(31 * 24 * 3600);

export const StepUpMode = z.enum(['always', 'on-risk', 'never']);

export const RequestState = z.enum(['pending_stepup', 'pending_approval', 'approved', 'denied', 'expired', 'cancelled']);
export type RequestState = z.infer<typeof RequestState>;
export const GrantState = z.enum(['active', 'ended', 'released', 'revoked', 'failed']);
export type GrantState = z.infer<typeof GrantState>;

export const Me = z.object({
  sub: z.string(),
  email: z.string().optional(),
  name: z.string().optional(),
  groups: z.array(z.string()),
  admin: z.boolean(),
  approver: z.boolean(),
  serverTime: Instant,
});
export type Me = z.infer<typeof Me>;

export const PolicySummary = z.object({
  policyId: z.string(),
  policyVersion: z.number().int(),
  durationDefaultSeconds: DurationSeconds,
  durationMaxSeconds: DurationSeconds,
  reasonRequired: z.boolean(),
  ticketPattern: z.string().optional(),
  ticketRequired: z.boolean(),
  approvals: z.array(z.object({ group: z.string(), count: z.number().int().positive() })),
  autoApprove: z.boolean().describe('true when some requests may be approved at once (low risk)'),
  stepUp: z.object({ request: StepUpMode, approve: StepUpMode, methods: z.array(StepUpMethod) }),
  breakGlass: z.boolean().describe('true when the caller may use break-glass on this resource'),
  extend: z.object({ maxTotalSeconds: DurationSeconds, reapproval: z.boolean() }),
});
export type PolicySummary = z.infer<typeof PolicySummary>;

export const Resource = z.object({
  id: Id,
  name: z.string(),
  environment: z.string(),
  sensitivity: z.enum(['low', 'medium', 'high']),
  kind: ResourceKind,
  levels: z.array(z.string()).min(1),
  database: z.string(),
  policy: PolicySummary,
});
export type Resource = z.infer<typeof Resource>;

export const RiskAssessment = z.object({
  score: z.number().int().min(0).max(100),
  reasons: z.array(z.string()),
});
export type RiskAssessment = z.infer<typeof RiskAssessment>;

export const Approval = z.object({
  approver: z.string(),
  approverName: z.string().optional(),
  group: z.string(),
  at: Instant,
});

export const AccessRequest = z.object({
  id: Id,
  requester: z.string(),
  requesterName: z.string().optional(),
  resourceId: Id,
  level: z.string(),
  durationSeconds: DurationSeconds,
  reason: z.string(),
  ticket: z.string().optional(),
  breakGlass: z.boolean(),
  state: RequestState,
  policyVersion: z.number().int(),
  risk: RiskAssessment,
  approvals: z.array(Approval),
  approvalsNeeded: z.array(z.object({ group: z.string(), count: z.number().int(), have: z.number().int() })),
  stepUpRequired: z.boolean(),
  stepUpMethods: z.array(StepUpMethod),
  /** Pending approval: whether approving it needs a fresh step-up, and with which methods (the approve route's own answer). */
  approvalStepUp: z.object({ required: z.boolean(), methods: z.array(StepUpMethod) }).optional()
    .describe('set while the request is pending approval: whether approving it needs a fresh step-up, and the methods accepted'),
  createdAt: Instant,
  expiresAt: Instant.describe('pending: request TTL; approved: end of the activation window'),
  decidedAt: Instant.optional(),
  decisionReason: z.string().optional(),
  grantId: Id.optional(),
  /** Set on a request to extend an existing grant (policies whose extensions need re-approval). */
  extendsGrantId: Id.optional(),
  /** Who is asked to approve, the reminders sent and due, and the escalation (policy `reminders`, `escalation`). */
  asked: z.object({
    groups: z.array(z.string()).describe('the groups asked now: the approval groups, and the escalation group once it is eligible'),
    remindersSent: z.number().int(),
    nextReminderAt: Instant.optional(),
    escalation: z.object({ group: z.string(), at: Instant, reached: z.boolean() }).optional().describe('when the escalation group becomes (or became) eligible'),
  }).optional(),
});
export type AccessRequest = z.infer<typeof AccessRequest>;

export const Grant = z.object({
  id: Id,
  requestId: Id,
  owner: z.string(),
  resourceId: Id,
  /** What the grant reaches, so the agent knows how to connect to it (older servers knew only PostgreSQL). */
  kind: ResourceKind.default('postgres'),
  level: z.string(),
  state: GrantState,
  startsAt: Instant,
  endsAt: Instant,
  endedAt: Instant.optional(),
  endReason: z.string().optional(),
  extendedSeconds: z.number().int().nonnegative(),
  revocation: z.enum(['none', 'pending', 'done', 'retrying']),
  breakGlass: z.boolean(),
  /**
   * The device whose agent holds the grant's key (the `deviceId` sent at activation or rekey, else the request's),
   * when known: an agent offers to resume only grants of its own device (another device's live grant is not its own).
   */
  deviceId: z.string().optional(),
});
export type Grant = z.infer<typeof Grant>;

/** What activation hands to the grant's owner, once: how to reach the database through the bastion. */
export const Connection = z.object({
  /** hostKeys: what the agent pins; it refuses any other key (and connects nowhere without one). */
  bastion: z.object({ host: z.string(), port: z.number().int(), user: z.string(), hostKeys: z.array(z.string()).min(1) }),
  /** hostKeys: an SSH target host's keys, which the agent pins for it as it does the bastion's (issue #23). */
  target: z.object({ host: z.string(), port: z.number().int(), database: z.string(), hostKeys: z.array(z.string()).min(1).optional() }),
  dbUser: z.string(),
  dbPassword: z.string(),
});
export type Connection = z.infer<typeof Connection>;

// ---- request bodies (strict) ----
export const CreateRequestBody = z.strictObject({
  resourceId: Id,
  level: z.string().min(1).max(64),
  durationSeconds: DurationSeconds.optional(),
  reason: z.string().max(2000).default(''),
  ticket: z.string().max(128).optional(),
  breakGlass: z.boolean().default(false),
  deviceId: z.string().min(8).max(128).optional(),
});
export type CreateRequestBody = z.input<typeof CreateRequestBody>;

export const StepUpProof = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('webauthn'), challengeId: Id, response: z.record(z.string(), z.unknown()) }),
  z.strictObject({ method: z.literal('totp'), challengeId: Id, code: z.string().regex(/^[0-9]{6}$/, 'six digits') }),
]);
export type StepUpProof = z.infer<typeof StepUpProof>;

export const ApproveBody = z.strictObject({ comment: z.string().max(2000).optional(), stepUp: StepUpProof.optional() });
export const DenyBody = z.strictObject({ reason: z.string().min(1, 'a reason is required to deny').max(2000) });
export const CancelBody = z.strictObject({});
const PublicKeyLine = z.string().regex(/^ssh-ed25519 [A-Za-z0-9+/=]+( .*)?$/, 'an OpenSSH ssh-ed25519 public key line');
const DeviceId = z.string().min(8).max(128);
export const ActivateBody = z.strictObject({
  publicKey: PublicKeyLine,
  /** The activating agent's device (see Grant.deviceId); the request's device when left out. */
  deviceId: DeviceId.optional(),
});
/**
 * Take an active grant back after the agent lost its keys (it crashed): a new per-grant SSH key, as at activation.
 * The server makes the old key and the old database password useless before it answers with new ones.
 */
export const RekeyBody = z.strictObject({
  publicKey: PublicKeyLine,
  /** The device taking the grant back (see Grant.deviceId); unchanged when left out. */
  deviceId: DeviceId.optional(),
  /** A fresh proof for this grant's rekey, where the policy asks requests for a step-up (see the route). */
  stepUp: StepUpProof.optional(),
});
export const ExtendBody = z.strictObject({ durationSeconds: DurationSeconds, reason: z.string().max(2000).optional() });
export const ReleaseBody = z.strictObject({});
/** The active grants whose keys the calling agent holds (idle end: a policy may end a grant its agent stopped heartbeating). */
export const HeartbeatBody = z.strictObject({ grantIds: z.array(Id).min(1).max(200) });
/** Which of them are active grants of the caller (the others are not counted). */
export const HeartbeatResult = z.object({ seen: z.array(Id) });
export const RevealPasswordBody = z.strictObject({});
export const RevokeBody = z.strictObject({ reason: z.string().min(1, 'a reason is required to revoke').max(2000) });

export const CreateRequestResult = z.object({ request: AccessRequest, grant: Grant.optional() });
export const ActivateResult = z.object({ grant: Grant, connection: Connection });
/** A rekey answers like an activation: the same grant (same deadline) and its new connection, once. */
export const RekeyResult = ActivateResult;
export const RequestResult = z.object({ request: AccessRequest, grant: Grant.optional() });
export const RequestList = z.object({ requests: z.array(AccessRequest) });
export const GrantResult = z.object({ grant: Grant });
export const GrantList = z.object({ grants: z.array(Grant) });
/** Extension: applied at once (`grant` shows the new deadline), or filed for re-approval (`request` pending). */
export const ExtendResult = z.object({ grant: Grant, request: AccessRequest.optional() });
export const ResourceList = z.object({ resources: z.array(Resource) });
export const ListRequestsQuery = z.strictObject({
  role: z.enum(['mine', 'approver']).default('mine'),
  state: RequestState.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});
export const ListGrantsQuery = z.strictObject({
  all: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  state: GrantState.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});
export const AuditQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  /** Newest first below this seq (keyset paging: the last seq shown); implies order=desc. */
  before: z.coerce.number().int().positive().optional(),
  /** asc: oldest first from `after` (the default, chain order); desc: newest first (History). */
  order: z.enum(['asc', 'desc']).default('asc'),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
  requestId: Id.optional(),
  grantId: Id.optional(),
  /** e.g. `breakglass.used` to review break-glass uses, `refused.request.approve` for refused approvals. */
  action: z.string().max(64).optional(),
});

export const AuditEntry = z.object({
  seq: z.number().int(),
  at: Instant,
  actor: z.string(),
  action: z.string(),
  /** Whose request or grant the entry is about. */
  subject: z.string().optional(),
  requestId: z.string().optional(),
  grantId: z.string().optional(),
  resourceId: z.string().optional(),
  reason: z.string().optional(),
  policyVersion: z.number().int().optional(),
  risk: z.number().int().optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
  prevHash: z.string(),
  hash: z.string(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;
export const AuditList = z.object({ entries: z.array(AuditEntry) });
