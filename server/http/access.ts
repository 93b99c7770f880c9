// Who may call each route, in one table. The server refuses to start when it would serve a route that is not in it
// (a route nobody declared is how a stolen token once stripped step-up), and test/security/route-access.test.ts calls
// every route the running server serves with no credentials and with a non-admin user's, so the table and what the
// hooks and handlers actually do cannot drift apart.
//   anonymous  no credentials (health, metrics, public metadata)
//   user       a valid access token (the authenticated scope's hook)
//   admin      a valid access token of an admin (checked by the lifecycle, which audits the refusal)
//   bastion    a bastion's own token (the bastion plugin's hook)
// `stepUp` says what fresh proof the handler demands on top (bound to the action, so it lives in the handler).
import type { FastifyInstance } from 'fastify';

export type Access = 'anonymous' | 'user' | 'admin' | 'bastion';
export interface RouteAccess { access: Access; stepUp?: string }

const user: RouteAccess = { access: 'user' };
const anonymous: RouteAccess = { access: 'anonymous' };
const bastion: RouteAccess = { access: 'bastion' };

export const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = {
  'GET /healthz': anonymous,
  'GET /readyz': anonymous,
  'GET /metrics': anonymous,
  'GET /v1/openapi.json': anonymous,
  'GET /.well-known/oauth-protected-resource': anonymous,

  'GET /v1/bastion/authorized-keys': bastion,
  'POST /v1/bastion/sessions': bastion,
  'GET /v1/bastion/ended': bastion,
  'GET /v1/bastion/events': bastion,

  'GET /v1/me': user,
  'GET /v1/events': user,
  'GET /v1/resources': user,
  'POST /v1/requests': { access: 'user', stepUp: 'the policy may ask the requester for one (pending_stepup)' },
  'GET /v1/requests': user,
  'GET /v1/requests/:id': user,
  'POST /v1/requests/:id/stepup': { access: 'user', stepUp: 'a proof for this request' },
  'POST /v1/requests/:id/approve': { access: 'user', stepUp: 'a proof for approving this request, when the policy says so' },
  'POST /v1/requests/:id/deny': user,
  'POST /v1/requests/:id/cancel': user,
  'POST /v1/requests/:id/activate': user,
  'GET /v1/grants': user,
  'GET /v1/grants/:id': user,
  'POST /v1/grants/:id/extend': user,
  'POST /v1/grants/:id/release': user,
  'POST /v1/grants/:id/reveal-password': user,
  'POST /v1/grants/:id/revoke': { access: 'admin' },
  'GET /v1/audit': user,

  'POST /v1/stepup/challenges': user,
  'GET /v1/stepup/status': user,
  'GET /v1/stepup/credentials': user,
  'POST /v1/stepup/credentials/:id/remove': { access: 'user', stepUp: 'an enroll proof with a factor the user has' },
  'POST /v1/stepup/webauthn/register/options': { access: 'user', stepUp: 'an enroll proof, unless it is the first factor' },
  'POST /v1/stepup/webauthn/register/verify': user,
  'POST /v1/stepup/totp/enroll': { access: 'user', stepUp: 'an enroll proof, unless it is the first factor' },
  'POST /v1/stepup/totp/confirm': user,
  'POST /v1/stepup/totp/remove': { access: 'user', stepUp: 'an enroll proof with a factor the user has' },
};

export interface ServedRoute { method: string; url: string; access: RouteAccess }

/**
 * Call before registering any route: every route registered afterwards must be in ROUTE_ACCESS, or registration
 * throws (and the server does not start). Returns the routes served, with their declared access.
 */
export function requireDeclaredAccess(app: FastifyInstance, table: Readonly<Record<string, RouteAccess>> = ROUTE_ACCESS): ServedRoute[] {
  const served: ServedRoute[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      // HEAD routes are made by Fastify from their GET route, which is declared.
      if (method === 'HEAD') continue;
      const key = `${method} ${route.url}`;
      const access = Object.hasOwn(table, key) ? table[key] : undefined;
      if (!access) throw new Error(`${key} declares no access: add it to ROUTE_ACCESS in server/http/access.ts (anonymous, user, admin or bastion)`);
      served.push({ method, url: route.url, access });
    }
  });
  return served;
}
