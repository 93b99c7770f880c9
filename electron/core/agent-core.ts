// What every shell (Electron IPC, the web host's WebSocket, the CLI) drives: the AgentApi handlers and a stream
// of events (state snapshots, notifications, background problems). The core implements it once.
import { ServerProblemInfo, type AgentApiHandlers, type AgentEvent, type AgentProblem } from '../../shared/contract/agent';
import { AgentError } from './errors';

export interface AgentCore {
  api: AgentApiHandlers;
  /** Receive events; the current state is delivered at once. Returns an unsubscribe function. */
  subscribe(listener: (event: AgentEvent) => void): () => void;
  /** Stop timers, close tunnels and connections (not a sign-out: secrets of active grants are wiped by their end). */
  dispose(): Promise<void>;
}

/** Errors crossing to a shell carry only `{code, message}`: never a stack, never a cause that may hold secrets. */
export function toAgentProblem(error: unknown): AgentProblem {
  if (error instanceof AgentError) {
    const server = ServerProblemInfo.safeParse(error.detail?.problem ? { ...(error.detail.problem as object), status: error.detail.status } : undefined);
    return { code: error.code, message: error.message, ...(server.success ? { server: server.data } : {}) };
  }
  return { code: 'internal', message: 'Something went wrong inside Stint. Details are in the agent log.' };
}
