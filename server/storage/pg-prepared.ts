// Named (prepared) statements for kysely's PostgreSQL dialect. Kysely sends every query unnamed, so PostgreSQL parses,
// analyses and plans the same few dozen statements again on every execution; on this VM class that is ~70 % of a
// backend's CPU per statement. Naming a statement by the hash of its text makes each pooled connection parse it once.
//
// Bounded on purpose: statements with long parameter lists (multi-row inserts, IN lists) vary in text with their size
// and would fill the cache with one-off plans, so they run unnamed, and each connection keeps at most
// MAX_NAMED_PER_CONNECTION names.
//
// Pipelined: round trips, not statements, are what a lifecycle pays for here (each costs a syscall and a wake-up on
// both sides). The pool's connections are in node-postgres's pipeline mode, and each connection sends the statements
// issued within one turn of promise jobs in one write: BEGIN is held back until the first statement, a change may
// issue independent statements together, and the write path lets COMMIT ride with the batch's last statement. A
// statement whose answer nobody awaited and that failed still cannot be missed: COMMIT then answers ROLLBACK, which
// is turned into an error here.
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
  private pendingBegin: string | undefined;
  private corked = false;

  constructor(private readonly client: pg.PoolClient, private readonly prepare: boolean, private readonly options: { flushAfterIo?: boolean } = {}) {}

  async query(sql: string, parameters: ReadonlyArray<unknown>): Promise<QueryResult> {
    const verb = verbOf(sql);
    if (verb === 'begin' && !this.inTransaction && !this.pendingBegin) {
      // Nothing happens in PostgreSQL between BEGIN and the transaction's first statement, so BEGIN waits and goes
      // out with that statement: one round trip less per transaction.
      this.pendingBegin = sql;
      this.inTransaction = true;
      return { command: 'BEGIN', rowCount: null, rows: [] };
    }
    if (this.pendingBegin && (verb === 'commit' || verb === 'rollback')) {
      // A transaction that ran no statement: nothing to send.
      this.pendingBegin = undefined;
      this.inTransaction = false;
      return { command: verb === 'commit' ? 'COMMIT' : 'ROLLBACK', rowCount: null, rows: [] };
    }
    this.batchWrites();
    let begun: Promise<unknown> | undefined;
    if (this.pendingBegin) {
      begun = this.client.query(this.pendingBegin);
      begun.catch(() => {});
      this.pendingBegin = undefined;
    }
    const answer = this.send(sql, [...parameters]);
    answer.catch(() => {});
    if (begun) {
      try {
        await begun;
      } catch (error) {
        // The statement behind it ran outside any transaction, or not at all: this connection is not to be trusted.
        this.discard = true;
        throw error;
      }
    }
    const result = await answer;
    if (verb === 'begin') this.inTransaction = true;
    else if (verb === 'commit' || verb === 'rollback' || verb === 'end') {
      this.inTransaction = false;
      // PostgreSQL answers COMMIT of a transaction in which a statement failed with ROLLBACK, not an error. A
      // statement sent without waiting for its answer (the last one, riding with COMMIT) may be the one that failed.
      if (verb !== 'rollback' && result.command === 'ROLLBACK') throw Object.assign(new Error('the transaction was rolled back: a statement in it failed'), { code: 'transaction_rolled_back' });
    }
    return result;
  }

  private async send(sql: string, values: unknown[]): Promise<QueryResult> {
    if (values.length === 0) {
      // BEGIN / COMMIT / ROLLBACK and parameterless statements: the simple protocol, one message.
      return this.client.query(sql) as unknown as Promise<QueryResult>;
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

  /**
   * Hold this turn's writes to the socket and send them in one write once the current promise jobs have run (the
   * read lane: once the current round of I/O is handled): the connection is pipelined, so statements issued together
   * (a deferred BEGIN and its first statement, independent statements of one change, the last statement and COMMIT,
   * the reads of several requests) reach PostgreSQL in one packet and one wake-up.
   */
  private batchWrites(): void {
    if (this.corked) return;
    const stream = (this.client as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
    if (!stream?.cork || !stream.uncork) return;
    stream.cork();
    this.corked = true;
    const flush = () => {
      this.corked = false;
      stream.uncork!();
    };
    // nextTick runs after the promise jobs queued so far (and those they queue), before any I/O: right for one
    // caller's statements. setImmediate runs once this round of I/O callbacks is done: statements of every request
    // handled in it (the read lane).
    if (this.options.flushAfterIo) setImmediate(flush);
    else process.nextTick(flush);
  }

  release(): void {
    if (this.pendingBegin) {
      this.pendingBegin = undefined;
      this.inTransaction = false;
    }
    this.client.release(this.discard || undefined);
  }

  private nameFor(sql: string, parameterCount: number): string | undefined {
    if (!this.prepare || parameterCount > MAX_PARAMETERS) return undefined;
    const name = `k${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
    if (this.named.has(name) || this.named.size < MAX_NAMED_PER_CONNECTION) return name;
    return undefined;
  }

  private forget(name: string): void {
    this.named.delete(name);
    // node-postgres remembers which names it parsed on this connection; a dropped one must be parsed again.
    const parsed = (this.client as unknown as { connection?: { parsedStatements?: Record<string, string> } }).connection?.parsedStatements;
    if (parsed) delete parsed[name];
    const submitted = (this.client as unknown as { connection?: { submittedNamedStatements?: Record<string, string> } }).connection?.submittedNamedStatements;
    if (submitted) delete submitted[name];
  }
}

function verbOf(sql: string): string {
  return /^\s*([a-z]+)/i.exec(sql)?.[1]?.toLowerCase() ?? '';
}

/**
 * A kysely PostgresPool over a pipelined `pg` pool (`pipeline: true`): its connections send statements issued
 * together in one write, defer BEGIN to the first statement, and name (prepare) their statements unless `prepare`
 * is false.
 */
export function preparingPool(pool: pg.Pool, options: { prepare: boolean }): PostgresPool {
  // Kysely keys its connection objects by the client it gets, so each pg client maps to one wrapper for its life.
  const wrappers = new WeakMap<pg.PoolClient, PreparingClient>();
  return {
    connect: async () => {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (!wrapper) {
        wrapper = new PreparingClient(client, options.prepare);
        wrappers.set(client, wrapper);
      }
      return wrapper as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}

/**
 * A kysely PostgresPool for short reads (`Store.reads`): every query goes on one connection taken from `pool` and
 * held, pipelined, and the reads issued while the event loop handles one round of I/O leave in one write. Under load
 * the server starts many small reads at once (a risk lookup per new request, a request per activation); on their own
 * connections each costs a write, a wake-up of its backend and a reply, which on the bench machine is most of what a
 * read costs. PostgreSQL runs them one after another on that one backend, so only small reads by key belong here:
 * a slow one would hold up the others. Anything but a plain read is refused (a transaction or a write here would
 * interleave with the other callers' statements; a locking read could wait on a write batch that waits on a read).
 * A broken connection is dropped (its pending reads fail, as on a pooled connection); the next read opens another.
 */
export function readLane(pool: pg.Pool, options: { prepare: boolean }): PostgresPool {
  interface Held { reader: PreparingClient; letGo: (broken: boolean) => void }
  let current: Promise<Held> | undefined;
  const open = (): Promise<Held> => {
    if (current) return current;
    const opening = pool.connect().then((client): Held => {
      let held = true;
      const letGo = (broken: boolean) => {
        if (current === opening) current = undefined;
        if (!held) return;
        held = false;
        client.release(broken || undefined);
      };
      // Kept for the client's life: an 'error' without a listener would end the process.
      client.on('error', () => letGo(true));
      client.once('end', () => letGo(true));
      return { reader: new PreparingClient(client, options.prepare, { flushAfterIo: true }), letGo };
    });
    current = opening;
    opening.catch(() => { if (current === opening) current = undefined; });
    return opening;
  };
  const lane = {
    query: async (sql: string, parameters: ReadonlyArray<unknown>): Promise<QueryResult> => {
      if (!isPlainRead(sql)) throw Object.assign(new Error(`the read lane runs plain reads only (got "${sql.slice(0, 40)}…"): use the store's db for transactions, writes and locking reads`), { code: 'not_a_plain_read' });
      return (await open()).reader.query(sql, parameters);
    },
    // Kysely releases after every query; the connection stays with the lane.
    release: () => {},
  };
  return {
    connect: async () => lane as unknown as PostgresPoolClient,
    end: async () => {
      await current?.then((held) => held.letGo(false), () => {});
    },
  };
}

const LOCKING_READ = /\bfor\s+(update|share|no\s+key\s+update|key\s+share)\b/i;

function isPlainRead(sql: string): boolean {
  return verbOf(sql) === 'select' && !LOCKING_READ.test(sql);
}
