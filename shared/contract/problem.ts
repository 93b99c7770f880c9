// One problem contract across every seam (#20). Every failure any layer reports — the grant server over HTTP, the
// agent over IPC, its WebSocket and local socket, the renderer to itself — is an RFC 9457 problem whose `code` is one
// of PROBLEMS' keys. The agent passes a server's problem through as it came (its code IS the server's code), so the
// renderer and the CLI switch on one union and a new code without words fails the type check there.
import { z } from 'zod';
import { Instant, StepUpMethod } from './primitives';

type HttpStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 422 | 429 | 500 | 503;

/**
 * Each code as data: the HTTP status the grant server answers with it, or the layer that makes it (`agent`: the agent
 * core and its hosts; `renderer`: the UI itself); a title (RFC 9457: one per type, the same every time); and whether
 * the user can do something about it (sign in, wait, change what they asked, set up a factor…) rather than only tell
 * an administrator.
 */
export type ProblemEntry =
  | { status: HttpStatus; title: string; userCanAct: boolean }
  | { origin: 'agent' | 'renderer'; title: string; userCanAct: boolean };

export const PROBLEMS = {
  // ---- the grant server: reading the request (server/app.ts, server/http)
  bad_request: { status: 400, title: 'Request could not be read', userCanAct: false },
  invalid_json: { status: 400, title: 'Body is not JSON', userCanAct: false },
  body_too_large: { status: 413, title: 'Body too large', userCanAct: false },
  unsupported_media_type: { status: 415, title: 'Body must be JSON', userCanAct: false },
  invalid_id: { status: 400, title: 'Invalid id in the path', userCanAct: false },
  invalid_body: { status: 400, title: 'Invalid request body', userCanAct: false },
  invalid_query: { status: 400, title: 'Invalid query string', userCanAct: false },
  validation_failed: { status: 400, title: 'Invalid request body', userCanAct: false },
  invalid_idempotency_key: { status: 400, title: 'Invalid Idempotency-Key', userCanAct: false },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key reused', userCanAct: false },
  idempotency_in_progress: { status: 409, title: 'Same request still in progress', userCanAct: true },
  invalid_last_event_id: { status: 400, title: 'Invalid Last-Event-ID', userCanAct: false },
  route_not_found: { status: 404, title: 'No such route', userCanAct: false },
  internal: { status: 500, title: 'Internal error', userCanAct: false },
  rate_limited: { status: 429, title: 'Too many calls', userCanAct: true },
  storage_unavailable: { status: 503, title: 'Storage unavailable', userCanAct: true },
  // ---- the grant server: who is asking (server/identity)
  token_missing: { status: 401, title: 'Sign-in required', userCanAct: true },
  token_invalid: { status: 401, title: 'Access token not accepted', userCanAct: true },
  token_expired: { status: 401, title: 'Access token expired', userCanAct: true },
  token_wrong_audience: { status: 401, title: 'Access token for another service', userCanAct: false },
  token_wrong_issuer: { status: 401, title: 'Access token from another issuer', userCanAct: false },
  idp_unavailable: { status: 503, title: 'Sign-in service unavailable', userCanAct: true },
  admin_only: { status: 403, title: 'Administrators only', userCanAct: false },
  config_reload_refused: { status: 422, title: 'Config file not applied', userCanAct: false },
  page_session_required: { status: 401, title: 'Sign-in to the approve page required', userCanAct: true },
  csrf_refused: { status: 403, title: 'Call not from the approve page', userCanAct: true },
  service_not_allowed: { status: 403, title: 'Not for service identities', userCanAct: false },
  // ---- the grant server: requests, approvals, grants (server/lifecycle)
  resource_not_found: { status: 404, title: 'No such resource', userCanAct: true },
  request_not_found: { status: 404, title: 'No such request', userCanAct: true },
  grant_not_found: { status: 404, title: 'No such grant', userCanAct: true },
  unknown_level: { status: 422, title: 'No such access level', userCanAct: true },
  reason_required: { status: 422, title: 'Reason required', userCanAct: true },
  ticket_required: { status: 422, title: 'Ticket required', userCanAct: true },
  ticket_invalid: { status: 422, title: 'Ticket not in the expected form', userCanAct: true },
  duration_over_limit: { status: 422, title: 'Duration over the limit', userCanAct: true },
  not_a_requester: { status: 403, title: 'Only with break-glass', userCanAct: true },
  breakglass_not_allowed: { status: 403, title: 'Break-glass not allowed', userCanAct: false },
  no_approval_route: { status: 409, title: 'Nobody can approve this', userCanAct: false },
  outside_change_window: { status: 409, title: 'Outside the change window', userCanAct: true },
  self_approval: { status: 403, title: 'Own request', userCanAct: true },
  not_an_approver: { status: 403, title: 'Not an approver', userCanAct: false },
  review_not_found: { status: 404, title: 'No such review', userCanAct: true },
  review_already_recorded: { status: 409, title: 'Review already recorded', userCanAct: true },
  self_review: { status: 403, title: 'Own break-glass use', userCanAct: false },
  already_approved: { status: 409, title: 'Already approved by you', userCanAct: false },
  approval_not_needed: { status: 409, title: 'Approval no longer needed', userCanAct: false },
  illegal_transition: { status: 409, title: 'Not possible in this state', userCanAct: true },
  request_expired: { status: 409, title: 'Request expired', userCanAct: true },
  busy: { status: 409, title: 'Being changed', userCanAct: true },
  key_in_use: { status: 409, title: 'Key already in use', userCanAct: true },
  resource_gone: { status: 409, title: 'Resource removed', userCanAct: false },
  grant_ended: { status: 409, title: 'Grant ended', userCanAct: true },
  grant_active: { status: 409, title: 'Grant still active', userCanAct: false },
  not_due: { status: 409, title: 'Grant not due to end', userCanAct: false },
  extension_not_allowed: { status: 409, title: 'Extensions not allowed', userCanAct: false },
  extension_over_limit: { status: 409, title: 'Extension over the limit', userCanAct: true },
  credentials_failed: { status: 503, title: 'Database access could not be made', userCanAct: true },
  credentials_unavailable: { status: 503, title: 'No database access configured', userCanAct: false },
  // ---- the grant server: step-up (server/stepup; the lifecycle answers a refused proof with the same codes)
  stepup_required: { status: 403, title: 'Step-up required', userCanAct: true },
  fresh_signin_required: { status: 403, title: 'Sign in again first', userCanAct: true },
  stepup_unavailable: { status: 409, title: 'Step-up not configured', userCanAct: false },
  stepup_not_pending: { status: 409, title: 'No step-up pending', userCanAct: false },
  stepup_invalid: { status: 403, title: 'Step-up proof refused', userCanAct: true },
  stepup_expired: { status: 410, title: 'Step-up challenge expired', userCanAct: true },
  stepup_replayed: { status: 409, title: 'Step-up proof already used', userCanAct: true },
  stepup_wrong_action: { status: 403, title: 'Step-up proof is for another action', userCanAct: true },
  stepup_locked: { status: 429, title: 'One-time codes locked', userCanAct: true },
  stepup_method_not_allowed: { status: 403, title: 'Step-up method not allowed here', userCanAct: true },
  stepup_no_credential: { status: 403, title: 'Credential not registered to you', userCanAct: true },
  stepup_not_enrolled: { status: 409, title: 'No step-up method set up', userCanAct: true },
  stepup_duplicate: { status: 409, title: 'Authenticator already registered', userCanAct: false },
  credential_not_found: { status: 404, title: 'No such credential', userCanAct: false },
  totp_not_enrolled: { status: 404, title: 'No authenticator app set up', userCanAct: true },
  totp_already_confirmed: { status: 409, title: 'Authenticator app already set up', userCanAct: false },
  totp_wrong_code: { status: 400, title: 'Wrong code', userCanAct: true },
  // ---- the agent (agent/core and its hosts)
  keychain_unavailable: { origin: 'agent', title: 'Keychain unavailable', userCanAct: true },
  keychain_locked: { origin: 'agent', title: 'Keychain locked', userCanAct: true },
  login_cancelled: { origin: 'agent', title: 'Sign-in cancelled', userCanAct: true },
  login_timeout: { origin: 'agent', title: 'Sign-in timed out', userCanAct: true },
  login_failed: { origin: 'agent', title: 'Sign-in failed', userCanAct: true },
  idp_unreachable: { origin: 'agent', title: 'Sign-in service unreachable', userCanAct: true },
  not_signed_in: { origin: 'agent', title: 'Not signed in', userCanAct: true },
  session_expired: { origin: 'agent', title: 'Sign-in expired', userCanAct: true },
  server_unreachable: { origin: 'agent', title: 'Server unreachable', userCanAct: true },
  server_error: { origin: 'agent', title: 'Server error', userCanAct: false },
  malformed_response: { origin: 'agent', title: 'Unexpected answer from the server', userCanAct: false },
  bastion_unreachable: { origin: 'agent', title: 'Bastion unreachable', userCanAct: true },
  bastion_auth_failed: { origin: 'agent', title: 'Bastion refused the key', userCanAct: false },
  bastion_host_key_mismatch: { origin: 'agent', title: 'Bastion host key mismatch', userCanAct: false },
  tunnel_failed: { origin: 'agent', title: 'Tunnel failed', userCanAct: true },
  port_unavailable: { origin: 'agent', title: 'Port unavailable', userCanAct: true },
  not_found: { origin: 'agent', title: 'Not found', userCanAct: false },
  invalid_input: { origin: 'agent', title: 'Invalid input', userCanAct: true },
  launcher_failed: { origin: 'agent', title: 'Could not open the client', userCanAct: true },
  export_failed: { origin: 'agent', title: 'Export not saved', userCanAct: true },
  unknown_method: { origin: 'agent', title: 'Not supported by this agent', userCanAct: false },
  forbidden_sender: { origin: 'agent', title: 'Call refused', userCanAct: false },
  // ---- the renderer (renderer/src): the agent itself out of reach
  agent_unreachable: { origin: 'renderer', title: 'Agent unreachable', userCanAct: true },
  no_token: { origin: 'renderer', title: 'Page opened without its token', userCanAct: true },
  network_error: { origin: 'renderer', title: 'Network error', userCanAct: true },
} as const satisfies Record<string, ProblemEntry>;

export type ProblemCode = keyof typeof PROBLEMS;
export const ProblemCode = z.enum(Object.keys(PROBLEMS) as [ProblemCode, ...ProblemCode[]]);

/** The codes the grant server answers with, and their HTTP status. */
export function problemStatus(code: ProblemCode): HttpStatus | undefined {
  const entry: ProblemEntry = PROBLEMS[code];
  return 'status' in entry ? entry.status : undefined;
}

/** The one `type` URI scheme (RFC 9457 §3.1.1): the code under https://stint.dev/problems/. */
export const problemType = (code: ProblemCode): string => `https://stint.dev/problems/${code}`;

/**
 * The problem+json every refusal is (RFC 9457), with the members the clients need to explain it: which fields were
 * wrong, what to step up for, how many attempts are left, until when codes are locked, the grant a failed activation
 * created.
 */
export const Problem = z.object({
  type: z.string().describe('https://stint.dev/problems/<code>'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  code: ProblemCode,
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  /** With code `stepup_required` from an action: what to step up for and how. */
  stepUp: z.object({ methods: z.array(StepUpMethod), action: z.object({ kind: z.enum(['request', 'approve']), requestId: z.string() }) }).optional(),
  /** With a failed activation: the grant that was created and failed. */
  grantId: z.string().optional(),
  /** Step-up failures: why the proof was refused (e.g. `wrong_code`), attempts left, locked until, usable methods. */
  reason: z.string().optional(),
  attemptsLeft: z.number().int().optional(),
  retryAfter: Instant.optional(),
  methods: z.array(StepUpMethod).optional(),
});
export type Problem = z.infer<typeof Problem>;

/**
 * A failed call as it reaches a shell (AgentResult over IPC, the WebSocket and the local socket; `problem` events):
 * the same Problem, where `detail` is always there (the words for the user) and `status` only when the grant server
 * answered over HTTP — a locked keychain has no HTTP status.
 */
export const AgentProblem = Problem.extend({ status: z.number().int().optional(), detail: z.string() });
export type AgentProblem = z.infer<typeof AgentProblem>;

/** The members a problem may carry besides its code and words. */
export type ProblemMembers = Partial<Omit<AgentProblem, 'code' | 'detail'>>;

/** A problem made outside the grant server (the agent, a shell, the renderer): its type and title from the table. */
export function localProblem(code: ProblemCode, detail: string, members: ProblemMembers = {}): AgentProblem {
  return { type: problemType(code), title: PROBLEMS[code].title, code, detail, ...members };
}
