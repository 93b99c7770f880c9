// The web host: the same agent and the same UI as the tray app, served to a local browser. Used for tests, for
// development, and by `npm start` where the Electron binary is not installed.
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { allowedHosts, serveStatic } from './static';
import { attachAgentSocket } from './agent-socket';
import { meetsAccess, webRouteFor } from './routes';
import type { AgentCore } from '../core/agent-core';

export interface WebHostOptions {
  /** The built renderer (vite build output). */
  staticDir: string;
  port?: number;
  /** The agent to expose on `/agent` (WebSocket); without one, only the UI files are served. */
  agent?: AgentCore;
}

export interface WebHost {
  /** Open this in a browser: the per-launch token rides in the fragment, which browsers never send to a server. */
  url: string;
  origin: string;
  port: number;
  token: string;
  server: Server;
  close: () => Promise<void>;
}

export async function startWebHost(options: WebHostOptions): Promise<WebHost> {
  const token = randomBytes(32).toString('base64url');
  const staticDir = resolve(options.staticDir);
  let hosts = new Set<string>();
  const server = createServer((req, res) => {
    const pathname = (req.url ?? '/').split('?')[0]!;
    const found = webRouteFor('http', req.method ?? '', pathname);
    if (!meetsAccess('loopback-page', req.headers, hosts)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('Forbidden: this Stint web host answers only on its own loopback address.');
      return;
    }
    if ('refused' in found) {
      res.writeHead(found.refused, found.allow ? { allow: found.allow } : {}).end();
      return;
    }
    serveStatic(staticDir, req, res);
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolveListen());
  });
  const port = (server.address() as AddressInfo).port;
  hosts = allowedHosts(port);
  const socket = options.agent ? attachAgentSocket(server, { agent: options.agent, token, allowedHosts: () => hosts }) : undefined;
  const origin = `http://localhost:${port}`;
  return {
    url: `${origin}/#token=${token}`,
    origin,
    port,
    token,
    server,
    close: () => new Promise<void>((done) => {
      socket?.close();
      server.closeAllConnections();
      server.close(() => done());
    }),
  };
}
