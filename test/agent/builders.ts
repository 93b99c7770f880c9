// Valid contract objects for model tests, parsed with the contract so a contract change breaks them loudly.
import { AccessRequest, Grant, Resource } from '../../shared/contract/http';
import { AgentState, LocalGrant } from '../../shared/contract/agent';
import { grantPhase } from '../../agent/core/grant-phase';

export const T0 = Date.parse('2026-03-02T10:00:00.000Z');
export const iso = (ms: number) => new Date(ms).toISOString();

export function resource(id: string, environment: string, policy: Partial<Resource['policy']> = {}): Resource {
  return Resource.parse({
    id, name: id, environment, sensitivity: 'high', kind: 'postgres', levels: ['read', 'write'], database: 'app',
    policy: {
      policyId: 'p', policyVersion: 1, durationDefaultSeconds: 3600, durationMaxSeconds: 14400, reasonRequired: true,
      ticketRequired: false, approvals: [], autoApprove: true, stepUp: { request: 'never', approve: 'always', methods: ['webauthn'] },
      breakGlass: false, extend: { maxTotalSeconds: 28800, reapproval: false }, ...policy,
    },
  });
}

export function request(id: string, patch: Partial<AccessRequest> = {}): AccessRequest {
  return AccessRequest.parse({
    id, requester: 'alice', resourceId: 'prod-orders', level: 'write', durationSeconds: 3600, reason: 'INC-4512 fix stuck orders',
    breakGlass: false, state: 'pending_approval', policyVersion: 1, risk: { score: 10, reasons: [] }, approvals: [],
    approvalsNeeded: [{ group: 'dba', count: 2, have: 1 }], stepUpRequired: false, stepUpMethods: [],
    createdAt: iso(T0), expiresAt: iso(T0 + 3600_000), ...patch,
  });
}

export function grant(id: string, endsAt: number, patch: Partial<Grant> = {}): Grant {
  return Grant.parse({
    id, requestId: `r-${id}`, owner: 'alice', resourceId: 'prod-orders', level: 'write', state: 'active',
    startsAt: iso(T0), endsAt: iso(endsAt), extendedSeconds: 0, revocation: 'none', breakGlass: false, ...patch,
  });
}

/** A published grant; its phase is the core's (grant-phase.ts) for the fields given, unless the patch sets one. */
export function local(g: Grant, patch: Partial<LocalGrant> = {}): LocalGrant {
  const fields = { grant: g, localEndsAt: g.endsAt, localState: 'active' as const, ...patch };
  const phase = grantPhase({ localState: fields.localState, grantState: g.state, ...(fields.warnedMinutes !== undefined ? { warnedMinutes: fields.warnedMinutes } : {}) });
  return LocalGrant.parse({ phase, ...fields });
}

export function state(patch: Partial<AgentState> = {}): AgentState {
  return AgentState.parse({
    version: 1,
    session: { status: 'signed_in', user: { sub: 'alice', email: 'alice@example.com', groups: ['engineers'], admin: false, approver: false } },
    server: { url: 'https://stint.example.com', status: 'online', clockOffsetMs: 0 },
    resources: [], requests: [], approvals: [], grants: [],
    ...patch,
  });
}
