// Failures in words a person understands, with what to do next. The agent's problems carry the one ProblemCode
// union (shared/contract/problem.ts): the server's own codes come through unchanged, so WORDS has one entry per code
// and a code added to the union without words here fails the type check. Programs get the same in --json.
import type { AgentProblem } from '../../shared/contract/agent';
import type { ProblemCode } from '../../shared/contract/problem';

/** A failure the CLI itself words; `exitCode` 2 is a usage error (wrong command line), 130 an interrupt. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1, readonly next?: string) {
    super(message);
  }
}

/** A problem the agent reported as an event (e.g. while restoring the session at start), explained like a thrown one. */
export class ReportedProblem extends Error {
  constructor(readonly problem: AgentProblem) {
    super(problem.detail);
  }
}

export interface Explained {
  message: string;
  next?: string;
}

export interface ExplainContext {
  profile: string;
}

type Words = (problem: AgentProblem, ctx: ExplainContext) => Explained;

function sentence(text: string): string {
  const t = text.trim().replace(/\.$/, '');
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}.`;
}

function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isFinite(d.getTime()) ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : iso;
}

const login = (ctx: ExplainContext) => `Run \`stint login${ctx.profile === 'cli' ? '' : ` --profile ${ctx.profile}`}\``;
/** The problem's own words (the agent's are plain already), with a next step. */
const said = (next?: string): Words => (p) => ({ message: sentence(p.detail), ...(next ? { next } : {}) });
/** Fixed words. */
const is = (message: string, next?: string): Words => () => ({ message, ...(next ? { next } : {}) });
const RETRY = 'Try again in a moment.';
const ADMIN = 'Tell your Stint administrator.';
/** What stint sent was not understood: a bug or two versions that do not match, nothing the user typed. */
const mismatch: Words = (p, ctx) => ({
  message: `The server could not use what stint sent: ${p.detail.replace(/\.$/, '')}.`,
  next: `This stint and the server may be different versions: update stint. (server code ${p.code}${p.status ? `, HTTP ${p.status}` : ''}; profile ${ctx.profile})`,
});
const signInAgain: Words = (_p, ctx) => ({ message: `Your sign-in is no longer accepted (profile ${ctx.profile}).`, next: `${login(ctx)} again.` });
const needsFactor = is('This needs a verification you have not set up yet (an authenticator app or a passkey).', 'Set one up in the Stint app (tray or web UI), then run the command again.');

const WORDS: Record<ProblemCode, Words> = {
  bad_request: mismatch, invalid_json: mismatch, body_too_large: mismatch, unsupported_media_type: mismatch, invalid_id: mismatch,
  invalid_body: mismatch, invalid_query: mismatch, validation_failed: mismatch, invalid_idempotency_key: mismatch,
  idempotency_key_reused: mismatch, invalid_last_event_id: mismatch, route_not_found: mismatch,
  idempotency_in_progress: is('The same request is still being handled by the server.', RETRY),
  internal: is('Something went wrong inside Stint.', 'Try again; if it keeps failing, report it.'),
  storage_unavailable: is('The server cannot reach its database right now.', RETRY),
  token_missing: signInAgain, token_invalid: signInAgain, token_expired: signInAgain,
  token_wrong_audience: is('The server does not accept sign-ins meant for another service.', `${ADMIN} (identity.audience and the sign-in service disagree)`),
  token_wrong_issuer: is('The server does not accept sign-ins from this sign-in service.', `${ADMIN} (identity.issuer and stint's --issuer disagree)`),
  idp_unavailable: is('The server cannot check your sign-in right now: the sign-in service does not answer it.', RETRY),
  admin_only: is('Only Stint administrators may do that.'),
  config_reload_refused: is('The config file was not applied: it has errors (listed above); the running policies stay as they were.', 'Fix the file, check it with `stint-server policy check FILE --config CURRENT`, then reload again.'),
  page_session_required: is('The approve page needs a sign-in in the browser.', 'Open the approve link again and sign in there.'),
  csrf_refused: is('The approve page refused a call that did not come from the page itself.', 'Reload the approve page and try again.'),
  service_not_allowed: is('A service identity (CI job, bot) may not do that: only people may.', 'Services may request, connect and release their own access.'),
  resource_not_found: is('There is no such resource that you may request.', 'See `stint resources`.'),
  request_not_found: is('There is no such request that you can see.', 'Check the id with `stint approvals`.'),
  grant_not_found: is('There is no such access of yours.', 'Check with `stint grants`.'),
  unknown_level: (p) => ({ message: sentence(p.detail), next: 'See `stint resources` for the levels of each resource.' }),
  reason_required: is('This resource needs a reason.', 'Add --reason "why you need it".'),
  ticket_required: is('This resource needs a ticket.', 'Add --ticket with the change or incident id.'),
  ticket_invalid: (p) => ({ message: `The ticket is not in the form this resource expects: ${p.detail}.`, next: 'Check --ticket.' }),
  duration_over_limit: (p) => ({ message: sentence(p.detail), next: 'Ask for less with --for (e.g. --for 1h).' }),
  not_a_requester: is('You may not request this resource (only with break-glass).', 'See `stint resources`.'),
  breakglass_not_allowed: is('You may not use break-glass on this resource.'),
  outside_change_window: (p) => ({ message: sentence(p.detail), next: 'Run the job inside the change window, or ask an administrator.' }),
  no_approval_route: (p) => ({ message: `Nobody could approve this request: ${p.detail}.`, next: `${ADMIN}: the resource's policy needs an approvals rule.` }),
  self_approval: is('You cannot decide your own request.', 'Someone in an approving group has to; you can only cancel it.'),
  not_an_approver: is('You are not in a group that approves this request.', 'See `stint approvals` for the requests waiting for you.'),
  review_not_found: is('That review is not one you may record.', 'See `stint reviews` for the reviews waiting for you.'),
  review_already_recorded: is('Someone has already recorded this review.', 'See `stint reviews --all`.'),
  self_review: is('You cannot review your own break-glass use.', 'The resource’s approvers review it.'),
  already_approved: is('You already approved this request.', 'It now waits for the other approvers.'),
  approval_not_needed: is('Others already filled the approval slots you could fill.', 'Nothing to do: see `stint approvals`.'),
  illegal_transition: (p) => ({ message: `This is no longer possible: ${p.detail}.`, next: 'See `stint approvals` (or `stint grants` for your own access).' }),
  request_expired: is('This request has expired.', 'Ask again.'),
  busy: is('The server is busy with this right now.', RETRY),
  key_in_use: is('This key already belongs to another active grant.', 'Run the command again: stint makes a new key each time.'),
  resource_gone: is('This resource has been removed from Stint.', 'See `stint resources`.'),
  grant_ended: is('This access has already ended.', 'See `stint grants`.'),
  grant_active: is('This access has not ended yet.', 'See `stint grants`.'),
  not_due: is('This access is not due to end yet.'),
  extension_not_allowed: is('This access cannot be extended.', 'Ask again when it ends.'),
  extension_over_limit: (p) => ({ message: `That is longer than this access may last: ${p.detail}.`, next: 'Extend by less, or ask again when it ends.' }),
  credentials_failed: is('The server could not set up your database access.', `${RETRY} If it keeps failing, ${ADMIN.charAt(0).toLowerCase()}${ADMIN.slice(1)}`),
  credentials_unavailable: is('The server has no database access configured.', ADMIN),
  stepup_required: is('This needs you to verify it is you (a one-time code or a passkey).'),
  fresh_signin_required: is('Setting up a first factor needs a recent sign-in.', 'Run `stint logout` and `stint login`, then set it up in the Stint app.'),
  stepup_unavailable: is('This needs a step-up, but the server has none configured.', ADMIN),
  stepup_not_pending: is('This request is not waiting for a verification.', 'See `stint grants`.'),
  stepup_invalid: (p) => (p.attemptsLeft !== undefined
    ? { message: `That code is not right: ${p.attemptsLeft} attempt${p.attemptsLeft === 1 ? '' : 's'} left.`, next: 'Use the newest code from your authenticator app (check its clock), and try again.' }
    : { message: sentence(p.detail), next: 'Try again with a new code.' }),
  stepup_expired: is('The verification took too long and expired.', 'Run the command again.'),
  stepup_replayed: is('That code was already used.', 'Wait for the next code in your authenticator app (at most 30 seconds) and try again.'),
  stepup_wrong_action: is('That verification was for something else.', 'Run the command again.'),
  rate_limited: (p) => ({ message: sentence(p.detail), next: 'Wait a minute, then try again.' }),
  stepup_locked: (p) => ({ message: `Too many wrong codes: one-time codes are locked${p.retryAfter ? ` until ${clock(p.retryAfter)}` : ''}.`, next: 'Wait until then, or verify with a passkey in the Stint app.' }),
  stepup_method_not_allowed: said('Use the Stint app (tray or web UI), which can use a passkey.'),
  stepup_no_credential: needsFactor,
  stepup_not_enrolled: needsFactor,
  stepup_duplicate: is('This authenticator is already registered to you.'),
  credential_not_found: is('You have no passkey with this id.', 'See Settings in the Stint app.'),
  totp_not_enrolled: is('You have no authenticator app set up.', 'Set one up in the Stint app (tray or web UI).'),
  totp_already_confirmed: is('Your authenticator app is already set up.'),
  totp_wrong_code: is('That code does not match.', 'Check the time on your phone and type the current code.'),
  keychain_unavailable: said('Unlock or start your system keychain (on Linux, a Secret Service such as gnome-keyring), then try again.'),
  keychain_locked: said('Unlock or start your system keychain (on Linux, a Secret Service such as gnome-keyring), then try again.'),
  login_cancelled: (p, ctx) => ({ message: sentence(p.detail), next: `${login(ctx)} to try again.` }),
  login_timeout: (p, ctx) => ({ message: sentence(p.detail), next: `${login(ctx)} to try again.` }),
  login_failed: (p, ctx) => ({ message: sentence(p.detail), next: `${login(ctx)} to try again.` }),
  idp_unreachable: said('Check your network and the sign-in service address (`stint login --issuer URL`).'),
  not_signed_in: (_p, ctx) => ({ message: `You are not signed in (profile ${ctx.profile}).`, next: `${login(ctx)}.` }),
  session_expired: (_p, ctx) => ({ message: `Your sign-in has expired (profile ${ctx.profile}).`, next: `${login(ctx)} again.` }),
  server_unreachable: said('Check your network and the server address (`stint login --server URL`).'),
  server_error: said('Try again; if it keeps failing, tell your Stint administrator.'),
  malformed_response: said('This stint and the server may be different versions: update stint.'),
  bastion_unreachable: said(RETRY),
  bastion_auth_failed: said(ADMIN),
  bastion_host_key_mismatch: said(ADMIN),
  tunnel_failed: said(RETRY),
  port_unavailable: said(),
  not_found: said(),
  invalid_input: said(),
  launcher_failed: said(),
  export_failed: said(RETRY),
  unknown_method: is('The running Stint agent is older than this stint and cannot do that.', 'Restart the agent (or the Stint app).'),
  forbidden_sender: said(),
  agent_unreachable: said('Start the Stint agent again.'),
  no_token: said(),
  network_error: said(RETRY),
};

export function explain(problem: AgentProblem, ctx: ExplainContext): Explained {
  return WORDS[problem.code](problem, ctx);
}
