// Approving from a terminal when the step-up needs a browser — a passkey (the approver has no authenticator app, or
// policy accepts only passkeys), or a first factor to set up: the grant server's approve page does it in any browser,
// at the server's own origin (where passkeys are registered). `stint approve` prints the link, opens it where it can
// and waits for the decision made there, as `gh auth login` waits for its browser; then says what was decided.
import { approveLink } from '../../shared/contract/approve-page';
import type { AccessRequest, AuditEntry } from '../../shared/contract/http';
import type { CliContext } from './context';
import { CliError } from './explain';
import type { BrowserStepUpNeeded } from './stepup';

export interface WaitOptions {
  /** How often the server is asked whether the request still waits for me. */
  pollMs: number;
  /** How long to wait for the decision in the browser. */
  timeoutMs: number;
}

export const BROWSER_WAIT: WaitOptions = { pollMs: 2_000, timeoutMs: 10 * 60_000 };

const DECISIONS = ['request.approved', 'request.approval_added', 'request.denied'] as const;
type Decision = typeof DECISIONS[number];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The seq of the newest audit entry I can see, so that only what happens from now on is read afterwards. */
async function auditCursor(ctx: CliContext): Promise<number> {
  let after = 0;
  for (;;) {
    const { entries } = await ctx.agent.api.history({ after, limit: 500 });
    if (entries.length) after = entries.at(-1)!.seq;
    if (entries.length < 500) return after;
  }
}

/** What I decided about the request since `after`, from my audit trail. */
async function myDecision(ctx: CliContext, requestId: string, me: string, after: number): Promise<Decision | undefined> {
  const seen: AuditEntry[] = [];
  for (let cursor = after; ;) {
    const { entries } = await ctx.agent.api.history({ after: cursor, limit: 500 });
    seen.push(...entries.filter((e) => e.requestId === requestId && e.actor === me));
    if (entries.length < 500) break;
    cursor = entries.at(-1)!.seq;
  }
  return DECISIONS.find((action) => seen.some((e) => e.action === action));
}

export async function approveInBrowser(ctx: CliContext, requestId: string, why: BrowserStepUpNeeded, wait: WaitOptions = BROWSER_WAIT): Promise<number> {
  const { serverUrl } = await ctx.agent.api.getSettings({});
  const session = ctx.agent.state().session;
  const request: AccessRequest | undefined = ctx.agent.state().approvals.find((r) => r.id === requestId);
  if (!serverUrl || session.status !== 'signed_in' || !request) throw why;
  const link = approveLink(serverUrl, requestId);
  const after = await auditCursor(ctx);
  ctx.io.err(`${why.message}\nApprove it in your browser instead: sign in there, then confirm with your passkey (or add one). Opening:\n  ${link}`);
  ctx.io.open?.(link);
  const started = Date.now();
  for (;;) {
    await sleep(wait.pollMs);
    const state = await ctx.agent.api.refresh({});
    if (!state.approvals.some((r) => r.id === requestId)) break;
    if (Date.now() - started > wait.timeoutMs) {
      throw new CliError(`Request ${requestId} was not decided in the browser within ${Math.round(wait.timeoutMs / 60_000)} min; stint stopped waiting.`, 1, `The link works until the request expires: ${link}`);
    }
  }
  const decision = await myDecision(ctx, requestId, session.user.sub, after);
  const what = `${request.requesterName ?? request.requester}'s ${request.level} access to ${request.resourceId} (${request.id})`;
  if (!decision) throw new CliError(`Request ${requestId} no longer waits for you: someone else decided it, or it expired.`, 1, 'See `stint approvals` for what still waits for you.');
  const words: Record<Decision, string> = {
    'request.approved': `Approved ${what} in the browser: they can connect now.`,
    'request.approval_added': `Your approval of ${what} is recorded (in the browser); it waits for the other approvers.`,
    'request.denied': `Denied ${what} in the browser. They see your reason.`,
  };
  ctx.print(words[decision], { requestId, decision: decision.replace('request.', ''), link });
  return 0;
}
