// Audit search: filtered pages by keyset on seq (never OFFSET), newest first for the console and History, oldest first
// for exports, so a page costs the same at the head of a million rows as on an empty table. Each filter column has an
// index (column, seq) (migration 0013), so a page walks one index backwards from the cursor. "A user's rows" means
// actor or subject: as one OR it made the database walk the whole table, so it is two index walks of at most `limit`
// rows each, merged.
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

/** The filter's conditions (all but the user) and the cursor's bound, on any query over audit. */
function narrow<O>(q: SelectQueryBuilder<Database, 'audit', O>, f: AuditFilter, c: AuditCursor): SelectQueryBuilder<Database, 'audit', O> {
  return q
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
  let q = db.selectFrom('audit').selectAll();
  if (filter.user === undefined) q = narrow(q, filter, cursor);
  else {
    const user = filter.user;
    const side = (column: 'actor' | 'subject') => narrow(db.selectFrom('audit').select('seq').where(column, '=', user), filter, cursor)
      .orderBy('seq', cursor.order).limit(cursor.limit);
    const seqs = db.selectFrom(side('actor').as('by_actor')).select('by_actor.seq')
      .union(db.selectFrom(side('subject').as('by_subject')).select('by_subject.seq'));
    q = q.where('seq', 'in', seqs);
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
