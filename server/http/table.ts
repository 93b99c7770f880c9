// The one list of every route the grant server serves: operations endpoints, the /v1 API, the user event stream, the
// step-up routes and the bastion routes, each declared with who may call it. buildServer serves exactly this list
// through the router (http/router.ts), which refuses any other route at startup; the OpenAPI document
// (served at /v1/openapi.json, committed as docs/openapi.json) is generated from it.
import { sql } from 'kysely';
import type { Clock } from '../../shared/domain/clock';
import type { ServerConfig } from '../config';
import type { Lifecycle } from '../lifecycle/service';
import type { EventBus } from '../lifecycle/events';
import type { Metrics } from '../metrics';
import type { Store } from '../storage/db';
import { ServerEventEnvelope } from '../../shared/contract/events';
import { declareBastionRoutes } from '../bastion/routes';
import { declareStepUpRoutes } from '../stepup/routes';
import { declareApprovePageRoutes } from '../web/routes';
import { declareAdminPageRoutes } from '../web/admin-page';
import type { AuditVerifier } from '../lifecycle/audit-verify-status';
import { adminRoutes } from './admin-routes';
import { apiRoute } from './api';
import { sendProblem } from './problem';
import type { Route } from './router';
import { apiRoutes, type RouteSpec } from './routes';
import type { SseHub } from './sse';
import { policyHash } from '../config';
import { readWatched } from '../lifecycle/watched';
import { policyRoutes } from '../policy/routes';
import { webhookAdminRoutes } from '../webhooks/routes';
import { webhookBacklog } from '../webhooks/status';

export interface RouteTableDeps {
  config: ServerConfig;
  /** The /v1 API specs (http/routes.ts). */
  api: RouteSpec[];
  lifecycle: Lifecycle;
  store: Store;
  clock: Clock;
  metrics: Metrics;
  bus: EventBus;
  sse: SseHub;
  /** The OpenAPI document of this very list (made once the list exists). */
  openapi: () => unknown;
  /** Declared step-up routes, when the server has step-up. */
  stepUp?: Route[];
  /** Declared bastion routes. */
  bastion: Route[];
  /** Admin routes of policy as code: reload, version history (server/policy/routes.ts). */
  policy: RouteSpec[];
  /** The approve page's routes (server/web), when the server has one (config `approvalPage`). */
  approvePage?: Route[];
  /** The admin console at /admin (server/web/admin-page.ts), given the API routes it serves again for its session. */
  adminPage?: (api: readonly Route[]) => Route[];
  /** The audit chain's on-demand verification, for the admin console's routes. */
  auditVerifier: AuditVerifier;
  /** Environment for secret references (webhook URLs shown by origin). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Every route of the server, in the order the OpenAPI document lists them. Handlers read `deps` only when they run,
 * so documentedRoutes() builds the same list without a server.
 */
export function routeTable(deps: RouteTableDeps): Route[] {
  const api = [...deps.api.map((spec) => apiRoute(spec, deps)), ...adminRoutes(deps)];
  return [
    ...api,
    {
      method: 'GET', url: '/v1/events', access: 'user_or_service',
      doc: {
        operationId: 'streamEvents', summary: 'Server-Sent Events for the caller: their requests and grants, approval asks for approvers. Resume with Last-Event-ID.', tags: ['events'],
        headers: [{ name: 'Last-Event-ID', schema: { type: 'string', pattern: '^[0-9]+$' } }],
        response: { description: 'An event stream; each `data:` line is one envelope', type: 'text/event-stream', schema: ServerEventEnvelope },
      },
      handler: (request, reply) => deps.sse.open(request, reply),
    },
    ...deps.policy.map((spec) => apiRoute(spec, deps)),
    ...opsRoutes(deps),
    ...webhookAdminRoutes(deps),
    ...(deps.stepUp ?? []),
    ...deps.bastion,
    ...(deps.approvePage ?? []),
    ...(deps.adminPage?.(api) ?? []),
  ];
}

/** Health, readiness, metrics and public metadata: anonymous, and never more than a probe needs to know. */
function opsRoutes(deps: RouteTableDeps): Route[] {
  const ops = ['ops'];
  return [
    {
      method: 'GET', url: '/healthz', access: 'anonymous',
      doc: { operationId: 'healthz', summary: 'Liveness', tags: ops, response: { description: 'OK' }, problems: [[503, 'Not ready']] },
      handler: async () => ({ status: 'ok' }),
    },
    {
      method: 'GET', url: '/readyz', access: 'anonymous',
      doc: { operationId: 'readyz', summary: 'Readiness (storage reachable)', tags: ops, response: { description: 'OK' }, problems: [[503, 'Not ready']] },
      handler: async (request, reply) => {
        try {
          await sql`select 1`.execute(deps.store.db);
          return { status: 'ready' };
        } catch (error) {
          // The why goes to the log; a public probe learns only that storage is down (no host names, no driver text).
          request.log.warn({ err: error }, 'readiness: storage is not reachable');
          return sendProblem(reply, { status: 503, code: 'storage_unavailable', message: 'storage is not reachable' });
        }
      },
    },
    {
      method: 'GET', url: '/metrics', access: 'anonymous',
      doc: { operationId: 'metrics', summary: 'Prometheus metrics', tags: ops, response: { description: 'text/plain exposition format' } },
      handler: async (_request, reply) => {
        deps.metrics.sseClients.set(deps.bus.size);
        deps.metrics.revocationsPending.set(await deps.lifecycle.pendingRevocations());
        await observeWatched(deps);
        const backlog = await webhookBacklog(deps.store.db);
        for (const id of Object.keys(deps.config.webhooks.endpoints)) deps.metrics.webhookBacklog.set({ endpoint: id }, backlog.get(id) ?? 0);
        return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
      },
    },
    {
      method: 'GET', url: '/v1/openapi.json', access: 'anonymous',
      doc: { operationId: 'getOpenApi', summary: 'This document', tags: ops, response: { description: 'OpenAPI 3.1', type: 'application/json' } },
      handler: async () => deps.openapi(),
    },
    {
      // OAuth 2.0 Protected Resource Metadata (RFC 9728): which issuer and audience this server accepts tokens from
      // and for — public facts an agent checks its Settings against before it saves them.
      method: 'GET', url: '/.well-known/oauth-protected-resource', access: 'anonymous',
      doc: { operationId: 'getProtectedResourceMetadata', summary: 'Which issuer and audience tokens must come from and be for (RFC 9728)', tags: ops, response: { description: 'Protected resource metadata', type: 'application/json' } },
      handler: async () => ({ resource: deps.config.identity.audience, authorization_servers: [deps.config.identity.issuer], bearer_methods_supported: ['header'], resource_name: 'Stint' }),
    },
  ];
}

/** The full list with step-up, built without a server: what `stint-server openapi` documents. */
export function documentedRoutes(): Route[] {
  const none = null as never;
  const stepUp = declareStepUpRoutes(none);
  return routeTable({
    config: none, api: apiRoutes(none), lifecycle: none, store: none, clock: none, metrics: none, bus: none, sse: none, openapi: none, auditVerifier: none,
    stepUp,
    bastion: declareBastionRoutes(none).routes,
    policy: policyRoutes(none),
    approvePage: declareApprovePageRoutes(none, stepUp),
    adminPage: (api) => declareAdminPageRoutes(none, api),
  });
}

/** The gauges admins watch, read at scrape time (#25): waiting requests, active grants, revocation backlog, policy versions. */
async function observeWatched(deps: RouteTableDeps): Promise<void> {
  const { metrics } = deps;
  const watched = await readWatched(deps.store.db);
  for (const [state, n] of Object.entries(watched.pending)) metrics.requestsPending.set({ state }, n);
  metrics.grantsActive.set(watched.activeGrants);
  metrics.revocationBacklogAge.set(watched.oldestUnrevokedEnd === undefined ? 0 : Math.max(0, (deps.clock.now() - watched.oldestUnrevokedEnd) / 1000));
  const { catalog } = deps.lifecycle;
  metrics.policyVersion.reset();
  for (const [id, policy] of Object.entries(catalog.config.policies)) metrics.policyVersion.set({ policy: id, version: String(catalog.policyVersion(id)), hash: policyHash(policy) }, 1);
}
