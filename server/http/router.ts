// The router: every route the server serves is declared as data (method, path, who may call it, its documentation
// and its handler), and `serveRoutes` is the one place that turns declarations into Fastify routes. It attaches the
// check each route's access names, so a route cannot be served without it — a route nobody declared, or one whose
// check lived in a hook it was not registered under, is how a stolen token once stripped step-up (issue #19). The
// same list feeds the OpenAPI document (http/openapi.ts), so what is documented, checked and served cannot drift.
//   anonymous  no credentials (health, metrics, public metadata)
//   user       a person's valid access token (Guards.user sets request.user, or answers 401); a service identity's
//              token is refused with 403 service_not_allowed (step-up, approvals, factors, audit: people only)
//   user_or_service  a valid access token of a person or a service identity (a CI job or bot asking for, using and
//              ending its own grants)
//   admin      user, then the router refuses a non-admin with 403 admin_only before the handler runs
//   bastion    a bastion's own token (Guards.bastion)
//   session    the approve page's browser session (Guards.session: its cookie sets request.user; a POST must also
//              carry the page's CSRF token), never a bearer token (server/web)
//   admin-session  session, then admin-only exactly as `admin` (403 admin_only, audited): the server-served admin
//              console (/admin, server/web/admin-page.ts); the bearer routes it mirrors stay 'admin'
// `stepUp` says what fresh proof the handler demands on top: it is bound to the action, so it lives in the handler.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { sendProblem } from './problem';
import type { RateClass } from './rate-limits';

export type Access = 'anonymous' | 'user' | 'user_or_service' | 'admin' | 'bastion' | 'session' | 'admin-session';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The declaration a route was served from: how the router recognises its own routes. */
    declared?: Route;
  }
}

/** An answer that is not a JSON body described by a schema (plain text, an event stream, an empty 204). */
export interface Answer { description: string; type?: string; schema?: z.ZodType }

/** What the OpenAPI document says about a route (http/openapi.ts). */
export interface RouteDoc {
  operationId: string;
  summary: string;
  tags: string[];
  /** A JSON request body. */
  body?: z.ZodType;
  query?: z.ZodType;
  /** Path parameters; one not named here is documented as an Id. */
  params?: Record<string, z.ZodType>;
  headers?: { name: string; schema: Record<string, unknown> }[];
  /** The success answer: a JSON schema (described "OK"), or an Answer. */
  response: z.ZodType | Answer;
  /** Success status (200 unless stated). */
  status?: number;
  /** problem+json answers: a status (described by its usual meaning) or [status, description]. 401 follows from access. */
  problems?: (number | [number, string])[];
  /** Answers that are not problem+json (the bastion routes answer plain text and small JSON errors). */
  answers?: Record<number, Answer>;
  /** A POST that honours Idempotency-Key. */
  idempotent?: boolean;
}

export type RouteHandler = (request: FastifyRequest, reply: FastifyReply) => unknown;

export interface Route {
  method: 'GET' | 'POST';
  /** The full path, e.g. /v1/grants/:id/revoke (a route set registered under a prefix drops it; see serveRoutes). */
  url: string;
  access: Access;
  /** What fresh proof the handler demands on top of the access (documentation; the handler checks it). */
  stepUp?: string;
  /** The rate-limit class, when not the one its access and method imply (http/rate-limits.ts). */
  rate?: RateClass;
  /** Admin routes: what the 403 says, and the action its audit row names (`refused.<action>`). */
  refusal?: { action: string; message: string; id?: 'grantId' | 'requestId' };
  doc: RouteDoc;
  handler: RouteHandler;
}

/** A guard answers the request itself (401) when the caller is not who the access asks for. */
export type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

export interface Guards {
  /** Verifies a user's access token and sets request.user. */
  user?: Guard;
  /** Verifies a bastion's token. */
  bastion?: Guard;
  /** Finds the approve page's session from its cookie and sets request.user; checks a POST's CSRF token. */
  session?: Guard;
  /** The rate-limit check for a route, if its class is limited (run after the caller is known). */
  limit?: (route: Route) => Guard | undefined;
  /** Records a refused call (a non-admin on an admin route, a service on a people's route) before the router answers it. */
  refused?: (request: FastifyRequest, route: Route, refusal: AccessRefusal) => Promise<void>;
}

export interface AccessRefusal { status: 403; code: 'admin_only' | 'service_not_allowed'; message: string }

export interface ServedRoute { method: string; url: string; access: Access; stepUp?: string }

const ADMIN_ONLY = 'only administrators may do this';

export interface Router {
  /** Serve the one list of routes, each with the checks its access names. Once per app. */
  serve(routes: readonly Route[], guards: Guards): ServedRoute[];
}

/**
 * Take over route registration on `app`: call it before anything registers a route. From then on a route that does
 * not come from `serve` — even one whose path is declared — throws as it is registered, so the server does not start.
 */
export function routerFor(app: FastifyInstance): Router {
  const declared = new Set<Route>();
  const served: ServedRoute[] = [];
  app.addHook('onRoute', (options) => {
    const route = options.config?.declared;
    for (const method of [options.method].flat()) {
      const key = `${method} ${options.url}`;
      // HEAD routes are made by Fastify from their GET route, with its options and hooks.
      const sameRoute = route && declared.has(route) && route.url === options.url && (route.method === method || (method === 'HEAD' && route.method === 'GET'));
      if (!sameRoute) throw new Error(`${key} is not served through the router: declare it (method, path, access: anonymous, user, user_or_service, admin, bastion, session or admin-session) in the route list of server/http/table.ts`);
      if (method !== 'HEAD') served.push({ method, url: route.url, access: route.access, ...(route.stepUp ? { stepUp: route.stepUp } : {}) });
    }
  });
  let serving = false;
  return {
    serve(routes, guards) {
      if (serving) throw new Error('the router serves one list of routes; add routes to it rather than serving a second');
      serving = true;
      for (const route of routes) declared.add(route);
      for (const route of routes) {
        // Declared URLs are full paths; under a plugin prefix (e.g. /v1/bastion) they are registered relative to it.
        if (!route.url.startsWith(app.prefix)) throw new Error(`${route.method} ${route.url} cannot be served under the prefix ${app.prefix}`);
        app.route({
          method: route.method,
          url: route.url.slice(app.prefix.length),
          config: { declared: route },
          ...checksFor(route, guards),
          handler: route.handler,
        });
      }
      return served;
    },
  };
}

/** routerFor(app).serve(routes, guards): for a route set served as a plugin of its own. */
export function serveRoutes(app: FastifyInstance, routes: readonly Route[], guards: Guards): ServedRoute[] {
  return routerFor(app).serve(routes, guards);
}

/** The hooks a route's access asks for. A missing guard is a startup error, never a route served without a check. */
function checksFor(route: Route, guards: Guards): { onRequest?: Guard; preHandler?: Guard[] } {
  const access = accessChecks(route, guards);
  // After the access check, so a signed-in caller is counted as themself and an anonymous one by address.
  const limit = guards.limit?.(route);
  const preHandler = [...(limit ? [limit] : []), ...(access.preHandler ? [access.preHandler] : [])];
  return { ...(access.onRequest ? { onRequest: access.onRequest } : {}), ...(preHandler.length ? { preHandler } : {}) };
}

function accessChecks(route: Route, guards: Guards): { onRequest?: Guard; preHandler?: Guard } {
  const need = (guard: Guard | undefined, what: string): Guard => {
    if (!guard) throw new Error(`${route.method} ${route.url} is declared '${route.access}' but the router was given no ${what} check`);
    return guard;
  };
  switch (route.access) {
    case 'anonymous': return {};
    case 'user': return { onRequest: peopleOnly(route, need(guards.user, 'user token'), guards) };
    case 'user_or_service': return { onRequest: need(guards.user, 'user token') };
    case 'bastion': return { onRequest: need(guards.bastion, 'bastion token') };
    case 'session': return { onRequest: need(guards.session, 'page session') };
    // preHandler, after the body is read: a non-admin's malformed JSON is still a 400, as it always was.
    case 'admin': return { onRequest: peopleOnly(route, need(guards.user, 'user token'), guards), preHandler: adminOnly(route, guards) };
    case 'admin-session': return { onRequest: need(guards.session, 'page session'), preHandler: adminOnly(route, guards) };
    default: {
      const unknown: never = route.access;
      throw new Error(`${route.method} ${route.url} declares an unknown access ${String(unknown)}`);
    }
  }
}

/** The user check, then a service identity is refused: the route is for people (its access is not user_or_service). */
function peopleOnly(route: Route, user: Guard, guards: Guards): Guard {
  return async (request, reply) => {
    const answered = await user(request, reply);
    if (reply.sent || !request.user?.service) return answered;
    const refusal: AccessRefusal = { status: 403, code: 'service_not_allowed', message: `a service identity may not call ${route.method} ${route.url}: services may only request, activate and end their own grants` };
    await guards.refused?.(request, route, refusal);
    return sendProblem(reply, refusal);
  };
}

function adminOnly(route: Route, guards: Guards): Guard {
  return async (request, reply) => {
    if (request.user?.admin === true) return;
    const refusal: AccessRefusal = { status: 403, code: 'admin_only', message: route.refusal?.message ?? ADMIN_ONLY };
    await guards.refused?.(request, route, refusal);
    return sendProblem(reply, refusal);
  };
}
