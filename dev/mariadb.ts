// MariaDB from Debian (mariadb-server 10.11): mariadb-install-db + mariadbd on a free loopback port, its own data dir
// and socket in the run dir, no anonymous or remote root accounts, and an admin account for the grant server
// (`stint_admin`@`127.0.0.1`, every privilege WITH GRANT OPTION: it creates, kills and drops the users of grants).
// As root, the server runs as the `mysql` system user. Its pid is recorded in the run dir and it dies with its parent.
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import mysql from 'mysql2/promise';
import { serviceDir, waitFor } from './run-dir';
import { freePort } from './ports';
import { mustRun, startProcess } from './process';

export const MARIADBD = process.env.STINT_MARIADBD ?? '/usr/sbin/mariadbd';
const INSTALL_DB = process.env.STINT_MARIADB_INSTALL_DB ?? '/usr/bin/mariadb-install-db';

export interface MariadbInstance {
  host: string;
  port: number;
  adminUser: string;
  adminPassword: string;
  database: string;
  /** mysql://stint_admin:…@127.0.0.1:port/database */
  adminUrl: (database?: string) => string;
  /** Run statements as the admin (in `database`, default the instance's); rows of the last one. */
  query: <R = any>(sql: string, params?: unknown[], database?: string) => Promise<R[]>;
  stop: () => Promise<void>;
  /** Stop the server but keep its data (the database being down), then start it again on the same port. */
  pause: () => Promise<void>;
  resume: () => Promise<void>;
}

export interface MariadbOptions {
  database?: string;
  /** Keep the data in this dir and reuse it on the next start (the demo); default: a fresh temp dir. */
  dir?: string;
  port?: number;
}

/** True when this machine has MariaDB's server (the demo starts one only then). */
export function mariadbInstalled(): boolean {
  return existsSync(MARIADBD) && existsSync(INSTALL_DB);
}

function mysqlUser(): { uid: number; gid: number } | undefined {
  try {
    return { uid: Number(execFileSync('id', ['-u', 'mysql']).toString().trim()), gid: Number(execFileSync('id', ['-g', 'mysql']).toString().trim()) };
  } catch {
    return undefined;
  }
}

export async function startMariadb(options: MariadbOptions = {}): Promise<MariadbInstance> {
  if (!mariadbInstalled()) throw new Error(`MariaDB not found (${MARIADBD}): run \`npm run test:all\` (or build/prereqs.sh) to install mariadb-server`);
  const dir = options.dir ?? serviceDir('mariadb');
  const data = join(dir, 'data');
  const sockets = join(dir, 'sock');
  mkdirSync(sockets, { recursive: true });
  // Its own temp dir: the caller's TMPDIR may be private (a 0700 mktemp), where the mysql user cannot write.
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const env = { ...process.env, TMPDIR: tmp };
  const socket = join(sockets, 'mariadbd.sock');
  const pwfile = join(dir, 'pwfile');
  const reuse = existsSync(join(data, 'mysql')) && existsSync(pwfile);
  const adminUser = 'stint_admin';
  const adminPassword = reuse ? readFileSync(pwfile, 'utf8') : randomBytes(18).toString('base64url');
  const asRoot = process.getuid?.() === 0;
  const runAs = asRoot ? mysqlUser() : undefined;
  if (asRoot && !runAs) throw new Error('running as root needs the `mysql` system user: install the mariadb-server package');
  if (runAs) for (const path of [dir, sockets, tmp]) chownSync(path, runAs.uid, runAs.gid);
  const userArgs = asRoot ? ['--user=mysql'] : [];
  if (!reuse) {
    await mustRun(INSTALL_DB, ['--no-defaults', `--datadir=${data}`, ...userArgs, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve'], { cwd: dir, env });
  }
  const port = options.port ?? await freePort();
  const args = [
    '--no-defaults', `--datadir=${data}`, ...userArgs, `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${socket}`,
    `--pid-file=${join(dir, 'mariadbd.pid')}`, `--log-error=${join(dir, 'error.log')}`, `--tmpdir=${tmp}`,
    // Accounts match by address (the bastion's), never by a name a DNS answer could change.
    '--skip-name-resolve', '--skip-log-bin', '--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M',
    '--innodb-flush-log-at-trx-commit=0', '--max-connections=300', '--performance-schema=OFF',
  ];
  let proc = startProcess(MARIADBD, args, { cwd: dir, env });
  const database = options.database ?? 'appdb';
  const adminUrl = (db = database) => `mysql://${adminUser}:${encodeURIComponent(adminPassword)}@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  const errorLog = () => (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').slice(-4000) : proc.output());
  const ready = (connect: () => Promise<mysql.Connection>) => waitFor('mariadbd to accept connections', async () => {
    if (proc.child.exitCode !== null) throw new Error(`mariadbd exited: ${errorLog()}`);
    const connection = await connect();
    await connection.end();
    return true;
  }, 30_000, 100);
  const asRootOverSocket = () => mysql.createConnection({ socketPath: socket, user: 'root', multipleStatements: true });
  if (!reuse) {
    await ready(asRootOverSocket);
    const root = await asRootOverSocket();
    try {
      // Only root over the socket stays (for an operator); remote root and anonymous accounts go.
      const [others] = await root.query<mysql.RowDataPacket[]>("select User as user, Host as host from mysql.user where (User = 'root' and Host <> 'localhost') or User = ''");
      for (const o of others) await root.query('DROP USER ?@?', [o.user, o.host]);
      await root.query('CREATE USER ?@? IDENTIFIED BY ?', [adminUser, '127.0.0.1', adminPassword]);
      await root.query('GRANT ALL PRIVILEGES ON *.* TO ?@? WITH GRANT OPTION', [adminUser, '127.0.0.1']);
      await root.query(`CREATE DATABASE IF NOT EXISTS ${mysql.escapeId(database)}`);
    } finally {
      await root.end();
    }
    writeFileSync(pwfile, adminPassword, { mode: 0o600 });
  }
  const asAdmin = (db?: string) => mysql.createConnection({ host: '127.0.0.1', port, user: adminUser, password: adminPassword, ...(db ? { database: db } : {}), multipleStatements: true });
  await ready(() => asAdmin());
  await (async () => {
    const admin = await asAdmin();
    try { await admin.query(`CREATE DATABASE IF NOT EXISTS ${mysql.escapeId(database)}`); } finally { await admin.end(); }
  })();
  const query = async <R>(sql: string, params: unknown[] = [], db = database): Promise<R[]> => {
    const connection = await asAdmin(db);
    try {
      const [rows] = await connection.query(sql, params);
      const last = Array.isArray(rows) && Array.isArray(rows.at(-1)) ? rows.at(-1) : rows;
      return (Array.isArray(last) ? last : []) as R[];
    } finally {
      await connection.end();
    }
  };
  return {
    host: '127.0.0.1', port, adminUser, adminPassword, database, adminUrl, query,
    stop: () => proc.stop('SIGTERM'),
    pause: () => proc.stop('SIGTERM'),
    resume: async () => {
      proc = startProcess(MARIADBD, args, { cwd: dir, env });
      await ready(() => asAdmin());
    },
  };
}
