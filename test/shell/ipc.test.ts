// The Electron shell's IPC logic, tested without the Electron binary: ipcMain is replaced by a recorder of handlers
// (the only Electron surface this module touches), the agent by one that records what reached it.
import { describe, expect, it } from 'vitest';
import { agentApi, type AgentMethod } from '../../shared/contract/agent';
import { channelFor, registerAgentIpc, type IpcMainLike, type TrustedOrigins } from '../../desktop/main/ipc';
import type { AgentCore } from '../../agent/core/agent-core';
import { AgentError } from '../../agent/core/errors';
import { localProblem } from '../../shared/contract/problem';
import { AgentCallError, unwrapBridgeResult } from '../../renderer/src/agent/client';
import { errorCode } from '../../renderer/src/useAgent';

type Handler = (event: any, ...args: unknown[]) => unknown;

/** What the grant server answers an approval that needs a fresh step-up (server/lifecycle), as the agent got it. */
const STEP_UP_REQUIRED = {
  type: 'https://stint.dev/problems/stepup_required', title: 'Step-up required', status: 403, code: 'stepup_required' as const,
  detail: 'approving this request needs a fresh step-up', stepUp: { methods: ['totp' as const], action: { kind: 'approve' as const, requestId: 'req_1' } },
};

function setup() {
  const handlers = new Map<string, Handler>();
  const ipcMain: IpcMainLike = { handle: (channel, listener) => void handlers.set(channel, listener), removeHandler: (channel) => void handlers.delete(channel) };
  const received: Array<{ method: string; input: unknown }> = [];
  const api = Object.fromEntries((Object.keys(agentApi) as AgentMethod[]).map((method) => [method, async (input: unknown) => {
    received.push({ method, input });
    if (method === 'connect') throw new AgentError('port_unavailable', 'Port 15432 is in use by another program.', new Error('EADDRINUSE secret-detail'));
    if (method === 'release') throw new Error('internal failure with /home/alice/.secret path');
    if (method === 'approve') throw AgentError.fromProblem(STEP_UP_REQUIRED);
    return { ok: true };
  }])) as unknown as AgentCore['api'];
  const agent: AgentCore = { api, subscribe: () => () => {}, dispose: async () => {} };
  const trusted: TrustedOrigins = { isTrusted: (url) => url.startsWith('file:///opt/stint/dist/renderer/'), windowIds: () => new Set([7]) };
  const unregister = registerAgentIpc(ipcMain, agent, trusted);
  const event = (overrides: { id?: number; url?: string; parent?: unknown } = {}) => ({
    sender: { id: overrides.id ?? 7 },
    senderFrame: { url: overrides.url ?? 'file:///opt/stint/dist/renderer/index.html', parent: overrides.parent ?? null },
  });
  const invoke = (method: string, payload: unknown, ev = event()) => handlers.get(channelFor(method as AgentMethod))!(ev, payload) as Promise<any>;
  return { handlers, received, invoke, event, unregister };
}

describe('Electron IPC registration', () => {
  it('registers exactly one handler per AgentApi method, and removes them all', () => {
    const { handlers, unregister } = setup();
    expect([...handlers.keys()].sort()).toEqual(Object.keys(agentApi).map((m) => `stint:${m}`).sort());
    unregister();
    expect(handlers.size).toBe(0);
  });

  it('passes a valid call from our window to the agent, parsed by the contract', async () => {
    const { invoke, received } = setup();
    const result = await invoke('deny', { requestId: 'req_1', reason: 'use the replica' });
    expect(result).toEqual({ ok: true, value: { ok: true } });
    expect(received).toEqual([{ method: 'deny', input: { requestId: 'req_1', reason: 'use the replica' } }]);
  });

  it.each([
    ['a foreign origin', { url: 'https://evil.example/' }, /not Stint's own \(https:\/\/evil.example\)/],
    ['a sub-frame', { parent: {} }, /sub-frame/],
    ['a window we did not create', { id: 99 }, /not come from a Stint window/],
  ])('refuses a call from %s without reaching the agent', async (_name, overrides, message) => {
    const { invoke, received, event } = setup();
    const result = await invoke('signOut', {}, event(overrides));
    expect(result.ok).toBe(false);
    expect(result.error.code).toBe('forbidden_sender');
    expect(result.error.detail).toMatch(message);
    expect(received).toEqual([]);
  });

  it.each([
    ['deny without a reason', 'deny', { requestId: 'req_1', reason: '' }],
    ['an unknown field', 'release', { grantId: 'g1', extra: true }],
    ['a wrong type', 'extend', { grantId: 'g1', durationSeconds: '1h' }],
    ['no payload where one is required', 'connect', undefined],
  ])('refuses %s with invalid_input', async (_name, method, payload) => {
    const { invoke, received } = setup();
    const result = await invoke(method, payload);
    expect(result).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
    expect(received).toEqual([]);
  });

  it('returns agent errors as the one problem shape and hides unexpected ones', async () => {
    const { invoke } = setup();
    expect(await invoke('connect', { grantId: 'g1' })).toEqual({ ok: false, error: localProblem('port_unavailable', 'Port 15432 is in use by another program.') });
    const hidden = await invoke('release', { grantId: 'g1' });
    expect(hidden.error.code).toBe('internal');
    expect(JSON.stringify(hidden)).not.toContain('.secret');
  });

  it('the server\'s problem survives the bridge to the page unchanged (structured clone, as contextBridge does)', async () => {
    const { invoke } = setup();
    const answered = await invoke('approve', { requestId: 'req_1' });
    // What the page receives is a structured clone of what the preload resolves with.
    const received = structuredClone(answered);
    let thrown: unknown;
    try { unwrapBridgeResult(received); } catch (error) { thrown = error; }
    expect(thrown).toBeInstanceOf(AgentCallError);
    // The page's code IS the server's code, with every member it sent (#20)…
    expect((thrown as AgentCallError).problem).toEqual(STEP_UP_REQUIRED);
    // …so the approval dialog knows to ask for a step-up (it used to see `internal`, then `server_error`).
    expect(errorCode(thrown)).toBe('stepup_required');
    // Why the union and not a thrown Error: a clone of an Error keeps its message and drops every other property.
    expect((structuredClone(Object.assign(new Error('refused'), { code: 'stepup_required' })) as { code?: string }).code).toBeUndefined();
    expect(unwrapBridgeResult(structuredClone(await invoke('getState', {})))).toEqual({ ok: true });
  });
});
