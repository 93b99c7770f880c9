// PostgreSQL credentials per grant: one random LOGIN role per grant, created by the server's admin connection to the
// resource's database, privileges from the access level's SQL templates, and a revocation that ends live sessions
// (VALID UNTIL only stops new password logins; it never ends an open session — vault#699).
import { randomBytes, randomInt, pbkdf2, createHash, createHmac } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import type { CredentialProvider, IssueInput, IssuedCredential } from '../../credentials/provider';
import { systemClock, type Clock } from '../../../shared/domain/clock';
import { CredentialError, fromPgError } from '../../credentials/errors';

const pbkdf2Async = promisify(pbkdf2);

export interface PostgresResourceConfig {
  /** postgres://admin:…@host:port/db — the server's admin connection (superuser, or CREATEROLE + pg_signal_backend). */
  adminUrl: string;
  /** The database the grant is for; templates run there and REASSIGN/DROP OWNED run there at revoke. */
  database: string;
  /** Access level → SQL statements, run in order at issue. `{{role}}` and `{{database}}` become quoted identifiers. */
  levels: Record<string, string[]>;
  /** Most concurrent sessions the grant's role may open (CONNECTION LIMIT). Default 10. */
  connectionLimit?: number;
  /** Other databases in the same cluster where a grant's role may come to own objects (cleaned at revoke). */
  extraDatabases?: string[];
}

/** pino-compatible subset; the provider logs role names and grant ids, never passwords or verifiers. */
export interface CredentialLogger {
  info: (obj: object, msg?: string) => void;
  warn: (obj: object, msg?: string) => void;
  error: (obj: object, msg?: string) => void;
}

export interface PostgresProviderOptions {
  resources: Record<string, PostgresResourceConfig>;
  /** The server clock; issue refuses a grant that has already ended by it. */
  clock?: Pick<Clock, 'now'>;
  logger?: CredentialLogger;
  /** How long revoke keeps terminating a role's backends before it gives up with a retryable error. Default 10 s. */
  terminateBudgetMs?: number;
  /** Admin pool size per (admin URL, database). Default 4. */
  poolSize?: number;
  /** How long to wait for an admin connection before failing with `unavailable`. Default 3 s. */
  connectTimeoutMs?: number;
}

export interface PostgresCredentialProvider extends CredentialProvider {
  readonly kind: 'postgres';
  /** Whether a role still exists (for status pages and tests). */
  roleExists(input: { resourceId: string; username: string }): Promise<boolean>;
  isolationProblems(): Promise<string[]>;
}

/** Role names we create: `stint_g_` + 20 lowercase base-36 characters. Revoke refuses anything else. */
export const ROLE_NAME = /^stint_g_[a-z0-9]{20}$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomRoleName(): string {
  let suffix = '';
  for (let i = 0; i < 20; i += 1) suffix += ALPHABET[randomInt(ALPHABET.length)];
  return `stint_g_${suffix}`;
}

/** 32 characters of base64url (192 bits): unreserved in URIs, plain ASCII so SASLprep leaves it unchanged. */
function randomPassword(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * The SCRAM-SHA-256 verifier for a password (RFC 5802/7677, PostgreSQL's stored format). Sending the verifier
 * instead of the password keeps the clear password out of the server's statement log (log_statement = ddl).
 */
export async function scramVerifier(password: string, iterations = 4096): Promise<string> {
  const salt = randomBytes(16);
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

const ident = (name: string) => pg.escapeIdentifier(name);
const literal = (value: string) => pg.escapeLiteral(value);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fill `{{role}}` / `{{database}}` in an admin-configured template with safely quoted identifiers. */
export function renderTemplate(template: string, values: { role: string; database: string }): string {
  return template.replace(/\{\{\s*(role|database)\s*\}\}/g, (_m, key: 'role' | 'database') => ident(values[key]));
}

/**
 * How often a grant's backend checks, while a query runs, that its client is still connected (PostgreSQL 14+).
 * Without it a backend whose tunnel was closed — by the agent at its deadline, or by the bastion's companion — runs
 * its query to the end (a `pg_sleep(60)` for a minute) and only then notices; that is the gap while the grant server,
 * which would terminate it, is down (issue #21). The role's default, so any session of the grant gets it.
 */
const CLIENT_CHECK_INTERVAL = '1s';

/**
 * The statement that gives the role that default. Older servers do not know the setting (ALTER ROLE SET would fail
 * the whole issue): there the grant is issued without it, as before.
 */
function connectionCheck(role: string): string {
  return `DO $stint$ BEGIN IF current_setting('server_version_num')::int >= 140000 THEN `
    + `ALTER ROLE ${role} SET client_connection_check_interval = ${literal(CLIENT_CHECK_INTERVAL)}; END IF; END $stint$`;
}

const UNDEFINED_OBJECT = '42704';
/** Arbitrary constant key for the advisory lock that serialises privilege changes ("stint acl"). */
const ACL_LOCK_KEY = '8319390334780007276';

function isConcurrencyConflict(error: unknown): boolean {
  const code = pgCode(error);
  return code === '40001' || code === '40P01' || (code === 'XX000' && /concurrently/.test((error as Error).message));
}

function pgCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function createPostgresProvider(options: PostgresProviderOptions): PostgresCredentialProvider {
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  const terminateBudgetMs = options.terminateBudgetMs ?? 10_000;
  const pools = new Map<string, pg.Pool>();
  let closed = false;

  function resource(resourceId: string): PostgresResourceConfig {
    const config = Object.hasOwn(options.resources, resourceId) ? options.resources[resourceId] : undefined;
    if (!config) throw new CredentialError('unknown_resource', `no PostgreSQL resource "${resourceId}" is configured`);
    return config;
  }

  function pool(adminUrl: string, database: string): pg.Pool {
    const url = new URL(adminUrl);
    url.pathname = `/${encodeURIComponent(database)}`;
    const key = url.toString();
    let existing = pools.get(key);
    if (!existing) {
      existing = new pg.Pool({
        connectionString: key,
        max: options.poolSize ?? 4,
        idleTimeoutMillis: 30_000,
        connectionTimeoutMillis: options.connectTimeoutMs ?? 3_000,
        // A stuck lock must not hold a revoke forever; the lifecycle retries.
        statement_timeout: 15_000,
        application_name: 'stint-credentials',
      });
      // An idle client whose server went away emits 'error' on the pool; without a listener Node would crash.
      existing.on('error', (error) => logger?.warn({ err: { code: pgCode(error), message: error.message }, database }, 'idle admin connection lost'));
      pools.set(key, existing);
    }
    return existing;
  }

  async function withClient<T>(config: PostgresResourceConfig, database: string, what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (closed) throw new CredentialError('unavailable', 'the credential provider is closed');
    let client: pg.PoolClient;
    try {
      client = await pool(config.adminUrl, database).connect();
    } catch (error) {
      throw fromPgError(error, what);
    }
    let broken = false;
    try {
      return await fn(client);
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      // A client that failed mid-transaction or lost its socket is not put back.
      client.release(broken);
    }
  }

  /**
   * Run statements in one transaction that changes privileges. GRANT/REVOKE/DROP OWNED rewrite the ACL of shared
   * catalog rows (e.g. schema public's); two such transactions at once fail with "tuple concurrently updated".
   * A transaction-scoped advisory lock serialises them, across server instances too; a conflict that slips
   * through (a template touching another row, a deadlock) is retried a few times here before it surfaces.
   */
  async function aclTransaction(client: pg.PoolClient, statements: string[]): Promise<void> {
    // Sent as one simple-protocol string: one round trip for the whole transaction.
    const script = ['BEGIN', `SELECT pg_advisory_xact_lock(${ACL_LOCK_KEY})`, ...statements, 'COMMIT'].join(';\n');
    for (let attempt = 1; ; attempt += 1) {
      try {
        await client.query(script);
        return;
      } catch (error) {
        // A failed statement leaves the explicit transaction open (aborted): end it before reuse or retry.
        await client.query('ROLLBACK').catch(() => undefined);
        if (attempt >= 3 || !isConcurrencyConflict(error)) throw error;
        await sleep(10 * attempt);
      }
    }
  }

  /** One statement (or several, in one string) on an admin connection held only for it. */
  async function adminQuery(config: PostgresResourceConfig, statement: string, what: string): Promise<pg.QueryResult | pg.QueryResult[]> {
    if (closed) throw new CredentialError('unavailable', 'the credential provider is closed');
    try {
      return await pool(config.adminUrl, config.database).query(statement) as pg.QueryResult | pg.QueryResult[];
    } catch (error) {
      throw fromPgError(error, what);
    }
  }

  /** The statement that sends every backend of the role a termination signal, one row per backend. */
  const sessionsOf = (username: string) => `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${literal(username)}`;

  /**
   * Watch until the role's backends have exited, terminating again on each pass (a login that passed authentication
   * just before the change that stopped logins may only now show up). Each pass takes an admin connection only for
   * its statement, so many waits at once (a burst of deadlines) do not hold the small pool between polls.
   * (pg_terminate_backend(pid, timeout) would wait too, but it sleeps in 100 ms steps per backend.)
   */
  async function waitForSessionsToEnd(config: PostgresResourceConfig, username: string, live: number, what: string): Promise<void> {
    const deadline = Date.now() + terminateBudgetMs;
    let pause = 2;
    while (live > 0) {
      await sleep(pause);
      pause = Math.min(10, pause * 2);
      live = ((await adminQuery(config, sessionsOf(username), what)) as pg.QueryResult).rowCount ?? 0;
      if (live > 0 && Date.now() > deadline) {
        throw new CredentialError('sessions_remain', `${live} session(s) of the role did not end`);
      }
    }
  }

  function checkRoleName(username: string): void {
    // Revoke and extend act only on roles this provider created: a corrupted store must not drop a real role.
    if (!ROLE_NAME.test(username)) throw new CredentialError('invalid_input', 'not a role name created by Stint');
  }

  return {
    kind: 'postgres',

    async isolationProblems(): Promise<string[]> {
      const problems: string[] = [];
      // Every database on each managed server, not only the configured ones: PUBLIC's CONNECT on any of them is a
      // door for every grant's role (a staging grant logging in to production on a shared cluster).
      const servers = new Map<string, PostgresResourceConfig>();
      for (const config of Object.values(options.resources)) servers.set(new URL(config.adminUrl).host, config);
      for (const [host, config] of servers) {
        try {
          const open = await withClient(config, config.database, 'check database privileges', async (client) =>
            (await client.query<{ datname: string }>("select datname from pg_database where datallowconn and not datistemplate and has_database_privilege('public', datname, 'CONNECT') order by datname")).rows);
          for (const { datname } of open) {
            problems.push(`PostgreSQL at ${host}: every role may connect to database ${datname} (CONNECT is granted to PUBLIC), so a grant for one database can log in to it. Fix: REVOKE CONNECT ON DATABASE ${ident(datname)} FROM PUBLIC; (and GRANT CONNECT to the roles that need it).`);
          }
        } catch (error) {
          problems.push(`PostgreSQL at ${host}: could not check database privileges (${error instanceof Error ? error.message : String(error)}).`);
        }
      }
      return problems;
    },

    async issue(input: IssueInput): Promise<IssuedCredential> {
      const config = resource(input.resourceId);
      const templates = Object.hasOwn(config.levels, input.level) ? config.levels[input.level] : undefined;
      if (!templates) throw new CredentialError('unknown_level', `resource "${input.resourceId}" has no access level "${input.level}"`);
      if (!(input.endsAt > clock.now())) throw new CredentialError('invalid_input', 'the grant has already ended');
      const username = randomRoleName();
      const password = randomPassword();
      const verifier = await scramVerifier(password);
      const limit = Math.max(1, Math.trunc(config.connectionLimit ?? 10));
      const role = ident(username);
      // One transaction: a failing template leaves no half-privileged role behind.
      const statements = [
        `CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS `
          + `PASSWORD ${literal(verifier)} VALID UNTIL ${literal(new Date(input.endsAt).toISOString())} CONNECTION LIMIT ${limit}`,
        // The grant id on the role lets an operator (or an orphan sweep) tie a stray role back to its grant.
        `COMMENT ON ROLE ${role} IS ${literal(`stint grant ${input.grantId}`)}`,
        connectionCheck(role),
        ...templates.map((template) => renderTemplate(template, { role: username, database: config.database })),
      ];
      await withClient(config, config.database, 'create role', async (client) => {
        try {
          await aclTransaction(client, statements);
        } catch (error) {
          throw fromPgError(error, 'create role');
        }
      });
      logger?.info({ grantId: input.grantId, resourceId: input.resourceId, level: input.level, role: username, endsAt: new Date(input.endsAt).toISOString() }, 'database role created');
      return { username, password };
    },

    async extend(input): Promise<void> {
      const config = resource(input.resourceId);
      checkRoleName(input.username);
      await withClient(config, config.database, 'extend role', async (client) => {
        try {
          await client.query(`ALTER ROLE ${ident(input.username)} VALID UNTIL ${literal(new Date(input.endsAt).toISOString())}`);
        } catch (error) {
          if (pgCode(error) === UNDEFINED_OBJECT) throw new CredentialError('not_found', 'the grant\'s role no longer exists', error);
          throw fromPgError(error, 'extend role');
        }
      });
      logger?.info({ grantId: input.grantId, role: input.username, endsAt: new Date(input.endsAt).toISOString() }, 'database role extended');
    },

    async rotate(input): Promise<{ password: string }> {
      const config = resource(input.resourceId);
      checkRoleName(input.username);
      const password = randomPassword();
      const verifier = await scramVerifier(password);
      // The new verifier and a termination signal to every live session, in one round trip: from the commit on, the
      // old password logs in nowhere, and the sessions it opened end below. A login with the old password that
      // passed authentication just before the commit shows up on a later pass of the wait.
      let live: number;
      try {
        const results = (await adminQuery(config, `ALTER ROLE ${ident(input.username)} PASSWORD ${literal(verifier)}; ${sessionsOf(input.username)}`, 'rotate password')) as pg.QueryResult[];
        live = results[1]?.rowCount ?? 0;
      } catch (error) {
        if (pgCode((error as CredentialError).cause) === UNDEFINED_OBJECT) throw new CredentialError('not_found', 'the grant\'s role no longer exists', error);
        throw error;
      }
      await waitForSessionsToEnd(config, input.username, live, 'rotate password');
      logger?.info({ grantId: input.grantId, role: input.username, ended: live }, 'database role password rotated');
      return { password };
    },

    async revoke(input): Promise<void> {
      const config = resource(input.resourceId);
      checkRoleName(input.username);
      const role = ident(input.username);
      const started = Date.now();
      // 1. No new logins, and a termination signal to every live session, in one round trip (a burst of
      //    deadlines on a busy database is bound by round trips). The two statements commit together; a login
      //    that slips in before the commit is caught by the next pass of the wait below.
      let live: number;
      try {
        const results = (await adminQuery(config, `ALTER ROLE ${role} NOLOGIN; ${sessionsOf(input.username)}`, 'revoke role')) as pg.QueryResult[];
        live = results[1]?.rowCount ?? 0;
      } catch (error) {
        if (pgCode((error as CredentialError).cause) === UNDEFINED_OBJECT) {
          logger?.info({ grantId: input.grantId, role: input.username }, 'database role already gone');
          return; // revoke is idempotent
        }
        throw error;
      }
      // 2. Watch until the backends have exited.
      await waitForSessionsToEnd(config, input.username, live, 'revoke role');
      // 3. Objects the role created are kept (handed to the admin) and its privileges go, in every database it may
      //    have touched (DROP OWNED also clears privileges on shared objects: databases, tablespaces); then
      //    4. the role itself, in the same transaction as the last database's cleanup.
      const databases = [...(config.extraDatabases ?? []).filter((d) => d !== config.database), config.database];
      for (const database of databases) {
        const last = database === config.database;
        await withClient(config, database, 'drop role', async (client) => {
          try {
            await aclTransaction(client, [
              `REASSIGN OWNED BY ${role} TO CURRENT_USER`,
              `DROP OWNED BY ${role}`,
              ...(last ? [`DROP ROLE ${role}`] : []),
            ]);
          } catch (error) {
            if (pgCode(error) === UNDEFINED_OBJECT) return; // dropped meanwhile by a concurrent attempt
            throw fromPgError(error, 'drop role');
          }
        });
      }
      logger?.info({ grantId: input.grantId, role: input.username, ms: Date.now() - started }, 'database role revoked');
    },

    async roleExists(input): Promise<boolean> {
      const config = resource(input.resourceId);
      return withClient(config, config.database, 'look up role', async (client) => {
        try {
          const { rows } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [input.username]);
          return rows.length > 0;
        } catch (error) {
          throw fromPgError(error, 'look up role');
        }
      });
    },

    async close(): Promise<void> {
      closed = true;
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.end().catch(() => undefined)));
    },
  };
}
