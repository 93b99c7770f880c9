// The approve page's own calls (/approve/api/…, server/web): who is signed in on the page, and one request as an
// approver sees it with what they may do about it. Approving and denying take the API's own bodies (ApproveBody,
// DenyBody) and answer with its RequestResult, so the page and the agent decide through the same rules.
import { z } from 'zod';
import { AccessRequest, Instant } from './http';
import { ProblemCode } from './problem';

/** The header every POST of the page carries, with the token from PageSession. */
export const CSRF_HEADER = 'x-stint-csrf';

export const PageSession = z.object({
  user: z.object({ sub: z.string(), name: z.string().optional(), email: z.string().optional() }),
  csrfToken: z.string(),
  expiresAt: Instant,
});
export type PageSession = z.infer<typeof PageSession>;

export const PageRequestView = z.object({
  request: AccessRequest,
  resource: z.object({ name: z.string(), environment: z.string(), sensitivity: z.enum(['low', 'medium', 'high']) }).optional(),
  /** Whether the signed-in user may approve now, and if not, why (the code approving would be refused with). */
  approve: z.object({ allowed: z.boolean(), refusal: z.object({ code: ProblemCode, message: z.string() }).optional() }),
  deny: z.object({ allowed: z.boolean() }),
});
export type PageRequestView = z.infer<typeof PageRequestView>;

/** The approve page of a request, on the grant server at `serverUrl` (the link webhooks and the CLI hand out). */
export function approveLink(serverUrl: string, requestId: string): string {
  return `${serverUrl.replace(/\/+$/, '')}/approve/${encodeURIComponent(requestId)}`;
}
