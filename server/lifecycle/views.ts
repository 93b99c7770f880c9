// Read views: requests and grants as the API shows them (toRequest, toGrant), the events a change emits about them,
// and the reads behind the list and get routes. Nothing here changes a row but the audit of a refused read.
import type { AccessRequest, Grant, GrantState, Me, RequestState, ResourceKind, StepUpMethod } from '../../shared/contract/http';
import type { Db } from '../storage/db';
import type { AuthUser } from '../identity/user';
import { ok, type Outcome } from '../errors';
import { auditPage } from './audit-search';
import { matchApprovals, type ApprovalRule } from './catalog';
import type { TxContext } from './write-queue';
import { askedGroups, askedView, fillableGroups } from './asked';
import { approvalStepUpView } from './approve-stepup';
import { iso, parseJson, type CatalogSource, type GrantRow, type Refuse, type RequestRow } from './support';

export interface ViewsDeps {
  db: Db;
  /** Short reads by key (see Store.reads): on PostgreSQL, those issued together share one write. */
  reads: Db;
  now: () => number;
  refuse: Refuse;
  policies: CatalogSource;
}

export class Views {

  constructor(private readonly deps: ViewsDeps) {}

  private get catalog() {
    return this.deps.policies.catalog;
  }

  me(user: AuthUser): Me {
    return { sub: user.sub, email: user.email, name: user.name, groups: user.groups, admin: user.admin, approver: this.catalog.isApprover(user), serverTime: new Date(this.deps.now()).toISOString() };
  }

  async listRequests(user: AuthUser, role: 'mine' | 'approver', state?: RequestState, limit = 100): Promise<AccessRequest[]> {
    if (role === 'mine') {
      const rows = await this.deps.db.selectFrom('requests').selectAll().where('requester', '=', user.sub).$if(!!state, (q) => q.where('state', '=', state!))
        .orderBy('created_at', 'desc').limit(limit).execute();
      return this.toRequests(rows);
    }
    const rows = await this.deps.db.selectFrom('requests').selectAll().where('state', '=', state ?? 'pending_approval').where('requester', '!=', user.sub)
      .orderBy('created_at', 'desc').limit(1000).execute();
    const mine = rows.filter((r) => fillableGroups(user.groups, r).length > 0).slice(0, limit);
    return this.toRequests(mine);
  }

  async getRequest(user: AuthUser, id: string): Promise<Outcome<{ request: AccessRequest; grant?: Grant }>> {
    const row = await this.deps.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    const visible = row && (row.requester === user.sub || user.admin || fillableGroups(user.groups, row).length > 0);
    if (!row || !visible) return this.deps.refuse(user, 'request.read', { status: 404, code: 'request_not_found', message: `no request ${id}` }, { requestId: id });
    const [request] = await this.toRequests([row]);
    const grant = row.grant_id && row.requester === user.sub ? await this.grantById(row.grant_id) : undefined;
    return ok({ request: request!, ...(grant ? { grant } : {}) });
  }

  async listGrants(user: AuthUser, all: boolean, state?: GrantState, limit = 100): Promise<Outcome<Grant[]>> {
    if (all && !user.admin) return this.deps.refuse(user, 'grant.list_all', { status: 403, code: 'admin_only', message: 'only administrators may list all grants' });
    const rows = await this.deps.db.selectFrom('grants').selectAll().$if(!all, (q) => q.where('owner', '=', user.sub)).$if(!!state, (q) => q.where('state', '=', state!))
      .orderBy('starts_at', 'desc').limit(limit).execute();
    return ok(rows.map((r) => toGrant(r)));
  }

  async getGrant(user: AuthUser, id: string): Promise<Outcome<Grant>> {
    const own = await this.ownGrant(user, id, 'grant.read', true);
    return own.ok ? ok(toGrant(own.value)) : own;
  }

  /** The caller's own grant (any grant for an admin, where allowed); another user's id answers 404 like an unknown one. */
  async ownGrant(user: AuthUser, id: string, action: string, allowAdmin = false): Promise<Outcome<GrantRow>> {
    const row = await this.deps.reads.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || (row.owner !== user.sub && !(allowAdmin && user.admin))) return this.deps.refuse(user, action, { status: 404, code: 'grant_not_found', message: `no grant ${id} of yours` }, { grantId: id });
    return ok(row);
  }

  /** Audit rows: admins see all; others the rows they wrote or that are about their requests and grants. */
  async auditEntries(user: AuthUser, query: { after: number; before?: number; order: 'asc' | 'desc'; limit: number; requestId?: string; grantId?: string; action?: string }) {
    const order = query.before !== undefined ? 'desc' : query.order;
    const from = order === 'desc' ? query.before : query.after;
    return auditPage(this.deps.db, {
      ...(user.admin ? {} : { user: user.sub }),
      ...(query.requestId ? { requestId: query.requestId } : {}),
      ...(query.grantId ? { grantId: query.grantId } : {}),
      ...(query.action ? { action: query.action } : {}),
    }, { order, limit: query.limit, ...(from ? { from } : {}) });
  }

  async requestById(id: string): Promise<AccessRequest | undefined> {
    const row = await this.deps.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? (await this.toRequests([row]))[0] : undefined;
  }

  async grantById(id: string): Promise<Grant | undefined> {
    const row = await this.deps.reads.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toGrant(row) : undefined;
  }

  private async toRequests(rows: RequestRow[]): Promise<AccessRequest[]> {
    if (rows.length === 0) return [];
    const approvals = await this.deps.db.selectFrom('approvals').selectAll().where('request_id', 'in', rows.map((r) => r.id)).orderBy('at').execute();
    const byRequest = new Map<string, typeof approvals>();
    for (const a of approvals) {
      const list = byRequest.get(a.request_id) ?? [];
      list.push(a);
      byRequest.set(a.request_id, list);
    }
    return Promise.all(rows.map(async (row) => toRequest(row, byRequest.get(row.id) ?? [], await approvalStepUpView(this.deps.policies, row))));
  }
}

export function toRequest(row: RequestRow, approvals: { approver: string; approver_name: string | null; groups: string; at: number }[], approvalStepUp?: AccessRequest['approvalStepUp']): AccessRequest {
  const rules = parseJson<ApprovalRule[]>(row.approval_rules);
  const people = approvals.map((a) => ({ sub: a.approver, groups: parseJson<string[]>(a.groups) }));
  const match = matchApprovals(rules, people);
  return {
    id: row.id,
    requester: row.requester,
    ...(row.requester_name ? { requesterName: row.requester_name } : {}),
    resourceId: row.resource_id,
    level: row.level,
    durationSeconds: row.duration_seconds,
    reason: row.reason,
    ...(row.ticket ? { ticket: row.ticket } : {}),
    breakGlass: row.break_glass === 1,
    state: row.state as RequestState,
    policyVersion: row.policy_version,
    risk: { score: row.risk_score, reasons: parseJson<string[]>(row.risk_reasons) },
    approvals: approvals.map((a) => ({ approver: a.approver, ...(a.approver_name ? { approverName: a.approver_name } : {}), group: match.assignment.get(a.approver) ?? parseJson<string[]>(a.groups)[0] ?? '', at: iso(a.at)! })),
    approvalsNeeded: rules.map((r, i) => ({ group: r.group, count: r.count, have: match.have[i] ?? 0 })),
    stepUpRequired: row.step_up_required === 1,
    stepUpMethods: parseJson<StepUpMethod[]>(row.step_up_methods),
    ...(approvalStepUp ? { approvalStepUp } : {}),
    createdAt: iso(row.created_at)!,
    expiresAt: iso(row.expires_at)!,
    ...(row.decided_at !== null ? { decidedAt: iso(row.decided_at) } : {}),
    ...(row.decision_reason ? { decisionReason: row.decision_reason } : {}),
    ...(row.grant_id ? { grantId: row.grant_id } : {}),
    ...(row.extends_grant_id ? { extendsGrantId: row.extends_grant_id } : {}),
    ...(rules.length ? { asked: askedView(row) } : {}),
  };
}

export function toGrant(row: GrantRow): Grant {
  return {
    id: row.id,
    requestId: row.request_id,
    owner: row.owner,
    resourceId: row.resource_id,
    kind: row.kind as ResourceKind,
    level: row.level,
    state: row.state as GrantState,
    startsAt: iso(row.starts_at)!,
    endsAt: iso(row.ends_at)!,
    ...(row.ended_at !== null ? { endedAt: iso(row.ended_at) } : {}),
    ...(row.end_reason ? { endReason: row.end_reason } : {}),
    extendedSeconds: row.extended_seconds,
    revocation: row.revocation as Grant['revocation'],
    breakGlass: row.break_glass === 1,
    ...(row.device_id ? { deviceId: row.device_id } : {}),
  };
}

/** Events for a request change: the requester always; approvers while (or when leaving) pending approval. */
export async function emitRequest(ctx: TxContext, row: RequestRow, before: RequestState | undefined, policies: CatalogSource): Promise<AccessRequest> {
  // Requests without approval rules (auto-approve, break-glass) never have approval rows.
  const approvals = row.approval_rules === '[]' ? [] : await ctx.trx.selectFrom('approvals').selectAll().where('request_id', '=', row.id).orderBy('at').execute();
  const request = toRequest(row, approvals, await approvalStepUpView(policies, row));
  const groups = askedGroups(row);
  const involvesApprovers = row.state === 'pending_approval' || before === 'pending_approval';
  await ctx.emit({ type: 'request.updated', request }, { users: [row.requester], groups: involvesApprovers ? groups : [], exclude: [] });
  if (row.state === 'pending_approval' && before !== 'pending_approval') {
    await ctx.emit({ type: 'approval.asked', request }, { users: [], groups, exclude: [row.requester] });
  }
  if (before === 'pending_approval' && row.state !== 'pending_approval') {
    await ctx.emit({ type: 'approval.withdrawn', requestId: row.id }, { users: [], groups, exclude: [row.requester] });
  }
  return request;
}

export async function emitGrant(ctx: TxContext, row: GrantRow): Promise<Grant> {
  const grant = toGrant(row);
  await ctx.emit({ type: 'grant.updated', grant }, { users: [row.owner], groups: [], exclude: [] });
  return grant;
}
