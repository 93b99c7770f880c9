// Per-caller rate limits on every route, by class, so one stolen token or one noisy script cannot flood the server
// or grind through proofs (issue #19). Each route's class follows from its declaration (http/router.ts) unless it
// names one: anonymous routes are limited per IP, everything else per signed-in user (after the router has checked
// the token, so a caller cannot spend someone else's budget). Bastions are trusted infrastructure with their own token
// and call once per SSH connection: not limited. Most counters live in each instance's memory (@fastify/rate-limit's
// local store): with N instances behind a balancer a caller gets up to N times the limit, which still stops floods.
// The `proof` class (guessing codes, revealing passwords, changing factors) and the `write` class (requests,
// approvals, ends) are counted in the shared database when there is one (PostgreSQL), so their budgets are the same
// however many instances there are; reads and anonymous calls stay in memory (cheap, and floods are what they stop).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { sql } from 'kysely';
import type { RateLimits } from '../config';
import type { Db } from '../storage/db';
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

const WINDOW_MS = 60_000;
/** The classes counted across instances, when the database is shared. */
const SHARED: ReadonlySet<RateClass> = new Set(['proof', 'write']);

/** One more call of `key` in its window, counted in the shared table; how many so far and when the window ends. */
export async function countShared(db: Db, key: string, nowMs: number, windowMs = WINDOW_MS): Promise<{ count: number; resetInMs: number }> {
  const stale = nowMs - windowMs;
  // One upsert, atomic on both dialects: a new window starts when the row's has passed (SET reads the old row).
  const row = await db.insertInto('rate_limits').values({ key, window_start: nowMs, count: 1 })
    .onConflict((oc) => oc.column('key').doUpdateSet({
      count: sql<number>`case when rate_limits.window_start <= ${stale} then 1 else rate_limits.count + 1 end`,
      window_start: sql<number>`case when rate_limits.window_start <= ${stale} then ${nowMs} else rate_limits.window_start end`,
    }))
    .returning(['count', 'window_start'])
    .executeTakeFirstOrThrow();
  return { count: Number(row.count), resetInMs: Number(row.window_start) + windowMs - nowMs };
}

/**
 * Registers the limiter on `app` and returns, for each route, the guard that enforces its class (or none). A caller
 * over the limit gets 429 `rate_limited` with Retry-After, in the one problem shape.
 */
export async function rateLimitGuards(app: FastifyInstance, limits: RateLimits, shared?: { db: Db; now: () => number }): Promise<(route: Route) => Guard | undefined> {
  await app.register(rateLimit, { global: false });
  /** Whether this call is over the class's limit, and in how many seconds the caller may try again. */
  type Check = (request: FastifyRequest) => Promise<{ over: boolean; retryInS: number }>;
  const checks = new Map<RateClass, Check>();
  let lastPrune = 0;
  for (const kind of ['read', 'write', 'proof', 'public'] as const) {
    const max = limits[kind];
    if (max <= 0) continue;
    if (shared && SHARED.has(kind)) {
      checks.set(kind, async (request) => {
        const now = shared.now();
        if (now - lastPrune > 10 * WINDOW_MS) {
          lastPrune = now;
          void shared.db.deleteFrom('rate_limits').where('window_start', '<', now - 2 * WINDOW_MS).execute().catch(() => undefined);
        }
        const { count, resetInMs } = await countShared(shared.db, `${kind}:${callerOf(request)}`, now);
        return { over: count > max, retryInS: Math.max(1, Math.ceil(resetInMs / 1000)) };
      });
    } else {
      const local = app.createRateLimit({ max, timeWindow: WINDOW_MS, keyGenerator: callerOf });
      checks.set(kind, async (request) => {
        const result = await local(request);
        return result.isAllowed ? { over: false, retryInS: 0 } : { over: result.isExceeded, retryInS: Math.max(1, result.ttlInSeconds) };
      });
    }
  }
  return (route) => {
    const check = checks.get(rateClassOf(route));
    if (!check) return undefined;
    return async (request, reply) => {
      const { over, retryInS } = await check(request);
      if (!over) return;
      void reply.header('retry-after', String(retryInS));
      return sendProblem(reply, { status: 429, code: 'rate_limited', message: `too many calls; try again in ${retryInS} s` });
    };
  };
}
