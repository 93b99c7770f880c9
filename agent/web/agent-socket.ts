// The AgentApi over a WebSocket for the web host. Only a page this host served may drive the agent: the upgrade
// must come from our own Origin and Host, and the first message must carry the per-launch token (which reaches the
// page in the URL fragment, never over the network). Every call is parsed with the contract's input schema.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AgentEvent } from '../../shared/contract/agent';
import { ClientMessage, type ServerMessage } from '../../shared/contract/wire';
import type { AgentCore } from '../core/agent-core';
import { answerCall } from '../core/agent-core';
import { meetsAccess, webRouteFor } from './routes';

const HELLO_TIMEOUT_MS = 5_000;

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function attachAgentSocket(server: Server, options: { agent: AgentCore; token: string; allowedHosts: () => Set<string> }): { close: () => void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const found = webRouteFor('websocket', req.method ?? '', (req.url ?? '/').split('?')[0]!);
    if ('refused' in found || !meetsAccess(found.route.access, req.headers, options.allowedHosts())) {
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, options));
  };
  server.on('upgrade', onUpgrade);
  return {
    close: () => {
      server.off('upgrade', onUpgrade);
      for (const client of wss.clients) client.terminate();
      wss.close();
    },
  };
}

function serve(ws: WebSocket, options: { agent: AgentCore; token: string }): void {
  let authenticated = false;
  let unsubscribe: (() => void) | undefined;
  const send = (message: ServerMessage) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(message));
  const helloTimer = setTimeout(() => ws.close(4401, 'no token'), HELLO_TIMEOUT_MS);
  ws.on('close', () => {
    clearTimeout(helloTimer);
    unsubscribe?.();
  });
  ws.on('message', async (data) => {
    let parsed;
    try {
      parsed = ClientMessage.safeParse(JSON.parse(data.toString()));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      ws.close(4400, 'malformed message');
      return;
    }
    const message = parsed.data;
    if (!authenticated) {
      if (message.type !== 'hello' || !sameSecret(message.token, options.token)) {
        ws.close(4401, 'wrong token');
        return;
      }
      authenticated = true;
      clearTimeout(helloTimer);
      send({ type: 'welcome' });
      unsubscribe = options.agent.subscribe((event: AgentEvent) => send({ type: 'event', event }));
      return;
    }
    if (message.type !== 'call') return;
    send(await answerCall(options.agent, message));
  });
}
