// What the admin console shows live (issue #25): active grants with their request's who/what/why and approvers,
// grants that ended but whose credentials are not yet confirmed revoked (revocation pending or retrying, with its tries
// and last error), and requests still waiting for a step-up or approvals. Reads only; each list walks a partial index.
import type { AdminGrant, AdminLive } from '../../shared/contract/admin';
import type { Db } from '../storage/db';
import { iso, type GrantRow } from './support';
import { toGrant, toRequest } from './views';

/** The most of each list one answer holds (soonest end / oldest first); beyond it the console would need paging. */
const LIVE_LIMIT = 1000;

export async function adminLive(db: Db, now: number): Promise<AdminLive> {
  const [active, ending, pending] = await Promise.all([
    db.selectFrom('grants').selectAll().where('state', '=', 'active').orderBy('ends_at').limit(LIVE_LIMIT).execute(),
    db.selectFrom('grants').selectAll().where('revocation', 'in', ['pending', 'retrying']).where('state', '!=', 'active').orderBy('ended_at').limit(LIVE_LIMIT).execute(),
    // Waiting requests have no grant yet: the requests_waiting partial index.
    db.selectFrom('requests').selectAll().where('grant_id', 'is', null).where('state', 'in', ['pending_stepup', 'pending_approval']).orderBy('created_at').limit(LIVE_LIMIT).execute(),
  ]);
  const grantRequestIds = [...active, ...ending].map((g) => g.request_id);
  const requestIds = [...grantRequestIds, ...pending.map((r) => r.id)];
  const [requests, approvals] = await Promise.all([
    grantRequestIds.length ? db.selectFrom('requests').selectAll().where('id', 'in', grantRequestIds).execute() : [],
    requestIds.length ? db.selectFrom('approvals').selectAll().where('request_id', 'in', requestIds).orderBy('at').execute() : [],
  ]);
  const requestById = new Map(requests.map((r) => [r.id, r]));
  const byRequest = new Map<string, typeof approvals>();
  for (const a of approvals) byRequest.set(a.request_id, [...(byRequest.get(a.request_id) ?? []), a]);
  const approvalsOf = (id: string) => byRequest.get(id) ?? [];
  const adminGrant = (row: GrantRow): AdminGrant => {
    const request = requestById.get(row.request_id);
    const shown = request ? toRequest(request, approvalsOf(request.id)) : undefined;
    const stillEnding = row.state !== 'active' && (row.revocation === 'pending' || row.revocation === 'retrying');
    return {
      grant: toGrant(row),
      ...(shown?.requesterName ? { requesterName: shown.requesterName } : {}),
      reason: shown?.reason ?? '',
      ...(shown?.ticket ? { ticket: shown.ticket } : {}),
      approvals: shown?.approvals ?? [],
      policyVersion: row.policy_version,
      ...(stillEnding ? {
        ending: {
          tries: row.revoke_attempts,
          ...(row.last_revoke_error ? { lastError: row.last_revoke_error } : {}),
          ...(row.next_revoke_at !== null ? { nextTryAt: iso(row.next_revoke_at)! } : {}),
        },
      } : {}),
    };
  };
  return {
    active: active.map(adminGrant),
    ending: ending.map(adminGrant),
    pending: pending.map((r) => toRequest(r, approvalsOf(r.id))),
    serverTime: new Date(now).toISOString(),
  };
}
