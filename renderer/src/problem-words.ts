// What the UI says for each problem code. Every failure reaching the renderer carries the one ProblemCode union
// (shared/contract/problem.ts) — the grant server's own codes pass through the agent unchanged — so this table has
// one entry per code, and a code added to the union without words here fails the type check. Where the agent's
// own words are already plain (its `detail`), they are used; the server's are written for logs, so they are not.
import { PROBLEMS, type AgentProblem, type ProblemCode } from '../../shared/contract/problem';
import { formatWhen } from './format';

/** A problem as the views hold it: its code, and whichever members came with it. */
export type ProblemFacts = Pick<AgentProblem, 'code'> & Partial<AgentProblem>;
type Words = (problem: ProblemFacts) => string;

/** The problem's own words: the agent writes them for the user. */
const said: Words = (p) => p.detail ?? PROBLEMS[p.code].title;
const is = (text: string): Words => () => text;
const AGAIN = 'Try again in a moment.';
const MISMATCH = is('Stint sent the server something it could not use. This app and the server may be different versions — update Stint; if it keeps happening, tell your Stint administrator.');
const SIGN_IN_AGAIN = is('Your sign-in is no longer accepted. Sign in again.');
const NEEDS_FACTOR = is('This needs a way to confirm it is you, and you have not set one up yet. Add one under “Security keys and codes” in Settings.');

export const PROBLEM_WORDS: Record<ProblemCode, Words> = {
  bad_request: MISMATCH, invalid_json: MISMATCH, body_too_large: MISMATCH, unsupported_media_type: MISMATCH, invalid_id: MISMATCH,
  invalid_body: MISMATCH, invalid_query: MISMATCH, validation_failed: MISMATCH, invalid_idempotency_key: MISMATCH,
  idempotency_key_reused: MISMATCH, invalid_last_event_id: MISMATCH, route_not_found: MISMATCH,
  idempotency_in_progress: is(`The server is still working on the same request. ${AGAIN}`),
  internal: is('Something went wrong inside Stint. Try again; details are in the log.'),
  storage_unavailable: is(`The Stint server can’t reach its database right now. ${AGAIN}`),
  token_missing: SIGN_IN_AGAIN, token_invalid: SIGN_IN_AGAIN, token_expired: SIGN_IN_AGAIN,
  token_wrong_audience: is('The Stint server doesn’t accept sign-ins meant for another service. Tell your Stint administrator.'),
  token_wrong_issuer: is('The Stint server doesn’t accept sign-ins from this sign-in service. Tell your Stint administrator.'),
  idp_unavailable: is(`The Stint server can’t check your sign-in right now. ${AGAIN}`),
  admin_only: is('Only Stint administrators can do that.'),
  config_reload_refused: is('The config file was not applied: it has errors. The running policies stay as they were.'),
  page_session_required: is('Your sign-in on this page has ended. Reload the page to sign in again.'),
  csrf_refused: is('This page’s sign-in could not be confirmed for that action. Reload the page and try again.'),
  service_not_allowed: is('Service identities (CI jobs, bots) can’t do that: only people can.'),
  resource_not_found: is('That resource isn’t one you can request (any more).'),
  request_not_found: is('That request isn’t there any more, or isn’t one you can see.'),
  grant_not_found: is('That access isn’t one of yours, or isn’t there any more.'),
  unknown_level: is('That access level doesn’t exist on this resource. Pick one of the levels offered.'),
  reason_required: is('This resource needs a reason. Say why you need access.'),
  ticket_required: is('This resource needs a ticket. Enter the change or incident id.'),
  ticket_invalid: is('The ticket isn’t in the form this resource expects.'),
  duration_over_limit: is('That’s longer than this resource allows. Ask for less time.'),
  not_a_requester: is('You can request this resource only with break-glass.'),
  breakglass_not_allowed: is('You can’t use break-glass on this resource.'),
  outside_change_window: is('Services can request this resource only inside its change window.'),
  no_approval_route: is('Nobody could approve this request: the resource’s policy has no approvers. Tell your Stint administrator.'),
  self_approval: is('You can’t decide your own request. Someone in an approving group has to; you can only cancel it.'),
  not_an_approver: is('You’re not in a group that approves this request.'),
  review_not_found: is('That review isn’t one of yours to record. Reload the list.'),
  review_already_recorded: is('Someone has already recorded this review.'),
  self_review: is('You can’t review your own break-glass use; the resource’s approvers do.'),
  already_approved: is('You already approved this request. It now waits for the other approvers.'),
  approval_not_needed: is('Others already gave the approvals you could give. Nothing more to do.'),
  illegal_transition: is('That’s no longer possible: it changed in the meantime (cancelled, decided or ended). The list shows how it is now.'),
  request_expired: is('This request has expired. Ask again.'),
  busy: is(`The server is busy with this right now. ${AGAIN}`),
  key_in_use: is(`That key already belongs to other access. ${AGAIN}`),
  resource_gone: is('This resource has been removed from Stint.'),
  grant_ended: is('This access has already ended. Ask again if you still need it.'),
  grant_active: is('This access has not ended yet.'),
  not_due: is('This access isn’t due to end yet.'),
  extension_not_allowed: is('This access can’t be extended. Ask again when it ends.'),
  extension_over_limit: is('That’s longer than this access may last in total. Extend by less, or ask again when it ends.'),
  credentials_failed: is(`The Stint server couldn’t set up your database access. ${AGAIN} If it keeps failing, tell your Stint administrator.`),
  credentials_unavailable: is('The Stint server has no database access configured. Tell your Stint administrator.'),
  stepup_required: is('This needs you to confirm it is you first.'),
  fresh_signin_required: is('Setting up your first sign-in factor needs a recent sign-in. Sign out, sign in again, then set it up.'),
  stepup_unavailable: is('This needs you to confirm it is you, but the server has no way set up. Tell your Stint administrator.'),
  stepup_not_pending: is('This request isn’t waiting for a confirmation.'),
  stepup_invalid: (p) => (p.attemptsLeft !== undefined
    ? `That code is not right. ${p.attemptsLeft} attempt${p.attemptsLeft === 1 ? '' : 's'} left before codes are locked for a while.`
    : 'That confirmation wasn’t accepted. Try again.'),
  stepup_expired: is('The confirmation took too long. Start again.'),
  stepup_replayed: is('That code was already used. Wait for your app’s next code.'),
  stepup_wrong_action: is('That confirmation was made for something else. Start again.'),
  rate_limited: () => 'Too many tries in a short time. Wait a minute, then try again.',
  stepup_locked: (p) => `Too many wrong codes: codes are locked${p.retryAfter ? ` until ${formatWhen(p.retryAfter)}` : ' for a few minutes'}. You can still use a passkey if you have one.`,
  stepup_method_not_allowed: is('That way of confirming isn’t allowed for this action.'),
  stepup_no_credential: NEEDS_FACTOR,
  stepup_not_enrolled: NEEDS_FACTOR,
  stepup_duplicate: is('This authenticator is already registered to your account.'),
  credential_not_found: is('That passkey isn’t registered to you (any more).'),
  totp_not_enrolled: is('You have no authenticator app set up.'),
  totp_already_confirmed: is('Your authenticator app is already set up.'),
  totp_wrong_code: is('That code does not match. Check that your phone’s clock is correct and type the current code.'),
  keychain_unavailable: said, keychain_locked: said, login_cancelled: said, login_timeout: said, login_failed: said,
  idp_unreachable: said, not_signed_in: said, session_expired: said, server_unreachable: said, server_error: said,
  malformed_response: said, bastion_unreachable: said, bastion_auth_failed: said, bastion_host_key_mismatch: said,
  tunnel_failed: said, port_unavailable: said, not_found: said, launcher_failed: said, forbidden_sender: said,
  export_failed: said,
  invalid_input: (p) => `Stint couldn’t use what was entered: ${said(p)}`,
  unknown_method: is('This version of the Stint agent can’t do that yet.'),
  agent_unreachable: said, no_token: said, network_error: said,
};

export function problemWords(problem: ProblemFacts): string {
  return PROBLEM_WORDS[problem.code](problem);
}
