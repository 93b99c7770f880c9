// Break-glass reviews (issue #24): every break-glass use asks the resource's approvers to review it; the review
// records who looked, when, the outcome and a note, in the audit chain.
import { z } from 'zod';
import { Instant } from './primitives';

export const ReviewOutcome = z.enum(['ok', 'concern']);
export type ReviewOutcome = z.infer<typeof ReviewOutcome>;

export const BreakGlassReview = z.object({
  id: z.string(),
  requestId: z.string(),
  resourceId: z.string(),
  /** Who used break-glass (they never review their own use). */
  requester: z.string(),
  /** Why they said they needed it. */
  reason: z.string(),
  /** The groups whose members may record it (administrators always may). */
  groups: z.array(z.string()),
  createdAt: Instant,
  dueAt: Instant,
  overdue: z.boolean(),
  reviewedBy: z.string().optional(),
  reviewedAt: Instant.optional(),
  outcome: ReviewOutcome.optional(),
  note: z.string().optional(),
});
export type BreakGlassReview = z.infer<typeof BreakGlassReview>;

export const ListReviewsQuery = z.strictObject({
  state: z.enum(['open', 'all']).default('open'),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});
export const ReviewList = z.object({ reviews: z.array(BreakGlassReview) });

export const RecordReviewBody = z.strictObject({
  outcome: ReviewOutcome,
  note: z.string().max(2000).default(''),
}).refine((body) => body.outcome === 'ok' || body.note.trim().length > 0, { path: ['note'], message: 'say what the concern is' });
export const ReviewResult = z.object({ review: BreakGlassReview });
