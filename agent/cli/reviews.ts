// Break-glass reviews (#24): the uses waiting for my review, and recording one (ok, or a concern with a note).
import type { BreakGlassReview } from '../../shared/contract/reviews';
import { formatDuration } from '../../shared/domain/duration';
import type { CliContext } from './context';

export function describeReview(r: BreakGlassReview, now = Date.now()): string[] {
  const lines = [
    `${r.id}  ${r.requester} used break-glass on ${r.resourceId} (request ${r.requestId}) ${formatDuration(Math.max(1, Math.round((now - Date.parse(r.createdAt)) / 1000)))} ago`,
    `    reason: "${r.reason}"`,
  ];
  if (r.reviewedAt) lines.push(`    reviewed by ${r.reviewedBy ?? '?'} at ${r.reviewedAt}: ${r.outcome ?? '?'}${r.note ? ` — "${r.note}"` : ''}`);
  else lines.push(`    ${r.overdue ? 'OVERDUE: was due' : 'due'} ${r.dueAt} · reviewers: ${r.groups.join(', ')} (and admins)`);
  return lines;
}

export async function listReviews(ctx: CliContext, all: boolean): Promise<number> {
  const { reviews } = await ctx.agent.api.listReviews({ all });
  if (ctx.json) {
    ctx.io.out(JSON.stringify(reviews));
    return 0;
  }
  if (!reviews.length) {
    ctx.io.out(all ? 'No break-glass uses for you to review.' : 'No break-glass use is waiting for your review.');
    return 0;
  }
  const now = Date.now();
  for (const r of reviews) ctx.io.out(describeReview(r, now).join('\n'));
  if (reviews.some((r) => !r.reviewedAt)) ctx.io.out('\nRecord one with `stint review <id> --outcome ok` or `--outcome concern --note TEXT`.');
  return 0;
}

export async function recordReview(ctx: CliContext, reviewId: string, outcome: 'ok' | 'concern', note: string | undefined): Promise<number> {
  const { review } = await ctx.agent.api.recordReview({ reviewId, outcome, ...(note ? { note } : {}) });
  ctx.print(`Recorded your review of ${review.requester}'s break-glass use on ${review.resourceId}: ${outcome}${note ? ` — "${note}"` : ''}. It is on the audit record.`, { review });
  return 0;
}
