// The step-up origin (docs/step-up.md "Origins in the desktop app"). WebAuthn only works for a page whose origin is
// the RP ID's domain (the grant server's), never on file:// or a custom scheme. So Stint windows that may run a
// ceremony load `https://<server host>/_stint/index.html?…` in a dedicated session partition whose https (and, for
// a development server on localhost, http) requests are answered by this module from the app's own bundled
// dist/renderer files. Nothing else is served or passed to the network: the page reaches the agent through the
// preload, never the server directly, so no remote code and no server response ever enters these windows.
import { readFile } from 'node:fs/promises';
import { extname, resolve, sep } from 'node:path';
import { isIP } from 'node:net';
import { CONTENT_SECURITY_POLICY } from '../../shared/contract/csp';

/** Persistent, so macOS Touch ID credentials (bound to a per-session secret Electron keeps) survive a restart. */
export const STEP_UP_PARTITION = 'persist:stint-stepup';
export const STEP_UP_PREFIX = '/_stint/';

/**
 * The origin to serve the UI at for a grant server URL, or undefined when WebAuthn cannot work there: the host
 * must be a domain over https (an IP is not a valid RP ID), or `localhost` over http (a development server).
 */
export function stepUpOrigin(serverUrl: string | undefined): string | undefined {
  if (!serverUrl) return undefined;
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    return undefined;
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!host || isIP(host) || (!host.includes('.') && host !== 'localhost')) return undefined;
  if (url.protocol === 'https:') return url.origin;
  if (url.protocol === 'http:' && host === 'localhost') return url.origin;
  return undefined;
}

export type UiRoute =
  | { type: 'file'; path: string; contentType: string }
  | { type: 'refuse'; status: 403 | 404 | 405; reason: string };

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
};

/**
 * What to answer for a request in the step-up partition: a bundled file under `rendererDir`, or a refusal. Pure,
 * so traversal and origin rules are tested directly.
 */
export function routeUiRequest(method: string, rawUrl: string, origin: string | undefined, rendererDir: string): UiRoute {
  if (method !== 'GET' && method !== 'HEAD') return { type: 'refuse', status: 405, reason: 'only GET' };
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return { type: 'refuse', status: 403, reason: 'not a URL' };
  }
  if (!origin || url.origin !== origin) return { type: 'refuse', status: 403, reason: 'not the step-up origin' };
  if (url.username || url.password) return { type: 'refuse', status: 403, reason: 'credentials in URL' };
  if (!url.pathname.startsWith(STEP_UP_PREFIX)) return { type: 'refuse', status: 403, reason: 'outside /_stint/' };
  let relative: string;
  try {
    relative = decodeURIComponent(url.pathname.slice(STEP_UP_PREFIX.length));
  } catch {
    return { type: 'refuse', status: 404, reason: 'malformed path' };
  }
  if (relative === '') relative = 'index.html';
  const segments = relative.split('/');
  if (relative.includes('\\') || relative.includes('\0') || segments.some((s) => s === '..' || s === '.' || s === '')) {
    return { type: 'refuse', status: 404, reason: 'bad path' };
  }
  const root = resolve(rendererDir);
  const path = resolve(root, ...segments);
  if (!path.startsWith(root + sep)) return { type: 'refuse', status: 404, reason: 'outside the bundle' };
  const contentType = CONTENT_TYPES[extname(path).toLowerCase()];
  if (!contentType) return { type: 'refuse', status: 404, reason: 'not a UI file' };
  return { type: 'file', path, contentType };
}

export interface UiProtocolOptions {
  rendererDir: string;
  /** The current step-up origin (it follows the server setting). */
  origin: () => string | undefined;
  read?: (path: string) => Promise<Uint8Array>;
}

/** The `protocol.handle` handler for the step-up partition. */
export function uiProtocolHandler(options: UiProtocolOptions): (request: Request) => Promise<Response> {
  const read = options.read ?? ((path: string) => readFile(path));
  return async (request) => {
    const route = routeUiRequest(request.method, request.url, options.origin(), options.rendererDir);
    if (route.type === 'refuse') return new Response(null, { status: route.status });
    let body: Uint8Array;
    try {
      body = await read(route.path);
    } catch {
      return new Response(null, { status: 404 });
    }
    return new Response(request.method === 'HEAD' ? null : (body as BodyInit), {
      status: 200,
      headers: {
        'content-type': route.contentType,
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'x-content-type-options': 'nosniff',
        'cache-control': 'no-store',
      },
    });
  };
}

/** The pieces of Electron's session this module touches (so index.ts wires it and tests need no binary). */
export interface ProtocolSessionLike {
  protocol: { handle(scheme: string, handler: (request: Request) => Promise<Response>): void };
}

export function installStepUpProtocol(session: ProtocolSessionLike, options: UiProtocolOptions): void {
  const handler = uiProtocolHandler(options);
  // Every https and http request of this partition comes here; only our files at the step-up origin are served.
  session.protocol.handle('https', handler);
  session.protocol.handle('http', handler);
}

// ---- macOS Touch ID (app.configureWebAuthn, Electron ≥ 45) ----

export const BUNDLE_ID = 'dev.stint.desktop';

/**
 * The keychain access group named in build/entitlements.mac.plist (`$(AppIdentifierPrefix)dev.stint.desktop.webauthn`),
 * resolved with the signing team id, which is only known to a signed build (STINT_APPLE_TEAM_ID).
 */
export function webAuthnKeychainGroup(teamId: string | undefined): string | undefined {
  if (!teamId || !/^[A-Z0-9]{10}$/.test(teamId)) return undefined;
  return `${teamId}.${BUNDLE_ID}.webauthn`;
}

export interface WebAuthnApp {
  configureWebAuthn?: (options: { touchID?: { keychainAccessGroup: string; promptReason?: string } }) => void;
}

/** Turns on Touch ID for WebAuthn on a signed macOS build; elsewhere (or unsigned) security keys and TOTP remain. */
export function configureWebAuthn(app: WebAuthnApp, platform: NodeJS.Platform, teamId: string | undefined): 'configured' | 'unavailable' {
  const group = webAuthnKeychainGroup(teamId);
  if (platform !== 'darwin' || !group || typeof app.configureWebAuthn !== 'function') return 'unavailable';
  app.configureWebAuthn({ touchID: { keychainAccessGroup: group, promptReason: 'verify your identity on $1' } });
  return 'configured';
}
