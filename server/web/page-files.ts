// The server's own pages, built by Vite with the renderer (vite.config.ts: the `approve` and `admin` entries) into
// dist/renderer: the HTML and its hashed scripts and styles under assets/. Served as they are, with the one CSP
// (shared/contract/csp.ts): no inline script, nothing from another origin.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply } from 'fastify';
import { CONTENT_SECURITY_POLICY } from '../../shared/contract/csp';

export const DEFAULT_PAGE_DIR = fileURLToPath(new URL('../../dist/renderer/', import.meta.url));

/** Hashed build outputs only: a name, never a path. */
const ASSET_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.(js|css)$/;
const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin');
}

/** A built page: `approve.html` (the approve page) or `admin.html` (the admin console). */
export async function sendPage(reply: FastifyReply, dir: string, page: 'approve.html' | 'admin.html' = 'approve.html'): Promise<FastifyReply> {
  let html: string;
  try {
    html = await readFile(join(dir, page), 'utf8');
  } catch {
    return secure(reply).code(503).type('text/plain; charset=utf-8')
      .send(`This page is not built on this server: run \`npx vite build\` (it writes dist/renderer/${page}).`);
  }
  return secure(reply).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
}

export async function sendAsset(reply: FastifyReply, dir: string, name: string): Promise<FastifyReply> {
  const type = ASSET_NAME.test(name) ? TYPES[name.slice(name.lastIndexOf('.') + 1)] : undefined;
  let body: Buffer | undefined;
  if (type) body = await readFile(join(dir, 'assets', name)).catch(() => undefined);
  if (!type || !body) return secure(reply).code(404).type('text/plain; charset=utf-8').send('no such file');
  // Names carry the content's hash: a new build is a new name.
  return secure(reply).header('cache-control', 'public, max-age=31536000, immutable').type(type).send(body);
}

/** A plain page for what the browser must be told before the page itself can load (e.g. a failed sign-in). */
export function sendMessage(reply: FastifyReply, status: number, title: string, text: string): FastifyReply {
  const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return secure(reply).code(status).header('cache-control', 'no-store').type('text/html; charset=utf-8')
    .send(`<!doctype html><html lang="en"><meta charset="utf-8"><title>${escape(title)}</title><h1>${escape(title)}</h1><p>${escape(text)}</p></html>`);
}
