// What the admin view shows of the outbound webhooks (GET /v1/admin/webhooks; issue #24).
import { z } from 'zod';
import { Instant } from './primitives';

export const WebhookEndpointStatus = z.object({
  id: z.string(),
  /** Where it points, origin only (a Slack URL's path is its credential). */
  url: z.string(),
  format: z.enum(['standard', 'slack']),
  events: z.array(z.string()),
  delivered: z.number().int(),
  /** Events waiting to be sent (new, or retrying): the backlog. */
  pending: z.number().int(),
  /** Events given up on after the configured attempts. */
  failed: z.number().int(),
  /** Attempts that did not deliver (each retry counts). */
  failedAttempts: z.number().int(),
  lastDeliveryAt: Instant.optional(),
  oldestPendingAt: Instant.optional(),
  lastFailure: z.object({ at: Instant, error: z.string(), eventType: z.string() }).optional(),
});
export type WebhookEndpointStatus = z.infer<typeof WebhookEndpointStatus>;

export const WebhookStatusList = z.object({ endpoints: z.array(WebhookEndpointStatus) });
