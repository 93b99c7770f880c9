// Which events webhooks tell, on a server with the real step-up service (TOTP): a factor change; a request that still
// waits for its requester's step-up (no approval link yet); failed step-ups, told once they reach the threshold; and
// the request waiting for approvers once the step-up passed, with the link to its approval page (Slack: a button).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from 'otplib';
import { randomBytes } from 'node:crypto';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { startWebhookReceiver, type WebhookReceiver } from '../../dev/webhook-receiver';
import { StepUpService } from '../../server/stepup/service';
import { KyselyStepUpStore } from '../../server/stepup/store';
import { declareStepUpRoutes } from '../../server/stepup/routes';
import type { SlackMessage } from '../../server/webhooks/slack';
import { clientFor, Tokens, until } from './helpers';

type Told = { type: string; timestamp: string; data: { action: string; actor: string; requestId?: string; approveUrl?: string; detail?: Record<string, unknown> } };

describe('webhook events of step-up and of requests that wait', () => {
  let idp: IdpInstance;
  let server: RunningGrantServer;
  let standard: WebhookReceiver;
  let slack: WebhookReceiver;

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    [standard, slack] = await Promise.all([startWebhookReceiver(), startWebhookReceiver()]);
    const totpKey = randomBytes(32).toString('base64url');
    server = await startGrantServer({
      idp,
      env: { HOOK_URL: standard.url, HOOK_SECRET: standard.secret, SLACK_URL: slack.url, SLACK_SECRET: slack.secret },
      overrides: {
        policies: { 'production-db': { stepUp: { request: 'always', approve: 'never', methods: ['totp'] } } },
        webhooks: {
          endpoints: {
            audit: { url: 'env:HOOK_URL', secret: 'env:HOOK_SECRET', events: ['request.*', 'stepup.failures', 'factor.changed'] },
            chat: { url: 'env:SLACK_URL', secret: 'env:SLACK_SECRET', format: 'slack', events: ['request.created', 'request.awaiting_approval'] },
          },
          stepUpFailureThreshold: 3,
        },
      },
      // The real step-up service on the server's database, as stint-server builds it.
      stepUp: ({ db, clock }) => {
        const service = new StepUpService({ store: new KyselyStepUpStore(db), config: { rpId: 'localhost', rpName: 'Stint', origins: ['http://localhost'], totpKey, challengeTtlSeconds: 120, maxAttempts: 10, lockoutSeconds: 60 }, now: () => clock.now() });
        return { gate: service, routes: (deps) => declareStepUpRoutes({ service, resolver: deps.resolver, audit: deps.audit, firstFactorWindowMs: 600_000, now: () => clock.now() }) };
      },
    });
  });
  afterAll(async () => {
    await server?.close();
    await Promise.all([standard?.close(), slack?.close()]);
    await idp?.close();
  });

  it('tells a factor change, failed step-ups past the threshold, and the approval link only once approvers can act', async () => {
    const alice = clientFor(server.url, await new Tokens(idp).for('alice'));
    const enrolled = await alice.post('/v1/stepup/totp/enroll', {});
    expect(enrolled.status).toBe(200);
    const secret = enrolled.body.secret as string;
    expect((await alice.post('/v1/stepup/totp/confirm', { code: await generate({ secret }) })).status).toBe(200);

    const created = await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-31 refunds' });
    expect(created.body.request.state).toBe('pending_stepup');
    const id = created.body.request.id as string;
    const challenge = await alice.post('/v1/stepup/challenges', { action: { kind: 'request', requestId: id } });
    expect(challenge.status).toBe(201);
    // The next time step's code: the confirming code (this step's) may not be used twice.
    const right = await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    for (let i = 0; i < 4; i++) {
      expect((await alice.post(`/v1/requests/${id}/stepup`, { method: 'totp', challengeId: challenge.body.challengeId, code: wrong })).status).toBeGreaterThanOrEqual(400);
    }
    const passed = await alice.post(`/v1/requests/${id}/stepup`, { method: 'totp', challengeId: challenge.body.challengeId, code: right });
    expect(passed.body.request?.state, JSON.stringify(passed.body)).toBe('pending_approval');

    await until('the events', () => standard.accepted().some((t) => (t.body as Told).type === 'request.awaiting_approval'), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    // In the order they happened (a receiver may get events sent side by side in any order).
    const told = standard.accepted().map((t) => t.body as Told).sort((x, y) => Date.parse(x.timestamp) - Date.parse(y.timestamp));
    // Four wrong codes, a threshold of three: one stepup.failures event, not four.
    expect(told.map((e) => e.type)).toEqual(['factor.changed', 'request.created', 'stepup.failures', 'request.awaiting_approval']);
    expect(told[0]!.data).toMatchObject({ action: 'stepup.totp.confirmed', actor: 'alice' });
    expect(told[1]!.data.approveUrl).toBeUndefined();
    expect(told[2]!.data).toMatchObject({ actor: 'alice', requestId: id, detail: { failuresLastHour: 3, threshold: 3 } });
    expect(told[3]!.data).toMatchObject({ requestId: id, approveUrl: `${server.config.server.url}/approve/${id}`, detail: { level: 'read', durationSeconds: 3600, requestReason: 'INC-31 refunds' } });

    const messages = slack.accepted().map((t) => t.body as SlackMessage);
    expect(messages).toHaveLength(2);
    // The request waiting for its requester's step-up has no button; the one waiting for approvers has.
    expect(messages.find((m) => !m.blocks.some((b) => b.type === 'actions'))!.text).toBe('*alice* asks for *read* on *Orders (production)* for 1h — “INC-31 refunds”');
    expect(messages.find((m) => m.blocks.some((b) => b.type === 'actions'))!.text).toBe('*alice* asks for *read* on *Orders (production)* for 1h — “INC-31 refunds” (identity verified)');
  });
});
