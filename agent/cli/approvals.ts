// The approver's side: the requests waiting for me, and approving (with a one-time code when policy asks approvers
// to step up) or denying them.
import type { AccessRequest, Resource } from '../../shared/contract/http';
import { formatCountdown } from '../../shared/domain/countdown';
import { formatDuration } from '../../shared/domain/duration';
import { approvalStepUpWords } from '../../shared/domain/approvals';
import type { CliContext } from './context';
import { approveInBrowser } from './approve-link';
import { BrowserStepUpNeeded, withStepUp } from './stepup';

function who(r: AccessRequest): string {
  return r.requesterName ?? r.requester;
}

/** The name and the account, for the list an approver decides from. */
function whoExactly(r: AccessRequest): string {
  return r.requesterName && r.requesterName !== r.requester ? `${r.requesterName} [${r.requester}]` : r.requester;
}

function riskWord(score: number): string {
  return score >= 70 ? 'high' : score >= 40 ? 'medium' : 'low';
}

function stillNeeded(r: AccessRequest): string {
  const open = r.approvalsNeeded.filter((a) => a.have < a.count).map((a) => `${a.count - a.have} more from ${a.group}`);
  return open.length ? open.join(' and ') : 'nobody';
}

export function describeApproval(r: AccessRequest, resources: Resource[], now = Date.now()): string[] {
  const name = resources.find((x) => x.id === r.resourceId)?.name;
  const progress = r.approvalsNeeded.map((a) => `${a.have}/${a.count} ${a.group}`).join(', ') || 'none needed';
  return [
    `${r.id}  ${whoExactly(r)} asks for ${r.level} access to ${r.resourceId}${name ? ` (${name})` : ''} for ${formatDuration(r.durationSeconds)}`,
    `    reason: ${r.reason ? `"${r.reason}"` : '(none given)'}${r.ticket ? `   ticket: ${r.ticket}` : ''}${r.breakGlass ? '   BREAK-GLASS (access was given at once: review it)' : ''}`,
    `    asked ${formatDuration((now - Date.parse(r.createdAt)) / 1000)} ago, expires in ${formatCountdown(Date.parse(r.expiresAt) - now)}`
      + ` · risk ${riskWord(r.risk.score)} (${r.risk.score}/100${r.risk.reasons.length ? `: ${r.risk.reasons.join('; ')}` : ''}) · approvals ${progress}`,
    // A passkey cannot be used from a terminal: `stint approve` then prints the approve page's link.
    `    ${approvalStepUpWords(r) ?? 'Approving may ask for a step-up (this server does not say beforehand)'}${r.approvalStepUp?.methods.includes('webauthn') ? ' (a passkey in the browser: stint approve prints the link)' : ''}`,
  ];
}

export async function listApprovals(ctx: CliContext): Promise<number> {
  const state = await ctx.agent.api.refresh({});
  if (ctx.json) {
    ctx.io.out(JSON.stringify(state.approvals));
    return 0;
  }
  if (!state.approvals.length) {
    const approver = state.session.status === 'signed_in' && state.session.user.approver;
    ctx.io.out(approver ? 'Nobody is waiting for you.' : 'Nobody is waiting for you (you are not in an approving group).');
    return 0;
  }
  const now = Date.now();
  for (const r of state.approvals) ctx.io.out(describeApproval(r, state.resources, now).join('\n'));
  ctx.io.out('\nApprove with `stint approve <id>`; deny with `stint deny <id> --reason TEXT` (the requester sees it).');
  return 0;
}

export async function approve(ctx: CliContext, requestId: string, options: { comment?: string; code?: string }): Promise<number> {
  let request: AccessRequest;
  try {
    ({ request } = await withStepUp(
      ctx.agent,
      { kind: 'approve', requestId },
      (proof) => ctx.agent.api.approve({ requestId, ...(options.comment ? { comment: options.comment } : {}), ...(proof ? { stepUp: proof } : {}) }),
      { io: ctx.io, profile: ctx.profile, doing: 'Approving this request', ...(options.code ? { code: options.code } : {}) },
    ));
  } catch (error) {
    // A passkey (or a first factor) needs a browser: the server's approve page is one, on any device.
    if (error instanceof BrowserStepUpNeeded) return approveInBrowser(ctx, requestId, error);
    throw error;
  }
  const what = `${who(request)}'s ${request.level} access to ${request.resourceId} (${request.id})`;
  ctx.print(request.state === 'approved'
    ? `Approved ${what}: they can connect now.`
    : `Your approval of ${what} is recorded; it still needs ${stillNeeded(request)}.`, { request });
  return 0;
}

export async function deny(ctx: CliContext, requestId: string, reason: string): Promise<number> {
  const { request } = await ctx.agent.api.deny({ requestId, reason });
  ctx.print(`Denied ${who(request)}'s ${request.level} access to ${request.resourceId} (${request.id}). They see your reason.`, { request });
  return 0;
}
