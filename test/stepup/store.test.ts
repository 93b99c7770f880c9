// The step-up store on both databases the server supports: in-memory SQLite (better-sqlite3) and a real
// PostgreSQL 15 from the harness. Same migrations, same behaviour: ownership, single use, compare-and-set writes.
import { Kysely, Migrator, PostgresDialect, type Migration } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KyselyStepUpStore, stepUpMigrations, type StepUpStore } from '../../server/stepup/store';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { memoryDb } from '../../dev/stepup';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (s: number) => T0 + s * 1000;

function storeContract(name: string, open: () => Promise<{ store: StepUpStore; close: () => Promise<void> }>) {
  describe(`step-up store on ${name}`, () => {
    let store: StepUpStore;
    let close: () => Promise<void>;
    beforeAll(async () => { ({ store, close } = await open()); }, 60_000);
    afterAll(async () => { await close?.(); });

    it('keeps credentials per user; a user removes only their own', async () => {
      const key = new Uint8Array([1, 2, 3, 250]);
      await store.addCredential({ id: 'cred-a', userId: 'alice', publicKey: key, counter: 4_000_000_000, transports: ['internal', 'hybrid'], label: 'Laptop', createdAt: at(0) });
      await store.addCredential({ id: 'cred-b', userId: 'bob', publicKey: key, counter: 0, transports: [], label: 'Key', createdAt: at(1) });
      const a = await store.getCredential('cred-a');
      expect(a).toMatchObject({ userId: 'alice', counter: 4_000_000_000, transports: ['internal', 'hybrid'], label: 'Laptop', createdAt: at(0) });
      expect(Array.from(a!.publicKey)).toEqual([1, 2, 3, 250]);
      await expect(store.addCredential({ id: 'cred-a', userId: 'bob', publicKey: key, counter: 0, transports: [], label: 'x', createdAt: at(2) })).rejects.toThrow();
      expect(await store.removeCredential('bob', 'cred-a')).toBe(false);
      expect((await store.listCredentials('alice')).map((c) => c.id)).toEqual(['cred-a']);
    });

    it('consumes a challenge once, and not after it expired', async () => {
      await store.addChallenge({ id: 'ch-1', userId: 'alice', kind: 'register', webauthnChallenge: 'abc', expiresAt: at(120), createdAt: at(0) });
      await store.addChallenge({ id: 'ch-2', userId: 'alice', kind: 'register', expiresAt: at(120), createdAt: at(0) });
      expect(await store.consumeChallenge('ch-1', at(10))).toBe(true);
      expect(await store.consumeChallenge('ch-1', at(11))).toBe(false);
      expect(await store.consumeChallenge('ch-2', at(120))).toBe(false);
      expect((await store.getChallenge('ch-1'))?.usedAt).toEqual(at(10));
    });

    it('moves a WebAuthn counter only from the value read, together with the challenge', async () => {
      await store.addChallenge({ id: 'ch-w1', userId: 'alice', kind: 'action', actionHash: 'h', webauthnChallenge: 'w', expiresAt: at(120), createdAt: at(0) });
      await store.addChallenge({ id: 'ch-w2', userId: 'alice', kind: 'action', actionHash: 'h', webauthnChallenge: 'w', expiresAt: at(120), createdAt: at(0) });
      expect(await store.completeWebAuthn({ challengeId: 'ch-w1', credentialId: 'cred-a', oldCounter: 4_000_000_000, newCounter: 4_000_000_001, now: at(5) })).toBe('ok');
      // A second proof that read the old counter loses, and its challenge stays unused (the transaction rolled back).
      expect(await store.completeWebAuthn({ challengeId: 'ch-w2', credentialId: 'cred-a', oldCounter: 4_000_000_000, newCounter: 4_000_000_001, now: at(6) })).toBe('counter_changed');
      expect((await store.getChallenge('ch-w2'))?.usedAt).toBeUndefined();
      expect(await store.getCredential('cred-a')).toMatchObject({ counter: 4_000_000_001, lastUsedAt: at(5) });
    });

    it('spends TOTP steps in increasing order only', async () => {
      await store.putTotp({ userId: 'alice', secretEnc: 'v1.sealed', createdAt: at(0) });
      expect(await store.confirmTotp('alice', 100)).toBe(true);
      expect(await store.confirmTotp('alice', 101)).toBe(false);
      for (const id of ['t1', 't2', 't3']) await store.addChallenge({ id, userId: 'alice', kind: 'action', actionHash: 'h', expiresAt: at(120), createdAt: at(0) });
      expect(await store.completeTotp({ challengeId: 't1', userId: 'alice', timeStep: 100, now: at(1) })).toBe('step_used');
      expect(await store.completeTotp({ challengeId: 't1', userId: 'alice', timeStep: 101, now: at(1) })).toBe('ok');
      expect(await store.completeTotp({ challengeId: 't2', userId: 'alice', timeStep: 101, now: at(2) })).toBe('step_used');
      expect(await store.completeTotp({ challengeId: 't1', userId: 'alice', timeStep: 102, now: at(3) })).toBe('challenge_used');
      expect(await store.getTotp('alice')).toMatchObject({ confirmed: true, lastTimeStep: 101 });
    });

    it('takes attempts up to the limit, refunds one, locks, and takes none while locked', async () => {
      expect(await store.getAttempts('carol')).toEqual({ failedCount: 0, lockedUntil: undefined });
      expect(await store.takeAttempt('carol', 3, at(0))).toEqual({ taken: true, failedCount: 1 });
      expect(await store.takeAttempt('carol', 3, at(0))).toEqual({ taken: true, failedCount: 2 });
      await store.refundAttempt('carol');
      expect(await store.takeAttempt('carol', 3, at(0))).toEqual({ taken: true, failedCount: 2 });
      expect(await store.takeAttempt('carol', 3, at(0))).toEqual({ taken: true, failedCount: 3 });
      // All three are spent (or still being checked): no fourth, even before the lock is written.
      expect(await store.takeAttempt('carol', 3, at(0))).toEqual({ taken: false });
      await store.lock('carol', at(300));
      expect(await store.getAttempts('carol')).toEqual({ failedCount: 0, lockedUntil: at(300) });
      expect(await store.takeAttempt('carol', 3, at(299))).toEqual({ taken: false, lockedUntil: at(300) });
      expect(await store.takeAttempt('carol', 3, at(300))).toEqual({ taken: true, failedCount: 1 });
      await store.resetAttempts('carol');
      expect((await store.getAttempts('carol')).failedCount).toBe(0);
    });

    it("an admin's reset removes every factor of one user, their lockout and open challenges, and nobody else's", async () => {
      const key = new Uint8Array([9, 9]);
      await store.addCredential({ id: 'cred-d1', userId: 'dave', publicKey: key, counter: 0, transports: [], label: 'Phone', createdAt: at(0) });
      await store.addCredential({ id: 'cred-d2', userId: 'dave', publicKey: key, counter: 0, transports: [], label: 'Key', createdAt: at(1) });
      await store.putTotp({ userId: 'dave', secretEnc: 'v1.sealed', createdAt: at(0) });
      await store.confirmTotp('dave', 7);
      await store.lock('dave', at(300));
      await store.addChallenge({ id: 'ch-dave', userId: 'dave', kind: 'action', actionHash: 'h', expiresAt: at(120), createdAt: at(0) });
      await store.addCredential({ id: 'cred-e', userId: 'erin', publicKey: key, counter: 0, transports: [], label: 'Erin', createdAt: at(0) });
      await store.putTotp({ userId: 'erin', secretEnc: 'v1.sealed', createdAt: at(0) });

      await store.removeAllFactors('dave');
      expect(await store.listCredentials('dave')).toEqual([]);
      expect(await store.getTotp('dave')).toBeUndefined();
      expect(await store.getAttempts('dave')).toEqual({ failedCount: 0, lockedUntil: undefined });
      expect(await store.getChallenge('ch-dave')).toBeUndefined();
      expect((await store.listCredentials('erin')).map((c) => c.id)).toEqual(['cred-e']);
      expect(await store.getTotp('erin')).toBeDefined();
      await store.removeAllFactors('dave'); // nothing left: still fine
    });

    it('purges long-expired challenges', async () => {
      await store.addChallenge({ id: 'old', userId: 'alice', kind: 'action', actionHash: 'h', expiresAt: at(-7200), createdAt: at(-7320) });
      expect(await store.purgeChallenges(at(-3600))).toBe(1);
      expect(await store.getChallenge('old')).toBeUndefined();
      expect(await store.getChallenge('ch-1')).toBeDefined();
    });
  });
}

storeContract('SQLite (in memory)', async () => {
  const db = await memoryDb();
  return { store: new KyselyStepUpStore(db), close: () => db.destroy() };
});

let postgres: PostgresInstance | undefined;
storeContract('PostgreSQL 15', async () => {
  postgres = await startPostgres();
  const pool = new pg.Pool({ connectionString: postgres.adminUrl(), max: 4 });
  // PostgreSQL stopping at the end may say goodbye (57P01) to a client the pool is still ending: not a test failure
  // (CI once counted it as an unhandled error).
  pool.on('error', () => undefined);
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
  const { error } = await new Migrator({ db, provider: { getMigrations: async (): Promise<Record<string, Migration>> => stepUpMigrations } }).migrateToLatest();
  if (error) throw error;
  return { store: new KyselyStepUpStore(db), close: async () => { await db.destroy(); await postgres?.stop(); } };
});

describe('the stored format', () => {
  it('instants are epoch ms in memory and ISO-8601 UTC strings in the columns, as they always were', async () => {
    const db = await memoryDb();
    const store = new KyselyStepUpStore(db);
    await store.addChallenge({ id: 'c', userId: 'alice', kind: 'action', actionHash: 'h', expiresAt: at(120), createdAt: at(0) });
    expect(await store.consumeChallenge('c', at(10))).toBe(true);
    await store.takeAttempt('alice', 3, at(0));
    await store.lock('alice', at(300));
    expect(await db.selectFrom('stepup_challenges').select(['expires_at', 'used_at', 'created_at']).executeTakeFirst())
      .toEqual({ expires_at: '2030-01-01T00:02:00.000Z', used_at: '2030-01-01T00:00:10.000Z', created_at: '2030-01-01T00:00:00.000Z' });
    expect(await db.selectFrom('stepup_attempts').select('locked_until').executeTakeFirst()).toEqual({ locked_until: '2030-01-01T00:05:00.000Z' });
    expect(await store.getChallenge('c')).toMatchObject({ expiresAt: at(120), usedAt: at(10), createdAt: at(0) });
    await db.destroy();
  });
});
