// The admin console at the server's own origin (issue #25): `/admin/` serves the same admin views as the Stint window,
// for an administrator without the agent. It signs in exactly as the approve page does (the `approvalPage` client,
// the same callback, the same session cookie: routes.ts startSignIn) and calls the admin API again under /admin/api/…,
// declared 'admin-session': the page's session and CSRF token instead of a bearer token, and admin-only as the /v1
// routes are (403 admin_only, audited). The /v1 routes themselves stay bearer-only.
import type { FastifyReply } from 'fastify';
import { PageSession } from '../../shared/contract/approve-page';
import type { Lifecycle } from '../lifecycle/service';
import type { Route } from '../http/router';
import { cookieNames, readCookie } from './cookies';
import { sendAsset, sendMessage, sendPage } from './page-files';
import { pageSession, startSignIn, type ApprovePageDeps } from './routes';

export type AdminPageDeps = Pick<ApprovePageDeps, 'config' | 'sessions' | 'signIn' | 'pageDir'> & { lifecycle: Lifecycle };

export const ADMIN_PAGE_PATH = '/admin/';
const tags = ['admin-page'];

/** The admin API routes the console's views call (renderer/admin/api.ts), by operation. */
const MIRRORED = new Set(['adminLive', 'adminAudit', 'adminAuditVerifyStatus', 'adminAuditVerify', 'adminAuditExport', 'revokeGrant']);

/** /v1/admin/live → /admin/api/live; /v1/grants/:id/revoke → /admin/api/grants/:id/revoke. */
const pageUrl = (url: string) => url.replace(/^\/v1\/(admin\/)?/, '/admin/api/');

/**
 * The console's routes. `api` is the server's route list so far: the admin routes the views use are served again
 * for the page's session, with their handlers (parsing, idempotency, audit) unchanged. Nothing of `deps` is read
 * until a handler runs (documentedRoutes).
 */
export function declareAdminPageRoutes(deps: AdminPageDeps, api: readonly Route[]): Route[] {
  const mirrored = api.filter((route) => MIRRORED.has(route.doc.operationId)).map((route): Route => {
    if (route.access !== 'admin') throw new Error(`${route.method} ${route.url} is mirrored on the admin console but is not declared 'admin'`);
    return {
      ...route,
      url: pageUrl(route.url),
      access: 'admin-session',
      // A refusal is audited under the same action as on the /v1 route, so one filter finds both.
      refusal: route.refusal ?? { action: route.doc.operationId, message: 'only administrators may do this' },
      doc: { ...route.doc, operationId: `page${route.doc.operationId[0]!.toUpperCase()}${route.doc.operationId.slice(1)}`, tags, summary: `${route.doc.summary} (the admin console at /admin)` },
    };
  });
  if (mirrored.length !== MIRRORED.size) throw new Error('the admin console mirrors an admin route that is not in the route list');
  return [
    {
      method: 'GET', url: '/admin', access: 'anonymous',
      doc: { operationId: 'adminPageRoot', summary: 'To /admin/ (the page loads its files relative to it)', tags, response: { description: 'A redirect', type: 'text/html' }, answers: { 302: { description: 'To /admin/' } } },
      handler: async (_request, reply) => reply.redirect(ADMIN_PAGE_PATH, 302),
    },
    {
      method: 'GET', url: ADMIN_PAGE_PATH, access: 'anonymous',
      doc: {
        operationId: 'adminPage', summary: 'The admin console: signs in at the IdP first when the browser has no session; refuses a user who is not an administrator',
        tags, response: { description: 'The page (text/html), or a redirect to the IdP', type: 'text/html' },
        answers: { 302: { description: 'To the IdP to sign in; back here after' }, 403: { description: 'A page saying the signed-in user is not an administrator', type: 'text/html' } },
      },
      handler: async (request, reply) => {
        const session = readCookie(request, cookieNames(deps.config.server.url).session);
        const user = session ? await deps.sessions.user(session) : undefined;
        if (!user) return startSignIn(deps, request, reply, ADMIN_PAGE_PATH);
        if (!user.admin) return refuse(deps, reply, user);
        return sendPage(reply, deps.pageDir, 'admin.html');
      },
    },
    {
      method: 'GET', url: '/admin/assets/:file', access: 'anonymous',
      doc: { operationId: 'adminPageAsset', summary: "The console's scripts and styles (hashed names)", tags, response: { description: 'JavaScript or CSS', type: 'text/javascript' }, answers: { 404: { description: 'No such file' } } },
      handler: async (request, reply) => sendAsset(reply, deps.pageDir, (request.params as { file: string }).file),
    },
    {
      method: 'GET', url: '/admin/api/session', access: 'admin-session', rate: 'read',
      doc: { operationId: 'getAdminPageSession', summary: 'Who is signed in on the console, and the CSRF token its POSTs carry', tags, response: PageSession },
      handler: async (request) => pageSession(request, deps.config.server.url),
    },
    ...mirrored,
  ];
}

/** A signed-in user who is not an administrator: told so in words, and the attempt is on the record like an API refusal. */
async function refuse(deps: AdminPageDeps, reply: FastifyReply, user: { sub: string; name?: string; email?: string }): Promise<FastifyReply> {
  const message = 'only administrators may open the admin console';
  await deps.lifecycle.refuse(user, 'admin.console', { status: 403, code: 'admin_only', message });
  return sendMessage(reply, 403, 'Administrators only',
    `You are signed in as ${user.email ?? user.name ?? user.sub}, who is not a Stint administrator, so the admin console is not available to you. To request or approve access, use the Stint app or the approve link you were sent.`);
}
