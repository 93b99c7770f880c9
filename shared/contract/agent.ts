// The AgentApi: everything a shell (Electron preload/IPC, the web host's WebSocket, the CLI) may call on the agent
// core or observe from it. One object, `agentApi`, maps each method to its input and output schema so a shell
// registers handlers and preload functions by iterating it; every payload crossing a process boundary is parsed
// with these schemas. Secrets never appear in the observable state: the connection URI (with its password) is
// returned only by `connectionUri`, on an explicit request.
import { z } from 'zod';
import { ReviewList, ReviewOutcome, ReviewResult } from './reviews';
import {
  ChallengeBody, CredentialInfo, CredentialList, RegisterOptionsBody, RegisterOptionsResult, RegisterVerifyBody, StepUpChallenge,
  StepUpStatus, TotpConfirmBody, TotpConfirmResult, TotpEnrollBody, TotpEnrollResult,
} from './stepup';
import { AgentProblem } from './problem';
import { AdminLive, AuditExportFormat, AuditFilterFields, AuditPage, AuditVerifyStatus } from './admin';
import { PolicyHistory, PolicyHistoryQuery } from './policy';
import { WebhookStatusList } from './webhooks';
import {
  AuditList,
  AccessRequest, CreateRequestBody, DurationSeconds, Grant, Id, Instant, Me, Resource, ResourceKind, StepUpProof,
} from './http';

// ---- observable state ----
/** The signed-in user as the server describes them (GET /v1/me), without the server's clock reading. */
export const AgentUser = Me.omit({ serverTime: true });
export type AgentUser = z.infer<typeof AgentUser>;

export const SessionView = z.discriminatedUnion('status', [
  /** endSessionUrl: after a sign-out, where the user may end the sign-in service's own session too. */
  z.object({ status: z.literal('signed_out'), message: z.string().optional(), endSessionUrl: z.string().url().optional() }),
  /** authorizationUrl: the IdP page the browser was sent to, for when no browser opened by itself. */
  z.object({ status: z.literal('signing_in'), authorizationUrl: z.string().url().optional() }),
  z.object({ status: z.literal('signed_in'), user: AgentUser }),
]);
export type SessionView = z.infer<typeof SessionView>;

export const ServerView = z.object({
  url: z.string(),
  /** offline: the server cannot be reached; active access still ends on time (the agent enforces it locally). */
  status: z.enum(['online', 'connecting', 'offline']),
  message: z.string().optional(),
  /** Server clock minus this computer's clock, ms (from the server's Date header / serverTime). */
  clockOffsetMs: z.number(),
});
export type ServerView = z.infer<typeof ServerView>;

export const TunnelView = z.object({
  status: z.enum(['opening', 'open', 'closed', 'failed']),
  host: z.literal('127.0.0.1'),
  port: z.number().int().optional(),
  /** The stable port for this resource; differs from `port` when it was busy. */
  preferredPort: z.number().int().optional(),
  /** Plain-words note for the user, e.g. "Port 15432 is in use by another program — using 15433 for this grant." */
  message: z.string().optional(),
  connections: z.number().int().nonnegative(),
  /**
   * The client command (psql, mariadb, … as the grant's kind has it) that connects through this tunnel with no
   * password typed: the client reads it from this grant's 0600 file in the agent's data dir (wiped with the grant).
   * Holds no secret; for the user to copy and run.
   */
  command: z.string().optional(),
  /** What a GUI client needs besides host and port (the password only through revealPassword). */
  database: z.string().optional(),
  user: z.string().optional(),
});
export type TunnelView = z.infer<typeof TunnelView>;

/**
 * Where a grant's access is, decided once by the agent core (agent/core/grant-phase.ts) and republished whenever it
 * changes: `active`; `ending_soon` once an expiry warning was given (until an extension takes the end past it);
 * `ended` once local access ended or the server ended the grant. Every host shows this and never works it out from
 * the times; only the countdown text is drawn from `localEndsAt` (it changes every second, the phase does not).
 */
export const GrantPhase = z.enum(['active', 'ending_soon', 'ended']);
export type GrantPhase = z.infer<typeof GrantPhase>;

export const LocalGrant = z.object({
  grant: Grant,
  resourceName: z.string().optional(),
  environment: z.string().optional(),
  /**
   * When local access ends, as an instant on THIS computer's clock: the earlier of the server deadline (corrected
   * for clock offset) and the monotonic estimate. Time left = localEndsAt − now.
   */
  localEndsAt: Instant,
  /** 'ended' once the agent has ended local access (deadline, release, revoke), whether or not the server knows. */
  localState: z.enum(['active', 'ended']),
  /** The last expiry warning given that still stands: 5 or 1 (minutes left). */
  warnedMinutes: z.number().int().positive().optional(),
  phase: GrantPhase,
  tunnel: TunnelView.optional(),
  /**
   * Left from before: the server lists this grant as active for THIS device, but this agent holds none of its keys —
   * Stint stopped (crashed, was killed) while the access was active, and its keys were wiped at the next start. It
   * cannot be used as it is: `resumeGrant` takes it back with new keys (same end; the old key and password stop
   * working), `release` ends it. Never set for another device's grant.
   */
  leftFromBefore: z.boolean().optional(),
});
export type LocalGrant = z.infer<typeof LocalGrant>;

export const AgentState = z.object({
  /** Increases with every change, so shells can drop stale snapshots. */
  version: z.number().int().nonnegative(),
  session: SessionView,
  server: ServerView,
  resources: z.array(Resource),
  /** My requests that are still pending or were decided recently. */
  requests: z.array(AccessRequest),
  /** Requests waiting for my approval. */
  approvals: z.array(AccessRequest),
  /** My grants: active ones (soonest end first), then recently ended ones until they are dismissed. */
  grants: z.array(LocalGrant),
});
export type AgentState = z.infer<typeof AgentState>;

export const NotificationAction = z.enum(['approve', 'deny', 'open_psql', 'copy_uri', 'extend', 'open']);
export type NotificationAction = z.infer<typeof NotificationAction>;

export const AgentNotification = z.object({
  /** Stable per cause: a shell may replace an earlier notification with the same id. */
  id: z.string(),
  /** security: something changed about the user's account (a factor added or removed), whoever did it. */
  /** breakglass: someone used break-glass on a resource I approve, or its review is overdue (to approvers and admins). */
  kind: z.enum(['approval_asked', 'approved', 'denied', 'expiring', 'ended', 'revoked', 'security', 'breakglass']),
  title: z.string(),
  body: z.string(),
  actions: z.array(NotificationAction),
  requestId: Id.optional(),
  grantId: Id.optional(),
  /** The kind of resource it is about, for the words of its actions ("Open in psql", "Open in mariadb"). */
  resourceKind: ResourceKind.optional(),
});
export type AgentNotification = z.infer<typeof AgentNotification>;

/** A failed call or a background failure, as a shell gets it: the one problem shape (problem.ts). */
export { AgentProblem };
/**
 * A call's outcome as it crosses Electron IPC and the contextBridge: a plain union, which structured clone carries
 * whole (an Error's `code` and the server's problem members would be dropped on the way).
 */
export type AgentResult<T> = { ok: true; value: T } | { ok: false; error: AgentProblem };

export const AgentEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('state'), state: AgentState }),
  z.object({ type: z.literal('notification'), notification: AgentNotification }),
  /** Something failed in the background (not in answer to a call): shown, never fatal. */
  z.object({ type: z.literal('problem'), problem: AgentProblem }),
]);
export type AgentEvent = z.infer<typeof AgentEvent>;

// ---- settings (non-secret preferences) ----
export const PreferredClient = z.enum(['psql', 'uri']);
export const DEFAULT_SCOPES = 'openid offline_access email profile groups';
/** Space-separated OAuth scopes; `openid` is required (Stint is an OpenID Connect client). */
export const OidcScopes = z.string().max(512)
  .regex(/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/, 'scopes separated by single spaces (RFC 6749 scope characters)')
  .refine((s) => s.split(' ').includes('openid'), 'the scopes must include openid');
export const AudienceParameter = z.enum(['resource', 'audience', 'none']);
export const AgentSettings = z.object({
  serverUrl: z.string().url().optional(),
  issuer: z.string().url().optional(),
  clientId: z.string().default('stint-agent'),
  /** The API audience (resource indicator) asked for in the authorization request. */
  audience: z.string().optional(),
  /** Scopes asked for at sign-in, space-separated: some IdPs refuse ones they do not know (e.g. `groups`). */
  scopes: OidcScopes.default(DEFAULT_SCOPES),
  /**
   * How the audience is asked for: `resource` (RFC 8707: Okta, oidc-provider), `audience` (Auth0's parameter), or
   * `none` (the IdP puts it in tokens by its own configuration: Keycloak's audience mapper, Entra's scope).
   */
  audienceParameter: AudienceParameter.default('resource'),
  defaultDurationSeconds: DurationSeconds.optional(),
  /** Stable local port per resource id; resources not listed get a port derived from their id. */
  ports: z.record(z.string(), z.number().int().min(1024).max(65535)).default({}),
  preferredClient: PreferredClient.default('psql'),
  /** Made once on first start, sent with every request (the server's risk signals). */
  deviceId: z.string().min(8).max(128),
});
export type AgentSettings = z.infer<typeof AgentSettings>;
// A patch names only what changes: built from the fields without their defaults, so `{ serverUrl }` alone cannot
// reset ports or the preferred client.
export const SettingsPatch = z.strictObject({
  serverUrl: z.string().url(),
  issuer: z.string().url(),
  clientId: z.string(),
  audience: z.string(),
  scopes: OidcScopes,
  audienceParameter: AudienceParameter,
  defaultDurationSeconds: DurationSeconds,
  ports: z.record(z.string(), z.number().int().min(1024).max(65535)),
  preferredClient: PreferredClient,
}).partial();
export type SettingsPatch = z.infer<typeof SettingsPatch>;

// ---- methods ----
const Empty = z.strictObject({});
const Ok = z.object({ ok: z.literal(true) });
const RequestRef = z.strictObject({ requestId: Id });
const GrantRef = z.strictObject({ grantId: Id });

/** What the UI asks the agent for: the server's CreateRequestBody without the device id (the agent adds its own). */
export const CreateRequestInput = CreateRequestBody.omit({ deviceId: true }).extend({
  /** Open the tunnel at once when the request is approved immediately (one click to a psql prompt). */
  connect: z.boolean().default(true),
});

export const ConnectResult = z.object({
  grantId: Id,
  host: z.literal('127.0.0.1'),
  port: z.number().int(),
  database: z.string(),
  user: z.string(),
  message: z.string().optional(),
});
export type ConnectResult = z.infer<typeof ConnectResult>;

/** An audit page as the console asks for it: the filter, the cursor (a seq) and the page size. */
export const AdminAuditInput = AuditFilterFields.extend({
  before: z.number().int().positive().optional(),
  limit: z.number().int().min(1).max(500).optional(),
});

export const agentApi = {
  getState: { input: Empty, output: AgentState },
  signIn: { input: Empty, output: z.object({ user: AgentUser }) },
  /** Abandon a sign-in waiting for the browser. */
  cancelSignIn: { input: Empty, output: Ok },
  signOut: { input: Empty, output: Ok },
  /** Re-fetch resources, requests, approvals and grants from the server. */
  refresh: { input: Empty, output: AgentState },
  createRequest: {
    input: CreateRequestInput,
    output: z.object({ request: AccessRequest, grant: Grant.optional(), connection: ConnectResult.optional() }),
  },
  cancelRequest: { input: RequestRef, output: z.object({ request: AccessRequest }) },
  /**
   * Turn my approved request into a grant held by this agent (its key, its tunnel): for a request made without
   * `connect` (a CI job asks and waits in one step, connects in the next).
   */
  activateRequest: { input: RequestRef, output: ConnectResult },
  submitStepUp: { input: z.strictObject({ requestId: Id, proof: StepUpProof }), output: z.object({ request: AccessRequest }) },
  approve: {
    input: z.strictObject({ requestId: Id, comment: z.string().max(2000).optional(), stepUp: StepUpProof.optional() }),
    output: z.object({ request: AccessRequest }),
  },
  deny: { input: z.strictObject({ requestId: Id, reason: z.string().min(1).max(2000) }), output: z.object({ request: AccessRequest }) },
  /** Activate (if needed) and open the local tunnel for an active grant. */
  connect: { input: GrantRef, output: ConnectResult },
  /** The postgres:// URI with the password: only on explicit request, never in the state. */
  connectionUri: { input: GrantRef, output: z.object({ uri: z.string() }) },
  /**
   * The environment `stint connect --exec` runs its command with, as the grant's kind has it (PG* for PostgreSQL,
   * the option file and MYSQL_* for MariaDB, the ssh_config and host alias for SSH). It may hold the password: only
   * on explicit request, never in the state.
   */
  execEnv: { input: GrantRef, output: z.object({ env: z.record(z.string(), z.string()) }) },
  copyConnectionUri: { input: GrantRef, output: Ok },
  /**
   * The database password, for a GUI client: put on the server's audit record first (refused when that fails or the
   * grant has ended), never in the state. `endsAt` is when it stops working, so a UI hides it then.
   */
  revealPassword: { input: GrantRef, output: z.object({ password: z.string(), user: z.string(), endsAt: Instant }) },
  openPsql: { input: GrantRef, output: Ok },
  /** `request` is set when policy sends the extension back for approval: the grant is unchanged until then. */
  extend: {
    input: z.strictObject({ grantId: Id, durationSeconds: DurationSeconds, reason: z.string().max(2000).optional() }),
    output: z.object({ grant: Grant, request: AccessRequest.optional() }),
  },
  release: { input: GrantRef, output: z.object({ grant: Grant }) },
  /**
   * Take back a grant left from before (LocalGrant.leftFromBefore): a new key, new credentials from the server for the
   * same grant and end, and the tunnel opened as at activation. `stepUp`: a proof for it, after a stepup_required.
   */
  resumeGrant: { input: z.strictObject({ grantId: Id, stepUp: StepUpProof.optional() }), output: ConnectResult },
  // Step-up and enrollment: passed through to the server's /v1/stepup routes with the agent's session, so the
  // renderer never holds a token. The WebAuthn ceremony itself runs in the renderer (navigator.credentials).
  stepUpChallenge: { input: ChallengeBody, output: StepUpChallenge },
  stepUpStatus: { input: Empty, output: StepUpStatus },
  listCredentials: { input: Empty, output: CredentialList },
  /** Needs a fresh step-up (an `enroll` challenge) with a factor the user has: `stepUp`, after a stepup_required. */
  removeCredential: { input: z.strictObject({ id: z.string().min(1).max(1024), stepUp: StepUpProof.optional() }), output: Ok },
  registerPasskeyOptions: { input: RegisterOptionsBody, output: RegisterOptionsResult },
  registerPasskeyVerify: { input: RegisterVerifyBody, output: CredentialInfo },
  enrollTotp: { input: TotpEnrollBody, output: TotpEnrollResult },
  confirmTotp: { input: TotpConfirmBody, output: TotpConfirmResult },
  /**
   * My audit trail (admins: everyone's). Newest first, `before` the last seq already shown (History's next page); or,
   * with `after`, oldest first from that seq (chain order: following what happens from a point on).
   */
  history: {
    input: z.strictObject({
      before: z.number().int().positive().optional(),
      after: z.number().int().min(0).optional(),
      limit: z.number().int().min(1).max(500).optional(),
    }).refine((q) => q.before === undefined || q.after === undefined, 'either before (newest first) or after (oldest first), not both'),
    output: AuditList,
  },
  // The admin console (issue #25): the server refuses these (admin_only) to anyone but an administrator; the UI shows
  // them only when session.user.admin.
  /** Active grants, grants still ending (revocation not yet confirmed) and pending requests, with who/what/why. */
  adminLive: { input: Empty, output: AdminLive },
  /** End someone's grant now, with a reason (audited); their sessions are cut as at a deadline. */
  adminRevoke: { input: z.strictObject({ grantId: Id, reason: z.string().min(1).max(2000) }), output: z.object({ grant: Grant }) },
  /** The audit newest first, filtered; `before` is the previous page's `next`. */
  adminAudit: { input: AdminAuditInput, output: AuditPage },
  /** The chain's last verification and newest signed checkpoint; `run` starts a verification in the background. */
  adminAuditVerify: { input: z.strictObject({ run: z.boolean().default(false) }), output: AuditVerifyStatus },
  /** Save the filtered audit (oldest first) as JSON Lines or CSV in the agent's export folder; answers where. */
  adminAuditExport: { input: AuditFilterFields.extend({ format: AuditExportFormat }), output: z.object({ path: z.string(), bytes: z.number().int().nonnegative() }) },
  /** Each outbound webhook endpoint with its last delivery, failures and backlog (issue #24). */
  adminWebhooks: { input: Empty, output: WebhookStatusList },
  /** Policy versions newest first (one policy, or all), each with its diff from the version before (issue #25). */
  adminPolicyHistory: { input: PolicyHistoryQuery.extend({ limit: z.number().int().min(1).max(500).optional() }), output: PolicyHistory },
  /** Break-glass uses I may review: open ones, or (`all`) recorded ones too. */
  listReviews: { input: z.strictObject({ all: z.boolean().optional() }), output: ReviewList },
  recordReview: { input: z.strictObject({ reviewId: Id, outcome: ReviewOutcome, note: z.string().max(2000).optional() }), output: ReviewResult },
  getSettings: { input: Empty, output: AgentSettings },
  updateSettings: { input: SettingsPatch, output: AgentSettings },
} as const;

export type AgentApi = typeof agentApi;
export type AgentMethod = keyof AgentApi;
export type AgentInput<M extends AgentMethod> = z.input<AgentApi[M]['input']>;
export type AgentOutput<M extends AgentMethod> = z.infer<AgentApi[M]['output']>;
/** What the core implements and every shell exposes: one async function per method. */
export type AgentApiHandlers = { [M in AgentMethod]: (input: AgentInput<M>) => Promise<AgentOutput<M>> };
