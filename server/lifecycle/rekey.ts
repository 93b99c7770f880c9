// Rekey (issue #21): the owner takes an active grant back after their agent lost its keys (it crashed, and its
// leftovers were wiped at restart). The same grant, the same deadline, fresh credentials: a new SSH key for the
// bastion and a new database password. Both old ones are dead before the new ones are handed out, once: the key
// changes in one statement (the bastion's lookup by key no longer finds the grant from its commit on), then the
// provider rotates the role's password and ends every session of the role (opened with the old one: nobody has the
// new one yet). Where the policy asked the grant's request for a step-up, taking it back needs a fresh one too.
// The SSH sessions opened with the old key (at the bastion, and on an SSH target host) are ended too, as at a grant's
// end: the key's change goes to the companions (an event with `cause: 'rekeyed'` naming the sessions recorded until
// then), which cut them and report them for the audit log (`bastion.session.killed`, cause `rekeyed`).
import type { Connection, Grant, RekeyBody, StepUpMethod } from '../../shared/contract/http';
import type { z } from 'zod';
import { canonicalJson } from '../config';
import type { CredentialProvider } from '../credentials/provider';
import type { StepUpActionResolver, StepUpGate } from '../stepup/seam';
import { stepUpFailureStatus } from '../stepup/routes';
import type { AuthUser } from '../identity/user';
import { fail, ok, type DomainError, type Outcome } from '../errors';
import type { Views } from './views';
import { emitGrant } from './views';
import { iso, parseJson, safeMessage, sha256, type GrantRow, type Logger, type RequestRow, type RulesDeps } from './support';
import { connectionTarget } from '../targets/registry';
import type { GrantEndedForBastion } from '../bastion/seam';

export interface RekeyDeps extends RulesDeps {
  credentials?: CredentialProvider;
  gate?: StepUpGate;
  log: Logger;
  views: Pick<Views, 'ownGrant'>;
  /** Tells this instance's bastion and host streams that a grant's old key is gone (its sessions are to be cut). */
  bastion?: { announce(event: GrantEndedForBastion): void };
}

type StepUpTarget = Extract<Awaited<ReturnType<StepUpActionResolver['resolve']>>, { ok: true }>;

export class Rekeying {
  /** Grants being rekeyed by this instance: a second rekey at once would leave one of the two with a dead password. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly deps: RekeyDeps) {}

  private get catalog() {
    return this.deps.policies.catalog;
  }

  /** What a step-up proof for taking this grant back is bound to: the grant and its owner, never another action. */
  private actionHash(grant: GrantRow): string {
    return sha256(canonicalJson({ kind: 'rekey', grantId: grant.id, owner: grant.owner, requestId: grant.request_id, resourceId: grant.resource_id, level: grant.level }));
  }

  /** The step-up a rekey of this grant needs: the one its request needed (policy `always`, or `on-risk` when risky). */
  private async stepUpNeed(request: Pick<RequestRow, 'step_up_required' | 'step_up_methods' | 'policy_id' | 'policy_version'> | undefined): Promise<{ methods: StepUpMethod[]; userVerification: boolean } | undefined> {
    if (!request || request.step_up_required !== 1) return undefined;
    const policy = await this.deps.policies.recordedPolicy(request);
    return { methods: parseJson<StepUpMethod[]>(request.step_up_methods), userVerification: policy?.stepUp.userVerification ?? true };
  }

  /**
   * For the step-up routes: a challenge for `{kind: 'request', requestId}` of a request that became this user's
   * active grant is a challenge for taking that grant back (the step-up seam's actions are requests and approvals).
   */
  async stepUpTarget(user: { sub: string }, request: RequestRow): Promise<StepUpTarget | { ok: false; status: 404 | 409; code: 'request_not_found' | 'stepup_not_pending'; message: string }> {
    const grant = request.grant_id ? await this.deps.reads.selectFrom('grants').selectAll().where('id', '=', request.grant_id).executeTakeFirst() : undefined;
    if (!grant || grant.owner !== user.sub) return { ok: false, status: 404, code: 'request_not_found', message: `no request ${request.id}` };
    const need = await this.stepUpNeed(request);
    if (grant.state !== 'active' || !need) return { ok: false, status: 409, code: 'stepup_not_pending', message: grant.state !== 'active' ? `its grant is ${grant.state}` : 'taking this grant back needs no step-up' };
    return { ok: true, actionHash: this.actionHash(grant), ...need, summary: `Take back your ${grant.level} access to ${grant.resource_id} with new keys (same end)` };
  }

  async rekey(user: AuthUser, id: string, body: z.output<typeof RekeyBody>): Promise<Outcome<{ grant: Grant; connection: Connection }>> {
    const own = await this.deps.views.ownGrant(user, id, 'grant.rekey');
    if (!own.ok) return own;
    const row = own.value;
    const refs = { grantId: id, requestId: row.request_id, subject: row.owner, resourceId: row.resource_id, policyVersion: row.policy_version };
    const refuse = <T>(error: DomainError) => this.deps.refuse<T>(user, 'grant.rekey', error, refs);
    if (row.state !== 'active' || Number(row.ends_at) <= this.deps.now()) {
      return refuse({ status: 409, code: 'grant_ended', message: row.state === 'active' ? 'the grant has reached its deadline' : `the grant is ${row.state}: there is nothing to take back` });
    }
    if (!row.db_username) return refuse({ status: 409, code: 'busy', message: 'the grant is still being activated; try again in a moment', audit: false });
    const credentials = this.deps.credentials;
    if (!credentials) return fail(503, 'credentials_unavailable', 'the server has no credential provider configured');
    const entry = this.catalog.entry(row.resource_id);
    const bastion = this.catalog.config.bastions[row.bastion_id];
    if (!entry || !bastion) return fail(409, 'resource_gone', `resource ${row.resource_id} (or its bastion) is no longer in the catalog`);

    const request = await this.deps.reads.selectFrom('requests').select(['step_up_required', 'step_up_methods', 'policy_id', 'policy_version']).where('id', '=', row.request_id).executeTakeFirst();
    const need = await this.stepUpNeed(request);
    let stepUpMethod: StepUpMethod | undefined;
    if (need) {
      if (!this.deps.gate) return refuse({ status: 409, code: 'stepup_unavailable', message: 'taking this grant back needs a step-up but the server has no step-up configured' });
      if (!body.stepUp) {
        return fail(403, 'stepup_required', 'taking this grant back needs a fresh step-up: get a challenge for {kind: "request", requestId} of its request and send its proof as stepUp', { extra: { stepUp: { methods: need.methods, action: { kind: 'request', requestId: row.request_id } } } });
      }
      const result = await this.deps.gate.verify({ userId: user.sub, action: { kind: 'request', requestId: row.request_id }, actionHash: this.actionHash(row), methods: need.methods, userVerification: need.userVerification, proof: body.stepUp });
      if (!result.ok) {
        this.deps.metrics.stepUpFailures.inc({ kind: 'rekey', code: result.code });
        await this.deps.writes.mutate(({ audit }) => audit({ at: this.deps.now(), actor: user.sub, action: 'stepup.failed', reason: result.message, ...refs, detail: { code: result.code, kind: 'rekey' } }));
        return fail(stepUpFailureStatus(result.code) as DomainError['status'], result.code, result.message, { extra: { ...(result.reason ? { reason: result.reason } : {}), ...(result.attemptsLeft !== undefined ? { attemptsLeft: result.attemptsLeft } : {}), ...(result.retryAfter !== undefined ? { retryAfter: new Date(result.retryAfter).toISOString() } : {}) } });
      }
      stepUpMethod = result.method;
    }

    if (this.inFlight.has(id)) return refuse({ status: 409, code: 'busy', message: 'this grant is already being taken back; try again in a moment', audit: false });
    this.inFlight.add(id);
    try {
      const [keyType, keyBase64] = body.publicKey.split(' ') as [string, string];
      // 1. The key, in one conditional statement: from its commit on, the old key passes the bastion no more.
      const swapped = await this.deps.writes.mutate(async (ctx): Promise<Outcome<{ grant: GrantRow; oldKey: string }>> => {
        const taken = await ctx.trx.selectFrom('grants').select('id').where('key_base64', '=', keyBase64).where('state', '=', 'active').executeTakeFirst();
        if (taken) return fail(409, 'key_in_use', 'this public key belongs to an active grant; generate a new key', { audit: true });
        const before = await ctx.trx.selectFrom('grants').select('key_base64').where('id', '=', id).executeTakeFirst();
        const updated = await ctx.trx.updateTable('grants').set({ key_type: keyType, key_base64: keyBase64, ...(body.deviceId ? { device_id: body.deviceId } : {}) })
          .where('id', '=', id).where('owner', '=', user.sub).where('state', '=', 'active').where('ends_at', '>', this.deps.now())
          .returningAll().executeTakeFirst();
        if (!updated) return fail(409, 'grant_ended', 'the grant ended while it was being taken back', { audit: true });
        return ok({ grant: updated, oldKey: before?.key_base64 ?? row.key_base64 });
      }, { key: `grant:${id}` });
      if (!swapped.ok) return refuse(swapped.error);
      const { grant, oldKey } = swapped.value;
      // The old key's live SSH sessions: every session recorded until now was opened with it (the new key passes the
      // bastion only from the commit above on, and its owner has not even had the answer yet).
      this.deps.bastion?.announce({ grantId: id, bastionId: grant.bastion_id, resourceId: grant.resource_id, keyBase64: oldKey, at: this.deps.now(), cause: 'rekeyed' });
      // 2. The password: rotated, and every session the old one opened ended.
      let password: string;
      try {
        ({ password } = await credentials.rotate({ grantId: id, resourceId: grant.resource_id, username: grant.db_username! }));
      } catch (error) {
        if ((error as { code?: string }).code === 'not_found') return refuse({ status: 409, code: 'grant_ended', message: 'the grant ended while it was being taken back' });
        const message = safeMessage(error);
        this.deps.log.warn({ grantId: id, resourceId: grant.resource_id, code: (error as { code?: string }).code, message }, 'credential rotation failed');
        return refuse({ status: 503, code: 'credentials_failed', message: `the database access could not be renewed: ${message}` });
      }
      // 3. On the record, while the grant is still active: one that ended meanwhile is being revoked, role and all.
      const stored = await this.deps.writes.mutate(async (ctx) => {
        const current = await ctx.trx.selectFrom('grants').selectAll().where('id', '=', id).where('state', '=', 'active').executeTakeFirst();
        if (!current) return undefined;
        await ctx.audit({
          at: this.deps.now(), actor: user.sub, subject: current.owner, action: 'grant.rekeyed', grantId: id, requestId: current.request_id, resourceId: current.resource_id, policyVersion: current.policy_version,
          detail: { keyType, keySha256: sha256(keyBase64), dbUser: current.db_username, endsAt: iso(current.ends_at), ...(current.device_id ? { deviceId: current.device_id } : {}), ...(stepUpMethod ? { stepUp: stepUpMethod } : {}) },
        });
        return emitGrant(ctx, current);
      }, { key: `grant:${id}` });
      if (!stored) return refuse({ status: 409, code: 'grant_ended', message: 'the grant ended while it was being taken back' });
      return ok({
        grant: stored,
        connection: {
          bastion: { host: bastion.host, port: bastion.port, user: bastion.user, hostKeys: bastion.hostKeys },
          target: { ...connectionTarget(entry.resource), host: grant.target_host, port: grant.target_port },
          dbUser: grant.db_username!,
          dbPassword: password,
        },
      });
    } finally {
      this.inFlight.delete(id);
    }
  }
}
