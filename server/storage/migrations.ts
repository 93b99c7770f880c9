// Versioned schema migrations, kept in code (no file scanning) and applied in name order by kysely's Migrator.
// Never edit a released migration: add the next one.
import { PostgresAdapter, sql, type Kysely, type Migration } from 'kysely';

/** Is this a PostgreSQL kysely instance? (Migrations pick types and settings by dialect; SQLite stays byte-identical.) */
const isPostgres = (db: Kysely<any>) => db.getExecutor().adapter instanceof PostgresAdapter;

/** PostgreSQL has no AUTOINCREMENT keyword: its sequence-backed column is `bigserial`. SQLite keeps its exact DDL. */
const serialId = (db: Kysely<any>) => (isPostgres(db)
  ? { type: 'bigserial' as const, build: (c: any) => c.primaryKey() }
  : { type: 'integer' as const, build: (c: any) => c.primaryKey().autoIncrement() });

/** Audit columns the admin console filters on (0013). */
const AUDIT_FILTER_COLUMNS = ['actor', 'subject', 'grant_id', 'request_id', 'resource_id', 'action'] as const;

export const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>) {
      await db.schema.createTable('requests')
        .addColumn('id', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('requester', 'varchar(256)', (c) => c.notNull())
        .addColumn('requester_name', 'varchar(256)')
        .addColumn('resource_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('level', 'varchar(64)', (c) => c.notNull())
        .addColumn('duration_seconds', 'integer', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('ticket', 'varchar(128)')
        .addColumn('break_glass', 'integer', (c) => c.notNull())
        .addColumn('state', 'varchar(32)', (c) => c.notNull())
        .addColumn('policy_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('policy_version', 'integer', (c) => c.notNull())
        .addColumn('risk_score', 'integer', (c) => c.notNull())
        .addColumn('risk_reasons', 'text', (c) => c.notNull())
        .addColumn('step_up_required', 'integer', (c) => c.notNull())
        .addColumn('step_up_methods', 'text', (c) => c.notNull())
        .addColumn('approval_rules', 'text', (c) => c.notNull())
        .addColumn('device_id', 'varchar(128)')
        .addColumn('source_ip', 'varchar(64)')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('decided_at', 'bigint')
        .addColumn('decision_reason', 'text')
        .addColumn('grant_id', 'varchar(128)')
        .addColumn('extends_grant_id', 'varchar(128)')
        .addColumn('auto_approve', 'integer', (c) => c.notNull())
        .execute();
      // Partial indexes cover only rows that wait on something, so ordinary writes rarely touch them.
      await db.schema.createIndex('requests_waiting').on('requests').columns(['expires_at']).where(sql.ref('grant_id'), 'is', null).execute();
      await db.schema.createIndex('requests_requester_created').on('requests').columns(['requester', 'created_at']).execute();

      await db.schema.createTable('approvals')
        .addColumn('request_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('approver', 'varchar(256)', (c) => c.notNull())
        .addColumn('approver_name', 'varchar(256)')
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('comment', 'text')
        .addColumn('at', 'bigint', (c) => c.notNull())
        // One person fills at most one slot of a request, enforced by the database as well.
        .addPrimaryKeyConstraint('approvals_pk', ['request_id', 'approver'])
        .execute();

      await db.schema.createTable('grants')
        .addColumn('id', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('request_id', 'varchar(128)', (c) => c.notNull().unique())
        .addColumn('owner', 'varchar(256)', (c) => c.notNull())
        .addColumn('resource_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('level', 'varchar(64)', (c) => c.notNull())
        .addColumn('state', 'varchar(32)', (c) => c.notNull())
        .addColumn('starts_at', 'bigint', (c) => c.notNull())
        .addColumn('ends_at', 'bigint', (c) => c.notNull())
        .addColumn('ended_at', 'bigint')
        .addColumn('end_reason', 'text')
        .addColumn('extended_seconds', 'integer', (c) => c.notNull())
        .addColumn('revocation', 'varchar(16)', (c) => c.notNull())
        .addColumn('revoke_attempts', 'integer', (c) => c.notNull())
        .addColumn('next_revoke_at', 'bigint')
        .addColumn('last_revoke_error', 'text')
        .addColumn('db_username', 'varchar(128)')
        .addColumn('key_type', 'varchar(32)', (c) => c.notNull())
        .addColumn('key_base64', 'text', (c) => c.notNull())
        .addColumn('bastion_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('target_host', 'varchar(256)', (c) => c.notNull())
        .addColumn('target_port', 'integer', (c) => c.notNull())
        .addColumn('break_glass', 'integer', (c) => c.notNull())
        .addColumn('policy_version', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('grants_active_ends').on('grants').columns(['ends_at']).where(sql.ref('state'), '=', 'active').execute();
      await db.schema.createIndex('grants_key').on('grants').columns(['key_base64']).execute();
      await db.schema.createIndex('grants_owner').on('grants').columns(['owner']).execute();
      await db.schema.createIndex('grants_ended').on('grants').columns(['bastion_id', 'ended_at']).where(sql.ref('ended_at'), 'is not', null).execute();
      await db.schema.createIndex('grants_revoking').on('grants').columns(['next_revoke_at']).where(sql.ref('revocation'), 'in', sql`('pending', 'retrying')`).execute();

      await db.schema.createTable('audit')
        .addColumn('seq', serialId(db).type, serialId(db).build)
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'varchar(256)', (c) => c.notNull())
        .addColumn('action', 'varchar(64)', (c) => c.notNull())
        .addColumn('subject', 'varchar(256)')
        .addColumn('request_id', 'varchar(128)')
        .addColumn('grant_id', 'varchar(128)')
        .addColumn('resource_id', 'varchar(128)')
        .addColumn('reason', 'text')
        .addColumn('policy_version', 'integer')
        .addColumn('risk', 'integer')
        .addColumn('detail', 'text')
        .addColumn('prev_hash', 'varchar(64)', (c) => c.notNull())
        .addColumn('hash', 'varchar(64)', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_stepup_failures').on('audit').columns(['actor', 'at']).where(sql.ref('action'), '=', 'stepup.failed').execute();
      await db.schema.createIndex('audit_subject').on('audit').columns(['subject']).execute();

      await db.schema.createTable('events')
        .addColumn('id', serialId(db).type, serialId(db).build)
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('type', 'varchar(64)', (c) => c.notNull())
        .addColumn('users', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('exclude', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .execute();

      await db.schema.createTable('idempotency')
        .addColumn('user_sub', 'varchar(256)', (c) => c.notNull())
        .addColumn('key', 'varchar(256)', (c) => c.notNull())
        .addColumn('fingerprint', 'varchar(64)', (c) => c.notNull())
        .addColumn('status', 'integer', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('idempotency_pk', ['user_sub', 'key'])
        .execute();

      await db.schema.createTable('seen')
        .addColumn('user_sub', 'varchar(256)', (c) => c.notNull())
        .addColumn('kind', 'varchar(16)', (c) => c.notNull())
        .addColumn('value', 'varchar(256)', (c) => c.notNull())
        .addColumn('first_seen', 'bigint', (c) => c.notNull())
        .addColumn('last_seen', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('seen_pk', ['user_sub', 'kind', 'value'])
        .execute();

      await db.schema.createTable('policy_versions')
        .addColumn('policy_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('hash', 'varchar(64)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('policy_versions_pk', ['policy_id', 'version'])
        .execute();
    },
    async down(db: Kysely<any>) {
      for (const table of ['policy_versions', 'seen', 'idempotency', 'events', 'audit', 'grants', 'approvals', 'requests']) {
        await db.schema.dropTable(table).execute();
      }
    },
  },
  '0002_bastion_sessions': {
    // Which sshd connection processes serve which grant, as the bastions' key commands report them: in the shared
    // database so that any instance streaming a grant's end to the bastion knows every pid, also after a restart.
    async up(db: Kysely<any>) {
      await db.schema.createTable('bastion_sessions')
        .addColumn('bastion_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('pid', 'integer', (c) => c.notNull())
        .addColumn('grant_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('recorded_at', 'bigint', (c) => c.notNull())
        // A pid is one live process at a time: recording it again (for another grant, after reuse) replaces the row.
        .addPrimaryKeyConstraint('bastion_sessions_pk', ['bastion_id', 'pid'])
        .execute();
      await db.schema.createIndex('bastion_sessions_grant').on('bastion_sessions').columns(['bastion_id', 'grant_id']).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('bastion_sessions').execute();
    },
  },
  '0003_audit_head': {
    // PostgreSQL: the audit chain's head as one row. Appending locks it (SELECT … FOR UPDATE), which orders appends
    // across instances and reads the head as the previous writer committed it, in one round trip (an advisory lock
    // needed a second statement to read the head). SQLite has a single writer that keeps the head in memory.
    // Instances before this migration serialised on an advisory lock instead: upgrade all instances together.
    async up(db: Kysely<any>) {
      if (!isPostgres(db)) return;
      await db.schema.createTable('audit_head')
        .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('hash', 'varchar(64)', (c) => c.notNull())
        .execute();
      await sql`insert into audit_head (id, seq, hash)
        select 1, coalesce((select seq from audit order by seq desc limit 1), 0), coalesce((select hash from audit order by seq desc limit 1), ${'0'.repeat(64)})`.execute(db);
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('audit_head').ifExists().execute();
    },
  },
  '0004_grants_active_key': {
    // One active grant per SSH key, enforced by the database: the activation's insert is its own key check (one
    // statement instead of a read and an insert) and two instances activating with one key at once cannot both win.
    async up(db: Kysely<any>) {
      await db.schema.createIndex('grants_active_key').ifNotExists().unique().on('grants').column('key_base64').where(sql.ref('state'), '=', 'active').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('grants_active_key').ifExists().execute();
    },
  },
  '0005_grants_owner_id': {
    // A user's grants by (owner, id) instead of owner alone. Changes to one grant check its owner in the same
    // statement (`id = … and owner = …`); with statistics that lag a growing table, PostgreSQL's generic plan could
    // pick the owner index over the primary key and read every grant the user ever had. On (owner, id) either index
    // finds the one row. Listing a user's grants uses its owner prefix as before.
    async up(db: Kysely<any>) {
      await db.schema.createIndex('grants_owner_id').ifNotExists().on('grants').columns(['owner', 'id']).execute();
      await db.schema.dropIndex('grants_owner').ifExists().execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.createIndex('grants_owner').ifNotExists().on('grants').column('owner').execute();
      await db.schema.dropIndex('grants_owner_id').ifExists().execute();
    },
  },
  '0006_grants_fewer_index_writes': {
    // Every new version of a grant row (a lifecycle writes four) is entered in each of its indexes. grants_key, over
    // every key ever used, served nothing grants_active_key (0004) does not: the one lookup by key is of active
    // grants. On PostgreSQL, pages kept 20 % free let the update that records the issued role stay on its page
    // without touching any index (a HOT update: the column is in no index). Measured: the grants statements of a
    // lifecycle cost PostgreSQL ~135 µs instead of ~180.
    async up(db: Kysely<any>) {
      await db.schema.dropIndex('grants_key').ifExists().execute();
      if (isPostgres(db)) await sql`alter table grants set (fillfactor = 80)`.execute(db);
    },
    async down(db: Kysely<any>) {
      if (isPostgres(db)) await sql`alter table grants reset (fillfactor)`.execute(db);
      await db.schema.createIndex('grants_key').ifNotExists().on('grants').columns(['key_base64']).execute();
    },
  },
  '0007_grants_device_id': {
    // The device whose agent holds a grant's key (issue #21): an agent restarted after a crash offers to take back
    // (rekey) only the grants of its own device. Active grants from before take their request's device.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('grants').addColumn('device_id', 'varchar(128)').execute();
      await sql`update grants set device_id = (select device_id from requests where requests.id = grants.request_id) where state = 'active'`.execute(db);
    },
    async down(db: Kysely<any>) {
      await db.schema.alterTable('grants').dropColumn('device_id').execute();
    },
  },
  '0008_rate_limits': {
    // Counters of the rate-limit classes that must hold across instances (issue #19: proofs and secrets), so N
    // instances behind a balancer do not give a caller N times the budget. One row per caller and class, reset by
    // the upsert when its window has passed; rows of past windows are pruned now and then.
    async up(db: Kysely<any>) {
      await db.schema.createTable('rate_limits')
        .addColumn('key', 'varchar(300)', (c) => c.primaryKey())
        .addColumn('window_start', 'bigint', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('rate_limits').ifExists().execute();
    },
  },
  '0009_grants_kind': {
    // The kind of resource a grant is for (postgres, mariadb, …), kept on the grant as issued: the agent and the
    // tray learn from it how to connect, and it still says what the grant was after the config changes. Grants from
    // before kinds existed were all PostgreSQL.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('grants').addColumn('kind', 'varchar(32)', (c) => c.notNull().defaultTo('postgres')).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.alterTable('grants').dropColumn('kind').execute();
    },
  },
  '0010_grants_ended_by_resource': {
    // An SSH target host's companion (issue #23) catches up on the ends of its own resource's grants, as a bastion's
    // does on its bastion's (grants_ended): the same partial index, by resource.
    async up(db: Kysely<any>) {
      await db.schema.createIndex('grants_ended_resource').ifNotExists().on('grants').columns(['resource_id', 'ended_at']).where(sql.ref('ended_at'), 'is not', null).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('grants_ended_resource').ifExists().execute();
    },
  },
  '0013_audit_indexes': {
    // The admin console's audit filters (issue #25), newest first by seq: each filter column with seq after it, so a
    // page is one backward walk of one index however large the table grows (at 1M rows the user and grant filters
    // walked the whole table: bench/RESULTS.md). (subject, seq) replaces (subject): PostgreSQL keeps equal keys in
    // heap order, not seq order. A time range needs no index: it becomes a seq range (lifecycle/audit-search.ts).
    async up(db: Kysely<any>) {
      for (const column of AUDIT_FILTER_COLUMNS) {
        await db.schema.createIndex(`audit_${column}_seq`).ifNotExists().on('audit').columns([column, 'seq']).execute();
      }
      await db.schema.dropIndex('audit_subject').ifExists().execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.createIndex('audit_subject').ifNotExists().on('audit').column('subject').execute();
      for (const column of AUDIT_FILTER_COLUMNS) await db.schema.dropIndex(`audit_${column}_seq`).ifExists().execute();
    },
  },
  '0014_policy_bodies_pending_requests': {
    // Each policy version's content (canonical JSON), not only its hash (#25): a request recorded under a version is
    // decided under that version after a live reload or a restart, on any instance. Versions recorded before this
    // have no body; the lifecycle fills it in when the running policy still has that hash.
    // And the waiting requests by state, which /metrics counts at every scrape, without reading the whole table.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('policy_versions').addColumn('body', 'text').execute();
      await db.schema.createIndex('requests_pending_state').on('requests').column('state').where(sql.ref('state'), 'in', sql`('pending_stepup', 'pending_approval')`).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('requests_pending_state').ifExists().execute();
      await db.schema.alterTable('policy_versions').dropColumn('body').execute();
    },
  },
  '0012_web_sessions': {
    // Approvers where they are (issue #24). The approve page's browser sign-ins: a sign-in under way (the hash of the PKCE verifier its cookie
    // holds, the state it expects, where it returns) and signed-in sessions (the hash of the random id the session
    // cookie holds, and who it is). Only hashes of what browsers hold are kept: a copy of the table opens no session.
    async up(db: Kysely<any>) {
      await db.schema.createTable('web_logins')
        .addColumn('id_hash', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('state', 'varchar(128)', (c) => c.notNull())
        .addColumn('return_to', 'varchar(300)', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createTable('web_sessions')
        .addColumn('id_hash', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('sub', 'varchar(256)', (c) => c.notNull())
        .addColumn('name', 'varchar(256)')
        .addColumn('email', 'varchar(256)')
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('admin', 'integer', (c) => c.notNull())
        .addColumn('auth_time', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('web_sessions_expires').on('web_sessions').column('expires_at').execute();
      // Reminders and escalation of a request nobody decides (issue #24, lifecycle/nudges.ts).
      await db.schema.alterTable('requests').addColumn('nudges', 'text').execute();
      await db.schema.alterTable('requests').addColumn('reminders_sent', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('requests').addColumn('escalated_at', 'bigint').execute();
    },
    async down(db: Kysely<any>) {
      for (const column of ['escalated_at', 'reminders_sent', 'nudges']) await db.schema.alterTable('requests').dropColumn(column).execute();
      await db.schema.dropTable('web_sessions').ifExists().execute();
      await db.schema.dropTable('web_logins').ifExists().execute();
    },
  },
  '0011_webhooks_and_reviews': {
    // Issue #24. webhook_deliveries is the outbox: one row per event and endpoint, written in the transaction of the
    // audit row it tells (write-queue.ts), claimed by one instance at a time with a lease (webhooks/delivery.ts).
    // breakglass_reviews: the review every break-glass use asks of the resource's approvers (lifecycle/reviews.ts).
    async up(db: Kysely<any>) {
      await db.schema.createTable('webhook_deliveries')
        .addColumn('id', serialId(db).type, serialId(db).build)
        .addColumn('endpoint', 'varchar(128)', (c) => c.notNull())
        .addColumn('message_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('event_type', 'varchar(64)', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('lease_until', 'bigint')
        .addColumn('lease_token', 'varchar(64)')
        .addColumn('last_attempt_at', 'bigint')
        .addColumn('last_status', 'integer')
        .addColumn('last_failed_at', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('delivered_at', 'bigint')
        .execute();
      // Only rows still to deliver are in it: claiming reads the due ones in order, delivered rows cost nothing.
      await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['next_attempt_at', 'id']).where(sql.ref('state'), '=', 'pending').execute();
      await db.schema.createIndex('webhook_deliveries_endpoint').on('webhook_deliveries').columns(['endpoint', 'state']).execute();

      await db.schema.createTable('breakglass_reviews')
        .addColumn('id', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('request_id', 'varchar(128)', (c) => c.notNull().unique())
        .addColumn('resource_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('requester', 'varchar(256)', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('due_at', 'bigint', (c) => c.notNull())
        .addColumn('reminded_at', 'bigint')
        .addColumn('reviewed_by', 'varchar(256)')
        .addColumn('reviewed_at', 'bigint')
        .addColumn('outcome', 'varchar(16)')
        .addColumn('note', 'text')
        .execute();
      await db.schema.createIndex('breakglass_reviews_open').on('breakglass_reviews').columns(['due_at']).where(sql.ref('reviewed_at'), 'is', null).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('breakglass_reviews').ifExists().execute();
      await db.schema.dropTable('webhook_deliveries').ifExists().execute();
    },
  },
  '0016_grant_heartbeats': {
    // When the grant's agent last said it still holds the grant (issue #21, idle end): a policy's idleEnd ends a
    // grant whose agent has been silent that long.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('grants').addColumn('agent_seen_at', 'bigint').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.alterTable('grants').dropColumn('agent_seen_at').execute();
    },
  },
};
