// Idempotency-Key for POSTs: the first request with a key runs, and a retry with the same key and body gets its
// stored answer instead of running again (an activation's one-time credentials included). The claim is a row in
// the shared database, written before the request runs, so a retry that a load balancer sends to another instance
// waits for the first to finish and replays it: no sticky sessions needed.
import type { Clock } from '../clock';
import type { Db } from '../storage/db';

export type IdempotencyClaim =
  /** This request owns the key: run it, then `complete` (or `abandon` if it threw). */
  | { kind: 'run' }
  /** Answered before: send this again. */
  | { kind: 'replay'; status: number; body: unknown }
  /** The key was used for a different request. */
  | { kind: 'reused' }
  /** Still running elsewhere after waiting `waitMs`. */
  | { kind: 'busy' };

export interface IdempotencyOptions {
  /** How long an answer is kept for replay. */
  ttlMs: number;
  /** A claim still running after this long belongs to an instance that died mid-request: it may be taken over. */
  abandonAfterMs: number;
  /** How long a retry waits for a claim running elsewhere before answering busy. */
  waitMs: number;
  pollMs: number;
}

/** `status` of a claim whose request is still running (never an HTTP status). */
const RUNNING = 0;

export class IdempotencyStore {
  private readonly options: IdempotencyOptions;

  constructor(private readonly db: Db, private readonly clock: Clock, options: Partial<IdempotencyOptions> = {}) {
    this.options = { ttlMs: 24 * 3600_000, abandonAfterMs: 60_000, waitMs: 30_000, pollMs: 50, ...options };
  }

  async claim(sub: string, key: string, fingerprint: string): Promise<IdempotencyClaim> {
    const { ttlMs, abandonAfterMs, waitMs, pollMs } = this.options;
    const waitUntil = this.clock.now().getTime() + waitMs;
    for (;;) {
      const now = this.clock.now().getTime();
      // Insert the claim, or take over a row that expired or was abandoned mid-run; otherwise leave the row alone.
      const taken = await this.db.insertInto('idempotency').values({ user_sub: sub, key, fingerprint, status: RUNNING, body: '', created_at: now })
        .onConflict((oc) => oc.columns(['user_sub', 'key']).doUpdateSet({ fingerprint, status: RUNNING, body: '', created_at: now })
          .where((eb) => eb.or([eb('idempotency.created_at', '<=', now - ttlMs), eb.and([eb('idempotency.status', '=', RUNNING), eb('idempotency.created_at', '<=', now - abandonAfterMs)])])))
        .executeTakeFirst();
      if (Number(taken.numInsertedOrUpdatedRows ?? 0) > 0) return { kind: 'run' };
      const row = await this.db.selectFrom('idempotency').select(['fingerprint', 'status', 'body']).where('user_sub', '=', sub).where('key', '=', key).executeTakeFirst();
      if (!row) continue; // abandoned and removed meanwhile: claim again
      if (row.fingerprint !== fingerprint) return { kind: 'reused' };
      if (row.status !== RUNNING) return { kind: 'replay', status: row.status, body: JSON.parse(row.body) as unknown };
      if (now >= waitUntil) return { kind: 'busy' };
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, pollMs));
    }
  }

  async complete(sub: string, key: string, status: number, body: unknown): Promise<void> {
    await this.db.updateTable('idempotency').set({ status, body: JSON.stringify(body) }).where('user_sub', '=', sub).where('key', '=', key).execute();
  }

  /** The request threw (no answer to replay): free the key so a retry runs it again. */
  async abandon(sub: string, key: string): Promise<void> {
    await this.db.deleteFrom('idempotency').where('user_sub', '=', sub).where('key', '=', key).where('status', '=', RUNNING).execute();
  }
}
