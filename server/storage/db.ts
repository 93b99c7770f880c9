// Opening the store: one kysely instance over better-sqlite3 (the default dialect). A PostgreSQL dialect can be
// added here later; everything above this file speaks kysely only.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type MigrationResultSet } from 'kysely';
import type { Database } from './schema';
import { migrations } from './migrations';

export type Db = Kysely<Database>;

export interface Store {
  db: Db;
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

export function openStore(url: string): Store {
  const path = sqlitePath(url);
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new BetterSqlite3(path);
  // WAL: readers do not block the writer; NORMAL sync is durable across process crashes (not power loss mid-commit).
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  return {
    db,
    migrate: async () => {
      const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
      const result: MigrationResultSet = await migrator.migrateToLatest();
      if (result.error) throw Object.assign(new Error(`migration failed: ${String((result.error as Error).message ?? result.error)}`), { code: 'migration_failed', cause: result.error });
      return (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    },
    close: () => db.destroy(),
  };
}
