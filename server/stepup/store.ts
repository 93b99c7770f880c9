// Persistence for step-up: WebAuthn credentials, TOTP enrollments, challenges and failed-attempt counters.
// One kysely implementation serves SQLite (better-sqlite3) and PostgreSQL. Instants are stored as ISO-8601 UTC
// strings from Date.toISOString(): one fixed format, so string comparison is time comparison on both databases.
// In memory an instant is epoch ms; the conversion happens here, at the storage seam, and nowhere else.
// Every "use once" rule (challenge, TOTP time step, WebAuthn counter) is a conditional UPDATE whose row count
// decides, inside one transaction, so two concurrent proofs can never both succeed.
import { sql, type Kysely, type Migration, type Transaction } from 'kysely';

export type ChallengeKind = 'action' | 'register';

export interface StoredCredential {
  id: string; // base64url credential id
  userId: string;
  publicKey: Uint8Array<ArrayBuffer>;
  counter: number;
  transports: string[];
  label: string;
  createdAt: number;
  lastUsedAt?: number;
}

export interface StoredTotp {
  userId: string;
  secretEnc: string;
  confirmed: boolean;
  lastTimeStep?: number;
  createdAt: number;
}

export interface StoredChallenge {
  id: string;
  userId: string;
  kind: ChallengeKind;
  actionHash?: string;
  webauthnChallenge?: string;
  expiresAt: number;
  usedAt?: number;
  createdAt: number;
}

export interface AttemptState {
  failedCount: number;
  lockedUntil?: number;
}

/** Outcome of the atomic "finish a proof" writes. */
export type CompleteResult = 'ok' | 'challenge_used' | 'step_used' | 'counter_changed';

export interface StepUpStore {
  addCredential(c: StoredCredential): Promise<void>;
  getCredential(id: string): Promise<StoredCredential | undefined>;
  listCredentials(userId: string): Promise<StoredCredential[]>;
  /** Removes only a credential of this user; false when there was none. */
  removeCredential(userId: string, id: string): Promise<boolean>;

  /** Creates or replaces the user's enrollment, unconfirmed (the service decides whether replacing is allowed). */
  putTotp(t: { userId: string; secretEnc: string; createdAt: number }): Promise<void>;
  getTotp(userId: string): Promise<StoredTotp | undefined>;
  /** Marks confirmed and records the time step of the confirming code (so that code is spent). */
  confirmTotp(userId: string, timeStep: number): Promise<boolean>;
  removeTotp(userId: string): Promise<boolean>;
  /**
   * An administrator's reset: every credential, the authenticator app (confirmed or pending), the code lockout and the
   * open challenges of this user go, in one transaction. The user is then as one who never had a factor.
   */
  removeAllFactors(userId: string): Promise<void>;

  addChallenge(c: StoredChallenge): Promise<void>;
  getChallenge(id: string): Promise<StoredChallenge | undefined>;
  /** Consumes a registration challenge (single use); false when already used or expired. */
  consumeChallenge(id: string, now: number): Promise<boolean>;
  /** Consumes the challenge and spends the TOTP time step, both or neither. */
  completeTotp(input: { challengeId: string; userId: string; timeStep: number; now: number }): Promise<CompleteResult>;
  /** Consumes the challenge and moves the credential counter from `oldCounter` to `newCounter`, both or neither. */
  completeWebAuthn(input: { challengeId: string; credentialId: string; oldCounter: number; newCounter: number; now: number }): Promise<CompleteResult>;
  /** Deletes challenges that expired before `before` (epoch ms); returns how many. */
  purgeChallenges(before: number): Promise<number>;

  getAttempts(userId: string): Promise<AttemptState>;
  /**
   * Takes one attempt before a code is checked, in one conditional statement: none while locked, nor once `max` are
   * spent or in flight — so parallel guesses cannot all be checked before the lock lands.
   */
  takeAttempt(userId: string, max: number, now: number): Promise<{ taken: true; failedCount: number } | { taken: false; lockedUntil?: number }>;
  /** The attempt taken was not a guess after all (a replayed code, no app set up): give it back. */
  refundAttempt(userId: string): Promise<void>;
  /** Lock until `lockUntil` and count again from zero (the attempts ran out). */
  lock(userId: string, lockUntil: number): Promise<void>;
  resetAttempts(userId: string): Promise<void>;
}

// ---- schema ----

export interface StepUpTables {
  stepup_credentials: {
    id: string;
    user_id: string;
    public_key: string; // base64url
    counter: number | string | bigint; // bigint column: pg returns a string
    transports: string; // JSON array
    label: string;
    created_at: string;
    last_used_at: string | null;
  };
  stepup_totp: {
    user_id: string;
    secret_enc: string;
    confirmed: number;
    last_time_step: number | null;
    created_at: string;
  };
  stepup_challenges: {
    id: string;
    user_id: string;
    kind: string;
    action_hash: string | null;
    webauthn_challenge: string | null;
    expires_at: string;
    used_at: string | null;
    created_at: string;
  };
  stepup_attempts: {
    user_id: string;
    failed_count: number;
    locked_until: string | null;
  };
}

/** Schema for the server's migrator (names prefixed `stepup_`; no foreign keys to other tables, so order is free). */
export const stepUpMigrations: Record<string, Migration> = {
  stepup_0001_init: {
    async up(db: Kysely<any>) {
      await db.schema.createTable('stepup_credentials')
        .addColumn('id', 'varchar(1024)', (c) => c.primaryKey())
        .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('transports', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('label', 'varchar(255)', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('last_used_at', 'varchar(32)')
        .execute();
      await db.schema.createIndex('stepup_credentials_user').on('stepup_credentials').column('user_id').execute();
      await db.schema.createTable('stepup_totp')
        .addColumn('user_id', 'varchar(255)', (c) => c.primaryKey())
        .addColumn('secret_enc', 'text', (c) => c.notNull())
        .addColumn('confirmed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('last_time_step', 'integer')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .execute();
      await db.schema.createTable('stepup_challenges')
        .addColumn('id', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
        .addColumn('kind', 'varchar(16)', (c) => c.notNull())
        .addColumn('action_hash', 'varchar(128)')
        .addColumn('webauthn_challenge', 'varchar(255)')
        .addColumn('expires_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('used_at', 'varchar(32)')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('stepup_challenges_expires').on('stepup_challenges').column('expires_at').execute();
      await db.schema.createTable('stepup_attempts')
        .addColumn('user_id', 'varchar(255)', (c) => c.primaryKey())
        .addColumn('failed_count', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('locked_until', 'varchar(32)')
        .execute();
    },
    async down(db: Kysely<any>) {
      for (const t of ['stepup_attempts', 'stepup_challenges', 'stepup_totp', 'stepup_credentials']) await db.schema.dropTable(t).ifExists().execute();
    },
  },
};

// ---- kysely implementation ----

const iso = (ms: number) => new Date(ms).toISOString();
const fromIso = (s: string) => Date.parse(s);
const fromIsoOrUndefined = (s: string | null | undefined) => (s ? Date.parse(s) : undefined);
const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const fromB64u = (s: string): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.from(s, 'base64url'));

function toCredential(r: StepUpTables['stepup_credentials']): StoredCredential {
  return {
    id: r.id,
    userId: r.user_id,
    publicKey: fromB64u(r.public_key),
    counter: Number(r.counter),
    transports: JSON.parse(r.transports) as string[],
    label: r.label,
    createdAt: fromIso(r.created_at),
    lastUsedAt: fromIsoOrUndefined(r.last_used_at),
  };
}

/** A rollback carrying the outcome out of a transaction. */
class Abort extends Error {
  constructor(readonly result: CompleteResult) { super(result); }
}

export class KyselyStepUpStore implements StepUpStore {
  constructor(private readonly db: Kysely<any>) {}

  private get k(): Kysely<StepUpTables> { return this.db as Kysely<StepUpTables>; }

  async addCredential(c: StoredCredential): Promise<void> {
    await this.k.insertInto('stepup_credentials').values({
      id: c.id, user_id: c.userId, public_key: b64u(c.publicKey), counter: c.counter, transports: JSON.stringify(c.transports),
      label: c.label, created_at: iso(c.createdAt), last_used_at: c.lastUsedAt !== undefined ? iso(c.lastUsedAt) : null,
    }).execute();
  }

  async getCredential(id: string): Promise<StoredCredential | undefined> {
    const r = await this.k.selectFrom('stepup_credentials').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? toCredential(r) : undefined;
  }

  async listCredentials(userId: string): Promise<StoredCredential[]> {
    const rows = await this.k.selectFrom('stepup_credentials').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute();
    return rows.map(toCredential);
  }

  async removeCredential(userId: string, id: string): Promise<boolean> {
    const r = await this.k.deleteFrom('stepup_credentials').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  async putTotp(t: { userId: string; secretEnc: string; createdAt: number }): Promise<void> {
    await this.k.insertInto('stepup_totp')
      .values({ user_id: t.userId, secret_enc: t.secretEnc, confirmed: 0, last_time_step: null, created_at: iso(t.createdAt) })
      .onConflict((oc) => oc.column('user_id').doUpdateSet({ secret_enc: t.secretEnc, confirmed: 0, last_time_step: null, created_at: iso(t.createdAt) }))
      .execute();
  }

  async getTotp(userId: string): Promise<StoredTotp | undefined> {
    const r = await this.k.selectFrom('stepup_totp').selectAll().where('user_id', '=', userId).executeTakeFirst();
    if (!r) return undefined;
    return {
      userId: r.user_id, secretEnc: r.secret_enc, confirmed: Number(r.confirmed) === 1,
      lastTimeStep: r.last_time_step === null ? undefined : Number(r.last_time_step), createdAt: fromIso(r.created_at),
    };
  }

  async confirmTotp(userId: string, timeStep: number): Promise<boolean> {
    const r = await this.k.updateTable('stepup_totp').set({ confirmed: 1, last_time_step: timeStep })
      .where('user_id', '=', userId).where('confirmed', '=', 0).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async removeTotp(userId: string): Promise<boolean> {
    const r = await this.k.deleteFrom('stepup_totp').where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  async removeAllFactors(userId: string): Promise<void> {
    await this.k.transaction().execute(async (trx) => {
      await trx.deleteFrom('stepup_credentials').where('user_id', '=', userId).execute();
      await trx.deleteFrom('stepup_totp').where('user_id', '=', userId).execute();
      await trx.deleteFrom('stepup_attempts').where('user_id', '=', userId).execute();
      await trx.deleteFrom('stepup_challenges').where('user_id', '=', userId).where('used_at', 'is', null).execute();
    });
  }

  async addChallenge(c: StoredChallenge): Promise<void> {
    await this.k.insertInto('stepup_challenges').values({
      id: c.id, user_id: c.userId, kind: c.kind, action_hash: c.actionHash ?? null, webauthn_challenge: c.webauthnChallenge ?? null,
      expires_at: iso(c.expiresAt), used_at: c.usedAt !== undefined ? iso(c.usedAt) : null, created_at: iso(c.createdAt),
    }).execute();
  }

  async getChallenge(id: string): Promise<StoredChallenge | undefined> {
    const r = await this.k.selectFrom('stepup_challenges').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) return undefined;
    return {
      id: r.id, userId: r.user_id, kind: r.kind as ChallengeKind, actionHash: r.action_hash ?? undefined,
      webauthnChallenge: r.webauthn_challenge ?? undefined, expiresAt: fromIso(r.expires_at), usedAt: fromIsoOrUndefined(r.used_at), createdAt: fromIso(r.created_at),
    };
  }

  private async consumeIn(db: Kysely<StepUpTables> | Transaction<StepUpTables>, id: string, now: number): Promise<boolean> {
    const r = await db.updateTable('stepup_challenges').set({ used_at: iso(now) })
      .where('id', '=', id).where('used_at', 'is', null).where('expires_at', '>', iso(now)).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  consumeChallenge(id: string, now: number): Promise<boolean> {
    return this.consumeIn(this.k, id, now);
  }

  private async atomically(body: (trx: Transaction<StepUpTables>) => Promise<void>): Promise<CompleteResult> {
    try {
      await this.k.transaction().execute(body);
      return 'ok';
    } catch (error) {
      if (error instanceof Abort) return error.result;
      throw error;
    }
  }

  completeTotp(input: { challengeId: string; userId: string; timeStep: number; now: number }): Promise<CompleteResult> {
    return this.atomically(async (trx) => {
      if (!(await this.consumeIn(trx, input.challengeId, input.now))) throw new Abort('challenge_used');
      const r = await trx.updateTable('stepup_totp').set({ last_time_step: input.timeStep })
        .where('user_id', '=', input.userId).where('confirmed', '=', 1)
        .where((eb) => eb.or([eb('last_time_step', 'is', null), eb('last_time_step', '<', input.timeStep)]))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new Abort('step_used');
    });
  }

  completeWebAuthn(input: { challengeId: string; credentialId: string; oldCounter: number; newCounter: number; now: number }): Promise<CompleteResult> {
    return this.atomically(async (trx) => {
      if (!(await this.consumeIn(trx, input.challengeId, input.now))) throw new Abort('challenge_used');
      const r = await trx.updateTable('stepup_credentials').set({ counter: input.newCounter, last_used_at: iso(input.now) })
        .where('id', '=', input.credentialId).where('counter', '=', input.oldCounter).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new Abort('counter_changed');
    });
  }

  async purgeChallenges(before: number): Promise<number> {
    const r = await this.k.deleteFrom('stepup_challenges').where('expires_at', '<', iso(before)).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async getAttempts(userId: string): Promise<AttemptState> {
    const r = await this.k.selectFrom('stepup_attempts').selectAll().where('user_id', '=', userId).executeTakeFirst();
    return { failedCount: r ? Number(r.failed_count) : 0, lockedUntil: fromIsoOrUndefined(r?.locked_until) };
  }

  async takeAttempt(userId: string, max: number, now: number): Promise<{ taken: true; failedCount: number } | { taken: false; lockedUntil?: number }> {
    await this.k.insertInto('stepup_attempts').values({ user_id: userId, failed_count: 0, locked_until: null })
      .onConflict((oc) => oc.column('user_id').doNothing()).execute();
    // One statement: the row lock (PostgreSQL) or the single writer (SQLite) makes each taker see the count before it.
    const taken = await this.k.updateTable('stepup_attempts').set({ failed_count: sql`failed_count + 1` })
      .where('user_id', '=', userId).where('failed_count', '<', max)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', iso(now))]))
      .returning('failed_count').executeTakeFirst();
    if (taken) return { taken: true, failedCount: Number(taken.failed_count) };
    const r = await this.getAttempts(userId);
    return { taken: false, ...(r.lockedUntil !== undefined && r.lockedUntil > now ? { lockedUntil: r.lockedUntil } : {}) };
  }

  async refundAttempt(userId: string): Promise<void> {
    await this.k.updateTable('stepup_attempts').set({ failed_count: sql`case when failed_count > 0 then failed_count - 1 else 0 end` }).where('user_id', '=', userId).execute();
  }

  async lock(userId: string, lockUntil: number): Promise<void> {
    await this.k.updateTable('stepup_attempts').set({ failed_count: 0, locked_until: iso(lockUntil) }).where('user_id', '=', userId).execute();
  }

  async resetAttempts(userId: string): Promise<void> {
    await this.k.updateTable('stepup_attempts').set({ failed_count: 0 }).where('user_id', '=', userId).execute();
  }
}
