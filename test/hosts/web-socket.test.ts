// The web host lets only a page it served drive the agent: own Origin and Host at the upgrade, then the per-launch
// token as the first message; every call is parsed with the contract before it reaches the agent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startWebHost, type WebHost } from '../../agent/web/host';
import { ScriptedAgent } from '../e2e/fixtures/scripted-agent';

let host: WebHost;
let agent: ScriptedAgent;
beforeAll(async () => {
  agent = new ScriptedAgent();
  host = await startWebHost({ staticDir: 'renderer', agent });
});
afterAll(async () => { await host.close(); });

function open(options: { origin?: string; host?: string } = {}): Promise<{ ws: WebSocket; messages: any[]; closed: Promise<{ code: number }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${host.port}/agent`, {
      origin: options.origin ?? host.origin,
      headers: { host: options.host ?? `localhost:${host.port}` },
    });
    const messages: any[] = [];
    const closed = new Promise<{ code: number }>((done) => ws.on('close', (code) => done({ code })));
    ws.on('message', (data) => messages.push(JSON.parse(String(data))));
    ws.on('open', () => resolve({ ws, messages, closed }));
    ws.on('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
  });
}

const until = async (check: () => boolean) => { for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20)); };

describe('web host AgentApi socket', () => {
  it('answers calls after the right token, validated by the contract', async () => {
    const { ws, messages } = await open();
    ws.send(JSON.stringify({ type: 'hello', token: host.token }));
    ws.send(JSON.stringify({ type: 'call', id: 1, method: 'getState', input: {} }));
    ws.send(JSON.stringify({ type: 'call', id: 2, method: 'deny', input: { requestId: 'r1', reason: '' } }));
    ws.send(JSON.stringify({ type: 'call', id: 3, method: 'constructor', input: {} }));
    await until(() => messages.filter((m) => m.type === 'result').length === 3);
    const results = Object.fromEntries(messages.filter((m) => m.type === 'result').map((m) => [m.id, m]));
    expect(messages[0]).toEqual({ type: 'welcome' });
    expect(results[1]).toMatchObject({ ok: true, output: { session: { status: 'signed_out' } } });
    expect(results[2]).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
    expect(results[3]).toMatchObject({ ok: false, error: { code: 'unknown_method' } });
    expect(agent.callsTo('deny')).toEqual([]);
    ws.close();
  });

  it('closes the socket on a wrong token without answering anything', async () => {
    const { ws, messages, closed } = await open();
    ws.send(JSON.stringify({ type: 'hello', token: 'x'.repeat(43) }));
    ws.send(JSON.stringify({ type: 'call', id: 1, method: 'getState', input: {} }));
    expect((await closed).code).toBe(4401);
    expect(messages).toEqual([]);
  });

  it('refuses a call before the token', async () => {
    const { ws, closed } = await open();
    ws.send(JSON.stringify({ type: 'call', id: 1, method: 'signOut', input: {} }));
    expect((await closed).code).toBe(4401);
    expect(agent.callsTo('signOut')).toEqual([]);
  });

  it('refuses the upgrade from a foreign Origin or Host', async () => {
    await expect(open({ origin: 'http://evil.example' })).rejects.toMatchObject({ status: 403 });
    await expect(open({ host: `evil.example:${host.port}` })).rejects.toMatchObject({ status: 403 });
  });
});
