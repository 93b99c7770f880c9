// Server-Sent Events from GET /v1/events. One stream per user: their own requests and grants, and the approval
// asks addressed to them. Each event carries a monotonically increasing id so a client resumes with Last-Event-ID.
import { z } from 'zod';
import { AccessRequest, Grant } from './http';
import { BreakGlassReview } from './reviews';

export const ServerEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('request.updated'), request: AccessRequest }),
  z.object({ type: z.literal('approval.asked'), request: AccessRequest }),
  z.object({ type: z.literal('approval.withdrawn'), requestId: z.string() }),
  /** A request still waits for the approvers it is told to: a reminder (policy `reminders`). */
  z.object({ type: z.literal('approval.reminded'), request: AccessRequest }),
  z.object({ type: z.literal('grant.updated'), grant: Grant }),
  z.object({ type: z.literal('breakglass.used'), request: AccessRequest }),
  /** A break-glass review is overdue: told to those who may record it, again every reviews.remindEvery. */
  z.object({ type: z.literal('breakglass.review_due'), review: BreakGlassReview }),
  /** A step-up factor of the user's was added or removed: told to every agent of theirs (a thief's change shows). */
  z.object({ type: z.literal('factor.changed'), change: z.enum(['added', 'removed']), factor: z.enum(['passkey', 'authenticator app']), label: z.string().max(256).optional() }),
]);
export type ServerEvent = z.infer<typeof ServerEvent>;

export const ServerEventEnvelope = z.object({ id: z.string(), at: z.iso.datetime({ offset: true }), event: ServerEvent });
export type ServerEventEnvelope = z.infer<typeof ServerEventEnvelope>;
