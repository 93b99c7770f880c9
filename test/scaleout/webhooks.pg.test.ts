// Signed webhooks from two grant-server instances on one PostgreSQL, to a real HTTP receiver that verifies every
// signature with the standardwebhooks library and fails the first two tries of each message: every audit-worthy
// event arrives, each exactly once (by webhook-id), after retries, whichever instance committed it or sent it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { startWebhookReceiver, type WebhookReceiver } from '../../dev/webhook-receiver';
import { clientFor, Tokens, until } from '../server/helpers';
import { usePostgresStorage } from './pg-env';

describe('webhooks from two instances on one PostgreSQL', () => {
  const { pg } = usePostgresStorage();
  let idp: IdpInstance;
  let tokens: Tokens;
  let receiver: WebhookReceiver;
  let a: RunningGrantServer;
  let b: RunningGrantServer;
  const dataDir = serviceDir('grant-server-webhooks');
  let database: string;

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    receiver = await startWebhookReceiver({ failFirst: 2 });
    const overrides = { webhooks: { endpoints: { siem: { url: 'env:HOOK_URL', secret: 'env:HOOK_SECRET', events: ['request.*'] } }, retry: { first: 1, max: 2, attempts: 6 } } };
    const env = { HOOK_URL: receiver.url, HOOK_SECRET: receiver.secret };
    a = await startGrantServer({ idp, dataDir, overrides, env });
    b = await startGrantServer({ idp, dataDir, overrides, env });
    database = new URL(a.config.storage.url).pathname.slice(1);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await receiver?.close();
    await idp?.close();
  });

  const rows = <R extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []) => pg().query<R>(text, params, database);

  it('delivers every event exactly once, signed, after the receiver refused the first tries', async () => {
    const alice = [clientFor(a.url, await tokens.for('alice')), clientFor(b.url, await tokens.for('alice'))];
    const bob = [clientFor(a.url, await tokens.for('bob')), clientFor(b.url, await tokens.for('bob'))];
    // Requests made on both instances, each denied on the other one: created and denied events from both.
    const created = await Promise.all(Array.from({ length: 12 }, (_, i) => alice[i % 2]!.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: `INC-${400 + i}` })));
    const ids = created.map((r) => { expect(r.status).toBe(201); return r.body.request.id as string; });
    await Promise.all(ids.map((id, i) => bob[(i + 1) % 2]!.post(`/v1/requests/${id}/deny`, { reason: 'not now' }).then((r) => expect(r.status).toBe(200))));

    const audited = await rows<{ action: string; request_id: string }>("select action, request_id from audit where action in ('request.created', 'request.denied') and request_id = any($1)", [ids]);
    expect(audited).toHaveLength(24);
    await until('every event to be accepted', () => receiver.accepted().length >= audited.length, 30_000);
    // Nothing more comes: no delivered event is sent again by either instance.
    await new Promise((r) => setTimeout(r, 3_000));

    const accepted = receiver.accepted();
    expect(receiver.attempts.every((t) => t.verified)).toBe(true);
    expect(new Set(accepted.map((t) => t.webhookId)).size).toBe(accepted.length);
    expect(accepted.map((t) => `${(t.body as { data: { action: string } }).data.action} ${(t.body as { data: { requestId: string } }).data.requestId}`).sort())
      .toEqual(audited.map((r) => `${r.action} ${r.request_id}`).sort());
    // Each message was tried three times under one stable webhook-id: twice refused, then accepted, never again.
    for (const { webhookId } of accepted) expect(receiver.attempts.filter((t) => t.webhookId === webhookId).map((t) => t.status)).toEqual([503, 503, 204]);
    // Pending requests carry the link to the approval page; the standard payload has its documented shape.
    const firstCreated = accepted.map((t) => t.body as { type: string; timestamp: string; data: Record<string, unknown> }).find((e) => e.type === 'request.created')!;
    expect(firstCreated.data).toMatchObject({ actor: 'alice', resourceId: 'prod-orders', resourceName: 'Orders (production)' });
    // (Each test instance has a server.url of its own; behind a balancer they share one.)
    expect([a, b].map((s) => `${s.config.server.url}/approve/${firstCreated.data.requestId as string}`)).toContain(firstCreated.data.approveUrl);

    const stored = await rows<{ state: string; attempts: number; n: number }>('select state, attempts, count(*)::int as n from webhook_deliveries group by state, attempts');
    expect(stored).toEqual([{ state: 'delivered', attempts: 3, n: 24 }]);
    // Recorded once across the instances: their delivered counts add up to the events.
    const delivered = async (s: RunningGrantServer) => (await s.server.metrics.webhookDeliveries.get()).values.filter((v) => v.labels.outcome === 'delivered').reduce((sum, v) => sum + v.value, 0);
    expect((await delivered(a)) + (await delivered(b))).toBe(24);

    // What an admin sees (admins only), the receiver's path and the secret left out.
    const carol = clientFor(b.url, await tokens.for('carol'));
    const status = await carol.get('/v1/admin/webhooks');
    expect(status.status).toBe(200);
    expect(status.body.endpoints).toEqual([expect.objectContaining({ id: 'siem', url: `${new URL(receiver.url).origin}/…`, format: 'standard', delivered: 24, pending: 0, failed: 0, failedAttempts: 48, lastFailure: expect.objectContaining({ error: 'HTTP 503' }) })]);
    expect((await alice[0]!.get('/v1/admin/webhooks')).status).toBe(403);
    expect(JSON.stringify(status.body)).not.toContain(receiver.secret);
  }, 90_000);
});
