// PostgreSQL 15 from Debian: initdb + postgres on a free loopback port, scram-sha-256 only (never trust),
// with an admin role for the grant server. As root, the cluster runs as the `postgres` system user.
import { writeFileSync, mkdirSync, chownSync, existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { serviceDir, waitFor } from './run-dir';
import { freePort } from './ports';
import { mustRun, startProcess } from './process';

export const PG_BIN = process.env.STINT_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PostgresInstance {
  host: string;
  port: number;
  adminUser: string;
  adminPassword: string;
  database: string;
  /** postgres://admin:…@127.0.0.1:port/database */
  adminUrl: (database?: string) => string;
  /** The same over the server's Unix socket (no TCP stack per message: how a co-located server would connect). */
  socketUrl: (database?: string) => string;
  query: <R extends pg.QueryResultRow = any>(sql: string, params?: unknown[], database?: string) => Promise<R[]>;
  stop: () => Promise<void>;
  /** Stop the server but keep its data (to simulate the database being down), then start it again. */
  pause: () => Promise<void>;
  resume: () => Promise<void>;
  /** kill -9 the server and every backend at once (its process group), as a crash of the database host would; resume() starts it again (crash recovery). */
  kill: () => Promise<void>;
}

function systemUser(name: string): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

export interface PostgresOptions {
  database?: string;
  /** Keep the cluster in this dir and reuse it on the next start (the demo); default: a fresh temp dir. */
  dir?: string;
  port?: number;
  /** Extra server settings (`-c name=value`), e.g. to load pg_stat_statements for a measurement. */
  settings?: Record<string, string>;
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresInstance> {
  if (!existsSync(join(PG_BIN, 'initdb'))) {
    throw new Error(`PostgreSQL 15 not found in ${PG_BIN}: run \`npm run test:all\` (or build/prereqs.sh) to install it`);
  }
  const dir = options.dir ?? serviceDir('postgres');
  mkdirSync(dir, { recursive: true });
  const data = join(dir, 'data');
  const sockets = join(dir, 'sock');
  mkdirSync(sockets, { recursive: true });
  const adminUser = 'stint_admin';
  const pwfile = join(dir, 'pwfile');
  const reuse = existsSync(join(data, 'PG_VERSION')) && existsSync(pwfile);
  const adminPassword = reuse ? readFileSync(pwfile, 'utf8') : randomBytes(18).toString('base64url');
  if (!reuse) writeFileSync(pwfile, adminPassword, { mode: 0o600 });
  const runAs = process.getuid?.() === 0 ? systemUser('postgres') : undefined;
  if (process.getuid?.() === 0 && !runAs) throw new Error('running as root needs the `postgres` system user: install the postgresql package');
  if (runAs) for (const path of [dir, sockets, pwfile]) chownSync(path, runAs.uid, runAs.gid);
  const as = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
  if (!reuse) await mustRun(join(PG_BIN, 'initdb'), ['-D', data, '-U', adminUser, `--pwfile=${pwfile}`, '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-instructions'], { ...as, cwd: dir });
  const port = options.port ?? await freePort();
  const args = ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${sockets}`, '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300', '-c', 'password_encryption=scram-sha-256', ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
  let proc = startProcess(join(PG_BIN, 'postgres'), args, { ...as, cwd: dir });
  const database = options.database ?? 'appdb';
  const adminUrl = (db = database) => `postgres://${adminUser}:${encodeURIComponent(adminPassword)}@127.0.0.1:${port}/${db}`;
  const socketUrl = (db = database) => `postgres://${adminUser}:${encodeURIComponent(adminPassword)}@/${db}?host=${encodeURIComponent(sockets)}&port=${port}`;
  const query = async (sql: string, params: unknown[] = [], db = database) => {
    const client = new pg.Client({ connectionString: adminUrl(db) });
    // A server killed or shut down under a query fails the query; unheard, the same error event would end the process.
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end();
    }
  };
  const ready = () => waitFor('postgres to accept connections', async () => {
    if (proc.child.exitCode !== null) throw new Error(`postgres exited: ${proc.output()}`);
    await query('select 1', [], 'postgres');
    return true;
  }, 20_000, 100);
  await ready();
  const exists = await query('select 1 from pg_database where datname = $1', [database], 'postgres');
  if (!exists.length) await query(`create database ${database}`, [], 'postgres');
  return {
    host: '127.0.0.1', port, adminUser, adminPassword, database, adminUrl, socketUrl, query,
    stop: async () => proc.stop('SIGINT'),
    pause: async () => proc.stop('SIGINT'),
    kill: async () => proc.stop('SIGKILL'),
    resume: async () => {
      proc = startProcess(join(PG_BIN, 'postgres'), args, { ...as, cwd: dir });
      await ready();
    },
  };
}
