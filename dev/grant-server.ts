// The grant server for tests and benchmarks: in-process on a free port (startGrantServer), or as a child process running the real
// CLI (spawnGrantServer) for restart tests. Storage is a SQLite file in a service dir the run sweeps, or, with
// STINT_TEST_STORAGE=postgres and STINT_TEST_PG_URL (an admin URL, see test/scaleout/pg-env.ts), a PostgreSQL
// database of its own per data dir (so a restart on the same dir finds its data again).
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { FastifyInstance } from 'fastify';
import { buildServer, type BuildServerOptions, type GrantServer } from '../server/app';
import { loadConfig, parseConfig, validateConfig, type ServerConfig, type ServerConfigInput } from '../server/config';
import type { Lifecycle } from '../server/lifecycle/service';
import type { Clock } from '../shared/domain/clock';
import type { CredentialProvider } from '../server/credentials/provider';
import { freePort } from './ports';
import { serviceDir, waitFor } from './run-dir';
import { startProcess, type Started } from './process';

export const BASTION_TOKEN = 'test-bastion-token-0123456789abcdef';

/** A catalog that exercises every policy feature with the dev IdP's demo users. */
export function testConfig(idp: { issuer: string; audience: string }, storageUrl: string, port = 0): ServerConfigInput {
  return {
    // Rate limits off: these servers take load generators and burst tests from a handful of users. The limits
    // themselves are tested in test/security/rate-limits.test.ts; the demo (and the journeys on it) keeps the defaults.
    server: { url: `http://127.0.0.1:${port}`, listen: { host: '127.0.0.1', port }, heartbeatSeconds: 15, rateLimits: { read: 0, write: 0, proof: 0, public: 0 } },
    identity: { issuer: idp.issuer, audience: idp.audience, groupsClaim: 'groups', adminGroups: ['admins'], dev: true },
    storage: { url: storageUrl },
    bastions: { main: { host: '127.0.0.1', port: 22, user: 'stintbastion', token: BASTION_TOKEN, hostKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTestsOnly host'] } },
    resources: [
      {
        id: 'staging-users', name: 'Users (staging)', environment: 'staging', sensitivity: 'low', kind: 'postgres', bastion: 'main',
        target: { host: '127.0.0.1', port: 5432, database: 'users' }, admin: { url: 'postgres://admin:pw@127.0.0.1:5432/users' },
        levels: { read: ['GRANT pg_read_all_data TO {{role}}'] }, policy: 'staging-self-service',
      },
      {
        id: 'prod-orders', name: 'Orders (production)', environment: 'production', sensitivity: 'high', kind: 'postgres', bastion: 'main',
        target: { host: '10.1.2.3', port: 5432, database: 'orders' }, admin: { url: 'env:ORDERS_ADMIN_URL' },
        levels: { read: ['GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{role}}'], write: ['GRANT INSERT ON ALL TABLES IN SCHEMA public TO {{role}}'] },
        policy: 'production-db',
      },
      {
        id: 'finance-ledger', name: 'Ledger (finance)', environment: 'production', sensitivity: 'medium', kind: 'postgres', bastion: 'main',
        target: { host: '10.1.2.4', port: 5432, database: 'ledger' }, admin: { url: 'postgres://admin:pw@10.1.2.4:5432/ledger' },
        levels: { read: ['GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{role}}'] }, policy: 'finance-only',
      },
      {
        id: 'quick-orders', name: 'Orders (short-lived, for timing tests)', environment: 'production', sensitivity: 'medium', kind: 'postgres', bastion: 'main',
        target: { host: '10.1.2.5', port: 5432, database: 'orders' }, admin: { url: 'postgres://admin:pw@10.1.2.5:5432/orders' },
        levels: { read: ['GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{role}}'] }, policy: 'short-lived',
      },
      {
        // A MariaDB resource (only finance may ask for it, so the other users' catalogs stay as they were); tests
        // that reach a real one replace target and admin (dev/mariadb.ts).
        id: 'shop-mariadb', name: 'Shop (MariaDB)', environment: 'production', sensitivity: 'medium', kind: 'mariadb', bastion: 'main',
        target: { host: '10.1.2.6', port: 3306, database: 'shop' }, accountHost: '10.1.0.1', admin: { url: 'mysql://admin:pw@10.1.2.6:3306/' },
        levels: { read: ['SELECT'], write: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] }, policy: 'finance-only',
      },
    ],
    policies: {
      'short-lived': {
        requesters: ['engineers'],
        duration: { default: '2s', max: '3s' },
        requestTtl: '1s',
        activationWindow: '2s',
        approvals: [{ from: 'dba', count: 1 }],
        extend: { maxTotal: '5s', reapproval: false },
      },
      'staging-self-service': {
        requesters: ['engineers', 'contractors'],
        duration: { default: '2h', max: '8h' },
        reason: 'optional',
        autoApprove: { when: { riskBelow: 30 } },
        approvals: [{ from: 'dba', count: 1 }], // above the threshold a DBA decides: no request waits for nobody
        extend: { maxTotal: '12h', reapproval: false },
      },
      'production-db': {
        requesters: ['engineers'],
        duration: { default: '1h', max: '4h' },
        reason: 'required',
        ticket: { pattern: '^(INC|CHG)-[0-9]+$', required: false },
        requestTtl: '30m',
        activationWindow: '15m',
        approvals: [{ from: 'dba', count: 1 }, { from: 'sre-leads', count: 1 }],
        extend: { maxTotal: '8h', reapproval: true },
        breakGlass: { groups: ['sre-oncall'], reason: 'required' },
      },
      'finance-only': {
        requesters: ['finance'],
        duration: { default: '1h', max: '2h' },
        approvals: [{ from: 'finance-leads', count: 1 }],
      },
    },
  };
}

/** Deep merge for config overrides: objects merge, arrays and scalars replace. */
export function merge<T>(base: T, override: unknown): T {
  if (override === undefined) return base;
  if (typeof base !== 'object' || base === null || Array.isArray(base) || typeof override !== 'object' || override === null || Array.isArray(override)) return override as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(override as Record<string, unknown>)) out[k] = merge(out[k], v);
  return out as T;
}

export interface StartOptions {
  idp: { issuer: string; audience: string };
  configYaml?: string;
  config?: ServerConfigInput;
  overrides?: Record<string, unknown>;
  dataDir?: string;
  credentials?: CredentialProvider;
  stepUp?: BuildServerOptions['stepUp'];
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  sweepEveryMs?: number;
  /** Replace the server's event bus (buildServer's `bus`). */
  bus?: BuildServerOptions['bus'];
  /** Listen here (default: a free port), e.g. because a `config` given whole names its own URL. */
  port?: number;
  /** Read the config from this file, which the server then reloads from (watched, SIGHUP, admin API). */
  configPath?: string;
  /** The reload's debounce, ms (buildServer's configDebounceMs). */
  configDebounceMs?: number;
}

export interface RunningGrantServer {
  url: string;
  app: FastifyInstance;
  lifecycle: Lifecycle;
  server: GrantServer;
  config: ServerConfig;
  dataDir: string;
  close: () => Promise<void>;
}

/** The default storage URL for a server on this data dir: SQLite, or a fresh PostgreSQL database (see top). */
export async function defaultStorageUrl(dataDir: string): Promise<string> {
  const admin = process.env.STINT_TEST_PG_URL;
  if (process.env.STINT_TEST_STORAGE !== 'postgres') return `sqlite:${join(dataDir, 'stint.db')}`;
  if (!admin) throw new Error('STINT_TEST_STORAGE=postgres needs STINT_TEST_PG_URL (start one with usePostgresStorage() from test/scaleout/pg-env)');
  const name = `stint_${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

async function resolveConfig(options: StartOptions, dataDir: string, port: number): Promise<ServerConfig> {
  if (options.configPath) return loadConfig(options.configPath);
  if (options.configYaml) return parseConfig(options.configYaml, 'test config');
  const base = options.config ?? testConfig(options.idp, await defaultStorageUrl(dataDir), port);
  return validateConfig(merge(base, options.overrides), 'test config');
}

export async function startGrantServer(options: StartOptions): Promise<RunningGrantServer> {
  const dataDir = options.dataDir ?? serviceDir('grant-server');
  const port = options.port ?? await freePort();
  const config = await resolveConfig(options, dataDir, port);
  const server = await buildServer({
    config, credentials: options.credentials, stepUp: options.stepUp, clock: options.clock, sweepEveryMs: options.sweepEveryMs, bus: options.bus,
    configPath: options.configPath, configDebounceMs: options.configDebounceMs,
    env: { ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders', ...(options.env ?? {}) },
  });
  await server.app.listen({ host: '127.0.0.1', port });
  return { url: `http://127.0.0.1:${port}`, app: server.app, lifecycle: server.lifecycle, server, config, dataDir, close: () => server.close() };
}

export interface SpawnedGrantServer {
  url: string;
  configPath: string;
  dataDir: string;
  proc: Started;
  stop: (signal?: NodeJS.Signals) => Promise<void>;
}

/** Run `stint-server serve` in a child process (tsx), on a fixed port so a restart keeps its URL. */
export async function spawnGrantServer(options: StartOptions): Promise<SpawnedGrantServer> {
  const dataDir = options.dataDir ?? serviceDir('grant-server');
  const port = options.port ?? await freePort();
  const input = options.configYaml ? undefined : merge(options.config ?? testConfig(options.idp, await defaultStorageUrl(dataDir), port), options.overrides);
  const yaml = options.configYaml ?? stringify(input);
  validateConfig(input ?? parseConfig(yaml), 'spawned config');
  const configPath = join(dataDir, 'stint-server.yaml');
  writeFileSync(configPath, yaml);
  const root = resolve(import.meta.dirname, '..');
  const proc = startProcess(process.execPath, ['--import', 'tsx', join(root, 'server/main.ts'), 'serve', '--config', configPath], {
    cwd: root,
    env: { ...process.env, ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders', STINT_LOG_LEVEL: 'warn', ...(options.env ?? {}) },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the grant server to answer /healthz', async () => {
    if (proc.child.exitCode !== null) throw new Error(`stint-server exited ${proc.child.exitCode}: ${proc.output()}`);
    const response = await fetch(`${url}/healthz`).catch(() => undefined);
    return response?.ok ? true : undefined;
  }, 30_000, 100);
  return { url, configPath, dataDir, proc, stop: (signal) => proc.stop(signal) };
}
