// Webhooks and break-glass reviews on one grant server (SQLite), with real HTTP receivers that verify every signature
// with the standardwebhooks library: the Slack format's message shape and its link to the approval page, an
// endpoint's event filter, and a break-glass use that opens a review, is reminded when overdue and is recorded by an
// approver on the audit chain; `stint-server webhooks` prints what the admin route shows.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditList } from '../../shared/contract/http';
import { ReviewList, ReviewResult } from '../../shared/contract/reviews';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { newWebhookSecret, startWebhookReceiver, type WebhookReceiver } from '../../dev/webhook-receiver';
import { freePort } from '../../dev/ports';
import { startProcess, type Started } from '../../dev/process';
import { verifyAudit } from '../../server/lifecycle/audit';
import { main } from '../../server/main';
import { clientFor, Tokens, until } from './helpers';
import { openEvents } from './sse';

describe('webhooks and break-glass reviews', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  let server: RunningGrantServer;
  let slack: WebhookReceiver;
  let security: WebhookReceiver;
  let env: Record<string, string>;
  /** docs/webhook-receiver.example.mjs, the receiver docs/admin.md shows, run as a reader would run it. */
  let documented: Started;
  type Client = ReturnType<typeof clientFor>;
  let alice: Client, bob: Client, carol: Client, dave: Client;

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    [slack, security] = await Promise.all([startWebhookReceiver(), startWebhookReceiver()]);
    const docsPort = await freePort();
    const docsSecret = newWebhookSecret();
    documented = startProcess(process.execPath, ['docs/webhook-receiver.example.mjs'], { env: { ...process.env, WEBHOOK_SECRET: docsSecret, PORT: String(docsPort) } });
    env = {
      SLACK_URL: slack.url, SLACK_SECRET: slack.secret, SECURITY_URL: security.url, SECURITY_SECRET: security.secret,
      DOCS_URL: `http://127.0.0.1:${docsPort}/`, DOCS_SECRET: docsSecret,
    };
    server = await startGrantServer({
      idp, env, sweepEveryMs: 300,
      overrides: {
        webhooks: {
          endpoints: {
            chat: { url: 'env:SLACK_URL', secret: 'env:SLACK_SECRET', format: 'slack', events: ['request.created'] },
            security: { url: 'env:SECURITY_URL', secret: 'env:SECURITY_SECRET', events: ['breakglass.*'] },
            docs: { url: 'env:DOCS_URL', secret: 'env:DOCS_SECRET', events: ['request.created'] },
          },
        },
        // Due at once, so the reminder comes within the test; reminded again only an hour later.
        reviews: { dueAfter: 1, remindEvery: '1h' },
      },
    });
    const client = async (u: string) => clientFor(server.url, await tokens.for(u));
    [alice, bob, carol, dave] = await Promise.all([client('alice'), client('bob'), client('carol'), client('dave')]);
  });
  afterAll(async () => {
    await server?.close();
    await Promise.all([slack?.close(), security?.close(), documented?.stop()]);
    await idp?.close();
  });

  it('sends a pending request to Slack as blocks with a button to its approval page', async () => {
    const created = await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'refund <check> & INC-12', ticket: 'INC-12' });
    expect(created.status).toBe(201);
    const id = created.body.request.id as string;
    const [message] = await until('the Slack message', () => slack.accepted().length > 0 && slack.accepted(), 10_000);
    expect(message!.verified).toBe(true);
    expect(message!.body).toEqual({
      text: '*alice* asks for *read* on *Orders (production)* for 1h — “refund &lt;check&gt; &amp; INC-12”',
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: '*alice* asks for *read* on *Orders (production)* for 1h — “refund &lt;check&gt; &amp; INC-12”' } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: `Stint · request.created · ${id}` }] },
        { type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Review and approve' }, url: `${server.config.server.url}/approve/${id}`, action_id: 'stint_open_approval', style: 'primary' }] },
      ],
    });
    // The receiver of docs/admin.md (the same code as its snippet) verified it and printed it with the link.
    const snippet = /```js illustration\n([\s\S]*?)```/.exec(readFileSync('docs/admin.md', 'utf8'))![1];
    expect(snippet).toBe(readFileSync('docs/webhook-receiver.example.mjs', 'utf8'));
    await until('the documented receiver to print the event', () => documented.output().includes(`request.created alice ${server.config.server.url}/approve/${id}`), 10_000);
    // The other endpoint's filter (breakglass.*) does not take requests.
    await new Promise((r) => setTimeout(r, 500));
    expect(security.attempts).toHaveLength(0);
  });

  it('break-glass opens a review for the approvers, reminds it when overdue, and records it on the audit chain', async () => {
    const bobEvents = await openEvents(server.url, await tokens.for('bob'));
    try {
      const used = await dave.post('/v1/requests', { resourceId: 'prod-orders', level: 'write', reason: 'orders outage, INC-9', breakGlass: true });
      expect(used.status).toBe(201);
      const requestId = used.body.request.id as string;

      // Approvers of prod-orders (dba: bob) see it; the one who used it and non-approvers do not.
      const open = ReviewList.parse((await bob.get('/v1/reviews')).body).reviews;
      expect(open).toEqual([expect.objectContaining({ requestId, resourceId: 'prod-orders', requester: 'dave', reason: 'orders outage, INC-9', groups: ['dba', 'sre-leads'] })]);
      const reviewId = open[0]!.id;
      expect(ReviewList.parse((await alice.get('/v1/reviews')).body).reviews).toEqual([]);
      expect(ReviewList.parse((await dave.get('/v1/reviews')).body).reviews).toEqual([]);
      expect((await dave.post(`/v1/reviews/${reviewId}/record`, { outcome: 'ok' })).body.code).toBe('self_review');
      expect((await alice.post(`/v1/reviews/${reviewId}/record`, { outcome: 'ok' })).body.code).toBe('review_not_found');
      expect((await bob.post(`/v1/reviews/${reviewId}/record`, { outcome: 'concern' })).status).toBe(400);

      // Overdue after a second: one reminder (not one per sweep), to the reviewers' agents and the webhook.
      const due = await bobEvents.next((e) => e.event.type === 'breakglass.review_due', 10_000);
      expect(due.event).toMatchObject({ review: { id: reviewId, overdue: true } });
      await until('the security webhook to hear of the use and the overdue review', () => security.accepted().length >= 2, 10_000);
      await new Promise((r) => setTimeout(r, 1_000));
      const told = security.accepted().map((t) => (t.body as { type: string }).type);
      expect(told).toEqual(['breakglass.used', 'breakglass.review_overdue']);

      const recorded = await bob.post(`/v1/reviews/${reviewId}/record`, { outcome: 'concern', note: 'no incident ticket was opened' });
      expect(recorded.status, JSON.stringify(recorded.body)).toBe(200);
      expect(ReviewResult.parse(recorded.body).review).toMatchObject({ id: reviewId, reviewedBy: 'bob', outcome: 'concern', note: 'no incident ticket was opened', overdue: false });
      expect((await carol.post(`/v1/reviews/${reviewId}/record`, { outcome: 'ok' })).body.code).toBe('review_already_recorded');
      expect(ReviewList.parse((await bob.get('/v1/reviews')).body).reviews).toEqual([]);
      expect(ReviewList.parse((await carol.get('/v1/reviews?state=all')).body).reviews.map((r) => [r.id, r.reviewedBy])).toEqual([[reviewId, 'bob']]);

      const audit = AuditList.parse((await carol.get(`/v1/audit?requestId=${requestId}`)).body).entries;
      expect(audit.filter((e) => e.action.startsWith('breakglass.')).map((e) => [e.action, e.actor])).toEqual([['breakglass.used', 'dave'], ['breakglass.review_overdue', 'system'], ['breakglass.reviewed', 'bob']]);
      expect(audit.find((e) => e.action === 'breakglass.reviewed')).toMatchObject({ subject: 'dave', reason: 'no incident ticket was opened', detail: { reviewId, outcome: 'concern' } });
      expect((await verifyAudit(server.server.store.db)).ok).toBe(true);
      await until('the review to reach the webhook', () => security.accepted().some((t) => (t.body as { type: string }).type === 'breakglass.reviewed'), 10_000);
    } finally {
      bobEvents.close();
    }
  });

  it('`stint-server webhooks` prints each endpoint with its deliveries, never its URL path or secret', async () => {
    const configPath = join(server.dataDir, 'webhooks-cli.yaml');
    writeFileSync(configPath, stringify(server.config));
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), env };
    expect(await main(['webhooks', '--config', configPath], io)).toBe(0);
    const text = lines.join('\n');
    expect(text).toContain(`chat  slack  ${new URL(slack.url).origin}/…  events: request.created`);
    expect(text).toMatch(/security {2}standard .*\n {2}delivered 3, pending 0, given up 0, failed attempts 0/);
    expect(text).not.toContain(slack.secret);
    expect(text).not.toContain('/hooks');
  });
});
