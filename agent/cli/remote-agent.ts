// The agent of another process, as the CLI's commands use their own: when an agent of the profile is already running
// (a `stint request` holding a tunnel, a demo user's agent, the tray app), `stint` drives that one through its local
// socket instead of starting a second agent — the grant's keys and tunnel live only there, and a second agent of the
// same profile would wipe its keychain items at start.
import { createConnection, type Socket } from 'node:net';
import { lstatSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { agentApi, AgentState, type AgentApiHandlers, type AgentEvent, type AgentMethod } from '../../shared/contract/agent';
import { ServerMessage } from '../../shared/contract/wire';
import { AgentError } from '../core/errors';
import type { AgentCore } from '../core/agent-core';

/** What the CLI needs of an agent: the AgentApi, its events and latest state. */
export interface CliAgent extends AgentCore {
  state(): AgentState;
  start(): Promise<void>;
}

/** Refuse what another user could have planted or can read: the socket and its folder must be ours and closed. */
function checkOwned(path: string): void {
  const uid = process.getuid?.();
  const socket = lstatSync(path);
  if (!socket.isSocket()) throw new AgentError('invalid_input', `${path} is not an agent socket.`);
  if (uid !== undefined && uid !== 0 && socket.uid !== uid) {
    throw new AgentError('invalid_input', `The agent socket ${path} belongs to another user (uid ${socket.uid}); stint will not talk to another user's agent.`);
  }
  if ((statSync(dirname(path)).mode & 0o022) !== 0) {
    throw new AgentError('invalid_input', `The folder of the agent socket ${path} can be written by others; stint will not trust a socket there.`);
  }
}

/**
 * The agent answering on `path`, or undefined when none does (no socket file, or one left by an agent that died).
 * `required`: the user named this socket (--agent), so a missing one is an error that says so.
 */
export async function connectRemoteAgent(path: string, required = false): Promise<CliAgent | undefined> {
  try {
    lstatSync(path);
  } catch {
    if (required) throw new AgentError('invalid_input', `No Stint agent socket at ${path}. Is that agent running? (npm start prints each demo user's socket.)`);
    return undefined;
  }
  checkOwned(path);
  const socket = await new Promise<Socket | undefined>((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(undefined));
  });
  if (!socket) {
    if (required) throw new AgentError('invalid_input', `Nothing answers on ${path}: the agent that made it is not running any more.`);
    return undefined;
  }
  return new RemoteAgent(socket).ready();
}

class RemoteAgent implements CliAgent {
  readonly api: AgentApiHandlers;
  private latest?: AgentState;
  private readonly listeners = new Set<(event: AgentEvent) => void>();
  private readonly pending = new Map<number, { method: AgentMethod; resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private nextId = 1;
  private buffer = '';

  constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    const gone = () => {
      for (const waiting of this.pending.values()) waiting.reject(new AgentError('server_unreachable', 'The Stint agent stopped while stint was talking to it.'));
      this.pending.clear();
    };
    socket.on('close', gone);
    socket.on('error', gone);
    this.api = Object.fromEntries(Object.keys(agentApi).map((method) => [method, (input: unknown) => this.call(method as AgentMethod, input)])) as unknown as AgentApiHandlers;
  }

  async ready(): Promise<this> {
    this.latest = await this.api.getState({});
    return this;
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    let newline;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      let parsed;
      try { parsed = ServerMessage.safeParse(JSON.parse(line)); } catch { parsed = undefined; }
      if (!parsed?.success) continue;
      const message = parsed.data;
      if (message.type === 'event') {
        const event = message.event;
        if (event.type === 'state') {
          if (this.latest && event.state.version < this.latest.version) continue;
          this.latest = event.state;
        }
        for (const listener of this.listeners) listener(event);
      } else if (message.type === 'result') {
        const waiting = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (!waiting) continue;
        if (message.ok) {
          const output = agentApi[waiting.method].output.safeParse(message.output);
          if (output.success) waiting.resolve(output.data);
          else waiting.reject(new AgentError('malformed_response', 'The Stint agent answered in a form this stint does not understand (different versions?).'));
        } else {
          // The same error the agent raised in its own process: code, words, and what the server said.
          waiting.reject(AgentError.fromProblem(message.error));
        }
      }
    }
  }

  private call(method: AgentMethod, input: unknown): Promise<never> {
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed) return reject(new AgentError('server_unreachable', 'The Stint agent is not running any more.'));
      const id = this.nextId++;
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify({ type: 'call', id, method, input })}\n`);
    });
  }

  state(): AgentState {
    return this.latest!;
  }

  async start(): Promise<void> {
    // Already running in its own process: nothing to start here.
  }

  subscribe(listener: (event: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    if (this.latest) listener({ type: 'state', state: this.latest });
    return () => this.listeners.delete(listener);
  }

  /** Only this connection ends: the agent itself goes on (it holds the tunnels). */
  async dispose(): Promise<void> {
    this.socket.destroy();
  }
}
