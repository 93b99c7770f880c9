// Sending the outbox (outbox.ts): each instance claims due rows with a lease (PostgreSQL: FOR UPDATE SKIP LOCKED, so
// two instances never claim the same row), POSTs each signed per Standard Webhooks, and records the outcome under its
// lease token: a 2xx delivers it, anything else is tried again with backoff until the configured attempts run out.
// A row is sent by one instance at a time and, once answered 2xx, never again; a crash between the answer and its
// record sends it once more after the lease, with the same webhook-id, which receivers use to drop the repeat.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import type { ServerConfig } from '../config';
import { requireSecret } from '../config';
import type { Db } from '../storage/db';
import type { Metrics } from '../metrics';
import type { Logger } from '../lifecycle/support';
import type { WebhookDeliveriesTable } from '../storage/schema';
import type { Selectable } from 'kysely';
import type { WebhookEvent } from './events';
import { slackMessage } from './slack';

/** Rows one claim takes (and sends at once). */
const CLAIM_BATCH = 20;
/** How long one POST may take. */
const SEND_TIMEOUT_MS = 10_000;
/** A claim outlives the longest send by this much: nobody else takes a row while its POST may still be answered. */
const LEASE_MS = SEND_TIMEOUT_MS + 20_000;
const POLL_MS = 1_000;
const DAY_MS = 86400_000;
/** Delivered events are kept a week (like the event stream's), given-up ones a month: the admin view counts them. */
const KEEP_DELIVERED_MS = 7 * DAY_MS;
const KEEP_FAILED_MS = 30 * DAY_MS;
const PRUNE_EVERY_MS = 3600_000;

type DeliveryRow = Selectable<WebhookDeliveriesTable>;

export interface ResolvedEndpoint {
  id: string;
  url: string;
  format: 'standard' | 'slack';
  signer: Webhook;
}

/** The endpoints of the config with their URL and secret read (start-up fails on a missing or malformed one). */
export function resolveEndpoints(config: ServerConfig, env: NodeJS.ProcessEnv): Map<string, ResolvedEndpoint> {
  const out = new Map<string, ResolvedEndpoint>();
  for (const [id, endpoint] of Object.entries(config.webhooks.endpoints)) {
    const url = requireSecret(endpoint.url, `webhooks.endpoints.${id}.url`, env);
    if (!/^https?:\/\//.test(url) || !URL.canParse(url)) throw Object.assign(new Error(`webhooks.endpoints.${id}.url: expected an http(s) URL`), { code: 'config_invalid' });
    let signer: Webhook;
    try {
      signer = new Webhook(requireSecret(endpoint.secret, `webhooks.endpoints.${id}.secret`, env));
    } catch (error) {
      // The library's message names no part of the secret; the secret itself is never in an error.
      throw Object.assign(new Error(`webhooks.endpoints.${id}.secret: expected whsec_ followed by base64 (${(error as Error).message})`), { code: 'config_invalid' });
    }
    out.set(id, { id, url, format: endpoint.format, signer });
  }
  return out;
}

/** Where a URL points, without its path, query or user info (Slack's URLs carry their credential in the path). */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}/…`;
  } catch {
    return '(not a URL)';
  }
}

/** The body sent to an endpoint for an event: the stored JSON as it is, or reformatted. */
export function bodyFor(format: ResolvedEndpoint['format'], payload: string): string {
  return format === 'slack' ? JSON.stringify(slackMessage(JSON.parse(payload) as WebhookEvent)) : payload;
}

export interface DeliveryDeps {
  db: Db;
  /** PostgreSQL: other instances claim from the same outbox. */
  shared: boolean;
  now: () => number;
  endpoints: Map<string, ResolvedEndpoint>;
  retry: ServerConfig['webhooks']['retry'];
  metrics: Pick<Metrics, 'webhookDeliveries' | 'webhookFailures'>;
  log: Logger;
  fetch?: typeof fetch;
  pollMs?: number;
}

export class WebhookDelivery {
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = 0;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly deps: DeliveryDeps) {}

  start(): void {
    if (this.deps.endpoints.size === 0) return;
    this.timer = setInterval(() => this.nudge(), this.deps.pollMs ?? POLL_MS);
    this.timer.unref();
    this.nudge();
  }

  /** Look for due rows now (a change that staged some has just committed). */
  nudge(): void {
    if (this.stopped || this.deps.endpoints.size === 0) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain().catch((error: unknown) => this.deps.log.error({ message: (error as Error).message }, 'webhook delivery failed')).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.nudge();
      }
    });
  }

  /** Stop claiming; the sends under way finish (their outcome is recorded). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async drain(): Promise<void> {
    await this.pruneNowAndThen();
    for (;;) {
      if (this.stopped) return;
      const claimed = await this.claim();
      if (claimed.rows.length === 0) return;
      await Promise.all(claimed.rows.map((row) => this.send(row, claimed.token)));
      if (claimed.rows.length < CLAIM_BATCH) return;
    }
  }

  private async pruneNowAndThen(): Promise<void> {
    const now = this.deps.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    await this.deps.db.deleteFrom('webhook_deliveries').where((eb) => eb.or([
      eb.and([eb('state', '=', 'delivered'), eb('delivered_at', '<', now - KEEP_DELIVERED_MS)]),
      eb.and([eb('state', '=', 'failed'), eb('last_attempt_at', '<', now - KEEP_FAILED_MS)]),
    ])).execute();
  }

  /** Take due rows of configured endpoints under a new lease token; rows under another live lease are left alone. */
  private async claim(): Promise<{ rows: DeliveryRow[]; token: string }> {
    const now = this.deps.now();
    const token = randomBytes(12).toString('base64url');
    const endpoints = [...this.deps.endpoints.keys()];
    const due = this.deps.db.selectFrom('webhook_deliveries').select('id')
      .where('state', '=', sql.lit('pending')).where('next_attempt_at', '<=', now).where('endpoint', 'in', endpoints)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .orderBy('next_attempt_at').orderBy('id').limit(CLAIM_BATCH)
      .$if(this.deps.shared, (q) => q.forUpdate().skipLocked());
    const rows = await this.deps.db.updateTable('webhook_deliveries').set({ lease_until: now + LEASE_MS, lease_token: token })
      .where('id', 'in', due).returningAll().execute();
    rows.sort((a, b) => Number(a.id) - Number(b.id));
    return { rows, token };
  }

  private async send(row: DeliveryRow, token: string): Promise<void> {
    const endpoint = this.deps.endpoints.get(row.endpoint)!;
    const at = this.deps.now();
    let status: number | undefined;
    let error: string | undefined;
    try {
      const body = bodyFor(endpoint.format, row.payload);
      const timestamp = new Date(at);
      const response = await (this.deps.fetch ?? fetch)(endpoint.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Stint-Webhooks/1',
          'webhook-id': row.message_id,
          'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
          'webhook-signature': endpoint.signer.sign(row.message_id, timestamp, body),
        },
        body,
        // A redirect is an answer, not a delivery: following it would send signed events wherever it points.
        redirect: 'manual',
        signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
      });
      status = response.status;
      await response.body?.cancel().catch(() => {});
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (caught) {
      error = describe(caught);
    }
    await this.record(row, token, at, status, error);
  }

  private async record(row: DeliveryRow, token: string, at: number, status: number | undefined, error: string | undefined): Promise<void> {
    const attempts = row.attempts + 1;
    const retry = this.deps.retry;
    const gaveUp = error !== undefined && attempts >= retry.attempts;
    const next = error === undefined || gaveUp ? row.next_attempt_at : at + Math.min(retry.max, retry.first * 2 ** (attempts - 1)) * 1000;
    const state = error === undefined ? 'delivered' : gaveUp ? 'failed' : 'pending';
    const updated = await this.deps.db.updateTable('webhook_deliveries')
      .set({ state, attempts, next_attempt_at: next, lease_until: null, lease_token: null, last_attempt_at: at, last_status: status ?? null, delivered_at: error === undefined ? at : null, ...(error === undefined ? {} : { last_failed_at: at, last_error: error }) })
      .where('id', '=', row.id).where('lease_token', '=', token).executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) this.deps.log.warn({ endpoint: row.endpoint, webhookId: row.message_id }, 'webhook delivery outlived its lease; another instance may send it again');
    this.deps.metrics.webhookDeliveries.inc({ endpoint: row.endpoint, outcome: state === 'pending' ? 'retrying' : state });
    if (error !== undefined) {
      this.deps.metrics.webhookFailures.inc({ endpoint: row.endpoint });
      // The endpoint's id and the cause only: never its URL (it may be a credential) nor the body.
      this.deps.log.warn({ endpoint: row.endpoint, webhookId: row.message_id, attempts, error, gaveUp }, gaveUp ? 'webhook delivery failed for good' : 'webhook delivery failed; will retry');
    }
  }
}

/** Why a send failed, in words that hold no URL: a timeout, or the network error's code. */
function describe(error: unknown): string {
  const e = error as { name?: string; cause?: { code?: unknown } } | undefined;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${SEND_TIMEOUT_MS / 1000}s`;
  const code = e?.cause?.code;
  return typeof code === 'string' ? `network error ${code}` : 'network error';
}
