// Fault: the agent's event stream is cut while decisions are made on its requests (an approval and a denial). When
// the network comes back the agent resumes with Last-Event-ID and shows both; and the server's resume itself is
// checked: a stream opened with that Last-Event-ID replays exactly the events after it, not the ones before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { editConfigText, startStack, type Stack } from '../harness/stack';
import type { AccessRequest } from '../../shared/contract/http';
import { CuttableNetwork, api, until } from './faults-support';

let stack: Stack;
// Staging needs one approval from a DBA here (no auto-approval, no step-up), so a decision can happen while the
// requester's agent is cut off.
beforeAll(async () => {
  stack = await startStack({
    editConfig: (yaml) => editConfigText(yaml,
      ['autoApprove: { when: { riskBelow: 30 } }', 'description: every staging request waits for a DBA'],
      ['stepUp: { request: on-risk, methods: [webauthn, totp] }', 'stepUp: { request: never, methods: [webauthn, totp] }']),
  });
}, 120_000);
afterAll(async () => { await stack?.stop(); });

/** Read an SSE stream for `ms` and return the parsed frames (id + envelope). */
async function readEvents(token: string, lastEventId: string, ms: number): Promise<Array<{ id: number; type: string; request?: AccessRequest }>> {
  const abort = new AbortController();
  const response = await fetch(new URL('/v1/events', stack.serverUrl), { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'last-event-id': lastEventId }, signal: abort.signal });
  expect(response.status).toBe(200);
  const timer = setTimeout(() => abort.abort(), ms);
  let text = '';
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString('utf8');
  } catch { /* aborted after `ms` */ } finally {
    clearTimeout(timer);
  }
  return text.split('\n\n').map((frame) => /^data: (.*)$/m.exec(frame)?.[1]).filter((d): d is string => !!d).map((d) => {
    const envelope = JSON.parse(d) as { id: string; event: { type: string; request?: AccessRequest } };
    return { id: Number(envelope.id), type: envelope.event.type, ...(envelope.event.request ? { request: envelope.event.request } : {}) };
  });
}

describe('faults: the event stream drops and events are missed', () => {
  it('an approval and a denial made while the stream was cut reach the agent on resume (Last-Event-ID)', async () => {
    const network = new CuttableNetwork();
    const alice = stack.agent('alice', { fetch: network.fetch });
    await alice.signIn();
    await until(() => alice.agent.state().server.status === 'online', 5_000);
    const ask = (reason: string) => alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', durationSeconds: 600, reason, connect: false });
    const toApprove = (await ask('will be approved')).request;
    const toDeny = (await ask('will be denied')).request;
    expect([toApprove.state, toDeny.state]).toEqual(['pending_approval', 'pending_approval']);
    const mine = (id: string) => alice.agent.state().requests.find((r) => r.id === id);
    // The stream has delivered the requests' own events, so the agent has an event id to resume from.
    await until(() => network.calls.some((c) => c.url.endsWith('/v1/events')), 2_000);

    network.cut();
    await until(() => alice.agent.state().server.status === 'offline', 5_000);
    const cutAt = Date.now();
    const bob = await stack.idp.tokenFor('bob');
    expect((await api(stack, bob, 'POST', `/v1/requests/${toApprove.id}/approve`, { comment: 'ok' })).status).toBe(200);
    expect((await api(stack, bob, 'POST', `/v1/requests/${toDeny.id}/deny`, { reason: 'not during the freeze' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    // Cut off: the agent cannot know yet.
    expect([mine(toApprove.id)?.state, mine(toDeny.id)?.state]).toEqual(['pending_approval', 'pending_approval']);

    // Only the event stream comes back (every other call still fails), so the agent's catch-up reload cannot be
    // what tells it: the decisions must arrive through the resumed stream.
    network.restore(/\/v1\/events$/);
    await until(() => mine(toApprove.id)?.state === 'approved' && mine(toDeny.id)?.state === 'denied', 20_000);
    network.restore();
    await alice.agent.api.refresh({});
    expect(alice.agent.state().server.status).toBe('online');

    // The reconnect asked the server to resume after the last event it had seen before the cut.
    const reconnects = network.calls.filter((c) => c.url.endsWith('/v1/events') && c.at > cutAt);
    const resumedFrom = reconnects.map((c) => c.lastEventId).find((id) => id !== null);
    expect(resumedFrom).toMatch(/^[0-9]+$/);

    // The server's side of the resume: from that id, the stream replays the two decisions, and nothing older.
    const replayed = await readEvents(await stack.idp.tokenFor('alice'), resumedFrom!, 1_000);
    expect(replayed.every((e) => e.id > Number(resumedFrom))).toBe(true);
    const decided = replayed.filter((e) => e.type === 'request.updated').map((e) => [e.request!.id, e.request!.state]);
    expect(decided).toEqual(expect.arrayContaining([[toApprove.id, 'approved'], [toDeny.id, 'denied']]));
    // (Events the agent had not yet received before the cut may be replayed too; the last word is the decision.)
    const last = new Map(decided.map(([id, state]) => [id, state]));
    expect([last.get(toApprove.id), last.get(toDeny.id)]).toEqual(['approved', 'denied']);
    await alice.agent.dispose();
  }, 45_000);
});
