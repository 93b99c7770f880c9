// Reminders and escalation (#24) on the real grant server with its clock driven by the test: a request nobody decides
// reminds its approvers at the policy's times (audited, and told to them as `approval.reminded`), then its escalation
// group may approve in the open slot — not before; the requester sees who has been asked all along. A decided request
// is nudged no more.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { FakeClock } from '../../dev/fake-clock';
import { waitsForApprover } from '../../shared/domain/approvals';
import { reminderNotification } from '../../agent/core/models';
import { call, ed25519PublicKeyLine, RecordingProvider, Tokens } from './helpers';
import { openEvents } from './sse';
import { startWebhookReceiver, type WebhookReceiver } from '../../dev/webhook-receiver';

let idp: IdpInstance;
let server: RunningGrantServer;
let tokens: Tokens;
/** Where the server's webhooks go: the approvers' chat, asked again with the approval link. */
let chat: WebhookReceiver;
const clock = new FakeClock(Date.now());
const MIN = 60_000;

beforeAll(async () => {
  // Tokens outlive the minutes the test moves the server's clock on.
  idp = await startIdp({ accessTokenTtlSeconds: 4 * 3600 });
  tokens = new Tokens(idp);
  chat = await startWebhookReceiver();
  server = await startGrantServer({
    idp, clock, credentials: new RecordingProvider(), env: { CHAT_URL: chat.url, CHAT_SECRET: chat.secret },
    // An SRE lead decides production requests (and their extensions); after 15 minutes without a decision any DBA may.
    overrides: {
      webhooks: { endpoints: { chat: { url: 'env:CHAT_URL', secret: 'env:CHAT_SECRET', events: ['request.reminded', 'request.escalated'] } } },
      policies: { 'production-db': { approvals: [{ from: 'sre-leads', count: 1 }], reminders: ['5m', '10m'], escalation: { group: 'dba', after: '15m' }, extend: { maxTotal: '8h', reapproval: true } } } },
  });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await chat?.close();
  await idp?.close();
});

const as = async (user: string) => ({ token: await tokens.for(user) });

async function aliceAsks(reason: string): Promise<string> {
  const created = await call(server.url, 'POST', '/v1/requests', { ...(await as('alice')), body: { resourceId: 'prod-orders', level: 'read', reason } });
  expect(created.status).toBe(201);
  return created.body.request.id as string;
}

async function audited(id: string, action: string): Promise<any[]> {
  const entries = (await call(server.url, 'GET', `/v1/audit?requestId=${id}&limit=1000`, await as('carol'))).body.entries as any[];
  return entries.filter((e) => e.action === action);
}

describe('reminders and escalation', () => {
  it('reminds at 5 and 10 minutes, escalates to the DBAs at 15, and the requester sees who is asked', async () => {
    const id = await aliceAsks('nudge me');
    const mine = async () => (await call(server.url, 'GET', `/v1/requests/${id}`, await as('alice'))).body.request;
    const t0 = Date.parse((await mine()).createdAt);
    expect((await mine()).asked).toEqual({
      groups: ['sre-leads'], remindersSent: 0, nextReminderAt: new Date(t0 + 5 * MIN).toISOString(),
      escalation: { group: 'dba', at: new Date(t0 + 15 * MIN).toISOString(), reached: false },
    });
    // Before the escalation a DBA cannot see it, let alone approve it.
    expect((await call(server.url, 'GET', `/v1/requests/${id}`, await as('bob'))).status).toBe(404);
    expect((await call(server.url, 'POST', `/v1/requests/${id}/approve`, { ...(await as('bob')), body: {} })).body.code).toBe('not_an_approver');

    const dave = await openEvents(server.url, (await as('dave')).token);
    await clock.advance(5 * MIN);
    await expect.poll(async () => (await audited(id, 'request.reminded')).length).toBe(1);
    const reminded = await dave.next((e) => e.event.type === 'approval.reminded');
    expect(reminded.event).toMatchObject({ request: { id, asked: { remindersSent: 1 } } });
    await clock.advance(5 * MIN);
    await expect.poll(async () => (await audited(id, 'request.reminded')).length).toBe(2);
    expect((await audited(id, 'request.reminded')).map((e) => e.detail)).toEqual([{ groups: ['sre-leads'], reminder: 1 }, { groups: ['sre-leads'], reminder: 2 }]);
    dave.close();

    await clock.advance(5 * MIN);
    await expect.poll(async () => (await audited(id, 'request.escalated')).length).toBe(1);
    // The chat is told of each nudge: the first reminder (verified: its signature's time, this test's clock five
    // minutes on, is still within Standard Webhooks' tolerance) with the link that decides the request; the second
    // reminder and the escalation come signed ten and fifteen minutes ahead of the receiver's clock, which it refuses
    // as skew — they are seen as two more events, each under its own webhook-id.
    const link = `${server.config.server.url}/approve/${id}`;
    await expect.poll(() => chat.accepted().map((m) => [(m.body as any).type, (m.body as any).data.approveUrl]), { timeout: 10_000 }).toEqual([['request.reminded', link]]);
    await expect.poll(() => new Set(chat.attempts.map((m) => m.webhookId)).size, { timeout: 10_000 }).toBe(3);
    expect((await mine()).asked).toEqual({
      groups: ['sre-leads', 'dba'], remindersSent: 2,
      escalation: { group: 'dba', at: new Date(t0 + 15 * MIN).toISOString(), reached: true },
    });
    // Now the DBA sees it waiting for him and fills the SRE lead's slot.
    const inbox = await call(server.url, 'GET', '/v1/requests?role=approver', await as('bob'));
    expect(inbox.body.requests.map((r: { id: string }) => r.id)).toContain(id);
    expect(waitsForApprover(inbox.body.requests.find((r: { id: string }) => r.id === id), { sub: 'bob', groups: ['engineers', 'approvers', 'dba'] })).toBe(true);
    const approved = await call(server.url, 'POST', `/v1/requests/${id}/approve`, { ...(await as('bob')), body: {} });
    expect(approved.status).toBe(200);
    expect(approved.body.request).toMatchObject({ state: 'approved', approvals: [{ approver: 'bob', group: 'sre-leads' }] });
  });

  it('a decided request is nudged no more', async () => {
    const id = await aliceAsks('decided at once');
    expect((await call(server.url, 'POST', `/v1/requests/${id}/deny`, { ...(await as('dave')), body: { reason: 'no' } })).status).toBe(200);
    await clock.advance(16 * MIN);
    // Another request's nudge, made after, shows the timers ran; this one has none.
    const later = await aliceAsks('a later one');
    await clock.advance(5 * MIN);
    await expect.poll(async () => (await audited(later, 'request.reminded')).length).toBe(1);
    expect(await audited(id, 'request.reminded')).toEqual([]);
    expect(await audited(id, 'request.escalated')).toEqual([]);
  });

  it('an extension waiting for re-approval is reminded afresh, not where its first request had got to', async () => {
    const id = await aliceAsks('long job');
    await clock.advance(5 * MIN);
    await expect.poll(async () => (await audited(id, 'request.reminded')).length).toBe(1);
    expect((await call(server.url, 'POST', `/v1/requests/${id}/approve`, { ...(await as('dave')), body: {} })).status).toBe(200);
    const activated = await call(server.url, 'POST', `/v1/requests/${id}/activate`, { ...(await as('alice')), body: { publicKey: ed25519PublicKeyLine() } });
    expect(activated.status).toBe(201);
    const extended = await call(server.url, 'POST', `/v1/grants/${activated.body.grant.id}/extend`, { ...(await as('alice')), body: { durationSeconds: 1800 } });
    const extension = extended.body.request;
    expect(extension).toMatchObject({ state: 'pending_approval', asked: { groups: ['sre-leads'], remindersSent: 0, escalation: { group: 'dba', reached: false } } });
    expect(extension.asked.nextReminderAt).toBe(new Date(Date.parse(extension.createdAt) + 5 * MIN).toISOString());
    await clock.advance(5 * MIN);
    await expect.poll(async () => (await audited(extension.id, 'request.reminded')).length).toBe(1);
  });

  it('the agent says a reminder with the same actions as the ask', () => {
    const request = { id: 'req_1', requester: 'alice', requesterName: 'Alice', level: 'read', resourceId: 'prod-orders', durationSeconds: 3600, reason: 'look', asked: { groups: ['sre-leads'], remindersSent: 2 } };
    expect(reminderNotification(request as never, '7')).toEqual({
      id: 'approval_reminder:req_1:2', kind: 'approval_asked', title: 'Reminder: approval asked',
      body: 'Alice still waits for a decision on read for prod-orders (1h) — look', actions: ['approve', 'deny', 'open'], requestId: 'req_1',
    });
  });
});
