// Break-glass reaches the approvers where they are (#24), on the real grant server and the agent's real OIDC session:
// dave's break-glass use becomes a "Break-glass used" notification on bob's agent (a DBA, an approver of the
// resource), and bob reviews it from the `stint` CLI — `stint reviews` lists it, `stint review` records a concern,
// which lands on the audit chain.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentBackend, type AgentBackend, type BackendServer, type Catalog } from '../../dev/agent-backend';
import { FakeClock } from '../../dev/fake-clock';
import { Agent } from '../../agent/core/agent';
import { MemorySettingsStore } from '../../agent/core/settings';
import { MemoryClipboard } from '../../agent/core/clipboard';
import { runCli, type Io } from '../../agent/cli/main';
import type { AgentEvent, AgentNotification } from '../../shared/contract/agent';
import { MemorySecretStore } from './memory-secrets';

const CATALOG: Catalog = {
  resources: [{ id: 'prod-orders', policy: 'dba-approves', name: 'Orders (production)' }],
  policies: {
    'dba-approves': {
      requesters: ['engineers'], duration: { default: '1h', max: '4h' }, approvals: [{ from: 'dba', count: 1 }],
      breakGlass: { groups: ['sre-oncall'], reason: 'required' },
    },
  },
};

let backend: AgentBackend;
let server: BackendServer;
beforeAll(async () => {
  backend = await startAgentBackend();
  server = await backend.startServer(CATALOG);
});
afterAll(async () => {
  await server?.kill();
  await backend?.stop();
});

describe('break-glass review from the approver\'s agent', () => {
  it('bob is told of dave\'s break-glass use, lists it with `stint reviews` and records a concern with `stint review`', async () => {
    const secrets = new MemorySecretStore();
    const bobAgent = () => new Agent({
      settings: new MemorySettingsStore({ serverUrl: server.url }), secrets, clock: new FakeClock(), clipboard: new MemoryClipboard(),
      session: backend.session('bob', { secrets }), eventStream: { initialBackoffMs: 10, maxBackoffMs: 50 },
    });
    const agent = bobAgent();
    const heard: AgentNotification[] = [];
    agent.subscribe((e: AgentEvent) => { if (e.type === 'notification') heard.push(e.notification); });
    try {
      await agent.start();
      await agent.api.signIn({});
      await expect.poll(() => agent.state().server.status, { timeout: 10_000 }).toBe('online');

      const daveToken = await backend.idp.tokenFor('dave');
      const used = await fetch(`${server.url}/v1/requests`, {
        method: 'POST', headers: { authorization: `Bearer ${daveToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ resourceId: 'prod-orders', level: 'write', reason: 'orders outage, INC-9', breakGlass: true }),
      });
      expect(used.status).toBe(201);
      const requestId = (await used.json()).request.id as string;
      await expect.poll(() => heard.find((n) => n.kind === 'breakglass'), { timeout: 10_000 }).toMatchObject({
        id: `breakglass:${requestId}`, title: 'Break-glass used', requestId, actions: ['open'],
        body: expect.stringContaining('took write on Orders (production) without approval — orders outage, INC-9'),
      });
    } finally {
      await agent.dispose();
    }

    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l) };
    expect(await runCli(['reviews', '--json'], io, bobAgent), err.join('\n')).toBe(0);
    const [review] = JSON.parse(out.at(-1)!) as { id: string; requester: string; resourceId: string }[];
    expect(review).toMatchObject({ requester: 'dave', resourceId: 'prod-orders' });

    expect(await runCli(['review', review!.id, '--outcome', 'concern'], io, () => { throw new Error('no agent needed'); })).toBe(2);
    expect(err.at(-1)).toMatch(/A concern needs --note/);
    expect(await runCli(['review', review!.id, '--outcome', 'concern', '--note', 'no incident ticket'], io, bobAgent)).toBe(0);
    expect(out.at(-1)).toBe('Recorded your review of dave\'s break-glass use on prod-orders: concern — "no incident ticket". It is on the audit record.');
    expect(await runCli(['reviews'], io, bobAgent)).toBe(0);
    expect(out.at(-1)).toBe('No break-glass use is waiting for your review.');
    // A second recording is refused in words.
    expect(await runCli(['review', review!.id, '--outcome', 'ok'], io, bobAgent)).toBe(1);
    expect(err.at(-1)).toMatch(/already recorded/);

    const audit = await fetch(`${server.url}/v1/audit?action=breakglass.reviewed`, { headers: { authorization: `Bearer ${await backend.idp.tokenFor('carol')}` } });
    expect((await audit.json()).entries).toEqual([expect.objectContaining({ actor: 'bob', subject: 'dave', reason: 'no incident ticket', detail: { reviewId: review!.id, outcome: 'concern' } })]);
  }, 60_000);
});
