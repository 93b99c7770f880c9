// The webhook outbox: for each audit row that tells a webhook event, one row per endpoint whose filter takes it,
// inserted in the transaction that appends the audit row (WriteQueue.flush): an event is sent if and only if its
// change committed. delivery.ts sends the rows.
import { randomBytes } from 'node:crypto';
import { sql, type Insertable } from 'kysely';
import type { ServerConfig } from '../config';
import type { AuditInput } from '../lifecycle/audit';
import type { Tx } from '../lifecycle/support';
import type { WebhookDeliveriesTable } from '../storage/schema';
import { eventOf, filterTakes, STEPUP_FAILURES, webhookTypeOf } from './events';

const INSERT_CHUNK = 500;
const HOUR_MS = 3600_000;

/** What the write queue calls: stage rows for a batch's audit rows; `staged` once such a batch committed. */
export interface OutboxStage {
  stage(trx: Tx, audits: readonly AuditInput[]): Promise<number>;
  staged(): void;
}

export const newMessageId = () => `msg_${randomBytes(16).toString('base64url')}`;

export class WebhookOutbox implements OutboxStage {
  private readonly endpoints: { id: string; events: string[] }[];
  private readonly resourceNames: Map<string, string>;

  constructor(private readonly deps: { config: ServerConfig; now: () => number; onStaged?: () => void }) {
    this.endpoints = Object.entries(deps.config.webhooks.endpoints).map(([id, e]) => ({ id, events: e.events }));
    this.resourceNames = new Map(deps.config.resources.map((r) => [r.id, r.name]));
  }

  async stage(trx: Tx, audits: readonly AuditInput[]): Promise<number> {
    if (this.endpoints.length === 0) return 0;
    const rows: Insertable<WebhookDeliveriesTable>[] = [];
    const failuresSeen = new Map<string, number>();
    for (const audit of audits) {
      let type = webhookTypeOf(audit.action);
      let detail: Record<string, unknown> | undefined;
      if (audit.action === 'stepup.failed') {
        const failures = await this.failuresWithin(trx, audit, failuresSeen);
        const threshold = this.deps.config.webhooks.stepUpFailureThreshold;
        // Told when the count reaches the threshold, and again at each further multiple: not once per wrong code.
        if (failures >= threshold && failures % threshold === 0) {
          type = STEPUP_FAILURES;
          detail = { ...audit.detail, failuresLastHour: failures, threshold };
        }
      }
      if (type === 'request.awaiting_approval' && audit.requestId) detail = { ...audit.detail, ...await this.requestFacts(trx, audit.requestId) };
      if (!type) continue;
      const takers = this.endpoints.filter((e) => filterTakes(e.events, type));
      if (takers.length === 0) continue;
      const event = eventOf(type, audit, { serverUrl: this.deps.config.server.url, resourceName: audit.resourceId ? this.resourceNames.get(audit.resourceId) : undefined, detail });
      const payload = JSON.stringify(event);
      // One webhook-id per event: an endpoint sees the same id on every attempt, and two endpoints the same event.
      const messageId = newMessageId();
      const now = this.deps.now();
      for (const endpoint of takers) {
        rows.push({ endpoint: endpoint.id, message_id: messageId, event_type: type, payload, created_at: now, state: 'pending', attempts: 0, next_attempt_at: now });
      }
    }
    for (let start = 0; start < rows.length; start += INSERT_CHUNK) await trx.insertInto('webhook_deliveries').values(rows.slice(start, start + INSERT_CHUNK)).execute();
    return rows.length;
  }

  staged(): void {
    this.deps.onStaged?.();
  }

  /** What an approver needs to know of a request the audit row only names (its step-up row has no level or reason). */
  private async requestFacts(trx: Tx, requestId: string): Promise<Record<string, unknown>> {
    const row = await trx.selectFrom('requests').select(['level', 'duration_seconds', 'reason', 'ticket']).where('id', '=', requestId).executeTakeFirst();
    return row ? { level: row.level, durationSeconds: row.duration_seconds, requestReason: row.reason, ...(row.ticket ? { ticket: row.ticket } : {}) } : {};
  }

  /** The user's failed step-ups in the last hour, this one included (earlier ones of this batch are not stored yet). */
  private async failuresWithin(trx: Tx, audit: AuditInput, seen: Map<string, number>): Promise<number> {
    const inBatch = (seen.get(audit.actor) ?? 0) + 1;
    seen.set(audit.actor, inBatch);
    const stored = await trx.selectFrom('audit').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('actor', '=', audit.actor).where('action', '=', sql.lit('stepup.failed')).where('at', '>', audit.at - HOUR_MS).executeTakeFirst();
    return Number(stored?.n ?? 0) + inBatch;
  }
}
