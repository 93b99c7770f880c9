// Serves the built renderer to a browser on this machine only. The web host is a local shell for tests and dev:
// it binds 127.0.0.1, answers only when Host is this host's own loopback name (DNS-rebinding defence), and sends
// the same strict CSP the Electron shell uses.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CONTENT_SECURITY_POLICY } from '../../shared/contract/csp';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

export function allowedHosts(port: number): Set<string> {
  return new Set([`localhost:${port}`, `127.0.0.1:${port}`]);
}

export function serveStatic(root: string, req: IncomingMessage, res: ServerResponse): void {
  let relative: string;
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    relative = decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname);
  } catch {
    // Any page the user visits can send us a malformed path (e.g. /%zz): answer it, never throw in the agent.
    res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request');
    return;
  }
  const path = normalize(join(root, relative));
  if (!path.startsWith(root + sep) || !existsSync(path) || !statSync(path).isFile()) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  res.writeHead(200, {
    'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cache-control': 'no-store',
  });
  createReadStream(path).pipe(res);
}
