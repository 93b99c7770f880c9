// Per-caller rate limits on every route, by class, so one stolen token or one noisy script cannot flood the server
// or grind through proofs (issue #19). Each route's class follows from its declaration (http/router.ts) unless it
// names one: anonymous routes are limited per IP, everything else per signed-in user (after the router has checked
// the token, so a caller cannot spend someone else's budget). Bastions are trusted infrastructure with their own token
// and call once per SSH connection: not limited. Counters live in each instance's memory (@fastify/rate-limit's
// local store): with N instances behind a balancer a caller gets up to N times the limit, which still stops floods.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { RateLimits } from '../config';
import { sendProblem } from './problem';
import type { Guard, Route } from './router';

export type RateClass = 'read' | 'write' | 'proof' | 'public' | 'none';


// Proofs, and what hands out a secret: a rekey answers with a new database password (and may carry a step-up proof).
const PROOF_PATHS = [/^\/v1\/stepup\//, /^\/v1\/requests\/:id\/stepup$/, /^\/v1\/grants\/:id\/reveal-password$/, /^\/v1\/grants\/:id\/rekey$/];

export function rateClassOf(route: Pick<Route, 'method' | 'url' | 'access' | 'rate'>): RateClass {
  if (route.rate) return route.rate;
  if (route.access === 'bastion') return 'none';
  if (route.access === 'anonymous') return 'public';
  if (route.method === 'POST' && PROOF_PATHS.some((path) => path.test(route.url))) return 'proof';
  return route.method === 'GET' ? 'read' : 'write';
}

const callerOf = (request: FastifyRequest): string => request.user?.sub ? `user:${request.user.sub}` : `ip:${request.ip}`;

/**
 * Registers the limiter on `app` and returns, for each route, the guard that enforces its class (or none). A caller
 * over the limit gets 429 `rate_limited` with Retry-After, in the one problem shape.
 */
export async function rateLimitGuards(app: FastifyInstance, limits: RateLimits): Promise<(route: Route) => Guard | undefined> {
  await app.register(rateLimit, { global: false });
  const checks = new Map<RateClass, ReturnType<FastifyInstance['createRateLimit']>>();
  for (const kind of ['read', 'write', 'proof', 'public'] as const) {
    if (limits[kind] > 0) checks.set(kind, app.createRateLimit({ max: limits[kind], timeWindow: 60_000, keyGenerator: callerOf }));
  }
  return (route) => {
    const check = checks.get(rateClassOf(route));
    if (!check) return undefined;
    return async (request, reply) => {
      const result = await check(request);
      if (result.isAllowed || !result.isExceeded) return;
      void reply.header('retry-after', String(Math.max(1, result.ttlInSeconds)));
      return sendProblem(reply, { status: 429, code: 'rate_limited', message: `too many calls; try again in ${Math.max(1, result.ttlInSeconds)} s` });
    };
  };
}
