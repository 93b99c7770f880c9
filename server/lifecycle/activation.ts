// Activation: an approved request becomes a grant (its key claimed, the request linked), then the provider issues the
// database credentials; a grant that ended meanwhile, or whose issue failed, is revoked or failed right after.
import type { ActivateBody, Connection, Grant, RequestState } from '../../shared/contract/http';
import { requestTransition, REQUEST_STATES } from '../../shared/domain/lifecycle';
import type { z } from 'zod';
import { together, type Db } from '../storage/db';
import type { CredentialProvider } from '../credentials/provider';
import type { AuthUser } from '../identity/user';
import { fail, ok, type Outcome } from '../errors';
import type { Metrics } from '../metrics';
import type { GrantRules } from './grants';
import type { RequestRules } from './requests';
import type { Revocation } from './revocation';
import type { Timers } from './timers';
import { emitGrant, emitRequest } from './views';
import type { WriteQueue } from './write-queue';
import { iso, newId, safeMessage, sha256, SYSTEM, type CatalogSource, type GrantRow, type Logger, type Refuse, type RequestRow } from './support';
import { connectionTarget } from '../targets/registry';

/** The request states an activation may start from (see shared/domain/lifecycle.ts). */
const ACTIVATABLE = REQUEST_STATES.filter((state) => requestTransition(state, 'activated').ok);

/** The fields of a request that never change after it is created: enough to activate it. */
type RequestFacts = Pick<RequestRow, 'id' | 'requester' | 'resource_id' | 'level' | 'duration_seconds' | 'break_glass' | 'policy_version' | 'device_id'>;
const MAX_REMEMBERED_REQUESTS = 10_000;

/** Approved requests this instance created, by id: their fixed fields (see rememberFacts). */
export class RememberedFacts {
  private readonly facts = new Map<string, RequestFacts>();

  /**
   * Keep the fields of a request this instance wrote that never change after creation, so that activating it needs
   * no read first: the claim (a conditional update) checks the state, and only a refused claim reads the row to say why.
   * Bounded; another instance, a restart or an evicted entry simply means one read.
   */
  rememberFacts(row: RequestRow): void {
    if (row.state !== 'approved' || row.extends_grant_id) return;
    this.facts.set(row.id, { id: row.id, requester: row.requester, resource_id: row.resource_id, level: row.level, duration_seconds: row.duration_seconds, break_glass: row.break_glass, policy_version: row.policy_version, device_id: row.device_id });
    if (this.facts.size > MAX_REMEMBERED_REQUESTS) this.facts.delete(this.facts.keys().next().value!);
  }

  get(id: string): RequestFacts | undefined {
    return this.facts.get(id);
  }

  delete(id: string): void {
    this.facts.delete(id);
  }
}

export interface ActivationDeps {
  /** Short reads by key (see Store.reads): on PostgreSQL, those issued together share one write. */
  reads: Db;
  now: () => number;
  credentials?: CredentialProvider;
  metrics: Pick<Metrics, 'transitions' | 'issueFailures'>;
  log: Logger;
  refuse: Refuse;
  policies: CatalogSource;
  writes: Pick<WriteQueue, 'mutate'>;
  timers: Pick<Timers, 'schedule' | 'unschedule' | 'hold' | 'letGo' | 'track'>;
  facts: RememberedFacts;
  requests: Pick<RequestRules, 'expireRequest'>;
  grants: Pick<GrantRules, 'endGrant' | 'endAtDeadline'>;
  revocation: Pick<Revocation, 'revokeCredentials'>;
}

export class Activation {

  constructor(private readonly deps: ActivationDeps) {}

  private get catalog() {
    return this.deps.policies.catalog;
  }

  /** Why this request cannot be activated now (expiring it if its window has passed), or undefined if it can. */
  private async activationRefusal(user: AuthUser, id: string, row: RequestRow | undefined): Promise<Outcome<never> | undefined> {
    if (!row || row.requester !== user.sub) return this.deps.refuse(user, 'request.activate', { status: 404, code: 'request_not_found', message: `no request ${id} of yours` }, { requestId: id });
    const refs = { requestId: id, subject: row.requester, resourceId: row.resource_id, policyVersion: row.policy_version };
    if (row.state === 'approved' && !row.grant_id && Number(row.expires_at) <= this.deps.now()) {
      await this.deps.requests.expireRequest(id);
      return this.deps.refuse(user, 'request.activate', { status: 409, code: 'request_expired', message: 'the activation window has passed' }, refs);
    }
    if (row.state !== 'approved' || row.grant_id || row.extends_grant_id) {
      return this.deps.refuse(user, 'request.activate', { status: 409, code: 'illegal_transition', message: row.grant_id ? 'the request was already activated' : `the request is ${row.state.replace('_', ' ')}; only an approved request can be activated` }, refs);
    }
    return undefined;
  }

  async activate(user: AuthUser, id: string, body: z.output<typeof ActivateBody>): Promise<Outcome<{ grant: Grant; connection: Connection }>> {
    const readRow = () => this.deps.reads.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
    let row: RequestFacts | undefined = this.deps.facts.get(id);
    if (!row || row.requester !== user.sub) {
      const stored = await readRow();
      const refused = await this.activationRefusal(user, id, stored);
      if (refused) return refused;
      row = stored!;
    }
    const refs = { requestId: id, subject: row.requester, resourceId: row.resource_id, policyVersion: row.policy_version };
    const credentials = this.deps.credentials;
    if (!credentials) return fail(503, 'credentials_unavailable', 'the server has no credential provider configured');
    const entry = this.catalog.entry(row.resource_id);
    if (!entry) return fail(409, 'resource_gone', `resource ${row.resource_id} is no longer in the catalog`);
    const [keyType, keyBase64] = body.publicKey.split(' ') as [string, string];
    const bastion = this.catalog.config.bastions[entry.resource.bastion]!;

    const started = await this.deps.writes.mutate(async (ctx): Promise<Outcome<GrantRow>> => {
      const now = this.deps.now();
      // Built from the request read above: the fields copied are fixed when a request is created.
      const grant: GrantRow = {
        id: newId('gr'), request_id: id, owner: row.requester, resource_id: row.resource_id, level: row.level, state: 'active',
        starts_at: now, ends_at: now + row.duration_seconds * 1000, ended_at: null, end_reason: null, extended_seconds: 0,
        revocation: 'none', revoke_attempts: 0, next_revoke_at: null, last_revoke_error: null, db_username: null,
        key_type: keyType, key_base64: keyBase64, device_id: body.deviceId ?? row.device_id ?? null, bastion_id: entry.resource.bastion, target_host: entry.resource.target.host,
        target_port: entry.resource.target.port, break_glass: row.break_glass, policy_version: row.policy_version, agent_seen_at: null,
        kind: entry.resource.kind,
      };
      // Two statements, each its own check: the insert meets the unique index on active grants' keys (migration
      // 0004: also between instances), and the update takes the request only while it is approved without a grant.
      // Issued together (one round trip); the rare loser of either check undoes the other within this transaction.
      const [inserted, claim] = await together(ctx.trx,
        ctx.trx.insertInto('grants').values(grant).onConflict((oc) => oc.doNothing()),
        ctx.trx.updateTable('requests').set({ grant_id: grant.id })
          .where('id', '=', id).where('state', 'in', ACTIVATABLE).where('grant_id', 'is', null).where('extends_grant_id', 'is', null).where('expires_at', '>', now)
          .returningAll());
      const claimed = claim.rows[0];
      if (Number(inserted.numAffectedRows ?? 0) === 0) {
        if (claimed) await ctx.trx.updateTable('requests').set({ grant_id: null }).where('id', '=', id).where('grant_id', '=', grant.id).execute();
        return fail(409, 'key_in_use', 'this public key belongs to another active grant; generate a new key per grant', { audit: true });
      }
      if (!claimed) {
        // Activated or ended meanwhile (another instance, a retry): take the grant back within this same transaction.
        await ctx.trx.deleteFrom('grants').where('id', '=', grant.id).execute();
        return fail(409, 'illegal_transition', 'the request was already activated or is no longer approved', { audit: true });
      }
      await ctx.audit({ at: now, actor: user.sub, subject: claimed.requester, action: 'request.activated', requestId: id, grantId: grant.id, resourceId: claimed.resource_id, policyVersion: claimed.policy_version, detail: { keyType, keySha256: sha256(keyBase64) } });
      await emitRequest(ctx, claimed, claimed.state as RequestState, this.deps.policies);
      return ok(grant);
    }, { key: `request:${id}` });
    if (!started.ok) {
      this.deps.facts.delete(id);
      // Refused by the claim: the row says why (expired, decided otherwise, already activated).
      if (started.error.code === 'illegal_transition') {
        const refused = await this.activationRefusal(user, id, await readRow());
        if (refused) return refused;
      }
      return this.deps.refuse(user, 'request.activate', started.error, refs);
    }
    this.deps.facts.delete(id);
    const grant = started.value;
    this.deps.timers.unschedule(`req:${id}`);
    // Mark the issue as in flight so the sweep does not mistake it for one abandoned by a crash.
    this.deps.timers.hold(`issuing:${grant.id}`);
    let issued: { username: string; password: string };
    try {
      issued = await credentials.issue({ grantId: grant.id, resourceId: grant.resource_id, level: grant.level, endsAt: grant.ends_at });
    } catch (error) {
      this.deps.timers.letGo(`issuing:${grant.id}`);
      this.deps.metrics.issueFailures.inc({ resource: grant.resource_id });
      const message = safeMessage(error);
      this.deps.log.warn({ grantId: grant.id, resourceId: grant.resource_id, code: (error as { code?: string }).code, message }, 'credential issue failed');
      await this.deps.grants.endGrant(grant.id, 'failed', SYSTEM, `credentials could not be issued: ${message}`);
      return fail(503, 'credentials_failed', `the database access could not be created: ${message}`, { extra: { grantId: grant.id } });
    }
    this.deps.timers.letGo(`issuing:${grant.id}`);
    const stored = await this.deps.writes.mutate(async (ctx) => {
      // One statement: the update locks the row and only applies while the grant is still active.
      const updated = await ctx.trx.updateTable('grants').set({ db_username: issued.username }).where('id', '=', grant.id).where('state', '=', 'active').returningAll().executeTakeFirst();
      if (!updated) {
        // Ended (revoked) while credentials were being issued: remember the role so revocation removes it.
        await ctx.trx.updateTable('grants').set({ db_username: issued.username, revocation: 'pending' }).where('id', '=', grant.id).execute();
        return undefined;
      }
      await ctx.audit({ at: this.deps.now(), actor: SYSTEM, subject: updated.owner, action: 'grant.activated', requestId: id, grantId: grant.id, resourceId: updated.resource_id, policyVersion: updated.policy_version, detail: { dbUser: issued.username, endsAt: iso(updated.ends_at), breakGlass: updated.break_glass === 1 } });
      return emitGrant(ctx, updated);
    }, { key: `grant:${grant.id}` });
    if (!stored) {
      void this.deps.timers.track(this.deps.revocation.revokeCredentials(grant.id));
      return fail(409, 'grant_ended', 'the grant ended while it was being activated', { extra: { grantId: grant.id } });
    }
    this.deps.metrics.transitions.inc({ kind: 'grant', to: 'active' });
    this.deps.timers.schedule(`grant:${grant.id}`, grant.ends_at, () => this.deps.grants.endAtDeadline(grant.id));
    return ok({
      grant: stored,
      connection: {
        bastion: { host: bastion.host, port: bastion.port, user: bastion.user, hostKeys: bastion.hostKeys },
        target: connectionTarget(entry.resource),
        dbUser: issued.username,
        dbPassword: issued.password,
      },
    });
  }
}
