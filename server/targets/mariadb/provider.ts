// MariaDB / MySQL credentials per grant: one random account per grant, created by the server's admin connection,
// with the access level's privileges on the resource's one database and MAX_USER_CONNECTIONS. Neither MariaDB 10.11
// nor MySQL can expire an account at a date and time (only a password lifetime in whole days, which merely limits
// what an expired session may do), so the grant's deadline is Stint's to enforce: at the end the account is locked
// (no new logins), every connection of it is killed (a lock or a drop leaves open sessions running) and it is dropped.
import { createHash, randomBytes, randomInt } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { CredentialProvider, IssueInput, IssuedCredential } from '../../credentials/provider';
import { CredentialError } from '../../credentials/errors';
import { systemClock, type Clock } from '../../../shared/domain/clock';
import type { CredentialLogger } from '../postgres/provider';

export interface MariadbResourceConfig {
  /** mysql://admin:…@host:port/ — CREATE USER, GRANT OPTION on the database, CONNECTION ADMIN (or SUPER) to kill. */
  adminUrl: string;
  database: string;
  /** Host part of every grant's account: where MariaDB sees its connections come from (the bastion). */
  accountHost: string;
  /** Access level → privileges granted on `database`.*. */
  levels: Record<string, string[]>;
  /** MAX_USER_CONNECTIONS. Default 10. */
  connectionLimit?: number;
}

export interface MariadbProviderOptions {
  resources: Record<string, MariadbResourceConfig>;
  clock?: Pick<Clock, 'now'>;
  logger?: CredentialLogger;
  /** How long revoke keeps killing an account's connections before it gives up with a retryable error. Default 10 s. */
  terminateBudgetMs?: number;
  /** How long to wait for an admin connection before failing with `unavailable`. Default 3 s. */
  connectTimeoutMs?: number;
  /** Draws an account name (default: random, matching USER_NAME); tests give taken ones. */
  userName?: () => string;
}

export interface MariadbCredentialProvider extends CredentialProvider {
  readonly kind: 'mariadb';
  /** Whether an account of this name exists, on any host (for tests and status pages). */
  userExists(input: { resourceId: string; username: string }): Promise<boolean>;
  isolationProblems(): Promise<string[]>;
  notices(): Promise<string[]>;
}

/** Account names we create: `stint_g_` + 20 lowercase base-36 characters (28: within MySQL's 32). */
export const USER_NAME = /^stint_g_[a-z0-9]{20}$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomUserName(): string {
  let suffix = '';
  for (let i = 0; i < 20; i += 1) suffix += ALPHABET[randomInt(ALPHABET.length)];
  return `stint_g_${suffix}`;
}

/** 32 characters of base64url (192 bits): nothing a client's option file or a URI needs to quote. */
function randomPassword(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * The mysql_native_password hash of a password (`*` + SHA1(SHA1(password)) in hex). Sending it instead of the password
 * keeps the clear password out of the server's general and slow query logs.
 */
export function nativePasswordHash(password: string): string {
  const once = createHash('sha1').update(password, 'utf8').digest();
  return `*${createHash('sha1').update(once).digest('hex').toUpperCase()}`;
}

const ER_CANNOT_USER = 1396;
const ER_NO_SUCH_THREAD = 1094;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const errno = (error: unknown) => (error as { errno?: unknown } | undefined)?.errno;

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_NORMAL_SHUTDOWN', 'POOL_CLOSED']);

function fromMysqlError(error: unknown, what: string): CredentialError {
  if (error instanceof CredentialError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && NETWORK.has(code)) return new CredentialError('unavailable', `${what}: the database is unreachable`, error);
  return new CredentialError('database_error', `${what}: the database refused`, error);
}

/** `major.minor` of a VERSION() string, and whether it is MariaDB. */
export function parseVersion(version: string): { mariadb: boolean; major: number; minor: number; patch: number } {
  const [major = 0, minor = 0, patch = 0] = (version.match(/^(\d+)\.(\d+)\.(\d+)/) ?? []).slice(1).map(Number);
  return { mariadb: /mariadb/i.test(version), major, minor, patch };
}

/** ACCOUNT LOCK, which revocation relies on, came in MariaDB 10.4.2 and MySQL 5.7.6. */
export function supportsAccountLock(v: ReturnType<typeof parseVersion>): boolean {
  const at = (major: number, minor: number, patch: number) => v.major > major || (v.major === major && (v.minor > minor || (v.minor === minor && v.patch >= patch)));
  return v.mariadb ? at(10, 4, 2) : at(5, 7, 6);
}

export function createMariadbProvider(options: MariadbProviderOptions): MariadbCredentialProvider {
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  const terminateBudgetMs = options.terminateBudgetMs ?? 10_000;
  const pools = new Map<string, mysql.Pool>();
  let closed = false;

  function resource(resourceId: string): MariadbResourceConfig {
    const config = Object.hasOwn(options.resources, resourceId) ? options.resources[resourceId] : undefined;
    if (!config) throw new CredentialError('unknown_resource', `no MariaDB resource "${resourceId}" is configured`);
    return config;
  }

  function pool(config: MariadbResourceConfig): mysql.Pool {
    let existing = pools.get(config.adminUrl);
    if (!existing) {
      const url = new URL(config.adminUrl);
      existing = mysql.createPool({
        host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password),
        connectionLimit: 4, maxIdle: 4, idleTimeout: 30_000, connectTimeout: options.connectTimeoutMs ?? 3_000, enableKeepAlive: true,
      });
      pools.set(config.adminUrl, existing);
    }
    return existing;
  }

  /** One statement on an admin connection held only for it; a stuck statement fails after 15 s (the lifecycle retries). */
  async function admin<T = mysql.RowDataPacket[]>(config: MariadbResourceConfig, sql: string, values: unknown[], what: string): Promise<T> {
    if (closed) throw new CredentialError('unavailable', 'the credential provider is closed');
    try {
      const [rows] = await pool(config).query({ sql, values, timeout: 15_000 });
      return rows as T;
    } catch (error) {
      throw fromMysqlError(error, what);
    }
  }

  const account = (user: string, host: string) => `${mysql.escape(user)}@${mysql.escape(host)}`;

  /** Every host this account name exists on: revoke finds the account even if the config's accountHost changed since. */
  async function hostsOf(config: MariadbResourceConfig, username: string, what: string): Promise<string[]> {
    const rows = await admin(config, 'SELECT Host AS host FROM mysql.user WHERE User = ?', [username], what);
    return rows.map((r) => String(r.host));
  }

  /** Kill every connection of the account until none is left (a login that passed authentication just before the lock may show up late). */
  async function killSessions(config: MariadbResourceConfig, username: string, what: string): Promise<number> {
    const deadline = Date.now() + terminateBudgetMs;
    let killed = 0;
    let pause = 2;
    for (;;) {
      const live = await admin(config, 'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [username], what);
      if (live.length === 0) return killed;
      if (Date.now() > deadline) throw new CredentialError('sessions_remain', `${live.length} connection(s) of the account did not end`);
      await Promise.all(live.map(async (row) => {
        try {
          await admin(config, `KILL CONNECTION ${Number(row.id)}`, [], what);
          killed += 1;
        } catch (error) {
          if (errno((error as CredentialError).cause) !== ER_NO_SUCH_THREAD) throw error; // gone meanwhile
        }
      }));
      // A killed connection leaves the list once its thread notices; look again shortly.
      await sleep(pause);
      pause = Math.min(10, pause * 2);
    }
  }

  function checkUserName(username: string): void {
    // Revoke, extend and rotate act only on accounts this provider created: a corrupted store must not drop a real one.
    if (!USER_NAME.test(username)) throw new CredentialError('invalid_input', 'not an account name created by Stint');
  }

  async function version(config: MariadbResourceConfig): Promise<string> {
    const rows = await admin(config, 'SELECT VERSION() AS v', [], 'read the server version');
    return String(rows[0]?.v ?? '');
  }

  const servers = () => {
    const byUrl = new Map<string, MariadbResourceConfig>();
    for (const config of Object.values(options.resources)) byUrl.set(config.adminUrl, config);
    return [...byUrl.values()].map((config) => ({ config, where: new URL(config.adminUrl).host }));
  };

  return {
    kind: 'mariadb',

    async issue(input: IssueInput): Promise<IssuedCredential> {
      const config = resource(input.resourceId);
      const privileges = Object.hasOwn(config.levels, input.level) ? config.levels[input.level] : undefined;
      if (!privileges) throw new CredentialError('unknown_level', `resource "${input.resourceId}" has no access level "${input.level}"`);
      if (!(input.endsAt > clock.now())) throw new CredentialError('invalid_input', 'the grant has already ended');
      const password = randomPassword();
      const limit = Math.max(1, Math.trunc(config.connectionLimit ?? 10));
      let username = '';
      // A name already taken (another grant's, or anyone's) is never reused: CREATE USER refuses it and a new one is drawn.
      for (let attempt = 1; ; attempt += 1) {
        username = (options.userName ?? randomUserName)();
        try {
          await admin(config, `CREATE USER ${account(username, config.accountHost)} IDENTIFIED WITH mysql_native_password AS ? WITH MAX_USER_CONNECTIONS ${limit}`,
            [nativePasswordHash(password)], 'create user');
          break;
        } catch (error) {
          if (errno((error as CredentialError).cause) !== ER_CANNOT_USER || attempt >= 3) throw error;
        }
      }
      try {
        await admin(config, `GRANT ${privileges.join(', ')} ON ${mysql.escapeId(config.database)}.* TO ${account(username, config.accountHost)}`, [], 'grant privileges');
      } catch (error) {
        // GRANT is not transactional with CREATE USER: a failed grant leaves no account behind.
        await admin(config, `DROP USER IF EXISTS ${account(username, config.accountHost)}`, [], 'drop user').catch(() => undefined);
        throw error;
      }
      logger?.info({ grantId: input.grantId, resourceId: input.resourceId, level: input.level, user: username, endsAt: new Date(input.endsAt).toISOString() }, 'database account created');
      return { username, password };
    },

    async extend(input): Promise<void> {
      // Nothing on the server carries the deadline (no account expiry by date): the account only has to still exist.
      const config = resource(input.resourceId);
      checkUserName(input.username);
      if ((await hostsOf(config, input.username, 'extend user')).length === 0) throw new CredentialError('not_found', 'the grant\'s account no longer exists');
      logger?.info({ grantId: input.grantId, user: input.username, endsAt: new Date(input.endsAt).toISOString() }, 'database account extended');
    },

    async rotate(input): Promise<{ password: string }> {
      const config = resource(input.resourceId);
      checkUserName(input.username);
      const hosts = await hostsOf(config, input.username, 'rotate password');
      if (hosts.length === 0) throw new CredentialError('not_found', 'the grant\'s account no longer exists');
      const password = randomPassword();
      // The new password first, so the old one logs in nowhere; then every session it opened ends.
      for (const host of hosts) {
        await admin(config, `ALTER USER ${account(input.username, host)} IDENTIFIED WITH mysql_native_password AS ?`, [nativePasswordHash(password)], 'rotate password');
      }
      await killSessions(config, input.username, 'rotate password');
      logger?.info({ grantId: input.grantId, user: input.username }, 'database account password rotated');
      return { password };
    },

    async revoke(input): Promise<void> {
      const config = resource(input.resourceId);
      checkUserName(input.username);
      const started = Date.now();
      const hosts = await hostsOf(config, input.username, 'revoke user');
      // 1. No new logins. 2. Kill every connection of the name (also when the account is gone already: a revoke cut
      //    short between drop and kill must still end them). 3. Drop it.
      for (const host of hosts) {
        try {
          await admin(config, `ALTER USER ${account(input.username, host)} ACCOUNT LOCK`, [], 'lock user');
        } catch (error) {
          if (errno((error as CredentialError).cause) !== ER_CANNOT_USER) throw error; // dropped meanwhile
        }
      }
      const killed = await killSessions(config, input.username, 'revoke user');
      for (const host of hosts) await admin(config, `DROP USER IF EXISTS ${account(input.username, host)}`, [], 'drop user');
      logger?.info({ grantId: input.grantId, user: input.username, killed, ms: Date.now() - started }, hosts.length ? 'database account revoked' : 'database account already gone');
    },

    async userExists(input): Promise<boolean> {
      return (await hostsOf(resource(input.resourceId), input.username, 'look up user')).length > 0;
    },

    async isolationProblems(): Promise<string[]> {
      const problems: string[] = [];
      for (const { config, where } of servers()) {
        try {
          const v = parseVersion(await version(config));
          if (!supportsAccountLock(v)) problems.push(`MariaDB/MySQL at ${where}: version ${v.major}.${v.minor}.${v.patch} is too old to lock an account (ACCOUNT LOCK needs MariaDB 10.4.2 or MySQL 5.7.6): a grant's end could not stop new logins before its account is dropped. Fix: upgrade the server.`);
          // An anonymous account matches any user name from its host: a grant's name could log in through it with
          // its privileges, and privileges given to the anonymous user or PUBLIC reach every grant's account.
          const anonymous = await admin(config, "SELECT Host AS host FROM mysql.user WHERE User = ''", [], 'check anonymous accounts');
          for (const { host } of anonymous) problems.push(`MariaDB/MySQL at ${where}: an anonymous account ''@'${String(host)}' exists; it matches any user name from that host. Fix: DROP USER ''@'${String(host)}';`);
          const open = await admin(config, "SELECT DISTINCT Db AS db, User AS user FROM mysql.db WHERE User IN ('', 'PUBLIC')", [], 'check database privileges');
          for (const { db, user } of open) problems.push(`MariaDB/MySQL at ${where}: ${user === 'PUBLIC' ? 'PUBLIC' : 'the anonymous user'} has privileges on database ${String(db)}, so every grant's account reaches it. Fix: REVOKE ALL ON \`${String(db)}\`.* FROM ${user === 'PUBLIC' ? 'PUBLIC' : "''@'%'"};`);
        } catch (error) {
          problems.push(`MariaDB/MySQL at ${where}: could not check accounts and privileges (${error instanceof Error ? error.message : String(error)}).`);
        }
      }
      return problems;
    },

    async notices(): Promise<string[]> {
      return servers().map(({ where }) => `MariaDB/MySQL at ${where}: accounts cannot expire at a date and time there, so a grant's account carries no expiry of its own; Stint ends it at the deadline (lock, kill its connections, drop) and retries while the server is unreachable.`);
    },

    async close(): Promise<void> {
      closed = true;
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.end().catch(() => undefined)));
    },
  };
}
