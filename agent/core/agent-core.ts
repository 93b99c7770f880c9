// What every shell (Electron IPC, the web host's WebSocket, the CLI) drives: the AgentApi handlers and a stream
// of events (state snapshots, notifications, background problems). The core implements it once.
import { agentApi, type AgentApiHandlers, type AgentEvent, type AgentMethod, type AgentProblem } from '../../shared/contract/agent';
import { localProblem } from '../../shared/contract/problem';
import type { ServerMessage } from '../../shared/contract/wire';
import { AgentError } from './errors';

export interface AgentCore {
  api: AgentApiHandlers;
  /** Receive events; the current state is delivered at once. Returns an unsubscribe function. */
  subscribe(listener: (event: AgentEvent) => void): () => void;
  /** Stop timers, close tunnels and connections (not a sign-out: secrets of active grants are wiped by their end). */
  dispose(): Promise<void>;
}

/**
 * Errors crossing to a shell are the one problem shape: an AgentError's code, words and members (what the server
 * said, unchanged) — never a stack, never a cause that may hold secrets. Anything else is a bug: `internal`.
 */
export function toAgentProblem(error: unknown): AgentProblem {
  if (error instanceof AgentError) return error.toProblem();
  return localProblem('internal', 'Something went wrong inside Stint. Details are in the agent log.');
}

/**
 * One call from a socket (the web host's WebSocket, the local socket): the method looked up in the contract, its
 * input parsed by the method's schema, the answer as the wire's result union. Both sockets answer the same way.
 */
export async function answerCall(agent: AgentCore, call: { id: number; method: string; input: unknown }): Promise<ServerMessage> {
  const method = call.method as AgentMethod;
  const contract = Object.hasOwn(agentApi, method) ? agentApi[method] : undefined;
  if (!contract) return { type: 'result', id: call.id, ok: false, error: localProblem('unknown_method', `No such agent method: ${call.method}`) };
  const input = contract.input.safeParse(call.input ?? {});
  if (!input.success) {
    return { type: 'result', id: call.id, ok: false, error: localProblem('invalid_input', input.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')) };
  }
  try {
    const output = await (agent.api[method] as (input: unknown) => Promise<unknown>)(input.data);
    return { type: 'result', id: call.id, ok: true, output };
  } catch (error) {
    return { type: 'result', id: call.id, ok: false, error: toAgentProblem(error) };
  }
}
