// The composition root of the grant server: storage, lifecycle, identity, routes, events, metrics. Effects
// (clock, credential provider, step-up gate, key set) come in through options so tests drive them for real.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { JWTVerifyGetKey } from 'jose';
import type { Kysely } from 'kysely';
import type { ServerConfig } from './config';
import { requireSecret } from './config';
import { createSystemClock, type Clock } from '../shared/domain/clock';
import type { CredentialProvider } from './credentials/provider';
import type { StepUpActionResolver, StepUpGate } from './stepup/seam';
import { bastionTokenGuard, type SshNodeCredential } from './bastion/nodes';
import { declareBastionRoutes } from './bastion/routes';
import { resourceNodes } from './targets/registry';
import { createDbSessionStore } from './bastion/sessions';
import type { AuthUser } from './identity/user';
import { createTokenVerifier } from './identity/verify';
import { openStore, type Store } from './storage/db';
import { Metrics } from './metrics';
import { problemBody, type DomainError } from './errors';
import { Lifecycle, type Logger } from './lifecycle/service';
import { PgEventBus } from './lifecycle/pg-bus';
import { InProcessEventBus, type EventBus } from './lifecycle/events';
import { apiRoutes, IdParam, type RouteSpec } from './http/routes';
import { openApiDocument } from './http/openapi';
import { userTokenGuard } from './http/access';
import { sendProblem } from './http/problem';
import { routerFor, type Route, type ServedRoute } from './http/router';
import { rateLimitGuards } from './http/rate-limits';
import { checkpointKey, startCheckpoints } from './lifecycle/audit-checkpoints';
import { AuditVerifier } from './lifecycle/audit-verify-status';
import { SseHub } from './http/sse';
import { endConnectionsOnClose } from './http/close-connections';
import { routeTable } from './http/table';
import { ConfigReloader, type ReloadResult, type ReloadTrigger } from './policy/reload';
import { policyRoutes } from './policy/routes';
import { startAuditStream } from './audit/start';
import { declareApprovePageRoutes, pageSessionGuard } from './web/routes';
import { declareAdminPageRoutes } from './web/admin-page';
import { DEFAULT_PAGE_DIR } from './web/page-files';
import { WebSessions } from './web/sessions';
import { createWebSignIn } from './web/signin';
import { WebhookOutbox } from './webhooks/outbox';
import { resolveEndpoints, WebhookDelivery } from './webhooks/delivery';

export interface StepUpRouteDeps {
  resolver: StepUpActionResolver;
  /** Write a step-up audit entry into the server's hash-chained log. */
  audit: (entry: { actor: string; action: string; detail?: Record<string, unknown> }) => Promise<void>;
}

export interface StepUpWiring {
  gate: StepUpGate;
  /** The step-up HTTP routes (declared 'user', at /v1/stepup), built with the lifecycle's resolver; the server's route list includes them. */
  routes?: (deps: StepUpRouteDeps) => Route[];
}

export interface BuildServerOptions {
  config: ServerConfig;
  clock?: Clock;
  /** The credential provider, or how to make it once the server's database is open (it may keep state there). */
  credentials?: CredentialProvider | ((deps: { db: Store['db'] }) => CredentialProvider | undefined);
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
  /**
   * The file `config` was read from: the server reloads its policies, resources and bastions from it when it changes
   * (watched), on `reload()` (SIGHUP in main.ts) and on the admin route (#25).
   */
  configPath?: string;
  /** How long the file must be quiet before a change is reloaded, ms (default 300). */
  configDebounceMs?: number;
  /** Effects built from the reloadable sections, told of a reload once it is applied (e.g. the credential provider's resources). */
  reconfigure?: (config: ServerConfig) => void;
  /** Where the built approve page is (default dist/renderer of this checkout). */
  approvePageDir?: string;
}

export interface GrantServer {
  app: FastifyInstance;
  lifecycle: Lifecycle;
  store: Store;
  metrics: Metrics;
  bus: EventBus;
  /** The /v1 API specs (schemas and Outcome handlers); part of `declared`. */
  routes: RouteSpec[];
  /** Every route of the server as declared, with who may call it (server/http/table.ts). */
  declared: Route[];
  /** Every route the router registered, with its declared access. */
  served: ServedRoute[];
  /** Reload the config file now (the SIGHUP path and the admin route use it too). */
  reload(trigger: ReloadTrigger, actor?: string): Promise<ReloadResult>;
  close(): Promise<void>;
}

/** Audit actions of step-up that change a user's factors, and what the user is told. */
const FACTOR_CHANGES: Record<string, { change: 'added' | 'removed'; factor: 'passkey' | 'authenticator app' }> = {
  'stepup.credential.added': { change: 'added', factor: 'passkey' },
  'stepup.credential.removed': { change: 'removed', factor: 'passkey' },
  'stepup.totp.confirmed': { change: 'added', factor: 'authenticator app' },
  'stepup.totp.removed': { change: 'removed', factor: 'authenticator app' },
};

export async function buildServer(opts: BuildServerOptions): Promise<GrantServer> {
  const { config } = opts;
  // The server's timers (deadlines, retries) never keep the process alive: the listening socket does.
  const clock = opts.clock ?? createSystemClock({ unref: true });
  // Read first: a webhook endpoint with a missing secret stops the start before anything is opened.
  const webhookEndpoints = resolveEndpoints(config, opts.env ?? process.env);
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
  // Before any route: from here on only the router registers routes, from the one list (http/table.ts), each with
  // the checks its declared access names; any other route stops the server from starting.
  const router = routerFor(app);
  const log: Logger = {
    info: (obj, msg) => app.log.info(obj, msg),
    warn: (obj, msg) => app.log.warn(obj, msg),
    error: (obj, msg) => app.log.error(obj, msg),
  };
  const stepUp = typeof opts.stepUp === 'function' ? await opts.stepUp({ db: store.db as unknown as Kysely<any>, clock }) : opts.stepUp;
  // Before the lifecycle: the entries it writes at start (policy versions) are streamed too.
  const auditStream = config.audit.stream ? await startAuditStream(config.audit.stream, { db: store.db, metrics, log }) : undefined;
  const credentials = typeof opts.credentials === 'function' ? opts.credentials({ db: store.db }) : opts.credentials;
  // Staged rows are sent by this instance's delivery (nudged after their commit) or any other instance's.
  const delivery = new WebhookDelivery({ db: store.db, shared: store.dialect === 'postgres', now: () => clock.now(), endpoints: webhookEndpoints, retry: config.webhooks.retry, metrics, log });
  const outbox = webhookEndpoints.size > 0 ? new WebhookOutbox({ config, now: () => clock.now(), onStaged: () => delivery.nudge() }) : undefined;
  const lifecycle = new Lifecycle({ config, store, clock, bus, metrics, log, credentials, gate: stepUp?.gate, sweepEveryMs: opts.sweepEveryMs, audited: () => auditStream?.committed(), outbox });
  await lifecycle.init();
  const verifier = createTokenVerifier({ identity: config.identity, clock, jwks: opts.jwks, env: opts.env });

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
    return reply.code(500).type('application/problem+json').send(problemBody({ status: 500, code: 'internal', message: `internal error (request ${request.id}); see the server log` }));
  });
  app.setNotFoundHandler((request, reply) => sendProblem(reply, { status: 404, code: 'route_not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }));
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.http.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ route }, reply.elapsedTime / 1000);
  });

  // ---- step-up (when configured) writes its audit rows into the server's hash-chained log
  const stepUpAudit: StepUpRouteDeps['audit'] = async (entry) => {
    await lifecycle.mutate(async (tx) => {
      await tx.audit({ at: clock.now(), actor: entry.actor, subject: entry.actor, action: entry.action, detail: entry.detail });
      // Every factor change is told to the user's agents, in the same transaction as its audit row.
      const change = FACTOR_CHANGES[entry.action];
      const label = typeof entry.detail?.label === 'string' ? entry.detail.label : undefined;
      if (change) await tx.emit({ type: 'factor.changed', ...change, ...(label ? { label } : {}) }, { users: [entry.actor], groups: [], exclude: [] });
    });
  };

  // ---- bastions authenticate themselves with their own tokens, outside user authentication
  const bastionTokens: Record<string, SshNodeCredential> = {};
  // Each bastion serves keys only for its configured login user: a grant's key opens nothing as another account.
  // Refilled in place on a reload: the guard holds this very object. SSH target hosts (issue #23) speak the same
  // protocol with their own tokens; a token is also who the caller is, so no two nodes may share one (checked before
  // anything changes: a reload that breaks this keeps the tokens it found).
  /** SSH target hosts' resources: their grants' ends reach the host before the bastion (hostFirst). */
  const hostResources = new Set<string>();
  const setBastionTokens = (next: Pick<ServerConfig, 'bastions' | 'resources'>) => {
    const nodes: Record<string, SshNodeCredential> = {};
    for (const [id, bastion] of Object.entries(next.bastions)) nodes[id] = { token: requireSecret(bastion.token, `bastions.${id}.token`, opts.env), users: [bastion.user] };
    Object.assign(nodes, resourceNodes(next.resources, opts.env ?? process.env));
    const tokens = Object.values(nodes).map((node) => node.token);
    if (new Set(tokens).size !== tokens.length) throw new Error('every bastion and SSH host needs a token of its own (two share one)');
    for (const id of Object.keys(bastionTokens)) delete bastionTokens[id];
    Object.assign(bastionTokens, nodes);
    hostResources.clear();
    for (const node of Object.values(nodes)) if (node.host) hostResources.add(node.host.resourceId);
  };
  setBastionTokens(config);

  // ---- policy as code: reload of the config file (#25)
  const reloader = new ConfigReloader({
    path: opts.configPath, env: opts.env, log, metrics,
    running: () => lifecycle.catalog.config,
    apply: (next, reload) => lifecycle.applyConfig(next, reload),
    applied: (next) => {
      setBastionTokens(next);
      opts.reconfigure?.(next);
    },
    audit: (entry) => lifecycle.mutate(({ audit }) => audit({ ...entry, at: clock.now() })),
  });
  const bastion = declareBastionRoutes({ lookup: lifecycle, sessions: createDbSessionStore(store.db, { clock }), hostFirst: { resources: hostResources } });
  bastion.start(app);

  // ---- every route, from the one list; the router applies each one's declared access and refuses any other route
  const sse = new SseHub(bus, store, config.server.heartbeatSeconds * 1000, metrics, clock);
  const routes = apiRoutes(lifecycle);
  const checkpoints = config.audit.checkpoints;
  const checkpointKeys = checkpoints ? checkpointKey(requireSecret(checkpoints.key, 'audit.checkpoints.key', opts.env)) : undefined;
  const auditVerifier = new AuditVerifier({
    db: store.db, now: () => clock.now(),
    ...(checkpoints && checkpointKeys ? { checkpoints: { file: checkpoints.file, publicKey: checkpointKeys.publicKey } } : {}),
    onError: (error) => app.log.error({ err: error }, 'audit verification could not finish'),
  });
  const stepUpRoutes = stepUp?.routes?.({ resolver: lifecycle, audit: stepUpAudit });
  // The approve page (config `approvalPage`): its own sign-in and browser sessions, the same lifecycle and step-up.
  // The admin console at /admin signs in and keeps its session the same way.
  const webSessions = config.approvalPage ? new WebSessions(store.db, () => clock.now()) : undefined;
  const page = webSessions ? {
    config, lifecycle, clock, sessions: webSessions, pageDir: opts.approvePageDir ?? DEFAULT_PAGE_DIR,
    signIn: createWebSignIn({ config, verifier, env: opts.env }),
  } : undefined;
  const approvePage = page ? declareApprovePageRoutes(page, stepUpRoutes ?? []) : undefined;
  const declared = routeTable({
    config, api: routes, lifecycle, store, clock, metrics, bus, sse, openapi: () => openapi, auditVerifier,
    stepUp: stepUpRoutes, bastion: bastion.routes, approvePage, env: opts.env,
    ...(page ? { adminPage: (api: readonly Route[]) => declareAdminPageRoutes(page, api) } : {}),
    policy: policyRoutes({ reloader, versions: lifecycle.policyVersions, catalog: () => lifecycle.catalog }),
  });
  const openapi = openApiDocument(declared, { serverUrl: config.server.url });
  // Proof and write counters go in the shared database when several instances may serve one caller.
  const limit = await rateLimitGuards(app, config.server.rateLimits, store.dialect === 'postgres' ? { db: store.db, now: () => clock.now() } : undefined);
  const served = router.serve(declared, {
    user: userTokenGuard(verifier, metrics),
    limit,
    bastion: bastionTokenGuard(bastionTokens),
    ...(webSessions ? { session: pageSessionGuard({ config, sessions: webSessions }) } : {}),
    // A non-admin calling an admin route is refused by the router, and audited the way the lifecycle audits it.
    refused: async (request, route, refusal) => {
      // The path's id goes on the audit row only when it is one (the body and path are not parsed yet).
      const id = IdParam.safeParse((request.params as { id?: string } | undefined)?.id);
      const refs = route.refusal?.id && id.success ? { [route.refusal.id]: id.data } : {};
      await lifecycle.refuse(request.user, route.refusal?.action ?? route.doc.operationId, refusal, refs);
    },
  });
  app.addHook('preClose', async () => sse.closeAll());
  endConnectionsOnClose(app);

  await lifecycle.start();
  const stopWatching = config.server.watchConfig ? reloader.watch(opts.configDebounceMs) : () => {};
  delivery.start();
  const stopCheckpoints = checkpoints && checkpointKeys ? startCheckpoints({
    db: store.db, file: checkpoints.file, everyMs: checkpoints.every * 1000, afterEntries: checkpoints.afterEntries, clock,
    privateKey: checkpointKeys.privateKey,
    onError: (error) => app.log.error({ err: error }, 'audit checkpoint not written'),
    onWritten: (checkpoint) => auditStream?.checkpoint(checkpoint),
  }) : undefined;
  // Said once at start, loudly, with the fix: the server still starts (a database may be fixed while it runs).
  void credentials?.isolationProblems?.().then((problems) => {
    for (const problem of problems) app.log.warn({ check: 'isolation' }, problem);
  }, () => undefined);
  void credentials?.notices?.().then((notices) => {
    for (const notice of notices) app.log.info({ check: 'target' }, notice);
  }, () => undefined);
  let closed = false;
  return {
    app, lifecycle, store, metrics, bus, routes, declared, served,
    reload: (trigger, actor) => reloader.reload(trigger, actor),
    close: async () => {
      if (closed) return;
      closed = true;
      sse.closeAll();
      stopWatching();
      stopCheckpoints?.();
      // A verification under way reads the store: let it end before the store closes.
      await auditVerifier.settled();
      await app.close();
      await lifecycle.stop();
      await auditStream?.close();
      await delivery.stop();
      await pgBus?.close();
      await credentials?.close().catch(() => {});
      await store.close();
    },
  };
}
