// Seeding for bench/scale.ts and the large-table tests: a SQLite store (openStore + migrate) filled directly, in big transactions, with
// users' requests, ended and active grants and an audit trail that is a valid hash chain (chainRows), so the real
// server starts on it, restores a timer for every active grant and `audit verify` passes.
import BetterSqlite3 from 'better-sqlite3';
import { openStore, sqlitePath } from '../server/storage/db';
import { chainRows, type AuditInput } from '../server/lifecycle/audit';

export interface ScaleSize { audit: number; ended: number; active: number; users: number }

/** The dev IdP's demo users come first, so alice (engineer) and carol (admin) own seeded rows and can sign in. */
const DEMO = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
export function userName(i: number): string {
  return i < DEMO.length ? DEMO[i]! : `user-${String(i).padStart(5, '0')}`;
}

const ACTIONS = ['request.created', 'request.approved', 'grant.activated', 'grant.extended', 'grant.released', 'grant.ended', 'credentials.revoked', 'grant.read'];

/** Insert rows whose keys are columns; keys the table lacks (a column another branch adds) are left out. */
function inserter(sqlite: BetterSqlite3.Database, table: string, sample: Record<string, unknown>) {
  const columns = new Set((sqlite.prepare(`pragma table_info(${table})`).all() as { name: string }[]).map((c) => c.name));
  const keys = Object.keys(sample).filter((k) => columns.has(k));
  const statement = sqlite.prepare(`insert into ${table} (${keys.join(', ')}) values (${keys.map((k) => `@${k}`).join(', ')})`);
  return (row: Record<string, unknown>) => statement.run(Object.fromEntries(keys.map((k) => [k, row[k]])));
}

export async function seedScale(url: string, size: ScaleSize, now = Date.now()): Promise<{ ms: number; maxSeq: number }> {
  const started = performance.now();
  const store = openStore(url);
  await store.migrate();
  await store.close();
  const sqlite = new BetterSqlite3(sqlitePath(url));
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = OFF');
  const total = size.ended + size.active;
  const requestRow = (i: number) => {
    const active = i >= size.ended;
    const owner = userName(i % size.users);
    const created = active ? now - 600_000 - (i % 600) * 1000 : now - 30 * 86400_000 + Math.floor((i / size.ended) * 29 * 86400_000);
    return {
      id: `req_s${i}`, requester: owner, requester_name: owner, resource_id: 'staging-users', level: 'read', duration_seconds: 7200,
      reason: 'scale bench', ticket: null, break_glass: 0, state: 'approved', policy_id: 'staging-self-service', policy_version: 1,
      risk_score: 10, risk_reasons: '[]', step_up_required: 0, step_up_methods: '[]', approval_rules: '[]', device_id: `dev-${owner}`,
      source_ip: '127.0.0.1', created_at: created, expires_at: created + 900_000, decided_at: created, decision_reason: null,
      grant_id: `grt_s${i}`, extends_grant_id: null, auto_approve: 1,
    };
  };
  const grantRow = (i: number) => {
    const r = requestRow(i);
    const active = i >= size.ended;
    return {
      id: r.grant_id, request_id: r.id, owner: r.requester, resource_id: r.resource_id, level: r.level, state: active ? 'active' : 'released',
      starts_at: r.created_at + 1000,
      // Active grants end 1–8 h from now, spread so their timers are distinct.
      ends_at: active ? now + 3600_000 + ((i * 7919) % (7 * 3600_000)) : r.created_at + 1000 + 7200_000,
      ended_at: active ? null : r.created_at + 1800_000, end_reason: active ? null : 'released', extended_seconds: 0,
      revocation: active ? 'none' : 'done', revoke_attempts: active ? 0 : 1, next_revoke_at: null, last_revoke_error: null,
      db_username: `stint_g_s${i}`, key_type: 'ssh-ed25519', key_base64: `AAAAC3NzaC1lZDI1NTE5AAAAIScaleBench${String(i).padStart(12, '0')}`,
      device_id: r.device_id, bastion_id: 'main', target_host: '127.0.0.1', target_port: 5432, break_glass: 0, policy_version: 1,
    };
  };
  const insertRequest = inserter(sqlite, 'requests', requestRow(0));
  const insertGrant = inserter(sqlite, 'grants', grantRow(0));
  const BATCH = 20_000;
  for (let start = 0; start < total; start += BATCH) {
    sqlite.transaction(() => {
      for (let i = start; i < Math.min(total, start + BATCH); i++) {
        insertRequest(requestRow(i));
        insertGrant(grantRow(i));
      }
    })();
  }

  // The audit: spread over the last 30 days, about the seeded grants, each user's rows spread along the whole chain.
  const insertAudit = sqlite.prepare(`insert into audit (seq, at, actor, action, subject, request_id, grant_id, resource_id, reason, policy_version, risk, detail, prev_hash, hash)
    values (@seq, @at, @actor, @action, @subject, @request_id, @grant_id, @resource_id, @reason, @policy_version, @risk, @detail, @prev_hash, @hash)`);
  let head: { seq: number; hash: string } | undefined;
  const span = 30 * 86400_000;
  for (let start = 0; start < size.audit; start += BATCH) {
    const inputs: AuditInput[] = [];
    for (let i = start; i < Math.min(size.audit, start + BATCH); i++) {
      const g = (i * 2654435761) % total;
      const owner = userName(g % size.users);
      const action = ACTIONS[i % ACTIONS.length]!;
      inputs.push({
        at: now - span + Math.floor((i / size.audit) * (span - 60_000)), actor: action === 'request.approved' ? 'system' : owner, action, subject: owner,
        requestId: `req_s${g}`, grantId: action.startsWith('grant') || action.startsWith('credentials') ? `grt_s${g}` : undefined, resourceId: 'staging-users',
        policyVersion: 1, risk: action === 'request.created' ? 10 : undefined, detail: action === 'grant.activated' ? { level: 'read', durationSeconds: 7200 } : undefined,
      });
    }
    const chained = chainRows(inputs, head);
    head = chained.head;
    sqlite.transaction(() => { for (const row of chained.rows) insertAudit.run(row); })();
  }
  sqlite.pragma('wal_checkpoint(TRUNCATE)');
  sqlite.exec('analyze');
  sqlite.close();
  return { ms: performance.now() - started, maxSeq: head?.seq ?? 0 };
}

/** EXPLAIN QUERY PLAN of a statement on the seeded file, as one line per step. */
export function explain(url: string, statement: string, params: unknown[]): string {
  const sqlite = new BetterSqlite3(sqlitePath(url), { readonly: true });
  try {
    return (sqlite.prepare(`explain query plan ${statement}`).all(...params) as { detail: string }[]).map((r) => r.detail).join(' / ');
  } finally {
    sqlite.close();
  }
}

/** Time one statement on the seeded file directly (no HTTP): p50 of `n` runs in ms. */
export function timeQuery(url: string, statement: string, params: unknown[], n = 20): number {
  const sqlite = new BetterSqlite3(sqlitePath(url), { readonly: true });
  try {
    const prepared = sqlite.prepare(statement);
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      prepared.all(...params);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(n / 2)]!;
  } finally {
    sqlite.close();
  }
}
