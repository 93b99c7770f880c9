// What the web host answers, and who may use it, in one table that the request and upgrade handlers both read
// (issue #19: every HTTP route declares its requirement). Any web page the user visits can send requests to
// localhost, so nothing here trusts the network position alone:
//   loopback-page    the request names this host's own loopback Host (DNS rebinding defence); the UI files only
//   page-with-token  as above, plus an Origin this host served, plus the per-launch token as the first message —
//                    which only a page opened from the printed link has (it rides in the URL fragment)
// Anything not in the table is refused: another method (405), an upgrade elsewhere (403).
export type WebAccess = 'loopback-page' | 'page-with-token';

export interface WebRoute {
  kind: 'http' | 'websocket';
  methods: readonly string[];
  /** A path, or '*' for the static files (any path under the UI's folder; the rest is 404). */
  path: string;
  access: WebAccess;
  what: string;
}

export const WEB_HOST_ROUTES: readonly WebRoute[] = [
  { kind: 'websocket', methods: ['GET'], path: '/agent', access: 'page-with-token', what: 'the AgentApi: calls, state and events' },
  { kind: 'http', methods: ['GET', 'HEAD'], path: '*', access: 'loopback-page', what: 'the built UI (static files, strict CSP)' },
];

/** The declared route for a request, or why there is none. */
export function webRouteFor(kind: WebRoute['kind'], method: string, pathname: string): { route: WebRoute } | { refused: 403 | 405; allow?: string } {
  const candidates = WEB_HOST_ROUTES.filter((r) => r.kind === kind && (r.path === '*' || r.path === pathname));
  const route = candidates.find((r) => r.methods.includes(method));
  if (route) return { route };
  if (kind === 'websocket' || candidates.length === 0) return { refused: 403 };
  return { refused: 405, allow: [...new Set(candidates.flatMap((r) => r.methods))].join(', ') };
}

/** Whether the request's Host (and, for the AgentApi, Origin) are this host's own. The token is checked in-band. */
export function meetsAccess(access: WebAccess, headers: { host?: string; origin?: string }, hosts: Set<string>): boolean {
  if (!hosts.has(headers.host ?? '')) return false;
  if (access === 'loopback-page') return true;
  return [...hosts].some((h) => headers.origin === `http://${h}`);
}
