// Table types for kysely. Instants are integer milliseconds since the epoch (UTC) so both SQLite and PostgreSQL
// (bigint) compare them natively; booleans are 0/1 integers; lists/objects are JSON text. No dialect-specific SQL.
import type { Generated } from 'kysely';

export interface RequestsTable {
  id: string;
  requester: string;
  requester_name: string | null;
  resource_id: string;
  level: string;
  duration_seconds: number;
  reason: string;
  ticket: string | null;
  break_glass: number;
  state: string;
  policy_id: string;
  policy_version: number;
  risk_score: number;
  risk_reasons: string;
  step_up_required: number;
  step_up_methods: string;
  approval_rules: string;
  device_id: string | null;
  source_ip: string | null;
  created_at: number;
  expires_at: number;
  decided_at: number | null;
  decision_reason: string | null;
  grant_id: string | null;
  /** Set when this request asks to extend an existing grant (extension that needs re-approval). */
  extends_grant_id: string | null;
  /** 1 when the policy approves this request without people once any step-up passed (auto-approve or break-glass). */
  auto_approve: number;
  /** The policy's nudges when the request was made (lifecycle/nudges.ts): JSON {reminders: seconds[], escalation?}. */
  nudges: string | null;
  /** How many reminders were sent; when the escalation group became eligible (epoch ms). */
  reminders_sent: number;
  escalated_at: number | null;
}

export interface ApprovalsTable {
  request_id: string;
  approver: string;
  approver_name: string | null;
  /** JSON array: the approver's groups that appear in the request's approval rules, at approval time. */
  groups: string;
  comment: string | null;
  at: number;
}

export interface GrantsTable {
  id: string;
  request_id: string;
  owner: string;
  resource_id: string;
  level: string;
  state: string;
  starts_at: number;
  ends_at: number;
  ended_at: number | null;
  end_reason: string | null;
  extended_seconds: number;
  revocation: string;
  revoke_attempts: number;
  next_revoke_at: number | null;
  last_revoke_error: string | null;
  db_username: string | null;
  key_type: string;
  key_base64: string;
  /** The device whose agent holds the key (activation's or rekey's deviceId, else the request's). */
  device_id: string | null;
  bastion_id: string;
  target_host: string;
  target_port: number;
  break_glass: number;
  policy_version: number;
  /** The resource's kind when the grant was issued (shared/contract/kinds.ts). */
  kind: string;
  /** When the grant's agent last heartbeat it (idle end); null before its first heartbeat. */
  agent_seen_at: number | null;
}

export interface AuditTable {
  seq: Generated<number>;
  at: number;
  actor: string;
  action: string;
  /** Whose request/grant this is about, so non-admins can read their own trail. */
  subject: string | null;
  request_id: string | null;
  grant_id: string | null;
  resource_id: string | null;
  reason: string | null;
  policy_version: number | null;
  risk: number | null;
  detail: string | null;
  prev_hash: string;
  hash: string;
}

export interface EventsTable {
  id: Generated<number>;
  at: number;
  type: string;
  /** JSON array of user subs that receive it. */
  users: string;
  /** JSON array of groups whose members receive it. */
  groups: string;
  /** JSON array of user subs excluded even when in a group (a requester never gets their own approval ask). */
  exclude: string;
  payload: string;
}

export interface IdempotencyTable {
  user_sub: string;
  key: string;
  fingerprint: string;
  status: number;
  body: string;
  created_at: number;
}

export interface SeenTable {
  user_sub: string;
  kind: string;
  value: string;
  first_seen: number;
  last_seen: number;
}

export interface PolicyVersionsTable {
  policy_id: string;
  version: number;
  hash: string;
  created_at: number;
  /** The policy as canonical JSON (migration 0014); null for versions recorded before it. */
  body: string | null;
}

/** An sshd connection process (pid on a bastion) serving a grant; see server/bastion/sessions.ts. */
export interface BastionSessionsTable {
  bastion_id: string;
  pid: number;
  grant_id: string;
  recorded_at: number;
}

/** A rate-limit counter shared by every instance: calls of one caller in one class since window_start (epoch ms). */
export interface RateLimitsTable {
  key: string;
  window_start: number;
  count: number;
}

/** PostgreSQL only: the audit chain's head, one row (id 1), locked by whoever appends (see lifecycle/audit.ts). */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

/** A browser sign-in to the approve page under way (server/web): single use, minutes long. */
export interface WebLoginsTable {
  id_hash: string;
  state: string;
  return_to: string;
  expires_at: number;
}

/** A signed-in browser session of the approve page (server/web): who, until when (epoch ms). */
export interface WebSessionsTable {
  id_hash: string;
  sub: string;
  name: string | null;
  email: string | null;
  /** JSON array of group names. */
  groups: string;
  admin: number;
  auth_time: number | null;
  created_at: number;
  expires_at: number;
}

/** The webhook outbox: one row per event and endpoint (see server/webhooks). */
export interface WebhookDeliveriesTable {
  id: Generated<number>;
  endpoint: string;
  /** The Standard Webhooks `webhook-id`: the same on every attempt, so receivers can drop a repeat. */
  message_id: string;
  event_type: string;
  /** The event as JSON (the standard format); other formats are made from it when sent. */
  payload: string;
  created_at: number;
  /** pending (to send, or to retry), delivered, failed (gave up after the configured attempts). */
  state: string;
  attempts: number;
  next_attempt_at: number;
  /** While an instance sends it: until when the claim holds, and the claim's token (its outcome is recorded only with it). */
  lease_until: number | null;
  lease_token: string | null;
  last_attempt_at: number | null;
  last_status: number | null;
  /** The last attempt that did not deliver, and why (kept once delivered, for the admin view). */
  last_failed_at: number | null;
  last_error: string | null;
  delivered_at: number | null;
}

/** A break-glass use waiting for (or with) its review by the resource's approvers. */
export interface BreakglassReviewsTable {
  id: string;
  request_id: string;
  resource_id: string;
  requester: string;
  reason: string;
  /** JSON array: the groups whose members may record the review (the policy's approvers; admins always may). */
  groups: string;
  created_at: number;
  due_at: number;
  reminded_at: number | null;
  reviewed_by: string | null;
  reviewed_at: number | null;
  outcome: string | null;
  note: string | null;
}

export interface Database {
  requests: RequestsTable;
  approvals: ApprovalsTable;
  grants: GrantsTable;
  audit: AuditTable;
  events: EventsTable;
  idempotency: IdempotencyTable;
  seen: SeenTable;
  policy_versions: PolicyVersionsTable;
  bastion_sessions: BastionSessionsTable;
  audit_head: AuditHeadTable;
  rate_limits: RateLimitsTable;
  web_logins: WebLoginsTable;
  web_sessions: WebSessionsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  breakglass_reviews: BreakglassReviewsTable;
}
