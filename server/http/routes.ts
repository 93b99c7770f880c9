// The /v1 API as a table: each route names who may call it, its schemas (used both to parse input and to generate
// OpenAPI) and a handler returning an Outcome. http/api.ts turns each into a declared route for the router: request
// bodies and queries are parsed with the strict zod contracts; a failure is a 400 problem naming each bad field.
// Handlers never see unparsed input, nor a caller the route's access does not admit.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  AccessRequest, ActivateBody, ActivateResult, ApproveBody, AuditList, AuditQuery, CancelBody, CreateRequestBody, CreateRequestResult,
  DenyBody, ExtendBody, ExtendResult, GrantList, GrantResult, HeartbeatBody, HeartbeatResult, Id, ListGrantsQuery, ListRequestsQuery, Me, RekeyBody, RekeyResult, ReleaseBody, RequestList,
  RequestResult, ResourceList, RevealPasswordBody, RevokeBody, StepUpProof,
} from '../../shared/contract/http';
import type { AuthUser } from '../identity/user';
import { ok, type Outcome } from '../errors';
import type { Lifecycle } from '../lifecycle/service';
import { toAuditEntry } from '../lifecycle/audit';
import type { Route } from './router';
import { reviewRoutes } from './review-routes';

export interface RouteContext<B, Q> {
  user: AuthUser;
  body: B;
  query: Q;
  id: string;
  request: FastifyRequest;
  reply: FastifyReply;
}

export interface RouteSpec<B extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST';
  url: string;
  /** Who may call it ('user', 'user_or_service' or 'admin' here); the router applies it before the handler runs. */
  access: Extract<Route['access'], 'user' | 'user_or_service' | 'admin'>;
  stepUp?: string;
  refusal?: Route['refusal'];
  operationId: string;
  summary: string;
  tags: string[];
  body?: B;
  query?: Q;
  response: z.ZodType;
  /** Success status (200 unless stated). */
  status?: number;
  /** Statuses of problem answers worth documenting besides 400/401. */
  problems?: number[];
  handler: (ctx: RouteContext<z.output<B>, z.output<Q>>) => Promise<Outcome<unknown>>;
}

export function route<B extends z.ZodType, Q extends z.ZodType>(spec: RouteSpec<B, Q>): RouteSpec {
  return spec as unknown as RouteSpec;
}

export function apiRoutes(lifecycle: Lifecycle): RouteSpec[] {
  return [
    route({
      method: 'GET', url: '/v1/me', access: 'user_or_service', operationId: 'getMe', summary: 'Who the caller is, as the server sees them', tags: ['identity'], response: Me,
      handler: async ({ user }) => ok(lifecycle.me(user)),
    }),
    route({
      method: 'GET', url: '/v1/resources', access: 'user_or_service', operationId: 'listResources', summary: 'Resources the caller may request, with what a request takes', tags: ['catalog'], response: ResourceList,
      handler: async ({ user }) => ok({ resources: lifecycle.catalog.eligible(user) }),
    }),
    route({
      method: 'POST', url: '/v1/requests', access: 'user_or_service', stepUp: 'the policy may ask the requester for one (pending_stepup)', operationId: 'createRequest', summary: 'Ask for access (or use break-glass)', tags: ['requests'],
      body: CreateRequestBody, response: CreateRequestResult, status: 201, problems: [403, 404, 409, 422],
      handler: async ({ user, body, request }) => lifecycle.createRequest(user, body, { ip: request.ip }),
    }),
    route({
      method: 'GET', url: '/v1/requests', access: 'user_or_service', operationId: 'listRequests', summary: 'My requests, or those waiting for my approval', tags: ['requests'],
      query: ListRequestsQuery, response: RequestList,
      handler: async ({ user, query }) => ok({ requests: await lifecycle.listRequests(user, query.role, query.state, query.limit) }),
    }),
    route({
      method: 'GET', url: '/v1/requests/:id', access: 'user_or_service', operationId: 'getRequest', summary: 'One request (its requester, its approvers, admins)', tags: ['requests'],
      response: RequestResult, problems: [404],
      handler: async ({ user, id }) => lifecycle.getRequest(user, id),
    }),
    route({
      method: 'POST', url: '/v1/requests/:id/stepup', access: 'user', stepUp: 'a proof for this request', operationId: 'completeRequestStepUp', summary: 'Prove a step-up for a request waiting on one', tags: ['requests'],
      body: StepUpProof, response: RequestResult, problems: [403, 404, 409, 410, 429],
      handler: async ({ user, id, body }) => lifecycle.completeStepUp(user, id, body),
    }),
    route({
      method: 'POST', url: '/v1/requests/:id/approve', access: 'user', stepUp: 'a proof for approving this request, when the policy says so', operationId: 'approveRequest', summary: 'Approve (fills one slot of N-of-M; never your own)', tags: ['approvals'],
      body: ApproveBody, response: RequestResult, problems: [403, 404, 409],
      handler: async ({ user, id, body }) => lifecycle.approve(user, id, body),
    }),
    route({
      method: 'POST', url: '/v1/requests/:id/deny', access: 'user', operationId: 'denyRequest', summary: 'Deny with a reason', tags: ['approvals'],
      body: DenyBody, response: RequestResult, problems: [403, 404, 409],
      handler: async ({ user, id, body }) => lifecycle.deny(user, id, body.reason),
    }),
    route({
      method: 'POST', url: '/v1/requests/:id/cancel', access: 'user_or_service', operationId: 'cancelRequest', summary: 'Withdraw my request before it is activated', tags: ['requests'],
      body: CancelBody, response: RequestResult, problems: [404, 409],
      handler: async ({ user, id }) => lifecycle.cancel(user, id),
    }),
    route({
      method: 'POST', url: '/v1/requests/:id/activate', access: 'user_or_service', operationId: 'activateRequest', summary: "Turn my approved request into a grant with this device's key; returns the connection once", tags: ['grants'],
      body: ActivateBody, response: ActivateResult, status: 201, problems: [404, 409, 503],
      handler: async ({ user, id, body }) => lifecycle.activate(user, id, body),
    }),
    route({
      method: 'GET', url: '/v1/grants', access: 'user_or_service', operationId: 'listGrants', summary: 'My grants (admins: all=true for everyone’s)', tags: ['grants'],
      query: ListGrantsQuery, response: GrantList, problems: [403],
      handler: async ({ user, query }) => {
        const out = await lifecycle.listGrants(user, query.all, query.state, query.limit);
        return out.ok ? ok({ grants: out.value }) : out;
      },
    }),
    route({
      method: 'GET', url: '/v1/grants/:id', access: 'user_or_service', operationId: 'getGrant', summary: 'One grant', tags: ['grants'], response: GrantResult, problems: [404],
      handler: async ({ user, id }) => {
        const out = await lifecycle.getGrant(user, id);
        return out.ok ? ok({ grant: out.value }) : out;
      },
    }),
    route({
      method: 'POST', url: '/v1/grants/:id/extend', access: 'user', operationId: 'extendGrant', summary: 'Extend within the policy limit (may need re-approval)', tags: ['grants'],
      body: ExtendBody, response: ExtendResult, problems: [404, 409, 503],
      handler: async ({ user, id, body }) => lifecycle.extend(user, id, body),
    }),
    route({
      method: 'POST', url: '/v1/grants/heartbeat', access: 'user', operationId: 'heartbeatGrants',
      summary: 'My agent still holds these grants (every 30 s; a policy with idleEnd ends a grant whose agent fell silent)', tags: ['grants'],
      body: HeartbeatBody, response: HeartbeatResult,
      handler: async ({ user, body }) => ok({ seen: await lifecycle.heartbeat(user, body.grantIds) }),
    }),
    route({
      method: 'POST', url: '/v1/grants/:id/release', access: 'user_or_service', operationId: 'releaseGrant', summary: 'End my grant now', tags: ['grants'],
      body: ReleaseBody, response: GrantResult, problems: [404, 409],
      handler: async ({ user, id }) => lifecycle.release(user, id),
    }),
    route({
      method: 'POST', url: '/v1/grants/:id/rekey', access: 'user_or_service',
      stepUp: 'a proof for taking this grant back, when its request needed one (a challenge for {kind: "request"} of its request)',
      operationId: 'rekeyGrant',
      summary: "Take my active grant back after my agent lost its keys: this device's new key and a new database password for the same grant and deadline; the old key and password stop working first; returns the connection once",
      tags: ['grants'],
      body: RekeyBody, response: RekeyResult, problems: [403, 404, 409, 410, 429, 503],
      handler: async ({ user, id, body }) => lifecycle.rekey(user, id, body),
    }),
    route({
      method: 'POST', url: '/v1/grants/:id/reveal-password', access: 'user', operationId: 'recordPasswordReveal', summary: "Put on the audit record that the owner is shown the grant's database password (the agent shows it only after this)", tags: ['grants'],
      body: RevealPasswordBody, response: GrantResult, problems: [404, 409],
      handler: async ({ user, id }) => lifecycle.recordPasswordReveal(user, id),
    }),
    route({
      // The router refuses a non-admin before the handler, audited as the lifecycle's own refusal (which stays, for
      // callers that are not HTTP).
      method: 'POST', url: '/v1/grants/:id/revoke', access: 'admin',
      refusal: { action: 'grant.revoke', message: 'only administrators may revoke grants', id: 'grantId' },
      operationId: 'revokeGrant', summary: 'End a grant now (admins)', tags: ['grants'],
      body: RevokeBody, response: GrantResult, problems: [403, 404, 409],
      handler: async ({ user, id, body }) => lifecycle.revoke(user, id, body),
    }),
    route({
      method: 'GET', url: '/v1/audit', access: 'user', operationId: 'listAudit', summary: 'Audit entries (admins: all; others: their own)', tags: ['audit'],
      query: AuditQuery, response: AuditList,
      handler: async ({ user, query }) => ok({ entries: (await lifecycle.auditEntries(user, query)).map(toAuditEntry) }),
    }),
    ...reviewRoutes(lifecycle),
  ];
}

export const IdParam = Id;
export { AccessRequest };
