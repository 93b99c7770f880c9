// The approve page (issue #24): `/approve/<request id>` on the server's own origin, so an approver decides from any
// browser — a phone, a laptop without the agent — and steps up with a passkey registered at this origin (or a code).
// Opening the link without a session signs in at the IdP first (signin.ts) and comes back; the page's script then calls
// /approve/api/… with its session cookie and CSRF token. Approving and denying go through the lifecycle exactly as the
// API's approve and deny do — the same checks, the same step-up binding to (approver, request), the same single-use
// proofs, the same audit — and the step-up routes are the API's own, served to the page's session.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApproveBody, DenyBody, Id, RequestResult } from '../../shared/contract/http';
import { CSRF_HEADER, PageRequestView, PageSession } from '../../shared/contract/approve-page';
import type { Clock } from '../../shared/domain/clock';
import type { ServerConfig } from '../config';
import { problemBody, type Outcome } from '../errors';
import type { Lifecycle } from '../lifecycle/service';
import { sendProblem, zodErrors } from '../http/problem';
import { rateClassOf } from '../http/rate-limits';
import type { Guard, Route } from '../http/router';
import { cookieNames, LOGIN_COOKIE_PATH, readCookie, setCookie } from './cookies';
import { sendAsset, sendMessage, sendPage } from './page-files';
import { csrfMatches, csrfTokenFor, randomSecret, type WebSessions } from './sessions';
import { CALLBACK_PATH, type WebSignIn } from './signin';

export interface ApprovePageDeps {
  config: ServerConfig;
  lifecycle: Lifecycle;
  sessions: WebSessions;
  signIn: WebSignIn;
  clock: Clock;
  /** Where the built page is (dist/renderer). */
  pageDir: string;
}

/** A sign-in must come back within this. */
const LOGIN_TTL_MS = 10 * 60_000;
const tags = ['approve-page'];

/** The router's check for routes declared 'session': the cookie's session, and on a POST the page's own CSRF token. */
export function pageSessionGuard(deps: Pick<ApprovePageDeps, 'config' | 'sessions'>): Guard {
  const names = cookieNames(deps.config.server.url);
  const origin = new URL(deps.config.server.url).origin;
  return async (request, reply) => {
    const id = readCookie(request, names.session);
    const user = id ? await deps.sessions.user(id) : undefined;
    if (!id || !user) return sendProblem(reply, { status: 401, code: 'page_session_required', message: 'no signed-in approve page: open the approve link to sign in' });
    const refused = () => sendProblem(reply, { status: 403, code: 'csrf_refused', message: `a call of the page's API must come from the page itself (a POST with its ${CSRF_HEADER} token)` });
    // Every call of a page's API comes from the page's own script: a browser that says a call comes from elsewhere
    // (another site's link to the admin console's audit export, say — SameSite=Lax sends the cookie on a top-level
    // GET) is refused whatever the method.
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') return refused();
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      // SameSite=Lax already keeps the cookie off cross-site POSTs; the token (which only the page can read) and the
      // browser's own statement of where the call comes from make sure.
      const from = request.headers.origin;
      const token = request.headers[CSRF_HEADER];
      if ((from !== undefined && from !== origin) || !csrfMatches(id, typeof token === 'string' ? token : undefined)) return refused();
    }
    request.user = user;
  };
}

/**
 * Send a browser without a session to the IdP, to come back to `returnTo` (a path on this server) signed in: the
 * approve page's links and the admin console (admin-page.ts) sign in the same way, through the same callback.
 */
export async function startSignIn(deps: Pick<ApprovePageDeps, 'config' | 'sessions' | 'signIn'>, request: FastifyRequest, reply: FastifyReply, returnTo: string): Promise<FastifyReply> {
  const names = cookieNames(deps.config.server.url);
  const verifier = randomSecret();
  const state = randomSecret();
  let to: URL;
  try {
    to = await deps.signIn.authorizationUrl(verifier, state);
  } catch (error) {
    request.log.warn({ err: error }, 'page sign-in: the identity provider cannot be reached');
    return sendMessage(reply, 503, 'Sign-in unavailable', 'The sign-in service cannot be reached right now. Try again in a moment.');
  }
  await deps.sessions.startLogin(verifier, { state, returnTo }, LOGIN_TTL_MS);
  setCookie(reply, names, names.login, verifier, { path: LOGIN_COOKIE_PATH, maxAgeSeconds: LOGIN_TTL_MS / 1000 });
  return reply.header('cache-control', 'no-store').redirect(to.href, 302);
}

/** Who is signed in on a page (the guard has found the session), and the CSRF token its POSTs carry. */
export function pageSession(request: FastifyRequest, serverUrl: string): PageSession {
  const user = request.user;
  const id = readCookie(request, cookieNames(serverUrl).session)!;
  return { user: { sub: user.sub, ...(user.name ? { name: user.name } : {}), ...(user.email ? { email: user.email } : {}) }, csrfToken: csrfTokenFor(id), expiresAt: new Date(user.tokenExpiresAt!).toISOString() };
}

function requestId(request: FastifyRequest): string | undefined {
  const parsed = Id.safeParse((request.params as { id?: string }).id);
  return parsed.success ? parsed.data : undefined;
}

function sendOutcome(reply: FastifyReply, outcome: Outcome<unknown>): FastifyReply {
  return outcome.ok
    ? reply.type('application/json').send(outcome.value)
    : reply.code(outcome.error.status).type('application/problem+json').send(problemBody(outcome.error));
}

/**
 * The page's routes as declarations for the router. `stepUp` are the API's step-up routes, served again under
 * /approve/api/stepup for the page's session. Nothing of `deps` is read until a handler runs (documentedRoutes).
 */
export function declareApprovePageRoutes(deps: ApprovePageDeps, stepUp: readonly Route[]): Route[] {
  const names = () => cookieNames(deps.config.server.url);
  const pageStepUp = stepUp.filter((route) => route.url.startsWith('/v1/stepup/')).map((route): Route => ({
    ...route,
    url: route.url.replace('/v1/stepup/', '/approve/api/stepup/'),
    access: 'session',
    rate: route.rate ?? rateClassOf(route),
    doc: { ...route.doc, operationId: `page${route.doc.operationId[0]!.toUpperCase()}${route.doc.operationId.slice(1)}`, tags, summary: `${route.doc.summary} (the approve page)` },
  }));
  const badId = (reply: FastifyReply) => sendProblem(reply, { status: 400, code: 'invalid_id', message: 'the id in the path is not a valid id' });
  return [
    {
      method: 'GET', url: '/approve/:id', access: 'anonymous',
      doc: { operationId: 'approvePage', summary: 'The approve page of a request: signs in at the IdP first when the browser has no session', tags, response: { description: 'The page (text/html), or a redirect to the IdP', type: 'text/html' }, answers: { 302: { description: 'To the IdP to sign in; back here after' } } },
      handler: async (request, reply) => {
        const id = requestId(request);
        if (!id) return sendMessage(reply, 404, 'No such request', 'This link does not name a request.');
        const session = readCookie(request, names().session);
        if (session && await deps.sessions.user(session)) return sendPage(reply, deps.pageDir);
        return startSignIn(deps, request, reply, `/approve/${encodeURIComponent(id)}`);
      },
    },
    {
      method: 'GET', url: '/approve/assets/:file', access: 'anonymous',
      doc: { operationId: 'approvePageAsset', summary: "The page's scripts and styles (hashed names)", tags, params: { file: Id }, response: { description: 'JavaScript or CSS', type: 'text/javascript' }, answers: { 404: { description: 'No such file' } } },
      handler: async (request, reply) => sendAsset(reply, deps.pageDir, (request.params as { file: string }).file),
    },
    {
      method: 'GET', url: CALLBACK_PATH, access: 'anonymous',
      doc: { operationId: 'approvePageSignedIn', summary: "Where the IdP sends the browser back: starts the page's session, returns to the request", tags, response: { description: 'A redirect to the approve page', type: 'text/html' }, answers: { 302: { description: 'Signed in: back to the request' } } },
      handler: async (request, reply) => {
        const verifier = readCookie(request, names().login);
        const pending = verifier ? await deps.sessions.takeLogin(verifier) : undefined;
        if (verifier) setCookie(reply, names(), names().login, '', { path: LOGIN_COOKIE_PATH, maxAgeSeconds: 0 });
        if (!verifier || !pending) return sendMessage(reply, 400, 'Sign-in not recognised', 'This sign-in was not started in this browser, was already used, or took too long. Open the approve link again.');
        const result = await deps.signIn.finish(new URL(request.url, deps.config.server.url), verifier, pending.state);
        if (!result.ok) {
          request.log.warn({ reason: result.message }, 'approve page: sign-in failed');
          return sendMessage(reply, 401, 'Sign-in failed', `${result.message}. Open the approve link again.`);
        }
        const ttl = deps.config.approvalPage!.sessionTtl;
        const session = await deps.sessions.create(result.user, ttl * 1000);
        setCookie(reply, names(), names().session, session, { path: '/', maxAgeSeconds: ttl });
        return reply.header('cache-control', 'no-store').redirect(pending.returnTo, 302);
      },
    },
    {
      method: 'GET', url: '/approve/api/session', access: 'session', rate: 'read',
      doc: { operationId: 'getPageSession', summary: 'Who is signed in on the page, and the CSRF token its POSTs carry', tags, response: PageSession },
      handler: async (request) => pageSession(request, deps.config.server.url),
    },
    {
      method: 'POST', url: '/approve/api/session/end', access: 'session', rate: 'write',
      doc: { operationId: 'endPageSession', summary: "Sign out of the page (the IdP's own session is the IdP's)", tags, response: { description: 'Signed out' }, status: 204 },
      handler: async (request, reply) => {
        await deps.sessions.end(readCookie(request, names().session)!);
        setCookie(reply, names(), names().session, '', { path: '/', maxAgeSeconds: 0 });
        return reply.code(204).send();
      },
    },
    {
      method: 'GET', url: '/approve/api/requests/:id', access: 'session', rate: 'read',
      doc: { operationId: 'getPageRequest', summary: 'A request as its approver sees it: who asks for what and why, its risk, the approvals so far, and whether I may decide', tags, response: PageRequestView, problems: [400, 404] },
      handler: async (request, reply) => {
        const id = requestId(request);
        if (!id) return badId(reply);
        const user = request.user;
        const got = await deps.lifecycle.getRequest(user, id);
        if (!got.ok) return sendOutcome(reply, got);
        const { request: access } = got.value;
        const can = await deps.lifecycle.resolve(user, { kind: 'approve', requestId: id });
        const entry = deps.lifecycle.catalog.entry(access.resourceId);
        const view: PageRequestView = {
          request: access,
          ...(entry ? { resource: { name: entry.resource.name, environment: entry.resource.environment, sensitivity: entry.resource.sensitivity } } : {}),
          approve: can.ok ? { allowed: true } : { allowed: false, refusal: { code: can.code, message: can.message } },
          deny: { allowed: access.state === 'pending_approval' && access.requester !== user.sub },
        };
        return view;
      },
    },
    {
      method: 'POST', url: '/approve/api/requests/:id/approve', access: 'session', rate: 'proof',
      stepUp: 'a proof for approving this request, when the policy says so (a challenge from /approve/api/stepup/challenges)',
      doc: { operationId: 'approveFromPage', summary: 'Approve, as POST /v1/requests/{id}/approve does', tags, body: ApproveBody, response: RequestResult, problems: [400, 404, 409, 410, 429] },
      handler: async (request, reply) => {
        const id = requestId(request);
        if (!id) return badId(reply);
        const body = ApproveBody.safeParse(request.body ?? {});
        if (!body.success) return sendProblem(reply, { status: 400, code: 'invalid_body', message: 'the body does not match the schema', errors: zodErrors(body.error) });
        return sendOutcome(reply, await deps.lifecycle.approve(request.user, id, body.data));
      },
    },
    {
      method: 'POST', url: '/approve/api/requests/:id/deny', access: 'session', rate: 'write',
      doc: { operationId: 'denyFromPage', summary: 'Deny with a reason, as POST /v1/requests/{id}/deny does', tags, body: DenyBody, response: RequestResult, problems: [400, 404, 409] },
      handler: async (request, reply) => {
        const id = requestId(request);
        if (!id) return badId(reply);
        const body = DenyBody.safeParse(request.body ?? {});
        if (!body.success) return sendProblem(reply, { status: 400, code: 'invalid_body', message: 'the body does not match the schema', errors: zodErrors(body.error) });
        return sendOutcome(reply, await deps.lifecycle.deny(request.user, id, body.data.reason));
      },
    },
    ...pageStepUp,
  ];
}
