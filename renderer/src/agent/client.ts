// How the UI reaches the agent: through `window.stint` (the Electron preload: one function per AgentApi method) or,
// in the web host, through its WebSocket with the per-launch token from the URL fragment. Both give an AgentClient.
import type { AgentEvent, AgentInput, AgentMethod, AgentOutput, AgentProblem, AgentResult } from '../../../shared/contract/agent';
import { localProblem, type ProblemCode } from '../../../shared/contract/problem';
import { ServerMessage, type ClientMessage } from '../../../shared/contract/wire';

export interface AgentClient {
  call<M extends AgentMethod>(method: M, input: AgentInput<M>): Promise<AgentOutput<M>>;
  subscribe(listener: (event: AgentEvent) => void): () => void;
}

/** A failed call as the UI gets it: the agent's problem (for a refusal, the grant server's own code and members). */
export class AgentCallError extends Error {
  readonly code: ProblemCode;

  constructor(readonly problem: AgentProblem) {
    super(problem.detail);
    this.code = problem.code;
  }

  /** A failure of the UI's own (the agent out of reach, a page without its token). */
  static local(code: ProblemCode, detail: string): AgentCallError {
    return new AgentCallError(localProblem(code, detail));
  }
}

/** A result from the Electron bridge as the page gets it: the value, or the agent's problem as an AgentCallError. */
export function unwrapBridgeResult<T>(result: AgentResult<T>): T {
  if (result.ok) return result.value;
  throw new AgentCallError(result.error);
}

type ElectronBridge = { [M in AgentMethod]: (input: AgentInput<M>) => Promise<AgentResult<AgentOutput<M>>> } & {
  onEvent: (listener: (event: AgentEvent) => void) => () => void;
};

export function electronClient(): AgentClient | undefined {
  const bridge = (window as unknown as { stint?: ElectronBridge }).stint;
  if (!bridge || typeof bridge.onEvent !== 'function') return undefined;
  return {
    call: async (method, input) => {
      let result: AgentResult<never>;
      try {
        result = await (bridge[method] as (i: unknown) => Promise<AgentResult<never>>)(input);
      } catch (error) {
        // The bridge itself failed (no handler, a cloning error): nothing the agent said.
        throw AgentCallError.local('internal', error instanceof Error ? error.message : String(error));
      }
      return unwrapBridgeResult(result);
    },
    subscribe: (listener) => bridge.onEvent(listener),
  };
}

export function webHostClient(): Promise<AgentClient> {
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token');
  if (!token) return Promise.reject(AgentCallError.local('no_token', 'This page was opened without its access token. Open the link that `npm start` printed.'));
  const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/agent`;
  const socket = new WebSocket(url);
  const listeners = new Set<(event: AgentEvent) => void>();
  const pending = new Map<number, { resolve: (v: never) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const send = (message: ClientMessage) => socket.send(JSON.stringify(message));
  return new Promise((resolve, reject) => {
    socket.onopen = () => send({ type: 'hello', token });
    socket.onclose = (event) => {
      const error = AgentCallError.local('agent_unreachable', event.code === 4401 ? 'The agent refused this page’s token. Open the link that `npm start` printed.' : 'Lost the connection to the Stint agent.');
      for (const { reject: fail } of pending.values()) fail(error);
      pending.clear();
      // Tell the UI, which otherwise would only notice at its next call.
      for (const listener of listeners) listener({ type: 'problem', problem: error.problem });
      reject(error);
    };
    socket.onmessage = (raw) => {
      const parsed = ServerMessage.safeParse(JSON.parse(String(raw.data)));
      if (!parsed.success) return;
      const message = parsed.data;
      if (message.type === 'welcome') {
        resolve({
          call: (method, input) => new Promise((ok, fail) => {
            const id = nextId++;
            pending.set(id, { resolve: ok as (v: never) => void, reject: fail });
            send({ type: 'call', id, method, input });
          }),
          subscribe: (listener) => {
            listeners.add(listener);
            return () => listeners.delete(listener);
          },
        });
      } else if (message.type === 'event') {
        for (const listener of listeners) listener(message.event);
      } else if (message.type === 'result') {
        const waiter = pending.get(message.id);
        pending.delete(message.id);
        if (!waiter) return;
        if (message.ok) waiter.resolve(message.output as never);
        else waiter.reject(new AgentCallError(message.error));
      }
    };
  });
}

export async function connectAgent(): Promise<AgentClient> {
  return electronClient() ?? webHostClient();
}
