// What the units of the lifecycle (see service.ts) share: row types, ids and times, and the audit of a refusal.
import { createHash, randomBytes } from 'node:crypto';
import type { Selectable, Transaction } from 'kysely';
import type { Database, GrantsTable, RequestsTable } from '../storage/schema';
import type { DomainError, Outcome } from '../errors';
import type { Metrics } from '../metrics';
import type { Catalog } from './catalog';
import type { PolicyConfig } from '../config';
import type { TxContext, WriteQueue } from './write-queue';
import type { Db } from '../storage/db';

export type Tx = Transaction<Database>;
export type RequestRow = Selectable<RequestsTable>;
export type GrantRow = Selectable<GrantsTable>;

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * The catalog as built by Lifecycle.init and replaced by a live reload: read at each use, since it is built after the
 * units are and may change between two uses.
 */
export interface CatalogSource {
  readonly catalog: Catalog;
  /** The policy a request was evaluated under (its recorded version): what decides on it after a reload. */
  recordedPolicy(row: Pick<RequestRow, 'policy_id' | 'policy_version'>): Promise<PolicyConfig | undefined>;
}

export const SYSTEM = 'system';
/** A timed transition that found its row held by another transaction looks again after this long. */
export const CLAIM_RETRY_MS = 500;

export const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url')}`;
export const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? undefined : new Date(Number(ms)).toISOString());
export const parseJson = <T>(text: string): T => JSON.parse(text) as T;
export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** An error's message without anything that looks like a connection string or password. */
export function safeMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/[a-z]+:\/\/[^\s@]*@/gi, '<redacted>@').replace(/password\S*/gi, 'password=<redacted>').slice(0, 300);
}

/**
 * Read a row this change will transition. PostgreSQL (`shared`): lock it (other instances' changes to the same row
 * wait, then see ours); `claim` (timed transitions) skips a row another transaction holds instead of waiting — whoever
 * holds it is changing it, and the timer looks again. FOR NO KEY UPDATE: inserts referencing the row (approvals) are
 * not blocked. SQLite: one writer, nothing to lock.
 */
export function lockRow<Q extends { forNoKeyUpdate(): Q; skipLocked(): Q }>(shared: boolean, query: Q, claim = false): Q {
  if (!shared) return query;
  return claim ? query.forNoKeyUpdate().skipLocked() : query.forNoKeyUpdate();
}

export type RefusalRefs = { requestId?: string; grantId?: string; resourceId?: string; subject?: string; policyVersion?: number };
export type Refuse = <T>(user: { sub: string }, action: string, error: DomainError, refs?: RefusalRefs) => Promise<Outcome<T>>;

/** Refusals every unit answers with: counted, and audited unless the error says not to. */
export class Refusals {
  constructor(private readonly deps: {
    mutate: <T>(fn: (tx: TxContext) => Promise<T>) => Promise<T>;
    metrics: Pick<Metrics, 'refusals'>;
    now: () => number;
  }) {}

  /** Audit a refused action (authorization failure, illegal transition) in its own transaction. */
  async refuse<T>(user: { sub: string }, action: string, error: DomainError, refs: RefusalRefs = {}): Promise<Outcome<T>> {
    this.deps.metrics.refusals.inc({ code: error.code });
    if (error.audit !== false) {
      await this.deps.mutate(({ audit }) => audit({ at: this.deps.now(), actor: user.sub, action: `refused.${action}`, reason: error.message, detail: { code: error.code }, ...refs }));
    }
    return { ok: false, error };
  }
}

/** What every rules unit (requests, approvals, grants) is handed: reads, the clock, refusals, the catalog, writes. */
export interface RulesDeps {
  /** Short reads by key (see Store.reads): on PostgreSQL, those issued together share one write. */
  reads: Db;
  /** True when other server instances may write the same database (PostgreSQL). */
  shared: boolean;
  now: () => number;
  metrics: Pick<Metrics, 'transitions' | 'stepUpFailures'>;
  refuse: Refuse;
  policies: CatalogSource;
  writes: Pick<WriteQueue, 'mutate'>;
}
