// Failures in words a person understands, with what to do next: the agent's problem codes and the server's own
// codes (carried in AgentProblem.server) become a sentence and a next step. Programs get the same in --json.
import type { AgentProblem } from '../../shared/contract/agent';

/** A failure the CLI itself words; `exitCode` 2 is a usage error (wrong command line), 130 an interrupt. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1, readonly next?: string) {
    super(message);
  }
}

/** A problem the agent reported as an event (e.g. while restoring the session at start), explained like a thrown one. */
export class ReportedProblem extends Error {
  constructor(readonly problem: AgentProblem) {
    super(problem.message);
  }
}

export interface Explained {
  message: string;
  next?: string;
}

export interface ExplainContext {
  profile: string;
}

function sentence(text: string): string {
  const t = text.trim().replace(/\.$/, '');
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}.`;
}

function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isFinite(d.getTime()) ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : iso;
}

const LOGIN = 'Run `stint login`';

function serverWords(problem: AgentProblem, ctx: ExplainContext): Explained | undefined {
  const s = problem.server;
  if (!s) return undefined;
  const said = sentence(problem.message);
  switch (s.code) {
    case 'request_not_found': return { message: 'There is no such request that you can see.', next: 'Check the id with `stint approvals`.' };
    case 'grant_not_found': return { message: 'There is no such access of yours.', next: 'Check with `stint grants`.' };
    case 'resource_not_found': return { message: 'There is no such resource that you may request.', next: 'See `stint resources`.' };
    case 'self_approval': return { message: 'You cannot decide your own request.', next: 'Someone in an approving group has to; you can only cancel it.' };
    case 'not_an_approver': return { message: 'You are not in a group that approves this request.', next: 'See `stint approvals` for the requests waiting for you.' };
    case 'already_approved': return { message: 'You already approved this request.', next: 'It now waits for the other approvers.' };
    case 'approval_not_needed': return { message: 'Others already filled the approval slots you could fill.', next: 'Nothing to do: see `stint approvals`.' };
    case 'illegal_transition': return { message: `This request is no longer waiting for that: ${said}`, next: 'See `stint approvals` (or `stint grants` for your own access).' };
    case 'request_expired': return { message: 'This request has expired.', next: 'The requester can ask again.' };
    case 'stepup_required': return { message: 'This needs you to verify it is you (a one-time code or a passkey).' };
    case 'stepup_invalid':
      return s.attemptsLeft !== undefined
        ? { message: `That code is not right: ${s.attemptsLeft} attempt${s.attemptsLeft === 1 ? '' : 's'} left.`, next: 'Use the newest code from your authenticator app (check its clock), and try again.' }
        : { message: said, next: 'Try again with a new code.' };
    case 'stepup_locked':
      return { message: `Too many wrong codes: one-time codes are locked${s.retryAfter ? ` until ${clock(s.retryAfter)}` : ''}.`, next: 'Wait until then, or verify with a passkey in the Stint app.' };
    case 'stepup_replayed': return { message: 'That code was already used.', next: 'Wait for the next code in your authenticator app (at most 30 seconds) and try again.' };
    case 'stepup_expired': return { message: 'The verification took too long and expired.', next: 'Run the command again.' };
    case 'stepup_not_enrolled':
    case 'stepup_no_credential':
      return { message: 'This needs a verification you have not set up yet (an authenticator app or a passkey).', next: 'Set one up in the Stint app (tray or web UI), then run the command again.' };
    case 'stepup_method_not_allowed': return { message: said, next: 'Use the Stint app (tray or web UI), which can use a passkey.' };
    case 'stepup_unavailable': return { message: 'This needs a step-up, but the server has none configured.', next: 'Tell your Stint administrator.' };
    case 'no_approval_route': return { message: `Nobody could approve this request: ${said}`, next: 'Tell your Stint administrator: the resource\'s policy needs an approvals rule.' };
    case 'not_a_requester': return { message: 'You may not request this resource (only with break-glass).', next: 'See `stint resources`.' };
    case 'grant_not_active': case 'grant_ended': return { message: 'This access has already ended.', next: 'See `stint grants`.' };
    case 'busy': case 'storage_unavailable': return { message: 'The server is busy right now.', next: 'Try again in a moment.' };
    default:
      return { message: `The server refused: ${said.charAt(0).toLowerCase()}${said.slice(1)}`, next: `(server code ${s.code}, HTTP ${s.status}; profile ${ctx.profile})` };
  }
}

export function explain(problem: AgentProblem, ctx: ExplainContext): Explained {
  const fromServer = serverWords(problem, ctx);
  if (fromServer) return fromServer;
  switch (problem.code) {
    case 'not_signed_in': return { message: `You are not signed in (profile ${ctx.profile}).`, next: `${LOGIN}${ctx.profile === 'cli' ? '' : ` --profile ${ctx.profile}`}.` };
    case 'session_expired': return { message: `Your sign-in has expired (profile ${ctx.profile}).`, next: `${LOGIN}${ctx.profile === 'cli' ? '' : ` --profile ${ctx.profile}`} again.` };
    case 'login_cancelled': case 'login_timeout': case 'login_failed': return { message: sentence(problem.message), next: `${LOGIN} to try again.` };
    case 'server_unreachable': return { message: sentence(problem.message), next: 'Check your network and the server address (`stint login --server URL`).' };
    case 'idp_unreachable': return { message: sentence(problem.message), next: 'Check your network and the sign-in service address (`stint login --issuer URL`).' };
    case 'keychain_unavailable': case 'keychain_locked': return { message: sentence(problem.message), next: 'Unlock or start your system keychain (on Linux, a Secret Service such as gnome-keyring), then try again.' };
    case 'malformed_response': return { message: sentence(problem.message), next: 'This stint and the server may be different versions: update stint.' };
    case 'server_error': return { message: sentence(problem.message), next: 'Try again; if it keeps failing, tell your Stint administrator.' };
    case 'internal': return { message: 'Something went wrong inside stint.', next: 'Try again; if it keeps failing, report it.' };
    default: return { message: sentence(problem.message) };
  }
}
