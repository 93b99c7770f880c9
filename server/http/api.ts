// A /v1 API spec (http/routes.ts) as a declared route: its handler parses the path id, body and query with the zod
// contracts (400 problems naming each bad field), runs the spec's Outcome handler, and honours Idempotency-Key on
// POST. Access is not checked here: the router has done it before this handler runs.
import { createHash } from 'node:crypto';
import type { Clock } from '../../shared/domain/clock';
import { canonicalJson } from '../config';
import { problemBody } from '../errors';
import type { Store } from '../storage/db';
import { IdempotencyStore } from './idempotency';
import { sendProblem, zodErrors } from './problem';
import type { Route } from './router';
import { IdParam, type RouteSpec } from './routes';

const IDEMPOTENCY_TTL_MS = 24 * 3600_000;

export interface ApiDeps { store: Store; clock: Clock }

export function apiRoute(spec: RouteSpec, deps: ApiDeps): Route {
  return {
    method: spec.method,
    url: spec.url,
    access: spec.access,
    ...(spec.stepUp ? { stepUp: spec.stepUp } : {}),
    ...(spec.refusal ? { refusal: spec.refusal } : {}),
    doc: {
      operationId: spec.operationId,
      summary: spec.summary,
      tags: spec.tags,
      ...(spec.body ? { body: spec.body } : {}),
      ...(spec.query ? { query: spec.query } : {}),
      response: spec.response,
      ...(spec.status ? { status: spec.status } : {}),
      problems: [400, ...(spec.problems ?? []), ...(spec.method === 'POST' ? [413] : [])],
      idempotent: spec.method === 'POST',
    },
    handler: apiHandler(spec, deps),
  };
}

function apiHandler(spec: RouteSpec, deps: ApiDeps): Route['handler'] {
  const inflight = new Map<string, Promise<void>>();
  // Made on first use: the route list is also built without a database, to document it.
  let idempotencyStore: IdempotencyStore | undefined;
  const idempotency = () => (idempotencyStore ??= new IdempotencyStore(deps.store.db, deps.clock, { ttlMs: IDEMPOTENCY_TTL_MS }));
  return async (request, reply) => {
    let id = '';
    if (spec.url.includes(':id')) {
      const parsed = IdParam.safeParse((request.params as { id?: string }).id);
      if (!parsed.success) return sendProblem(reply, { status: 400, code: 'invalid_id', message: 'the id in the path is not a valid id', errors: zodErrors(parsed.error) });
      id = parsed.data;
    }
    let body: unknown;
    if (spec.body) {
      const parsed = spec.body.safeParse(request.body ?? {});
      if (!parsed.success) return sendProblem(reply, { status: 400, code: 'invalid_body', message: 'the body does not match the schema', errors: zodErrors(parsed.error) });
      body = parsed.data;
    }
    let query: unknown;
    if (spec.query) {
      const parsed = spec.query.safeParse(request.query ?? {});
      if (!parsed.success) return sendProblem(reply, { status: 400, code: 'invalid_query', message: 'the query string does not match the schema', errors: zodErrors(parsed.error) });
      query = parsed.data;
    }
    const run = async () => {
      const outcome = await spec.handler({ user: request.user, body, query, id, request, reply });
      return outcome.ok
        ? { status: spec.status ?? 200, body: outcome.value, problem: false }
        : { status: outcome.error.status, body: problemBody(outcome.error), problem: true };
    };
    const send = (result: { status: number; body: unknown; problem: boolean }) => reply.code(result.status).type(result.problem ? 'application/problem+json' : 'application/json').send(result.body);

    const key = request.headers['idempotency-key'];
    if (spec.method !== 'POST' || key === undefined) return send(await run());
    if (typeof key !== 'string' || key.length < 1 || key.length > 200 || !/^[\x21-\x7e]+$/.test(key)) {
      return sendProblem(reply, { status: 400, code: 'invalid_idempotency_key', message: 'Idempotency-Key must be 1–200 visible ASCII characters' });
    }
    const sub = request.user.sub;
    const fingerprint = createHash('sha256').update(`${spec.method} ${request.url}\n${canonicalJson(request.body ?? {})}`).digest('hex');
    const slot = `${sub}\n${key}`;
    // A concurrent retry with the same key on this instance waits here for the first (no polling); the claim in the
    // database covers retries that land on other instances (see http/idempotency.ts).
    while (inflight.has(slot)) await inflight.get(slot);
    let release!: () => void;
    inflight.set(slot, new Promise<void>((resolve) => { release = resolve; }));
    try {
      const claim = await idempotency().claim(sub, key, fingerprint);
      if (claim.kind === 'reused') return sendProblem(reply, { status: 422, code: 'idempotency_key_reused', message: 'this Idempotency-Key was used for a different request' });
      if (claim.kind === 'busy') return sendProblem(reply, { status: 409, code: 'idempotency_in_progress', message: 'a request with this Idempotency-Key is still being processed; retry in a moment' });
      if (claim.kind === 'replay') {
        reply.header('idempotent-replayed', 'true');
        return send({ status: claim.status, body: claim.body, problem: claim.status >= 400 });
      }
      let result: Awaited<ReturnType<typeof run>>;
      try {
        result = await run();
      } catch (error) {
        await idempotency().abandon(sub, key).catch(() => {});
        throw error;
      }
      await idempotency().complete(sub, key, result.status, result.body);
      return send(result);
    } finally {
      inflight.delete(slot);
      release();
    }
  };
}
