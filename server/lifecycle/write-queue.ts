// The write queue: every change of the lifecycle (its row writes, audit rows and events) goes through mutate, which
// groups changes arriving together into one transaction, appends their audit rows and events last, and publishes
// the events after commit, in commit order.
import { sql, type Insertable } from 'kysely';
import type { ServerEvent } from '../../shared/contract/events';
import { unqueued, type Db } from '../storage/db';
import type { EventsTable } from '../storage/schema';
import type { Metrics } from '../metrics';
import { isStalePlan } from '../storage/pg-prepared';
import { chainedAppendCtes, chainRows, lockAuditHead, type AuditChain, type AuditInput } from './audit';
import type { Audience, EventBus, StoredEvent } from './events';
import { hasTxNotify, type TxNotifyingBus } from './pg-bus';
import type { Tx } from './support';
import type { OutboxStage } from '../webhooks/outbox';

/** Most changes grouped into one commit. */
const MAX_BATCH = 64;
/** A change rolled back with its batch (another change threw, or a deadlock) runs again at most this often. */
const MAX_WRITE_ATTEMPTS = 3;
/** Rows per multi-row insert (well under SQLite's and PostgreSQL's bound-parameter limits). */
const INSERT_CHUNK = 500;

export interface TxContext {
  trx: Tx;
  audit: (input: AuditInput) => Promise<void>;
  emit: (event: ServerEvent, audience: Audience) => Promise<void>;
}

export interface WriteQueueDeps {
  db: Db;
  /** True when other server instances may write the same database (PostgreSQL). */
  shared: boolean;
  /** PostgreSQL: batches in flight at once (storage.writeConcurrency; each holds a pooled connection). */
  writeSlots: number;
  bus: EventBus;
  metrics: Pick<Metrics, 'writeBatch'>;
  audit: AuditChain;
  now: () => number;
  /** Called after a commit that appended audit rows (the audit stream reads them then). */
  audited?: () => void;
  /** The webhook outbox: rows for the batch's audit rows, in its transaction (see flush). */
  outbox?: OutboxStage;
}

export class WriteQueue {
  private readonly writeQueue: QueuedWrite[] = [];
  private pumpScheduled = false;
  private runningBatches = 0;
  /** Resolves when the last batch that took the append lock has published its events. */
  private publishTail: Promise<void> = Promise.resolve();
  /** Settles when the last append of this instance has been committed or rolled back (see flush). */
  private appendTail: Promise<void> = Promise.resolve();
  /** A batch staged webhook rows: the delivery is told once it commits. */
  private outboxStaged = false;

  constructor(private readonly deps: WriteQueueDeps) {}

  /** Resolves once nothing is queued or running: queued changes commit before storage closes. */
  async drain(): Promise<void> {
    while (this.runningBatches > 0 || this.writeQueue.length > 0 || this.pumpScheduled) await new Promise((resolve) => setImmediate(resolve));
  }

  /**
   * Run one change (its writes, audit rows and events) atomically. Changes that arrive while a commit is under way
   * are grouped into the next transaction, each inside its own savepoint: a change that throws rolls back alone,
   * and the group pays for one commit (SQLite writes each dirty page once per commit, not once per change).
   * Events are published, and callers resumed, only after the commit.
   */
  mutate<T>(fn: (tx: TxContext) => Promise<T>, options: { exclusive?: boolean; key?: string | readonly string[] } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.writeQueue.push({ fn: fn as (tx: TxContext) => Promise<unknown>, resolve: resolve as (value: unknown) => void, reject, attempts: 0, exclusive: options.exclusive === true, key: options.key });
      // The SQLite driver is synchronous, so a transaction runs within one turn of the event loop; starting the
      // batch on the next turn lets the changes of requests read in this turn join the same commit.
      if (!this.pumpScheduled) {
        this.pumpScheduled = true;
        setImmediate(() => {
          this.pumpScheduled = false;
          this.pump();
        });
      }
    });
  }

  /**
   * Start batches while there are free write slots. SQLite has one writer, so one batch at a time. PostgreSQL may
   * run several at once on separate connections (storage.writeConcurrency): their row work overlaps, and only the
   * append of audit rows and events at the end is serialised (see flush), so when round trips are slow one
   * instance is not bound by one connection. Where the database is near, one slot is faster: bigger batches, fewer
   * commits, and CPU, not waiting, is the limit.
   */
  private pump(): void {
    const slots = this.deps.shared ? this.deps.writeSlots : 1;
    while (this.runningBatches < slots && this.writeQueue.length > 0) {
      const batch = this.writeQueue.splice(0, MAX_BATCH);
      this.runningBatches += 1;
      void this.runBatch(batch).finally(() => {
        this.runningBatches -= 1;
        this.pump();
      });
    }
  }

  /** Run changes in one transaction now, outside the queue (a revocation holding its row lock across a provider call). */
  transactNow<T>(fn: (tx: TxContext) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      void this.runBatch([{ fn: fn as (tx: TxContext) => Promise<unknown>, resolve: resolve as (value: unknown) => void, reject, attempts: MAX_WRITE_ATTEMPTS, exclusive: false }]);
    });
  }

  private async runBatch(batch: QueuedWrite[]): Promise<void> {
    this.deps.metrics.writeBatch.observe(batch.length);
    const done: { item: QueuedWrite; ok: boolean; value?: unknown; error?: unknown; records: ChangeRecords }[] = [];
    let turn: PublishTurn | undefined;
    try {
      await this.deps.db.transaction().execute(async (trx) => {
        let head: Promise<{ seq: number; hash: string }> | undefined;
        if (this.deps.shared && batch.some((item) => item.exclusive)) head = Promise.resolve(await lockAuditHead(trx));
        if (this.deps.shared && sideBySide(batch)) {
          await this.runSideBySide(trx, batch, done);
          turn = await this.flush(trx, done.map((d) => d.records), head);
          return;
        }
        for (const item of batch) {
          const records: ChangeRecords = { audits: [], events: [] };
          if (this.deps.shared) {
            // No savepoints on PostgreSQL (two round trips per change): a change that throws aborts the
            // transaction, and the batch is sorted out below.
            try {
              done.push({ item, ok: true, value: await item.fn(this.txContext(trx, records)), records });
            } catch (error) {
              throw new ChangeFailed(item, error);
            }
            continue;
          }
          await sql`savepoint stint_change`.execute(trx);
          try {
            const value = await item.fn(this.txContext(trx, records));
            await sql`release savepoint stint_change`.execute(trx);
            done.push({ item, ok: true, value, records });
          } catch (error) {
            await sql`rollback to savepoint stint_change`.execute(trx);
            await sql`release savepoint stint_change`.execute(trx);
            done.push({ item, ok: false, error, records: { audits: [], events: [] } });
          }
        }
        turn = await this.flush(trx, done.filter((d) => d.ok).map((d) => d.records), head);
      });
      turn?.appendSettled();
      await turn?.appended;
      if (this.outboxStaged) {
        this.outboxStaged = false;
        this.deps.outbox?.staged();
      }
    } catch (error) {
      turn?.appendSettled();
      turn?.release();
      this.deps.audit.invalidate();
      // The append rides with COMMIT unawaited; when it fails, COMMIT rolls back and its error is the one that counts.
      const appendError = await turn?.appended.then(() => undefined, (e: unknown) => e);
      const cause = error instanceof ChangeFailed ? error.cause : appendError ?? error;
      // Nothing of this batch was committed. A deadlock or serialization failure is nobody's fault: every change
      // runs again. Otherwise the change that threw gets its error and the others (aborted with it) run again.
      const retryable = isRetryableConflict(cause);
      const failed = error instanceof ChangeFailed ? error.item : undefined;
      const again: QueuedWrite[] = [];
      for (const item of batch) {
        if (item.attempts < MAX_WRITE_ATTEMPTS && (retryable || (failed !== undefined && item !== failed))) {
          item.attempts += 1;
          again.push(item);
        } else {
          item.reject(cause);
        }
      }
      this.writeQueue.unshift(...again);
      return;
    }
    if (done.some((d) => d.ok && d.records.audits.length > 0)) this.deps.audited?.();
    // Publish in commit order: a batch that committed after ours waits for our events to go out first.
    if (turn) await turn.previous;
    try {
      for (const result of done) {
        if (!result.ok) {
          result.item.reject(result.error);
          continue;
        }
        if (result.records.events.length > 0) this.deps.bus.publish(result.records.events.map((e) => e.stored!));
        result.item.resolve(result.value);
      }
    } finally {
      turn?.release();
    }
  }

  /**
   * PostgreSQL: run a batch's changes at once rather than one after another. Each touches its own request or grant
   * (distinct keys), so their order does not matter, and their statements share round trips: a batch costs a few
   * round trips instead of one or more per change, and, on a busy instance, a few waits for the event loop instead
   * of one per statement. Audit rows and events still go in batch order. A change that throws aborts the transaction
   * (the others then fail with "current transaction is aborted"): it is the one reported, the others run again.
   */
  private async runSideBySide(trx: Tx, batch: QueuedWrite[], done: { item: QueuedWrite; ok: boolean; value?: unknown; records: ChangeRecords }[]): Promise<void> {
    const direct = await unqueued(trx);
    const records = batch.map((): ChangeRecords => ({ audits: [], events: [] }));
    const outcomes = await Promise.allSettled(batch.map((item, i) => item.fn(this.txContext(direct, records[i]!))));
    const failures = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [{ item: batch[i]!, error: o.reason as unknown }] : []));
    if (failures.length > 0) {
      const cause = failures.find((f) => (f.error as { code?: unknown })?.code !== IN_FAILED_TRANSACTION) ?? failures[0]!;
      throw new ChangeFailed(cause.item, cause.error);
    }
    outcomes.forEach((o, i) => done.push({ item: batch[i]!, ok: true, value: (o as PromiseFulfilledResult<unknown>).value, records: records[i]! }));
  }

  /**
   * Append the batch's audit rows and store its events, last thing before commit. On PostgreSQL this is the one
   * serialised step across instances: the audit head row is locked from here to the commit, so the chain is
   * extended by one writer at a time, and event ids are assigned in commit order (SSE resume by id and the
   * cross-instance cursor stay exact). Row changes before this point are ordered by row locks instead (lockRow).
   * Usually one statement does it all, the head's lock included (see chainedAppendCtes), sent with COMMIT.
   */
  private async flush(trx: Tx, changes: ChangeRecords[], locked?: Promise<{ seq: number; hash: string }>): Promise<PublishTurn | undefined> {
    const audits = changes.flatMap((c) => c.audits);
    const events = changes.flatMap((c) => c.events);
    // The webhook events these rows tell, in the same transaction: sent if and only if the change commits.
    if (audits.length > 0 && this.deps.outbox && await this.deps.outbox.stage(trx, audits) > 0) this.outboxStaged = true;
    if (audits.length === 0 && events.length === 0) {
      await locked;
      return undefined;
    }
    // One statement unless the batch is unusual: events without audit rows, very large (bound-parameter limits), or a
    // bus that does not tell other instances.
    const bus = this.deps.shared && hasTxNotify(this.deps.bus) && audits.length > 0 && audits.length + events.length <= INSERT_CHUNK * 4 ? this.deps.bus : undefined;
    // This instance's appends go out one at a time, each after the previous one's COMMIT was answered: they commit
    // in the order they are published in (the database's lock orders them too, but only once they reach it).
    const previousAppend = this.appendTail;
    let appendSettled!: () => void;
    this.appendTail = new Promise<void>((resolve) => { appendSettled = resolve; });
    let previous: Promise<void> = Promise.resolve();
    let release = () => {};
    try {
      // (A batch holding the head lock already, from its start, goes first: the others' appends wait for it anyway.)
      if (!locked) await previousAppend;
      const head = this.deps.shared && !bus ? await (locked ?? lockAuditHead(trx)) : undefined;
      previous = this.publishTail;
      this.publishTail = new Promise<void>((resolve) => { release = resolve; });
      const eventRows = events.map((e) => ({
        at: e.at, type: e.event.type, users: JSON.stringify(e.audience.users), groups: JSON.stringify(e.audience.groups), exclude: JSON.stringify(e.audience.exclude), payload: JSON.stringify(e.event),
      }));
      const stored = (ids: number[]) => {
        // Ids come from one sequence in the order the rows were inserted; RETURNING's row order is not promised.
        ids.sort((x, y) => x - y);
        events.forEach((e, i) => { e.stored = { id: ids[i]!, at: e.at, event: e.event, ...e.audience }; });
      };
      if (bus) {
        // The batch's last statement: not awaited, so COMMIT goes out in the same write (one round trip for both).
        const appended = this.appendInOneStatement(trx, audits, eventRows, bus).then((ids) => {
          stored(ids);
          if (ids.length > 0) bus.ownIds(ids);
        });
        appended.catch(() => {});
        return { previous, release, appended, appendSettled };
      }
      const ids = head ? await this.appendLocked(trx, head, audits, eventRows) : await this.appendAlone(trx, audits, eventRows);
      stored(ids);
      await this.notify(trx, ids);
    } catch (error) {
      release();
      appendSettled();
      throw error;
    }
    return { previous, release, appended: Promise.resolve(), appendSettled };
  }

  /**
   * A bus that tells other instances (NOTIFY) does so inside the transaction: delivered at commit, in commit order,
   * and never for a change that rolled back.
   */
  private async notify(trx: Tx, ids: number[]): Promise<void> {
    if (ids.length === 0 || !hasTxNotify(this.deps.bus)) return;
    await this.deps.bus.notifyInTransaction(trx, ids);
  }

  private async appendAlone(trx: Tx, audits: AuditInput[], eventRows: Insertable<EventsTable>[]): Promise<number[]> {
    await this.deps.audit.appendMany(trx, audits);
    const ids: number[] = [];
    for (let start = 0; start < eventRows.length; start += INSERT_CHUNK) {
      const rows = await trx.insertInto('events').values(eventRows.slice(start, start + INSERT_CHUNK)).returning('id').execute();
      ids.push(...rows.map((r) => Number(r.id)));
    }
    return ids;
  }

  /**
   * PostgreSQL: audit rows (hashed by the database from the head it locks), the new head, the events and their
   * NOTIFY in one statement, the batch's last, left unawaited by flush so that COMMIT travels with it. The events
   * are inserted after the head is locked (they read from `head`), so their ids follow commit order across instances.
   */
  private appendInOneStatement(trx: Tx, audits: AuditInput[], eventRows: Insertable<EventsTable>[], bus: TxNotifyingBus): Promise<number[]> {
    const ctes = chainedAppendCtes(audits);
    if (eventRows.length === 0) return sql`with recursive ${ctes} select id from moved`.execute(trx).then(() => []);
    const of = <T>(pick: (row: Insertable<EventsTable>) => T) => eventRows.map(pick);
    // The notify CTE aggregates over the inserted ids and is joined into the result, so it runs exactly once.
    return sql<{ id: number | string }>`with recursive ${ctes},
      stored as (
        insert into events (at, type, users, groups, exclude, payload)
        select v.at, v.type, v.users, v.groups, v.exclude, v.payload
        from unnest(${of((e) => e.at)}::bigint[], ${of((e) => e.type)}::text[], ${of((e) => e.users)}::text[], ${of((e) => e.groups)}::text[], ${of((e) => e.exclude)}::text[], ${of((e) => e.payload)}::text[])
          with ordinality as v (at, type, users, groups, exclude, payload, i), head
        order by v.i
        returning id
      ),
      told as (select ${bus.notifyExpression()} as sent from stored)
      select stored.id from stored, told`.execute(trx).then((result) => result.rows.map((r) => Number(r.id)));
  }

  /**
   * PostgreSQL, holding the head row (taken by lockAuditHead): plain statements, for what appendInOneStatement does
   * not take (events without audit rows, a very large batch, a bus that does not notify other instances).
   */
  private async appendLocked(trx: Tx, head: { seq: number; hash: string }, audits: AuditInput[], eventRows: Insertable<EventsTable>[]): Promise<number[]> {
    const chained = chainRows(audits, head);
    const setHead = chained.head ?? head;
    for (let start = 0; start < chained.rows.length; start += INSERT_CHUNK) await trx.insertInto('audit').values(chained.rows.slice(start, start + INSERT_CHUNK)).execute();
    if (chained.rows.length > 0) await trx.updateTable('audit_head').set({ seq: setHead.seq, hash: setHead.hash }).where('id', '=', 1).execute();
    return this.appendAlone(trx, [], eventRows);
  }

  private txContext(trx: Tx, records: ChangeRecords): TxContext {
    return {
      trx,
      audit: async (input) => { records.audits.push(input); },
      emit: async (event, audience) => { records.events.push({ at: this.deps.now(), event, audience }); },
    };
  }
}

interface QueuedWrite {
  fn: (tx: TxContext) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** Times this change ran in a batch that was rolled back for another's sake. */
  attempts: number;
  /** Take the append lock first (PostgreSQL): for changes that read-then-insert shared rows no row lock covers. */
  exclusive: boolean;
  /**
   * The requests or grants this change touches (usually one), if it touches no other row but new ones and is fine
   * with any order relative to other changes (see runBatch). Changes without a key run one after another.
   */
  key?: string | readonly string[];
}

/** What one change records, appended at the end of its batch (see flush). */
interface ChangeRecords {
  audits: AuditInput[];
  events: { at: number; event: ServerEvent; audience: Audience; stored?: StoredEvent }[];
}

/** PostgreSQL's answer to a statement in a transaction that an earlier statement's failure aborted. */
const IN_FAILED_TRANSACTION = '25P02';

/** Whether a batch's changes may run side by side: each declares the rows it touches, and no two share one. */
function sideBySide(batch: QueuedWrite[]): boolean {
  if (batch.length < 2) return false;
  const keys = new Set<string>();
  for (const item of batch) {
    if (item.key === undefined || item.exclusive) return false;
    for (const key of typeof item.key === 'string' ? [item.key] : item.key) {
      if (keys.has(key)) return false;
      keys.add(key);
    }
  }
  return true;
}

/** A batch's place in the publish order: wait for `previous`, publish, then `release` the next. */
interface PublishTurn {
  previous: Promise<void>;
  release: () => void;
  /** Settles once the batch's audit rows and events are stored and the events know their ids (see flush). */
  appended: Promise<void>;
  /** To be called once the transaction has committed or rolled back: the next append of this instance may go. */
  appendSettled: () => void;
}

/** A change threw inside a PostgreSQL batch (which is now aborted as a whole). */
class ChangeFailed extends Error {
  constructor(readonly item: QueuedWrite, override readonly cause: unknown) {
    super('a change failed inside a batch');
  }
}

/** PostgreSQL deadlock_detected / serialization_failure: the transaction may simply run again. */
function isRetryableConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  // A stale prepared plan (a migration changed a table under this connection) fails the transaction once; the retry
  // runs on a fresh connection (see storage/pg-prepared.ts).
  return code === '40P01' || code === '40001' || isStalePlan(error);
}
