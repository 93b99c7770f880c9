// Revocation: removing an ended grant's database role, durably. The instance that ended a grant makes the first
// attempt at once (revokeJustEnded); retries with backoff and takeovers from other instances are claimed
// (revokeCredentials), on PostgreSQL in batches whose row locks are held across the provider calls.
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import type { Db } from '../storage/db';
import type { CredentialProvider } from '../credentials/provider';
import type { Metrics } from '../metrics';
import type { Timers } from './timers';
import { emitGrant } from './views';
import type { TxContext, WriteQueue } from './write-queue';
import { iso, safeMessage, SYSTEM, type GrantRow, type Logger } from './support';

// Predicates that match a partial index's WHERE are written as literals: a prepared statement's generic plan
// cannot prove that a parameter satisfies the index predicate, and falls back to scanning the whole table.
export const REVOKING = [sql.lit('pending'), sql.lit('retrying')];
const REVOKE_BACKOFF_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 60_000];
/**
 * Several instances: how long the instance that ended a grant has to revoke it before the others may take over.
 * Long against a revocation (tens of ms; a 50-grant burst ~200 ms at p99), short against the promise that a
 * credential dies within a second of its deadline even when that instance is killed or frozen right after the end.
 */
export const REVOKE_HANDOFF_MS = 400;
/** PostgreSQL: revocation batches in flight per instance (each holds a connection across its provider calls). */
const REVOKE_CONCURRENCY = 2;
/** Most revocations claimed in one batch. */
const REVOKE_BATCH = 50;
/**
 * First revocation attempts (see revokeJustEnded) calling the provider at once, per instance; the rest wait their
 * turn. The same bound as the claimed batches: a thousand deadlines in one second must not queue a thousand calls on
 * the provider's small pool, where a call waiting longer than its connect timeout fails.
 */
const FIRST_ATTEMPTS_AT_ONCE = REVOKE_CONCURRENCY * REVOKE_BATCH;

export interface RevocationDeps {
  db: Db;
  /** True when other server instances may write the same database (PostgreSQL). */
  shared: boolean;
  now: () => number;
  credentials?: CredentialProvider;
  metrics: Pick<Metrics, 'revocationFailures'>;
  log: Logger;
  writes: Pick<WriteQueue, 'mutate' | 'transactNow'>;
  timers: Pick<Timers, 'schedule' | 'unschedule' | 'track' | 'stopped'>;
}

export class Revocation {
  private readonly revoking = new Set<string>();
  /** First revocation attempts calling the provider, and those waiting for their turn (see firstAttemptTurn). */
  private firstAttemptsRunning = 0;
  private readonly firstAttemptsWaiting: (() => void)[] = [];
  /** Grants revoked in this turn of the event loop, to be recorded in one change (see recordRevokedSoon). */
  private readonly revokedToRecord: { row: GrantRow; resolve: () => void; reject: (error: unknown) => void }[] = [];
  /** PostgreSQL: revocations waiting for the next claimed batch (see revokeClaimed). */
  private readonly revokeWaiting = new Map<string, { resolve: (retryAt: number | undefined) => void; reject: (error: unknown) => void }>();
  private revokePumpScheduled = false;
  private revokeBatchesRunning = 0;

  constructor(private readonly deps: RevocationDeps) {}

  /** Whether this instance is revoking the grant's credentials right now (the sweep leaves it alone). */
  isRevoking(id: string): boolean {
    return this.revoking.has(id);
  }

  /**
   * When other instances may take over the revocation of a grant ended at `now`: not before the instance that ended
   * it has had its go (see revokeJustEnded). The others hear of the end through the bus and arm a timer for this
   * instant (DeadlineSweep.armFromOthers); their sweep is the safety net should they miss the event.
   */
  othersRevokeFrom(now: number): number {
    return this.deps.shared ? now + REVOKE_HANDOFF_MS : now;
  }

  /**
   * The first attempt at revoking a grant's credentials, by the instance whose change just ended it: nobody else can
   * be at it yet (the row says to leave it until othersRevokeFrom), so there is nothing to claim. The provider is
   * called at once and the outcome is recorded through the write queue, several grants in one change (a write batch
   * that ended grants is followed by their records in the next batch, not by a transaction of their own). The
   * record is conditional: should another instance have revoked the grant meanwhile (this one stalled past the
   * hand-off), the grant is recorded once. Retries and takeovers are claimed (revokeCredentials).
   */
  async revokeJustEnded(row: GrantRow): Promise<void> {
    const credentials = this.deps.credentials;
    if (!credentials || !row.db_username || this.revoking.has(row.id) || this.deps.timers.stopped) return this.revokeCredentials(row.id);
    this.revoking.add(row.id);
    this.deps.timers.unschedule(`revoke:${row.id}`);
    try {
      let failed: { error: unknown } | undefined;
      const done = await this.firstAttemptTurn();
      try {
        await credentials.revoke({ grantId: row.id, resourceId: row.resource_id, username: row.db_username });
      } catch (error) {
        failed = { error };
      } finally {
        done();
      }
      if (failed) {
        const retryAt = await this.deps.writes.mutate((ctx) => this.recordRevokeFailure(ctx, row, failed.error), { key: `grant:${row.id}` });
        if (retryAt !== undefined) this.deps.timers.schedule(`revoke:${row.id}`, retryAt, () => this.revokeCredentials(row.id));
        return;
      }
      // Should the record fail (database unreachable), the grant still waits for revoking: a sweep revokes it again
      // (the provider's revoke is idempotent) and records it then.
      await this.recordRevokedSoon(row).catch((error: unknown) => this.deps.log.warn({ grantId: row.id, message: safeMessage(error) }, 'credentials revoked but not yet recorded; a sweep will record it'));
    } finally {
      this.revoking.delete(row.id);
    }
  }

  /** Wait until fewer than FIRST_ATTEMPTS_AT_ONCE first attempts call the provider; returns the call to make when done. */
  private async firstAttemptTurn(): Promise<() => void> {
    // A finished attempt hands its turn straight to the next waiting one, so the count never overshoots.
    if (this.firstAttemptsRunning < FIRST_ATTEMPTS_AT_ONCE) this.firstAttemptsRunning += 1;
    else await new Promise<void>((resolve) => this.firstAttemptsWaiting.push(resolve));
    return () => {
      const next = this.firstAttemptsWaiting.shift();
      if (next) next();
      else this.firstAttemptsRunning -= 1;
    };
  }

  /** Record a revoked grant, together with the others revoked in this turn of the event loop: one change for all. */
  private recordRevokedSoon(row: GrantRow): Promise<void> {
    return new Promise((resolve, reject) => {
      this.revokedToRecord.push({ row, resolve, reject });
      if (this.revokedToRecord.length > 1) return;
      setImmediate(() => {
        const waiting = this.revokedToRecord.splice(0);
        const rows = waiting.map((w) => w.row);
        this.deps.writes.mutate((ctx) => this.recordRevokedTogether(ctx, rows), { key: rows.map((r) => `grant:${r.id}`) })
          .then(() => { for (const w of waiting) w.resolve(); }, (error: unknown) => { for (const w of waiting) w.reject(error); });
      });
    });
  }

  /** Mark these grants' credentials revoked, those still waiting for it (one statement), and audit each. */
  private async recordRevokedTogether(ctx: TxContext, rows: GrantRow[]): Promise<void> {
    if (rows.length === 0) return;
    const ids = rows.map((r) => r.id);
    const updated = await ctx.trx.updateTable('grants').set({ revocation: 'done', next_revoke_at: null, last_revoke_error: null })
      .where(this.deps.shared ? idIn(ids) : (eb) => eb('id', 'in', ids)).where('revocation', 'in', REVOKING).returningAll().execute();
    const byId = new Map(updated.map((r) => [r.id, r]));
    // In the order they were revoked (the update returns rows in no particular order).
    for (const id of ids) {
      const row = byId.get(id);
      if (!row) continue;
      await ctx.audit({ at: this.deps.now(), actor: SYSTEM, subject: row.owner, action: 'grant.credentials_revoked', grantId: row.id, requestId: row.request_id, resourceId: row.resource_id, policyVersion: row.policy_version, detail: { attempts: row.revoke_attempts + 1 } });
      await emitGrant(ctx, row);
    }
  }

  /** Remove the grant's database role; on failure retry with backoff (durably: the sweep resumes after restart). */
  async revokeCredentials(id: string): Promise<void> {
    if (this.revoking.has(id) || this.deps.timers.stopped) return;
    const credentials = this.deps.credentials;
    if (!credentials) {
      const row = await this.deps.db.selectFrom('grants').select(['revocation', 'db_username']).where('id', '=', id).executeTakeFirst();
      if (row && ['pending', 'retrying'].includes(row.revocation) && row.db_username) this.deps.log.error({ grantId: id }, 'a grant needs revoking but no credential provider is configured');
      return;
    }
    this.revoking.add(id);
    this.deps.timers.unschedule(`revoke:${id}`);
    try {
      const retryAt = this.deps.shared ? await this.revokeInBatch(id, credentials) : await this.revokeAlone(id, credentials);
      if (retryAt !== undefined) this.deps.timers.schedule(`revoke:${id}`, retryAt, () => this.revokeCredentials(id));
    } catch (error) {
      // Our own storage failed (not the target database: that failure is recorded with backoff): try again soon.
      this.deps.timers.schedule(`revoke:${id}`, this.deps.now() + REVOKE_BACKOFF_MS[0]!, () => this.revokeCredentials(id));
      throw error;
    } finally {
      this.revoking.delete(id);
    }
  }

  /** One writer (SQLite): read the row, call the provider, record the outcome. Returns when to retry, if it failed. */
  private async revokeAlone(id: string, credentials: CredentialProvider): Promise<number | undefined> {
    const row = await this.deps.db.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || !['pending', 'retrying'].includes(row.revocation) || !row.db_username) return undefined;
    try {
      await credentials.revoke({ grantId: id, resourceId: row.resource_id, username: row.db_username });
    } catch (error) {
      return this.deps.writes.mutate((ctx) => this.recordRevokeFailure(ctx, row, error));
    }
    await this.deps.writes.mutate((ctx) => this.recordRevokedTogether(ctx, [row]));
    return undefined;
  }

  /** PostgreSQL: queue a revocation for the next claimed batch; resolves with when to retry, if it failed. */
  private revokeInBatch(id: string, credentials: CredentialProvider): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      this.revokeWaiting.set(id, { resolve, reject });
      // Ends committed in one batch ask in the same turn: gather them into one revocation batch.
      if (!this.revokePumpScheduled) {
        this.revokePumpScheduled = true;
        setImmediate(() => {
          this.revokePumpScheduled = false;
          this.pumpRevocations(credentials);
        });
      }
    });
  }

  private pumpRevocations(credentials: CredentialProvider): void {
    while (this.revokeBatchesRunning < REVOKE_CONCURRENCY && this.revokeWaiting.size > 0) {
      const batch = [...this.revokeWaiting].slice(0, REVOKE_BATCH);
      for (const [id] of batch) this.revokeWaiting.delete(id);
      this.revokeBatchesRunning += 1;
      void this.revokeClaimed(batch.map(([id]) => id), credentials)
        .then((retryAt) => { for (const [id, waiter] of batch) waiter.resolve(retryAt.get(id)); }, (error: unknown) => { for (const [, waiter] of batch) waiter.reject(error); })
        .finally(() => {
          this.revokeBatchesRunning -= 1;
          this.pumpRevocations(credentials);
        });
    }
  }

  /**
   * Several instances (PostgreSQL): revocations are claimed with FOR UPDATE SKIP LOCKED and the row locks are held,
   * in one transaction per batch, across the provider calls. Exactly one instance revokes a grant at a time;
   * another skips a grant being revoked; and if the claiming instance dies, its connection closes, the locks go with
   * it, and the next sweep of any other instance takes the revocations over (dropping a role twice is harmless; it
   * is recorded once, by the transaction that commits). Returns when to retry the ones that failed.
   */
  private async revokeClaimed(ids: string[], credentials: CredentialProvider): Promise<Map<string, number>> {
    return this.deps.writes.transactNow(async (ctx) => {
      const now = this.deps.now();
      // `= any(array)`, not an IN list: one statement text for any batch size, prepared once per connection. With
      // lagging statistics a generic plan may take `id = any(…)` for most of the table; the partial index on
      // revoking grants (the literal REVOKING predicate, here and in the update below) keeps it to those rows.
      const rows = await ctx.trx.selectFrom('grants').selectAll().where(idIn(ids)).where('revocation', 'in', REVOKING).where('db_username', 'is not', null)
        .where((eb) => eb.or([eb('next_revoke_at', 'is', null), eb('next_revoke_at', '<=', now)])).forNoKeyUpdate().skipLocked().execute();
      const outcomes = await Promise.allSettled(rows.map((row) => credentials.revoke({ grantId: row.id, resourceId: row.resource_id, username: row.db_username! })));
      const retryAt = new Map<string, number>();
      await this.recordRevokedTogether(ctx, rows.filter((_, i) => outcomes[i]!.status === 'fulfilled'));
      for (const [i, row] of rows.entries()) {
        const outcome = outcomes[i]!;
        if (outcome.status === 'fulfilled') continue;
        const next = await this.recordRevokeFailure(ctx, row, outcome.reason);
        if (next !== undefined) retryAt.set(row.id, next);
      }
      return retryAt;
    });
  }

  /**
   * Record a failed attempt and return when the next one is due; nothing (and no retry) if the grant no longer waits
   * for revoking: another instance revoked it meanwhile (see revokeJustEnded).
   */
  private async recordRevokeFailure(ctx: TxContext, row: GrantRow, error: unknown): Promise<number | undefined> {
    const attempts = row.revoke_attempts + 1;
    const next = this.deps.now() + REVOKE_BACKOFF_MS[Math.min(attempts - 1, REVOKE_BACKOFF_MS.length - 1)]!;
    const message = safeMessage(error);
    const updated = await ctx.trx.updateTable('grants').set({ revocation: 'retrying', revoke_attempts: attempts, next_revoke_at: next, last_revoke_error: message })
      .where('id', '=', row.id).where('revocation', 'in', REVOKING).executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) return undefined;
    this.deps.metrics.revocationFailures.inc({ resource: row.resource_id });
    this.deps.log.warn({ grantId: row.id, attempts, message }, 'credential revocation failed; will retry');
    // Every failure up to the fifth is audited, then every tenth, so a long outage does not flood the log.
    if (attempts <= 5 || attempts % 10 === 0) {
      await ctx.audit({ at: this.deps.now(), actor: SYSTEM, subject: row.owner, action: 'grant.revoke_failed', grantId: row.id, requestId: row.request_id, resourceId: row.resource_id, reason: message, detail: { attempts, retryAt: iso(next) } });
    }
    if (row.revocation !== 'retrying') await emitGrant(ctx, { ...row, revocation: 'retrying' });
    return next;
  }

  /** For the metrics scrape: how many grants still wait for their credentials to be revoked. */
  async pendingRevocations(): Promise<number> {
    const n = await this.deps.db.selectFrom('grants').select((eb) => eb.fn.countAll<number>().as('n')).where('revocation', 'in', REVOKING).executeTakeFirst();
    return Number(n?.n ?? 0);
  }
}

/** PostgreSQL: `id = any($1)`, the same statement text for any number of ids (an IN list is a new one per length). */
function idIn(ids: string[]): RawBuilder<SqlBool> {
  return sql<SqlBool>`id = any(${ids}::text[])`;
}
