// The composition root of the grant server: storage, lifecycle, identity, routes, events, metrics. Effects
// (clock, credential provider, step-up gate, key set) come in through options so tests drive them for real.
import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { JWTVerifyGetKey } from 'jose';
import { sql, type Kysely } from 'kysely';
import type { ServerConfig } from './config';
import { canonicalJson, requireSecret } from './config';
import { systemClock, type Clock } from './clock';
import type { CredentialProvider } from './credentials/provider';
import type { StepUpActionResolver, StepUpGate } from './stepup/seam';
import { bastionRoutes } from './bastion/routes';
import { createDbSessionStore } from './bastion/sessions';
import type { AuthUser } from './identity/user';
import { createTokenVerifier, type TokenVerifier } from './identity/verify';
import { openStore, type Store } from './storage/db';
import { Metrics } from './metrics';
import { problemBody, type DomainError } from './errors';
import { Lifecycle, type Logger } from './lifecycle/service';
import { PgEventBus } from './lifecycle/pg-bus';
import { InProcessEventBus, type EventBus } from './lifecycle/events';
import { apiRoutes, IdParam, type RouteSpec } from './http/routes';
import { openApiDocument } from './http/openapi';
import { IdempotencyStore } from './http/idempotency';
import { requireDeclaredAccess, type ServedRoute } from './http/access';
import { sendProblem, zodErrors } from './http/problem';
import { SseHub } from './http/sse';

export interface StepUpRouteDeps {
  resolver: StepUpActionResolver;
  /** Write a step-up audit entry into the server's hash-chained log. */
  audit: (entry: { actor: string; action: string; detail?: Record<string, unknown> }) => Promise<void>;
}

export interface StepUpWiring {
  gate: StepUpGate;
  /** The step-up HTTP routes, built with the lifecycle's resolver; registered at /v1/stepup inside user auth. */
  routes?: (deps: StepUpRouteDeps) => FastifyPluginAsync;
}

export interface BuildServerOptions {
  config: ServerConfig;
  clock?: Clock;
  credentials?: CredentialProvider;
  /** The step-up gate and routes, or a factory given the server's database (step-up keeps its tables there). */
  stepUp?: StepUpWiring | ((ctx: { db: Kysely<any>; clock: Clock }) => StepUpWiring | Promise<StepUpWiring>);
  logger?: FastifyServerOptions['logger'];
  /** Use this key set instead of discovering the issuer's jwks_uri. */
  jwks?: JWTVerifyGetKey;
  /** Replace the in-process event bus (e.g. PostgreSQL LISTEN/NOTIFY). */
  bus?: EventBus;
  /** Environment for secret references (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Safety-net sweep interval in ms (default 5000). */
  sweepEveryMs?: number;
}

export interface GrantServer {
  app: FastifyInstance;
  lifecycle: Lifecycle;
  store: Store;
  metrics: Metrics;
  bus: EventBus;
  routes: RouteSpec[];
  /** Every route served, with who may call it (server/http/access.ts). */
  served: ServedRoute[];
  close(): Promise<void>;
}

const IDEMPOTENCY_TTL_MS = 24 * 3600_000;

/** Audit actions of step-up that change a user's factors, and what the user is told. */
const FACTOR_CHANGES: Record<string, { change: 'added' | 'removed'; factor: 'passkey' | 'authenticator app' }> = {
  'stepup.credential.added': { change: 'added', factor: 'passkey' },
  'stepup.credential.removed': { change: 'removed', factor: 'passkey' },
  'stepup.totp.confirmed': { change: 'added', factor: 'authenticator app' },
  'stepup.totp.removed': { change: 'removed', factor: 'authenticator app' },
};

export async function buildServer(opts: BuildServerOptions): Promise<GrantServer> {
  const { config } = opts;
  const clock = opts.clock ?? systemClock;
  const store = openStore(config.storage.url, { pool: config.storage.pool, preparedStatements: config.storage.preparedStatements });
  if (config.storage.autoMigrate) await store.migrate();
  const metrics = new Metrics({ defaults: true });
  // On PostgreSQL other instances may share the database: their events reach our SSE clients through NOTIFY.
  const pgBus = !opts.bus && store.dialect === 'postgres' && store.pgUrl ? new PgEventBus({ db: store.db, url: store.pgUrl }) : undefined;
  if (pgBus) await pgBus.start().catch(async (error: unknown) => { await store.close(); throw error; });
  const bus = opts.bus ?? pgBus ?? new InProcessEventBus();
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: config.server.bodyLimitBytes,
    trustProxy: config.server.trustedProxies.length ? config.server.trustedProxies : false,
    // Ids in paths are ours; anything longer is not one of them.
    routerOptions: { maxParamLength: 200 },
  });
  // Before any route: a route that is not in the access table stops the server from starting.
  const served = requireDeclaredAccess(app);
  const log: Logger = {
    info: (obj, msg) => app.log.info(obj, msg),
    warn: (obj, msg) => app.log.warn(obj, msg),
    error: (obj, msg) => app.log.error(obj, msg),
  };
  const stepUp = typeof opts.stepUp === 'function' ? await opts.stepUp({ db: store.db as unknown as Kysely<any>, clock }) : opts.stepUp;
  const lifecycle = new Lifecycle({ config, store, clock, bus, metrics, log, credentials: opts.credentials, gate: stepUp?.gate, sweepEveryMs: opts.sweepEveryMs });
  await lifecycle.init();
  const verifier = createTokenVerifier({ identity: config.identity, clock, jwks: opts.jwks });
  const routes = apiRoutes(lifecycle);

  app.decorateRequest('user', null as unknown as AuthUser);
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'body_too_large'
        : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported_media_type'
          : error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? 'invalid_json'
            : 'bad_request';
      const message = code === 'body_too_large' ? `the body is larger than ${config.server.bodyLimitBytes} bytes`
        : code === 'unsupported_media_type' ? 'send the body as application/json'
          : code === 'invalid_json' ? (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'the body is empty; send {} for no fields' : 'the body is not valid JSON')
            : 'the request could not be read';
      return sendProblem(reply, { status: status as DomainError['status'], code, message });
    }
    request.log.error({ err: error }, 'unhandled error');
    // Never a stack trace or an internal message to the client: the log has it, the answer names the request.
    return reply.code(500).type('application/problem+json').send({ type: 'https://stint.dev/problems/internal', title: 'Internal server error', status: 500, code: 'internal', detail: `internal error (request ${request.id}); see the server log` });
  });
  app.setNotFoundHandler((request, reply) => sendProblem(reply, { status: 404, code: 'route_not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }));
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.http.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ route }, reply.elapsedTime / 1000);
  });

  // ---- public: health, readiness, metrics, OpenAPI
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    try {
      await sql`select 1`.execute(store.db);
      return { status: 'ready' };
    } catch (error) {
      // The why goes to the log; a public probe learns only that storage is down (no host names, no driver text).
      app.log.warn({ err: error }, 'readiness: storage is not reachable');
      return sendProblem(reply, { status: 503, code: 'storage_unavailable', message: 'storage is not reachable' });
    }
  });
  app.get('/metrics', async (_request, reply) => {
    metrics.sseClients.set(bus.size);
    metrics.revocationsPending.set(await lifecycle.pendingRevocations());
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  const openapi = openApiDocument(routes, { serverUrl: config.server.url });
  app.get('/v1/openapi.json', async () => openapi);
  // OAuth 2.0 Protected Resource Metadata (RFC 9728): which issuer and audience this server accepts tokens from and
  // for — public facts an agent checks its Settings against before it saves them.
  const resourceMetadata = { resource: config.identity.audience, authorization_servers: [config.identity.issuer], bearer_methods_supported: ['header'], resource_name: 'Stint' };
  app.get('/.well-known/oauth-protected-resource', async () => resourceMetadata);

  // ---- bastions authenticate themselves with their own tokens, outside user authentication
  const bastionTokens: Record<string, { token: string; users: string[] }> = {};
  // Each bastion serves keys only for its configured login user: a grant's key opens nothing as another account.
  for (const [id, bastion] of Object.entries(config.bastions)) bastionTokens[id] = { token: requireSecret(bastion.token, `bastions.${id}.token`, opts.env), users: [bastion.user] };
  await app.register(bastionRoutes({ lookup: lifecycle, bastions: bastionTokens, sessions: createDbSessionStore(store.db, { clock }) }), { prefix: '/v1/bastion' });

  // ---- everything else needs a user
  const sse = new SseHub(bus, store, config.server.heartbeatSeconds * 1000, metrics, clock);
  await app.register(async (scope) => {
    scope.addHook('onRequest', authenticate(verifier, metrics));
    for (const spec of routes) registerRoute(scope, spec, store, clock);
    scope.get('/v1/events', (request, reply) => sse.open(request, reply));
    if (stepUp?.routes) {
      const audit: StepUpRouteDeps['audit'] = async (entry) => {
        await lifecycle.mutate(async (tx) => {
          await tx.audit({ at: clock.now().getTime(), actor: entry.actor, subject: entry.actor, action: entry.action, detail: entry.detail });
          // Every factor change is told to the user's agents, in the same transaction as its audit row.
          const change = FACTOR_CHANGES[entry.action];
          const label = typeof entry.detail?.label === 'string' ? entry.detail.label : undefined;
          if (change) await tx.emit({ type: 'factor.changed', ...change, ...(label ? { label } : {}) }, { users: [entry.actor], groups: [], exclude: [] });
        });
      };
      await scope.register(stepUp.routes({ resolver: lifecycle, audit }), { prefix: '/v1/stepup', resolver: lifecycle } as never);
    }
  });
  app.addHook('preClose', async () => sse.closeAll());

  await lifecycle.start();
  // Said once at start, loudly, with the fix: the server still starts (a database may be fixed while it runs).
  void opts.credentials?.isolationProblems?.().then((problems) => {
    for (const problem of problems) app.log.warn({ check: 'isolation' }, problem);
  }, () => undefined);
  let closed = false;
  return {
    app, lifecycle, store, metrics, bus, routes, served,
    close: async () => {
      if (closed) return;
      closed = true;
      sse.closeAll();
      await app.close();
      await lifecycle.stop();
      await pgBus?.close();
      await opts.credentials?.close().catch(() => {});
      await store.close();
    },
  };
}

function authenticate(verifier: TokenVerifier, metrics: Metrics) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const outcome = await verifier.verify(request.headers.authorization);
    if (outcome.ok) {
      request.user = { ...outcome.user, tokenExpiresAt: outcome.expiresAt };
      return;
    }
    metrics.authFailures.inc({ code: outcome.code });
    const status = outcome.code === 'idp_unavailable' ? 503 : 401;
    // RFC 6750: no error attribute when no token was sent at all.
    const challenge = outcome.code === 'token_missing' ? 'Bearer realm="stint"' : `Bearer realm="stint", error="invalid_token", error_description="${outcome.message.replace(/"/g, "'")}"`;
    if (status === 401) reply.header('www-authenticate', challenge);
    return sendProblem(reply, { status, code: outcome.code, message: outcome.message });
  };
}

function registerRoute(scope: FastifyInstance, spec: RouteSpec, store: Store, clock: Clock): void {
  const inflight = new Map<string, Promise<void>>();
  const idempotency = new IdempotencyStore(store.db, clock, { ttlMs: IDEMPOTENCY_TTL_MS });
  scope.route({
    method: spec.method,
    url: spec.url,
    handler: async (request, reply) => {
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
        const claim = await idempotency.claim(sub, key, fingerprint);
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
          await idempotency.abandon(sub, key).catch(() => {});
          throw error;
        }
        await idempotency.complete(sub, key, result.status, result.body);
        return send(result);
      } finally {
        inflight.delete(slot);
        release();
      }
    },
  });
}
