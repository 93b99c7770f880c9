// Every AgentApi method, each way it can end, through the whole Electron path without Electron (#20): the page calls
// the real preload's function, which invokes the real main-process handler (desktop/main/ipc.ts) on the method's
// channel; each hop is a structured clone, as Electron's IPC and the contextBridge are. What the page unwraps must be
// what the agent answered: the value whole, or the one problem shape whole — the code, the words, every member.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { agentApi, AgentProblem, type AgentMethod, type AgentResult } from '../../shared/contract/agent';
import { ProblemCode, type ProblemMembers } from '../../shared/contract/problem';
import { registerAgentIpc, type IpcMainLike } from '../../desktop/main/ipc';
import { toAgentProblem, type AgentCore } from '../../agent/core/agent-core';
import { AgentError } from '../../agent/core/errors';
import { AgentCallError, unwrapBridgeResult } from '../../renderer/src/agent/client';

const electron = vi.hoisted(() => ({
  exposed: {} as Record<string, unknown>,
  handlers: new Map<string, (event: unknown, ...args: unknown[]) => unknown>(),
}));

// The preload's only Electron surface: contextBridge hands the page a clone of what it exposes; ipcRenderer.invoke
// clones the input to the main process and the answer back.
vi.mock('electron', () => ({
  contextBridge: { exposeInMainWorld: (key: string, api: unknown) => { electron.exposed[key] = api; } },
  ipcRenderer: {
    invoke: async (channel: string, input: unknown) => {
      const handler = electron.handlers.get(channel);
      if (!handler) throw new Error(`No handler registered for '${channel}'`);
      const event = { sender: { id: 1 }, senderFrame: { url: 'file:///opt/stint/dist/renderer/index.html', parent: null } };
      return structuredClone(await handler(event, structuredClone(input)));
    },
    on: () => undefined,
    removeListener: () => undefined,
  },
}));

const methods = Object.keys(agentApi) as AgentMethod[];

/** A distinct outcome per method: a value with nesting, or a failure with a code and the members it may carry. */
const value = (method: AgentMethod) => ({ method, at: '2030-01-01T12:00:00.000Z', nested: [{ n: 1, list: ['a', 'b'] }], flag: false, none: null });
const FAILURES: Array<[ProblemCode, ProblemMembers]> = [
  ['stepup_required', { status: 403, stepUp: { methods: ['totp', 'webauthn'], action: { kind: 'approve', requestId: 'req_1' } } }],
  ['stepup_invalid', { status: 403, reason: 'wrong_code', attemptsLeft: 2 }],
  ['stepup_locked', { status: 429, attemptsLeft: 0, retryAfter: '2030-01-01T12:05:00.000Z' }],
  ['stepup_not_enrolled', { status: 409, methods: ['webauthn'] }],
  ['credentials_failed', { status: 503, grantId: 'gr_1' }],
  ['invalid_body', { status: 400, errors: [{ path: 'reason', message: 'required' }] }],
  ['self_approval', { status: 403 }],
  ['grant_not_found', { status: 404, type: 'https://stint.dev/problems/grant_not_found', title: 'No such grant' }],
  ['keychain_locked', {}],
  ['server_unreachable', {}],
  ['server_error', { status: 502 }],
  ['tunnel_failed', {}],
];
const failureOf = (method: AgentMethod) => FAILURES[methods.indexOf(method) % FAILURES.length]!;

let fails = false;
type Bridge = Record<AgentMethod, (input: unknown) => Promise<AgentResult<unknown>>>;
let page: Bridge;

beforeAll(async () => {
  const api = Object.fromEntries(methods.map((method) => [method, async () => {
    if (!fails) return value(method);
    const [code, members] = failureOf(method);
    throw new AgentError(code, `${method} failed (${code}).`, new Error('a cause that stays in the agent'), members);
  }])) as unknown as AgentCore['api'];
  const ipcMain: IpcMainLike = { handle: (channel, listener) => void electron.handlers.set(channel, listener as never), removeHandler: (channel) => void electron.handlers.delete(channel) };
  registerAgentIpc(ipcMain, { api, subscribe: () => () => {}, dispose: async () => {} }, {
    isTrusted: (url) => url.startsWith('file:///opt/stint/dist/renderer/'), windowIds: () => new Set([1]),
  });
  await import('../../desktop/preload/index');
  // What the page gets from contextBridge.exposeInMainWorld is a clone of each function's answer.
  const exposed = electron.exposed.stint as Bridge;
  page = Object.fromEntries(methods.map((m) => [m, async (input: unknown) => structuredClone(await exposed[m](input))])) as Bridge;
});

/** A valid input for each method: its schema's defaults, or the smallest values that parse. */
function inputFor(method: AgentMethod): unknown {
  const candidates: unknown[] = [{}, { grantId: 'gr_1' }, { requestId: 'req_1' }, { requestId: 'req_1', reason: 'no' }, { grantId: 'gr_1', durationSeconds: 600 },
    { requestId: 'req_1', proof: { method: 'totp', challengeId: 'ch_1', code: '123456' } }, { resourceId: 'prod-orders', level: 'read' },
    { action: { kind: 'enroll' } }, { id: 'cred_1' }, { challengeId: 'ch_1', response: {} }, { code: '123456' }, { grantId: 'gr_1', reason: 'no' },
    { format: 'csv' }, { reviewId: 'rev_1', outcome: 'ok' }];
  const input = candidates.find((c) => agentApi[method].input.safeParse(c).success);
  if (input === undefined) throw new Error(`no sample input parses for ${method}`);
  return input;
}

describe('the Electron bridge, every AgentApi method', () => {
  it.each(methods)('%s: the value arrives whole', async (method) => {
    fails = false;
    expect(unwrapBridgeResult(await page[method](inputFor(method)))).toEqual(value(method));
  });

  it.each(methods)('%s: the failure arrives as the one problem shape, code and members whole', async (method) => {
    fails = true;
    const [code, members] = failureOf(method);
    const result = await page[method](inputFor(method));
    expect(result.ok).toBe(false);
    let thrown: unknown;
    try { unwrapBridgeResult(result); } catch (error) { thrown = error; }
    expect(thrown).toBeInstanceOf(AgentCallError);
    const problem = (thrown as AgentCallError).problem;
    expect((thrown as AgentCallError).code).toBe(code);
    expect(problem).toEqual(toAgentProblem(new AgentError(code, `${method} failed (${code}).`, undefined, members)));
    expect(problem).toMatchObject({ code, detail: `${method} failed (${code}).`, ...members });
    expect(AgentProblem.strict().parse(problem)).toEqual(problem);
    expect(JSON.stringify(problem)).not.toContain('a cause that stays in the agent');
  });

  it('a call the main process refuses (bad input) reaches the page as the same shape', async () => {
    const result = await page.extend({ grantId: 'gr_1', durationSeconds: 'an hour' });
    expect(result).toMatchObject({ ok: false, error: { code: 'invalid_input', type: 'https://stint.dev/problems/invalid_input', title: 'Invalid input' } });
    expect(AgentProblem.strict().parse((result as { error: unknown }).error)).toBeTruthy();
  });
});
