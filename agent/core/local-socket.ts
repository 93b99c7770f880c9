// The agent's local socket: the AgentApi for other processes of the same user on this machine — `stint connect` in a
// new terminal reaches the agent that holds the grant's tunnel and keys (they never leave that process). A Unix
// socket in the agent's own 0700 data folder: the file system says who may connect (the owner; root can anyway),
// so no token is needed. Messages are the web host's wire messages (shared/contract/wire.ts), one JSON per line, and
// every call is parsed with the contract's input schema.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ClientMessage, type ServerMessage } from '../../shared/contract/wire';
import type { AgentCore } from './agent-core';
import { answerCall } from './agent-core';
import { AgentError } from './errors';

export const SOCKET_NAME = 'agent.sock';
/** Unix socket paths are limited to ~107 bytes on Linux (103 on macOS). */
const MAX_SOCKET_PATH = 100;
const MAX_LINE = 256 * 1024;

export function socketPathFor(dataDir: string): string {
  return join(dataDir, SOCKET_NAME);
}

/** Refuse a folder someone else could have planted or can read: it must be ours and closed to others. */
function checkFolder(dir: string): void {
  const stat = statSync(dir);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new AgentError('invalid_input', `${dir} belongs to another user (uid ${stat.uid}); Stint will not use an agent socket there. Use your own data folder.`);
  }
  if ((stat.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** True when an agent answers on `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

export async function listenLocalSocket(options: { agent: AgentCore; dataDir: string }): Promise<{ path: string; close: () => Promise<void> }> {
  const path = socketPathFor(options.dataDir);
  if (path.length > MAX_SOCKET_PATH) throw new AgentError('invalid_input', `The agent socket path ${path} is too long for this system (${path.length} > ${MAX_SOCKET_PATH} characters); use a shorter data folder.`);
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  checkFolder(options.dataDir);
  let existing;
  try { existing = lstatSync(path); } catch { existing = undefined; }
  if (existing) {
    if (!existing.isSocket()) throw new AgentError('invalid_input', `${path} exists and is not a socket; move it away and start Stint again.`);
    if (await answers(path)) throw new AgentError('invalid_input', `Another Stint agent of this profile is already running (it answers on ${path}). Use that one, or quit it first.`);
    unlinkSync(path); // left by an agent that crashed
  }
  const server: Server = createServer((socket) => serve(socket, options.agent));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return {
    path,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      try { unlinkSync(path); } catch { /* already gone */ }
    }),
  };
}

function serve(socket: Socket, agent: AgentCore): void {
  let buffer = '';
  const send = (message: ServerMessage) => { if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`); };
  const unsubscribe = agent.subscribe((event) => send({ type: 'event', event }));
  socket.on('close', unsubscribe);
  socket.on('error', () => socket.destroy());
  socket.setEncoding('utf8');
  send({ type: 'welcome' });
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    if (buffer.length > MAX_LINE) return socket.destroy();
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      void handle(line);
    }
  });
  const handle = async (line: string) => {
    let parsed;
    try { parsed = ClientMessage.safeParse(JSON.parse(line)); } catch { parsed = undefined; }
    if (!parsed?.success || parsed.data.type !== 'call') return socket.destroy();
    send(await answerCall(agent, parsed.data));
  };
}
