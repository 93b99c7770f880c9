// Audit search: filtered pages by keyset on seq (never OFFSET), newest first for the console and History, oldest first
// for exports, so a page costs the same at the head of a million rows as on an empty table. Each filter column has an
// index (column, seq) (migration 0013), so a page walks one index backwards from the cursor. "A user's rows" means
// actor or subject: as one OR it made the database walk the whole table, so it is two index walks of at most `limit`
// rows each, merged. A time range becomes a seq range first (a binary search on the primary key, see timeToSeqs), so an
// old range is not reached by walking every newer row.
import type { SelectQueryBuilder } from 'kysely';
import type { Db } from '../storage/db';
import type { AuditTable, Database } from '../storage/schema';

export interface AuditFilter {
  user?: string;
  resourceId?: string;
  action?: string;
  grantId?: string;
  requestId?: string;
  /** Epoch ms, inclusive. */
  fromMs?: number;
  /** Epoch ms, exclusive. */
  toMs?: number;
}

export interface AuditCursor {
  order: 'asc' | 'desc';
  /** desc: rows with seq below this; asc: rows with seq above this. Absent: from the newest (desc) or oldest (asc). */
  from?: number;
  /** asc only: no row past this seq (an export stops at the head it started from). */
  until?: number;
  limit: number;
}

export type AuditRow = Omit<AuditTable, 'seq'> & { seq: number };

/**
 * How far apart two rows' `at` may be out of seq order: rows are stamped by each instance's clock before they take the
 * chain's lock, so with several instances a later row may carry a slightly earlier time. The seq range a time range
 * maps to is exact while the instances' clocks agree within this.
 */
export const CLOCK_SKEW_MS = 60_000;

/** The first seq whose row has `at` ≥ t, as if `at` grew with seq: ~log2(rows) lookups by primary key. */
async function firstSeqAtOrAfter(db: Db, t: number, range: { min: number; max: number }): Promise<number> {
  let lo = range.min;
  let hi = range.max + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const row = await db.selectFrom('audit').select(['seq', 'at']).where('seq', '>=', mid).orderBy('seq').limit(1).executeTakeFirst();
    if (!row || Number(row.at) >= t) hi = mid;
    else lo = Number(row.seq) + 1;
  }
  return lo;
}

/**
 * The seq range holding every row of [fromMs, toMs): rows before the first one stamped at or after from − skew are
 * all older than from, and rows from the first one stamped at or after to + skew on are all at or after to (each
 * row's time is within the skew of every later row's). The exact `at` conditions still apply inside it.
 */
async function timeToSeqs(db: Db, f: AuditFilter): Promise<{ atLeast?: number; below?: number }> {
  if (f.fromMs === undefined && f.toMs === undefined) return {};
  // Two reads by primary key: SQLite answers min() and max() in one statement by scanning the table.
  const end = (order: 'asc' | 'desc') => db.selectFrom('audit').select('seq').orderBy('seq', order).limit(1).executeTakeFirst();
  const [first, last] = await Promise.all([end('asc'), end('desc')]);
  if (!first || !last) return {};
  const bounds = { min: Number(first.seq), max: Number(last.seq) };
  return {
    ...(f.fromMs !== undefined ? { atLeast: await firstSeqAtOrAfter(db, f.fromMs - CLOCK_SKEW_MS, bounds) } : {}),
    ...(f.toMs !== undefined ? { below: await firstSeqAtOrAfter(db, f.toMs + CLOCK_SKEW_MS, bounds) } : {}),
  };
}

/** The filter's conditions (all but the user) and the cursor's bound, on any query over audit. */
function narrow<O>(q: SelectQueryBuilder<Database, 'audit', O>, f: AuditFilter, c: AuditCursor, seqs: { atLeast?: number; below?: number }): SelectQueryBuilder<Database, 'audit', O> {
  return q
    .$if(seqs.atLeast !== undefined, (b) => b.where('seq', '>=', seqs.atLeast!))
    .$if(seqs.below !== undefined, (b) => b.where('seq', '<', seqs.below!))
    .$if(f.resourceId !== undefined, (b) => b.where('resource_id', '=', f.resourceId!))
    .$if(f.action !== undefined, (b) => b.where('action', '=', f.action!))
    .$if(f.grantId !== undefined, (b) => b.where('grant_id', '=', f.grantId!))
    .$if(f.requestId !== undefined, (b) => b.where('request_id', '=', f.requestId!))
    .$if(f.fromMs !== undefined, (b) => b.where('at', '>=', f.fromMs!))
    .$if(f.toMs !== undefined, (b) => b.where('at', '<', f.toMs!))
    .$if(c.from !== undefined, (b) => b.where('seq', c.order === 'desc' ? '<' : '>', c.from!))
    .$if(c.until !== undefined, (b) => b.where('seq', '<=', c.until!));
}

/** One page of rows matching `filter`, in the cursor's order. */
export async function auditPage(db: Db, filter: AuditFilter, cursor: AuditCursor): Promise<AuditRow[]> {
  const seqs = await timeToSeqs(db, filter);
  let q = db.selectFrom('audit').selectAll();
  if (filter.user === undefined) q = narrow(q, filter, cursor, seqs);
  else {
    const user = filter.user;
    const side = (column: 'actor' | 'subject') => narrow(db.selectFrom('audit').select('seq').where(column, '=', user), filter, cursor, seqs)
      .orderBy('seq', cursor.order).limit(cursor.limit);
    const mine = db.selectFrom(side('actor').as('by_actor')).select('by_actor.seq')
      .union(db.selectFrom(side('subject').as('by_subject')).select('by_subject.seq'));
    q = q.where('seq', 'in', mine);
  }
  const rows = await q.orderBy('seq', cursor.order).limit(cursor.limit).execute();
  return rows.map((row) => ({ ...row, seq: Number(row.seq), at: Number(row.at) }));
}

/** Every row matching `filter`, oldest first, read in pages of `batch` up to the head as it was at the first read. */
export async function* auditRowsAscending(db: Db, filter: AuditFilter, batch = 1000): AsyncGenerator<AuditRow> {
  const head = await db.selectFrom('audit').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
  if (!head) return;
  const until = Number(head.seq);
  let from: number | undefined;
  for (;;) {
    const rows = await auditPage(db, filter, { order: 'asc', limit: batch, until, ...(from !== undefined ? { from } : {}) });
    for (const row of rows) yield row;
    if (rows.length < batch) return;
    from = rows[rows.length - 1]!.seq;
  }
}
