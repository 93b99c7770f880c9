// The audit log: append-only rows, each carrying the hash of the previous row, so deleting, reordering or editing
// any row breaks the chain at that point. Rows are appended inside the transaction of the change they record.
import { createHash } from 'node:crypto';
import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { AuditEntry } from '../../shared/contract/http';
import type { ServerEvent } from '../../shared/contract/events';
import { canonicalJson } from '../config';
import type { Db } from '../storage/db';
import type { AuditTable, Database } from '../storage/schema';

export const GENESIS_HASH = '0'.repeat(64);

export interface AuditInput {
  at: number;
  actor: string;
  action: string;
  subject?: string;
  requestId?: string;
  grantId?: string;
  resourceId?: string;
  reason?: string;
  policyVersion?: number;
  risk?: number;
  detail?: Record<string, unknown>;
}

/**
 * An audit row reported by a part of the server outside the lifecycle's rules — a bastion's SSH sessions, an admin's
 * reset of a user's factors — with the events it tells users (`tell`). The lifecycle stamps it with its clock and
 * appends it through its write path (Lifecycle.auditReported), so it is in the hash chain like any other row.
 */
export interface ReportedAudit extends Omit<AuditInput, 'at'> {
  tell?: { event: ServerEvent; users: string[] }[];
}

type Row = Omit<AuditTable, 'seq'> & { seq: number };

/** The hashed content of a row: its fields (not the hashes) as canonical JSON. */
function contentOf(row: Omit<Row, 'hash' | 'prev_hash'>): string {
  return canonicalJson({
    seq: row.seq, at: row.at, actor: row.actor, action: row.action, subject: row.subject, request_id: row.request_id,
    grant_id: row.grant_id, resource_id: row.resource_id, reason: row.reason, policy_version: row.policy_version,
    risk: row.risk, detail: row.detail,
  });
}

function rowHash(row: Omit<Row, 'hash'>): string {
  return createHash('sha256').update(row.prev_hash).update('\n').update(contentOf(row)).digest('hex');
}

/**
 * The writer's view of the chain's head, so an append need not read it back each time. Valid while this process
 * is the only writer (SQLite); a transaction that rolls back must call `invalidate` (the next append re-reads), and
 * with several writers (PostgreSQL) it is invalidated under the append lock before every append.
 */
export class AuditChain {
  private head: { seq: number; hash: string } | undefined;

  /** Append rows in order, with one read of the head (if not known) and one insert per 500 rows. */
  async appendMany(trx: Transaction<Database> | Db, inputs: AuditInput[]): Promise<void> {
    if (inputs.length === 0) return;
    const { rows, head: last } = chainRows(inputs, this.head ?? await trx.selectFrom('audit').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst());
    // Invalidated first: if the insert fails, the next append must not trust a head that was never written.
    this.head = undefined;
    for (let start = 0; start < rows.length; start += 500) await trx.insertInto('audit').values(rows.slice(start, start + 500)).execute();
    this.head = last;
  }

  invalidate(): void {
    this.head = undefined;
  }
}

/** The rows that extend the chain from `head` with `inputs`, in order, and the new head. */
export function chainRows(inputs: AuditInput[], head: { seq: number; hash: string } | undefined): { rows: Row[]; head: { seq: number; hash: string } | undefined } {
  let last = head;
  const rows = inputs.map((input) => {
    const row = chainRow(input, last);
    last = { seq: row.seq, hash: row.hash };
    return row;
  });
  return { rows, head: last };
}

/**
 * PostgreSQL: lock the chain's head row and read it. Waits while another transaction (any instance) holds it, then
 * returns the head that transaction committed. Held until commit, so appends happen one writer at a time.
 */
export async function lockAuditHead(trx: Transaction<Database>): Promise<{ seq: number; hash: string }> {
  return readHead(await lockHeadQuery(trx).executeTakeFirst());
}

function lockHeadQuery(trx: Transaction<Database>) {
  return trx.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).forUpdate();
}

function readHead(head: { seq: number | bigint; hash: string } | undefined): { seq: number; hash: string } {
  if (!head) throw Object.assign(new Error('the audit_head row is missing: run the migrations (stint-server migrate)'), { code: 'audit_head_missing' });
  return { seq: Number(head.seq), hash: head.hash };
}

function fieldsOf(input: AuditInput): Omit<Row, 'seq' | 'prev_hash' | 'hash'> {
  return {
    at: input.at,
    actor: input.actor,
    action: input.action,
    subject: input.subject ?? null,
    request_id: input.requestId ?? null,
    grant_id: input.grantId ?? null,
    resource_id: input.resourceId ?? null,
    reason: input.reason ?? null,
    policy_version: input.policyVersion ?? null,
    risk: input.risk ?? null,
    detail: input.detail ? canonicalJson(input.detail) : null,
  };
}

function chainRow(input: AuditInput, last: { seq: number; hash: string } | undefined): Row {
  const row: Omit<Row, 'hash'> = { seq: (last?.seq ?? 0) + 1, ...fieldsOf(input), prev_hash: last?.hash ?? GENESIS_HASH };
  return { ...row, hash: rowHash(row) };
}

const SEQ_MARK = -1;

/**
 * PostgreSQL: common table expressions that append `inputs` to the chain within one statement, taking the head's
 * lock themselves: `head` locks and reads the head row (waiting while another transaction holds it), `chain` hashes
 * the rows in SQL from that head exactly as rowHash does in Node (the hashed content is built here, split around the
 * one thing only the database knows, the sequence number), `appended` inserts them and `moved` sets the new head.
 * So the lock costs no round trip of its own and is held only from this statement to its COMMIT, not across the
 * database's answer to a separate lock and this process's next turn. Used as `with recursive <these>, … select …`;
 * parts of the statement that must come after the lock (event ids, which follow commit order) read from `head`.
 */
export function chainedAppendCtes(inputs: AuditInput[]): RawBuilder<unknown> {
  // One array per column: the statement's text is the same for any number of rows, so each connection prepares
  // (parses and plans) it once; a VALUES list would be a new statement for every batch size.
  const rows = inputs.map((input) => {
    const fields = fieldsOf(input);
    return { fields, content: splitAtSeq(contentOf({ ...fields, seq: SEQ_MARK })) };
  });
  const of = <T>(pick: (row: (typeof rows)[number]) => T) => rows.map(pick);
  return sql`head as (select seq, hash::text as hash from audit_head where id = 1 for update),
    input as (
      select * from unnest(${of((r) => r.fields.at)}::bigint[], ${of((r) => r.fields.actor)}::text[], ${of((r) => r.fields.action)}::text[],
        ${of((r) => r.fields.subject)}::text[], ${of((r) => r.fields.request_id)}::text[], ${of((r) => r.fields.grant_id)}::text[],
        ${of((r) => r.fields.resource_id)}::text[], ${of((r) => r.fields.reason)}::text[], ${of((r) => r.fields.policy_version)}::int[],
        ${of((r) => r.fields.risk)}::int[], ${of((r) => r.fields.detail)}::text[], ${of((r) => r.content[0])}::text[], ${of((r) => r.content[1])}::text[])
        with ordinality as input (at, actor, action, subject, request_id, grant_id, resource_id, reason, policy_version, risk, detail, before_seq, after_seq, i)
    ),
    chain (i, seq, hash) as (
      select 0::bigint, seq, hash from head
      union all
      select input.i, chain.seq + 1, encode(sha256(convert_to(chain.hash || chr(10) || input.before_seq || (chain.seq + 1)::text || input.after_seq, 'UTF8')), 'hex')
      from chain join input on input.i = chain.i + 1
    ),
    appended as (
      insert into audit (seq, at, actor, action, subject, request_id, grant_id, resource_id, reason, policy_version, risk, detail, prev_hash, hash)
      select c.seq, input.at, input.actor, input.action, input.subject, input.request_id, input.grant_id, input.resource_id, input.reason, input.policy_version, input.risk, input.detail, p.hash, c.hash
      from input join chain c on c.i = input.i join chain p on p.i = input.i - 1
      returning seq
    ),
    moved as (
      update audit_head set seq = last.seq, hash = last.hash from (select seq, hash from chain order by i desc limit 1) as last where audit_head.id = 1 returning audit_head.id
    )`;
}

/** The hashed content of a row with SEQ_MARK as its sequence number, as the text before and after that number. */
function splitAtSeq(content: string): [string, string] {
  const mark = `"seq":${SEQ_MARK}`;
  const at = content.indexOf(mark);
  // Keys are sorted and string values escape their quotes, so the mark is there exactly once.
  if (at < 0 || content.indexOf(mark, at + 1) >= 0) throw new Error('audit content: sequence mark not found exactly once');
  return [content.slice(0, at + '"seq":'.length), content.slice(at + mark.length)];
}

export type AuditVerification =
  | { ok: true; count: number; lastHash: string }
  | { ok: false; count: number; seq: number; reason: string };

/** Walk the chain in order; report the first row whose link or content does not check out. */
export async function verifyAudit(db: Db): Promise<AuditVerification> {
  let expectedPrev = GENESIS_HASH;
  let expectedSeq = 1;
  let count = 0;
  for (;;) {
    const rows = await db.selectFrom('audit').selectAll().where('seq', '>=', expectedSeq).orderBy('seq').limit(1000).execute();
    if (rows.length === 0) return { ok: true, count, lastHash: expectedPrev };
    for (const row of rows) {
      if (row.seq !== expectedSeq) return { ok: false, count, seq: expectedSeq, reason: `row ${expectedSeq} is missing (next is ${row.seq})` };
      if (row.prev_hash !== expectedPrev) return { ok: false, count, seq: row.seq, reason: 'prev_hash does not match the previous row' };
      const { hash, ...rest } = row;
      if (rowHash({ ...rest, at: Number(rest.at) }) !== hash) return { ok: false, count, seq: row.seq, reason: 'row content does not match its hash (edited)' };
      expectedPrev = hash;
      expectedSeq += 1;
      count += 1;
    }
  }
}

export function toAuditEntry(row: Omit<AuditTable, "seq"> & { seq: number }): AuditEntry {
  return {
    seq: row.seq,
    at: new Date(Number(row.at)).toISOString(),
    actor: row.actor,
    action: row.action,
    ...(row.subject ? { subject: row.subject } : {}),
    ...(row.request_id ? { requestId: row.request_id } : {}),
    ...(row.grant_id ? { grantId: row.grant_id } : {}),
    ...(row.resource_id ? { resourceId: row.resource_id } : {}),
    ...(row.reason ? { reason: row.reason } : {}),
    ...(row.policy_version !== null ? { policyVersion: row.policy_version } : {}),
    ...(row.risk !== null ? { risk: row.risk } : {}),
    ...(row.detail ? { detail: JSON.parse(row.detail) as Record<string, unknown> } : {}),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
