// Idempotency-Key for POSTs: the first request with a key runs, and a retry with the same key and body gets its
// stored answer instead of running again (an activation's one-time credentials included). The claim is a row in
// the shared database, written before the request runs, so a retry that a load balancer sends to another instance
// waits for the first to finish and replays it: no sticky sessions needed.
// Nothing in that row is readable at rest: the answer is sealed (AES-256-GCM) with a key derived from the client's
// Idempotency-Key, and only a hash of that key is stored — so a copy of the database (or its backups) holds no
// database password from an activation, while the client that sent the key can still get its answer again.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { Clock } from '../../shared/domain/clock';
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

/** What is stored instead of the key: nobody can go from it back to the key (and so to the answer). */
function keyHash(key: string): string {
  return createHash('sha256').update(`stint idempotency key\n${key}`).digest('base64url');
}

function sealingKey(sub: string, key: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, sub, 'stint idempotency answer v1', 32));
}

function seal(sub: string, key: string, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(sub, key), iv);
  const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return `v1.${Buffer.concat([iv, cipher.getAuthTag(), data]).toString('base64url')}`;
}

function open(sub: string, key: string, sealed: string): string | undefined {
  if (!sealed.startsWith('v1.')) return undefined;
  try {
    const raw = Buffer.from(sealed.slice(3), 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', sealingKey(sub, key), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

export class IdempotencyStore {
  private readonly options: IdempotencyOptions;

  constructor(private readonly db: Db, private readonly clock: Clock, options: Partial<IdempotencyOptions> = {}) {
    this.options = { ttlMs: 24 * 3600_000, abandonAfterMs: 60_000, waitMs: 30_000, pollMs: 50, ...options };
  }

  async claim(sub: string, clientKey: string, fingerprint: string): Promise<IdempotencyClaim> {
    const { ttlMs, abandonAfterMs, waitMs, pollMs } = this.options;
    const key = keyHash(clientKey);
    const waitUntil = this.clock.now() + waitMs;
    for (;;) {
      const now = this.clock.now();
      // Insert the claim, or take over a row that expired or was abandoned mid-run; otherwise leave the row alone.
      const taken = await this.db.insertInto('idempotency').values({ user_sub: sub, key, fingerprint, status: RUNNING, body: '', created_at: now })
        .onConflict((oc) => oc.columns(['user_sub', 'key']).doUpdateSet({ fingerprint, status: RUNNING, body: '', created_at: now })
          .where((eb) => eb.or([eb('idempotency.created_at', '<=', now - ttlMs), eb.and([eb('idempotency.status', '=', RUNNING), eb('idempotency.created_at', '<=', now - abandonAfterMs)])])))
        .executeTakeFirst();
      if (Number(taken.numInsertedOrUpdatedRows ?? 0) > 0) return { kind: 'run' };
      const row = await this.db.selectFrom('idempotency').select(['fingerprint', 'status', 'body']).where('user_sub', '=', sub).where('key', '=', key).executeTakeFirst();
      if (!row) continue; // abandoned and removed meanwhile: claim again
      if (row.fingerprint !== fingerprint) return { kind: 'reused' };
      if (row.status !== RUNNING) {
        const body = open(sub, clientKey, row.body);
        // Sealed with this very key, so it opens; a row from before sealing (or damaged) is not replayed blind.
        if (body === undefined) return { kind: 'reused' };
        return { kind: 'replay', status: row.status, body: JSON.parse(body) as unknown };
      }
      if (now >= waitUntil) return { kind: 'busy' };
      await new Promise<void>((resolve) => this.clock.setTimer(resolve, pollMs));
    }
  }

  async complete(sub: string, clientKey: string, status: number, body: unknown): Promise<void> {
    await this.db.updateTable('idempotency').set({ status, body: seal(sub, clientKey, JSON.stringify(body)) })
      .where('user_sub', '=', sub).where('key', '=', keyHash(clientKey)).execute();
  }

  /** The request threw (no answer to replay): free the key so a retry runs it again. */
  async abandon(sub: string, clientKey: string): Promise<void> {
    await this.db.deleteFrom('idempotency').where('user_sub', '=', sub).where('key', '=', keyHash(clientKey)).where('status', '=', RUNNING).execute();
  }
}
