// Named (prepared) statements for kysely's PostgreSQL dialect. Kysely sends every query unnamed, so PostgreSQL parses,
// analyses and plans the same few dozen statements again on every execution; on this VM class that is ~70 % of a
// backend's CPU per statement. Naming a statement by the hash of its text makes each pooled connection parse it once.
//
// Bounded on purpose: statements with long parameter lists (multi-row inserts, IN lists) vary in text with their size
// and would fill the cache with one-off plans, so they run unnamed, and each connection keeps at most
// MAX_NAMED_PER_CONNECTION names.
//
// Rolling upgrades: a migration that changes a table's columns invalidates a prepared `select *` with PostgreSQL's
// "cached plan must not change result type" (0A000). Outside a transaction the statement is dropped and re-run once,
// transparently; inside one the transaction is already aborted, so the error goes up (the write path retries it as a
// conflict, see isRetryableConflict) and the connection is destroyed on release, taking its stale plans with it.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { PostgresPool, PostgresPoolClient } from 'kysely';

const MAX_PARAMETERS = 24;
const MAX_NAMED_PER_CONNECTION = 300;

interface QueryResult { command: string; rowCount: number | null; rows: unknown[] }

/** PostgreSQL's answer when a prepared statement's result columns changed under it (a migration ran). */
export function isStalePlan(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  return e?.code === '0A000' && typeof e.message === 'string' && e.message.includes('cached plan must not change result type');
}

/** What kysely calls on a pooled client: query (never a cursor: no streaming here) and release. */
class PreparingClient {
  private readonly named = new Set<string>();
  private inTransaction = false;
  private discard = false;

  constructor(private readonly client: pg.PoolClient) {}

  async query(sql: string, parameters: ReadonlyArray<unknown>): Promise<QueryResult> {
    const values = [...parameters];
    if (values.length === 0) {
      // BEGIN / COMMIT / ROLLBACK and parameterless statements: the simple protocol, one message.
      const result = await this.client.query(sql) as unknown as QueryResult;
      this.track(sql);
      return result;
    }
    const name = this.nameFor(sql, values.length);
    if (!name) return this.client.query(sql, values) as unknown as Promise<QueryResult>;
    try {
      const result = await this.client.query({ name, text: sql, values }) as unknown as QueryResult;
      this.named.add(name);
      return result;
    } catch (error) {
      if (!isStalePlan(error)) throw error;
      this.forget(name);
      if (this.inTransaction) {
        this.discard = true;
        throw error;
      }
      await this.client.query(`DEALLOCATE ${name}`).catch(() => { this.discard = true; });
      return this.client.query(sql, values) as unknown as Promise<QueryResult>;
    }
  }

  release(): void {
    this.client.release(this.discard || undefined);
  }

  private nameFor(sql: string, parameterCount: number): string | undefined {
    if (parameterCount > MAX_PARAMETERS) return undefined;
    const name = `k${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
    if (this.named.has(name) || this.named.size < MAX_NAMED_PER_CONNECTION) return name;
    return undefined;
  }

  private forget(name: string): void {
    this.named.delete(name);
    // node-postgres remembers which names it parsed on this connection; a dropped one must be parsed again.
    const parsed = (this.client as unknown as { connection?: { parsedStatements?: Record<string, string> } }).connection?.parsedStatements;
    if (parsed) delete parsed[name];
  }

  private track(sql: string): void {
    const verb = sql.trimStart().slice(0, 8).toLowerCase();
    if (verb.startsWith('begin') || verb.startsWith('start')) this.inTransaction = true;
    else if (verb.startsWith('commit') || verb.startsWith('rollback') || verb.startsWith('end')) this.inTransaction = false;
  }
}

/** A kysely PostgresPool over a `pg` pool whose connections name (prepare) their statements. */
export function preparingPool(pool: pg.Pool): PostgresPool {
  // Kysely keys its connection objects by the client it gets, so each pg client maps to one wrapper for its life.
  const wrappers = new WeakMap<pg.PoolClient, PreparingClient>();
  return {
    connect: async () => {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (!wrapper) {
        wrapper = new PreparingClient(client);
        wrappers.set(client, wrapper);
      }
      return wrapper as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}
