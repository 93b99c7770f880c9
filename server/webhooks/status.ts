// What an admin sees of each webhook endpoint (GET /v1/admin/webhooks, `stint-server webhooks`): where it points
// (origin only), its format and filter, the last delivery and the last failure, the failed attempts and the backlog.
import { sql } from 'kysely';
import type { WebhookEndpointStatus } from '../../shared/contract/webhooks';
import type { ServerConfig } from '../config';
import { resolveSecret } from '../config';
import type { Db } from '../storage/db';
import { displayUrl } from './delivery';

const iso = (ms: number | string | null | undefined) => (ms === null || ms === undefined ? undefined : new Date(Number(ms)).toISOString());

export async function webhookStatus(db: Db, config: ServerConfig, env: NodeJS.ProcessEnv = process.env): Promise<WebhookEndpointStatus[]> {
  const endpoints = Object.entries(config.webhooks.endpoints);
  if (endpoints.length === 0) return [];
  const counts = await db.selectFrom('webhook_deliveries')
    .select(['endpoint', 'state'])
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('attempts').as('attempts'), eb.fn.max('delivered_at').as('last_delivered'), eb.fn.min('created_at').as('oldest')])
    .groupBy(['endpoint', 'state']).execute();
  const out: WebhookEndpointStatus[] = [];
  for (const [id, endpoint] of endpoints) {
    const mine = counts.filter((c) => c.endpoint === id);
    const of = (state: string) => mine.find((c) => c.state === state);
    const delivered = Number(of('delivered')?.n ?? 0);
    const attempts = mine.reduce((sum, c) => sum + Number(c.attempts ?? 0), 0);
    const lastFailure = await db.selectFrom('webhook_deliveries').select(['last_failed_at', 'last_error', 'event_type'])
      .where('endpoint', '=', id).where('last_failed_at', 'is not', null).orderBy('last_failed_at', 'desc').limit(1).executeTakeFirst();
    const url = resolveSecret(endpoint.url, env);
    const lastDeliveryAt = iso(of('delivered')?.last_delivered as number | null | undefined);
    const oldestPendingAt = iso(of('pending')?.oldest as number | null | undefined);
    out.push({
      id,
      url: url.ok ? displayUrl(url.value) : endpoint.url,
      format: endpoint.format,
      events: endpoint.events,
      delivered,
      pending: Number(of('pending')?.n ?? 0),
      failed: Number(of('failed')?.n ?? 0),
      // Every attempt that did not deliver: total attempts less one per delivered row.
      failedAttempts: attempts - delivered,
      ...(lastDeliveryAt ? { lastDeliveryAt } : {}),
      ...(oldestPendingAt ? { oldestPendingAt } : {}),
      ...(lastFailure ? { lastFailure: { at: iso(lastFailure.last_failed_at)!, error: lastFailure.last_error!, eventType: lastFailure.event_type } } : {}),
    });
  }
  return out;
}

/** Rows still to deliver, per endpoint (the backlog gauge). */
export async function webhookBacklog(db: Db): Promise<Map<string, number>> {
  const rows = await db.selectFrom('webhook_deliveries').select(['endpoint']).select((eb) => eb.fn.countAll<number>().as('n'))
    .where('state', '=', sql.lit('pending')).groupBy('endpoint').execute();
  return new Map(rows.map((r) => [r.endpoint, Number(r.n)]));
}
