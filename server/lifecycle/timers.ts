// Timers and deadlines: one exact timer per deadline (request TTL, activation window, grant end, revocation retry),
// keyed so that re-arming replaces, plus a durable sweep on start (and every few seconds as a safety net) so that
// ends that passed while the server was down, or whose timer was lost, happen.
import { sql } from 'kysely';
import type { RequestState } from '../../shared/contract/http';
import type { Clock } from '../../shared/domain/clock';
import type { Db } from '../storage/db';
import type { StoredEvent } from './events';
import { REVOKING } from './revocation';
import { SYSTEM, type Logger } from './support';

/** A grant stuck without credentials this long after activation began (server died mid-issue) is failed. */
const ISSUE_STALE_MS = 2 * 60_000;
const PRUNE_EVERY_MS = 3600_000;
const EVENT_RETENTION_MS = 7 * 86400_000;

/** The timers of this instance, by key (`req:…`, `grant:…`, `revoke:…`), and the background work it started. */
export class Timers {
  private readonly timers = new Map<string, () => void>();
  private inflight = new Set<Promise<unknown>>();
  private stoppedNow = false;

  constructor(private readonly deps: { clock: Clock; log: Logger }) {}

  private now(): number {
    return this.deps.clock.now();
  }

  /** Whether stop was called: nothing new is armed or started after it. */
  get stopped(): boolean {
    return this.stoppedNow;
  }

  schedule(key: string, at: number, fn: () => Promise<unknown>): void {
    if (this.stopped) return;
    this.timers.get(key)?.();
    const timer = this.deps.clock.setTimer(() => {
      this.timers.delete(key);
      if (this.stopped) return;
      void this.track(fn()).catch((error) => this.deps.log.error({ err: error, key }, 'timed transition failed'));
    }, Math.max(0, at - this.now()));
    this.timers.set(key, () => timer.cancel());
  }

  unschedule(key: string): void {
    this.timers.get(key)?.();
    this.timers.delete(key);
  }

  has(key: string): boolean {
    return this.timers.has(key);
  }

  /** Hold a key with no timer behind it: work in flight (an issue of credentials) the sweep must not take for abandoned. */
  hold(key: string): void {
    this.timers.set(key, () => {});
  }

  /** Let go of a key taken by hold. */
  letGo(key: string): void {
    this.timers.delete(key);
  }

  /** Background work that stop waits for. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.inflight.add(promise);
    void promise.finally(() => this.inflight.delete(promise)).catch(() => {});
    return promise;
  }

  /** Cancel every timer and wait for the background work started so far. */
  async stop(): Promise<void> {
    this.stoppedNow = true;
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
    await Promise.allSettled([...this.inflight]);
  }
}

/** What the sweep sets going when a deadline has passed (the request, grant and revocation rules). */
export interface DeadlineWork {
  expireRequest(id: string): Promise<void>;
  endGrant(id: string, event: 'failed', actor: string, reason: string): Promise<unknown>;
  endAtDeadline(id: string): Promise<void>;
  revokeCredentials(id: string): Promise<void>;
  /** Whether this instance is revoking the grant's credentials right now. */
  isRevoking(id: string): boolean;
  /** When other instances may take over the revocation of a grant ended at this instant. */
  othersRevokeFrom(endedAt: number): number;
  /** End the grants whose agent has been silent longer than their policy's idleEnd (idle.ts). */
  endIdle(): Promise<void>;
}

export class DeadlineSweep {
  private sweepTimer: NodeJS.Timeout | undefined;
  private lastPrune = 0;

  constructor(private readonly deps: { db: Db; clock: Clock; log: Logger; timers: Timers; work: DeadlineWork }) {}

  private now(): number {
    return this.deps.clock.now();
  }

  /** Process every deadline that passed while we were down, resume revocations, arm timers for the rest. */
  async start(every: number): Promise<void> {
    await this.sweep(true);
    this.sweepTimer = setInterval(() => { void this.deps.timers.track(this.sweep(false)).catch((error) => this.deps.log.error({ err: error }, 'sweep failed')); }, every);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  /**
   * Grants changed by other instances (their events, PostgreSQL): their deadlines and revocation hand-offs are armed
   * here too, so that when the instance that armed them is killed or frozen, this one ends the grant at its deadline
   * and takes its revocation over at the hand-off — not up to a sweep interval later. When both are up, the first
   * to claim the row ends the grant (endAtDeadline) and a revocation already done is left alone (revokeCredentials).
   */
  armFromOthers(events: readonly StoredEvent[]): void {
    const { timers, work } = this.deps;
    for (const { event } of events) {
      if (event.type !== 'grant.updated') continue;
      const grant = event.grant;
      if (grant.state === 'active') {
        timers.schedule(`grant:${grant.id}`, Date.parse(grant.endsAt), () => work.endAtDeadline(grant.id));
        continue;
      }
      timers.unschedule(`grant:${grant.id}`);
      if (grant.revocation === 'pending' && grant.endedAt && !work.isRevoking(grant.id)) {
        timers.schedule(`revoke:${grant.id}`, work.othersRevokeFrom(Date.parse(grant.endedAt)), () => work.revokeCredentials(grant.id));
      } else if (grant.revocation === 'done') {
        timers.unschedule(`revoke:${grant.id}`);
      }
    }
  }

  /** Expire requests and end grants whose instant has passed; arm timers for the future ones when `arm`. */
  async sweep(arm: boolean): Promise<void> {
    const { db, timers, work } = this.deps;
    const now = this.now();
    if (now - this.lastPrune > PRUNE_EVERY_MS) {
      // Idempotency answers are kept a day; events a week (a client offline longer reloads its lists instead).
      this.lastPrune = now;
      await db.deleteFrom('idempotency').where('created_at', '<', now - 24 * 3600_000).execute();
      await db.deleteFrom('events').where('at', '<', now - EVENT_RETENTION_MS).execute();
    }
    const deadlineStates: RequestState[] = ['pending_stepup', 'pending_approval', 'approved'];
    const requests = await db.selectFrom('requests').select(['id', 'expires_at']).where('state', 'in', deadlineStates).where('grant_id', 'is', null)
      .$if(!arm, (q) => q.where('expires_at', '<=', now)).execute();
    // Due transitions are started together so the write queue batches them (a thousand deadlines in the same
    // second cost a few commits, not a thousand).
    const due: Promise<unknown>[] = [];
    for (const r of requests) {
      if (Number(r.expires_at) <= now) due.push(work.expireRequest(r.id));
      else timers.schedule(`req:${r.id}`, Number(r.expires_at), () => work.expireRequest(r.id));
    }
    const grants = await db.selectFrom('grants').select(['id', 'ends_at', 'db_username', 'starts_at']).where('state', '=', sql.lit('active'))
      .$if(!arm, (q) => q.where((eb) => eb.or([eb('ends_at', '<=', now), eb('db_username', 'is', null)]))).execute();
    for (const g of grants) {
      if (g.db_username === null && Number(g.starts_at) + ISSUE_STALE_MS <= now && !timers.has(`issuing:${g.id}`)) {
        due.push(work.endGrant(g.id, 'failed', SYSTEM, 'activation did not complete (server restarted while issuing credentials)'));
      } else if (Number(g.ends_at) <= now) {
        due.push(work.endAtDeadline(g.id));
      } else if (arm) {
        timers.schedule(`grant:${g.id}`, Number(g.ends_at), () => work.endAtDeadline(g.id));
      }
    }
    due.push(work.endIdle());
    const settled = await Promise.allSettled(due);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const revocations = await db.selectFrom('grants').select(['id', 'next_revoke_at']).where('revocation', 'in', REVOKING).execute();
    for (const g of revocations) {
      if (work.isRevoking(g.id) || (!arm && timers.has(`revoke:${g.id}`))) continue;
      const at = Number(g.next_revoke_at ?? now);
      if (at <= now) void timers.track(work.revokeCredentials(g.id));
      else timers.schedule(`revoke:${g.id}`, at, () => work.revokeCredentials(g.id));
    }
  }
}
