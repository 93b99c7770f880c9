// Opening the store: one kysely instance over better-sqlite3 (the default dialect) or over a `pg` pool
// (postgres:// URLs, for several server instances sharing one database). Everything above this file speaks kysely.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Compilable, type MigrationResultSet, type QueryResult, Transaction } from 'kysely';
import pg from 'pg';
import type { Database } from './schema';
import { migrations } from './migrations';
import { stepUpMigrations } from '../stepup/store';
import { preparingPool, readLane } from './pg-prepared';

export type Db = Kysely<Database>;

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  db: Db;
  /**
   * For short reads by key on the hot path (one request, one grant, a user's risk signals): plain reads only, never a
   * transaction. On PostgreSQL they share one pipelined connection (see readLane); on SQLite this is `db`.
   */
  reads: Db;
  dialect: Dialect;
  /** PostgreSQL only: the connection URL (for the LISTEN connection of the event bus). Never logged. */
  pgUrl?: string;
  /** Run pending migrations; returns the names applied. */
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

/** `sqlite::memory:`, `sqlite:relative/or/absolute.db` or `sqlite:///abs/path.db`. */
export function sqlitePath(url: string): string {
  if (!url.startsWith('sqlite:')) throw Object.assign(new Error(`unsupported storage url ${url.split(':')[0]}: expected sqlite:`), { code: 'storage_unsupported' });
  const rest = url.slice('sqlite:'.length);
  if (rest === ':memory:') return ':memory:';
  return rest.startsWith('//') ? rest.slice(2) : rest;
}

export interface StoreOptions {
  /** PostgreSQL pool limits (see storage.pool in the config). */
  pool?: { max?: number; connectTimeoutMs?: number };
  /** PostgreSQL: prepare statements per connection (default true; see storage.preparedStatements in the config). */
  preparedStatements?: boolean;
}

export function isPostgresUrl(url: string): boolean {
  return url.startsWith('postgres://') || url.startsWith('postgresql://');
}

export function openStore(url: string, options: StoreOptions = {}): Store {
  if (isPostgresUrl(url)) return openPostgres(url, options);
  const path = sqlitePath(url);
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new BetterSqlite3(path);
  // WAL: readers do not block the writer; NORMAL sync is durable across process crashes (not power loss mid-commit).
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const checkpointer = path === ':memory:' ? undefined : startCheckpointer(path);
  if (checkpointer) sqlite.pragma('wal_autocheckpoint = 0');
  // Kysely prepares every query it runs; the same few dozen statements repeat forever, so keep them prepared.
  const statements = new Map<string, BetterSqlite3.Statement>();
  const database = {
    prepare: (text: string) => {
      let statement = statements.get(text);
      if (!statement) {
        statement = sqlite.prepare(text);
        if (statements.size < 500) statements.set(text, statement);
      }
      return statement;
    },
    close: () => sqlite.close(),
  };
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: database as unknown as BetterSqlite3.Database }), ...(process.env.STINT_SQL_PROFILE ? { log: sqlProfile } : {}) });
  return {
    db,
    reads: db,
    dialect: 'sqlite',
    migrate: () => migrate(db),
    close: async () => {
      await checkpointer?.stop();
      await db.destroy();
    },
  };
}

async function migrate(db: Db): Promise<string[]> {
  // Step-up keeps its own tables (prefixed stepup_) in the same database; its migrations are independent of
  // ours, so they may interleave by name. On PostgreSQL kysely's migrator holds an advisory lock, so instances
  // starting together migrate once.
  const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations, ...stepUpMigrations }) }, allowUnorderedMigrations: true });
  const result: MigrationResultSet = await migrator.migrateToLatest();
  if (result.error) throw Object.assign(new Error(`migration failed: ${String((result.error as Error).message ?? result.error)}`), { code: 'migration_failed', cause: result.error });
  return (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** int8 (bigint: our instants, counts) as a JS number: instants in ms fit exactly in a double until year 287396. */
const PG_INT8 = 20;
const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === PG_INT8 && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser,
};

function openPostgres(url: string, options: StoreOptions): Store {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.pool?.max ?? 10,
    // Without a timeout a query waits forever for a connection while the database is down; readiness must fail.
    connectionTimeoutMillis: options.pool?.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    types: pgTypes,
    application_name: 'stint-server',
    // Statements issued together go out together (see preparingPool); kysely still awaits each one it needs.
    pipeline: true,
  } as pg.PoolConfig);
  // An idle connection dropped by the server (restart, failover) emits 'error' on the pool; without a listener
  // that would crash the process. The next query opens a fresh connection.
  pool.on('error', () => {});
  const prepare = options.preparedStatements !== false;
  const log = process.env.STINT_SQL_PROFILE ? { log: sqlProfile } : {};
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparingPool(pool, { prepare }) }), ...log });
  const reads = new Kysely<Database>({ dialect: new PostgresDialect({ pool: readLane(pool, { prepare }) }), ...log });
  return {
    db,
    reads,
    dialect: 'postgres',
    pgUrl: url,
    migrate: () => migrate(db),
    close: async () => {
      // The lane's connection goes back to the pool first: ending the pool waits for every connection checked out.
      await reads.destroy();
      await db.destroy();
    },
  };
}

/**
 * WAL checkpoints fsync; better-sqlite3 is synchronous, so an automatic checkpoint inside a commit would stall the
 * whole server for the length of an fsync. Checkpoints run instead on a second connection in a worker thread
 * (PASSIVE: never blocks writers), and once more at close.
 */
function startCheckpointer(path: string, everyMs = 1_000): { stop: () => Promise<void> } {
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    const Database = require(workerData.module);
    const db = new Database(workerData.path);
    db.pragma('busy_timeout = 5000');
    const timer = setInterval(() => { try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {} }, workerData.everyMs);
    parentPort.on('message', () => {
      clearInterval(timer);
      try { db.pragma('wal_checkpoint(TRUNCATE)'); } catch {}
      db.close();
      parentPort.postMessage('stopped');
    });`;
  const worker = new Worker(source, { eval: true, workerData: { module: createRequire(import.meta.url).resolve('better-sqlite3'), path, everyMs } });
  worker.unref();
  return {
    stop: () => new Promise<void>((resolve) => {
      const done = () => { void worker.terminate().finally(resolve); };
      worker.once('message', done);
      worker.once('error', done);
      worker.once('exit', () => resolve());
      worker.postMessage('stop');
    }),
  };
}

/** STINT_SQL_PROFILE=1: aggregate query time by statement, printed at exit (for performance work only). */
const sqlTimes = new Map<string, { n: number; ms: number }>();
function sqlProfile(event: { query: { sql: string }; queryDurationMillis: number }): void {
  if (sqlTimes.size === 0) process.once('exit', () => {
    for (const [q, t] of [...sqlTimes].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) process.stderr.write(`${t.ms.toFixed(0).padStart(7)} ms ${String(t.n).padStart(7)}× ${q.slice(0, 160)}\n`);
  });
  const entry = sqlTimes.get(event.query.sql) ?? { n: 0, ms: 0 };
  entry.n += 1;
  entry.ms += event.queryDurationMillis;
  sqlTimes.set(event.query.sql, entry);
}

/**
 * Run statements of one transaction without waiting for one another's answers, results in order. Kysely runs a
 * transaction's statements one at a time (each waits for the previous answer), so these go to the transaction's
 * connection directly: on PostgreSQL's pipelined connections (see preparingPool) statements issued together travel
 * in one write and cost one round trip; SQLite runs them one after another. They still execute in the order given,
 * and also in order with whatever the transaction issues meanwhile. (No kysely plugins are configured, so running
 * beside kysely's executor skips nothing.)
 */
export async function together<R extends unknown[]>(trx: Transaction<Database>, ...queries: { [K in keyof R]: Compilable<R[K]> }): Promise<{ [K in keyof R]: QueryResult<R[K]> }> {
  const direct = await unqueued(trx);
  return Promise.all(queries.map((query) => direct.executeQuery(query))) as Promise<{ [K in keyof R]: QueryResult<R[K]> }>;
}

/**
 * The same transaction, as a handle whose statements skip kysely's one-at-a-time queue (see `together`): changes
 * that touch different rows can then run side by side, their statements pipelined. Only the executor is used; the
 * handle cannot start, commit or roll back anything (the transaction it came from does that).
 */
export async function unqueued(trx: Transaction<Database>): Promise<Transaction<Database>> {
  const connection = await trx.getExecutor().provideConnection(async (c) => c);
  const executor = trx.getExecutor().withConnectionProvider({ provideConnection: (consume) => consume(connection) });
  return new Transaction<Database>({ config: {}, driver: {}, dialect: {}, executor } as unknown as ConstructorParameters<typeof Transaction<Database>>[0]);
}
