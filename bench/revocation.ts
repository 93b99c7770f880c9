// Revocation latency: from a grant's deadline to "the role's backends are gone and the role is dropped", over
// ≥ 50 grants that each hold live sessions (one idle, one running a long query). One exact timer per deadline, as
// the lifecycle schedules them. Two shapes: deadlines spread out (revoke_*: the usual case) and all at the same
// instant (burst_*: the worst case — 100 backends exiting at once is bound by the database host's CPU; on the
// 2-core CI machine PostgreSQL alone needs ~0.5 s just for the exits). Also times the bastion key command (sh + curl), which sshd runs twice
// per login, and (revoke_*_ssh) the same deadline → no live session for SSH target hosts (bench/revocation-ssh.ts).
// The same spread deadlines for MariaDB grants too (revoke_p99_ms_mysql: lock, kill every connection, drop; the
// deadline → no live session), when MariaDB is installed.
//   npm run bench -- revocation [--quick]
import pg from 'pg';
import Fastify from 'fastify';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { startPostgres, type PostgresInstance } from '../dev/postgres';
import { serviceDir } from '../dev/run-dir';
import { createPostgresProvider, type PostgresCredentialProvider } from '../server/targets/postgres/provider';
import { bastionRoutes } from '../server/bastion/routes';
import { createDbSessionStore } from '../server/bastion/sessions';
import { openStore } from '../server/storage/db';
import { MemoryLookup } from '../dev/memory-lookup';
import { generateGrantKey } from '../agent/core/vault';
import { sshRevocationLatencies } from './revocation-ssh';
import mysql from 'mysql2/promise';
import { mariadbInstalled, startMariadb } from '../dev/mariadb';
import { createMariadbProvider } from '../server/targets/mariadb/provider';
import type { CredentialProvider } from '../server/credentials/provider';

interface Live {
  grantId: string;
  username: string;
  clients: pg.Client[];
  running: Promise<unknown>;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const round = (n: number) => Math.round(n * 10) / 10;

async function openGrants(db: PostgresInstance, provider: PostgresCredentialProvider, count: number, prefix: string): Promise<Live[]> {
  const live: Live[] = [];
  for (let i = 0; i < count; i += 1) {
    const grantId = `${prefix}-${i}`;
    const cred = await provider.issue({ grantId, resourceId: 'bench', level: 'read', endsAt: Date.now() + 3_600_000 });
    const clients: pg.Client[] = [];
    for (let j = 0; j < 2; j += 1) {
      const client = new pg.Client({ host: db.host, port: db.port, database: db.database, user: cred.username, password: cred.password });
      client.on('error', () => undefined);
      await client.connect();
      clients.push(client);
    }
    const running = clients[0]!.query('select pg_sleep(600)').catch(() => undefined);
    live.push({ grantId, username: cred.username, clients, running });
  }
  return live;
}

/** Schedule each grant's revoke at its own deadline; resolve with deadline → revoked latencies. */
async function revokeAtDeadlines(provider: CredentialProvider, live: Live[], deadlines: number[]): Promise<number[]> {
  return Promise.all(live.map((grant, i) => new Promise<number>((resolve, reject) => {
    const deadline = deadlines[i]!;
    setTimeout(() => {
      provider.revoke({ grantId: grant.grantId, resourceId: 'bench', username: grant.username })
        .then(() => resolve(performance.timeOrigin + performance.now() - deadline), reject);
    }, Math.max(0, deadline - Date.now()));
  })));
}

async function verifyGone(db: PostgresInstance, live: Live[]): Promise<void> {
  const names = live.map((l) => l.username);
  const roles = await db.query('select count(*)::int as n from pg_roles where rolname = any($1)', [names]);
  const sessions = await db.query('select count(*)::int as n from pg_stat_activity where usename = any($1)', [names]);
  if (roles[0].n !== 0 || sessions[0].n !== 0) throw new Error(`revocation incomplete: ${roles[0].n} roles, ${sessions[0].n} sessions left`);
  await Promise.all(live.map((l) => l.running));
  await Promise.all(live.flatMap((l) => l.clients.map((c) => c.end().catch(() => undefined))));
}

async function keyCommandLatency(runs: number): Promise<{ p50: number; p99: number }> {
  const lookup = new MemoryLookup();
  // The agent's own key generator, as for a real grant.
  const key = { keyBase64: generateGrantKey('stint-bench').publicKey.split(' ')[1]! };
  lookup.add({ grantId: 'bench', bastionId: 'b', owner: 'alice', keyBase64: key.keyBase64, endsAt: Date.now() + 3_600_000, target: { host: '127.0.0.1', port: 5432 } });
  const sessionDb = openStore('sqlite::memory:');
  await sessionDb.migrate();
  const app = Fastify();
  await app.register(bastionRoutes({ lookup, bastions: { b: { token: 'bench-token' } }, sessions: createDbSessionStore(sessionDb.db) }), { prefix: '/v1/bastion' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const config = join(serviceDir('bench-keys'), 'bastion.env');
  writeFileSync(config, `STINT_SERVER_URL=http://127.0.0.1:${(app.server.address() as AddressInfo).port}\nSTINT_BASTION_TOKEN=bench-token\n`);
  const program = join(import.meta.dirname, '../server/bastion/authorized-keys.sh');
  const times: number[] = [];
  try {
    for (let i = 0; i < runs; i += 1) {
      const started = performance.now();
      const out = await new Promise<string>((resolve) => {
        execFile('/bin/sh', [program, '-f', config, 'stintbastion', 'ssh-ed25519', key.keyBase64], { env: {} }, (_e, stdout) => resolve(stdout));
      });
      times.push(performance.now() - started);
      if (!out.startsWith('restrict,')) throw new Error('key command printed no key line');
    }
  } finally {
    await app.close();
    await sessionDb.close();
  }
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

/**
 * MariaDB: `count` grants, each with an idle connection and one in a long SLEEP, ended at deadlines 100 ms apart; the
 * revoke returns once no connection of the account is left (and it is dropped). Latency from each deadline.
 */
async function mariadbRevocation(count: number): Promise<{ p50: number; p99: number }> {
  const db = await startMariadb({ database: 'bench' });
  const provider = createMariadbProvider({ resources: { bench: { adminUrl: db.adminUrl(''), database: 'bench', accountHost: '127.0.0.1', connectionLimit: 3, levels: { read: ['SELECT'] } } } });
  const connections: mysql.Connection[] = [];
  try {
    const live: Live[] = [];
    for (let i = 0; i < count; i += 1) {
      const grantId = `mysql-${i}`;
      const cred = await provider.issue({ grantId, resourceId: 'bench', level: 'read', endsAt: Date.now() + 3_600_000 });
      const pair = await Promise.all([0, 1].map(() => mysql.createConnection({ host: '127.0.0.1', port: db.port, user: cred.username, password: cred.password, database: 'bench' })));
      for (const c of pair) c.on('error', () => undefined);
      connections.push(...pair);
      live.push({ grantId, username: cred.username, clients: [], running: pair[0]!.query('SELECT SLEEP(600)').catch(() => undefined) });
    }
    const start = Date.now() + 300;
    const ms = await revokeAtDeadlines(provider, live, live.map((_, i) => start + i * 100));
    const left = await db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER LIKE 'stint\\_g\\_%'`);
    const users = await db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM mysql.user WHERE User LIKE 'stint\\_g\\_%'`);
    if (Number(left[0]!.n) !== 0 || Number(users[0]!.n) !== 0) throw new Error(`MariaDB revocation incomplete: ${users[0]!.n} accounts, ${left[0]!.n} connections left`);
    await Promise.all(live.map((l) => l.running));
    return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
  } finally {
    await Promise.all(connections.map((c) => c.end().catch(() => undefined)));
    await provider.close();
    await db.stop();
  }
}

export default async function revocation(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const count = opts.quick ? 50 : 120;
  const db = await startPostgres();
  const provider = createPostgresProvider({
    poolSize: 8,
    resources: {
      bench: {
        adminUrl: db.adminUrl(), database: db.database, connectionLimit: 3,
        levels: { read: ['GRANT USAGE ON SCHEMA public TO {{role}}'] },
      },
    },
  });
  try {
    // Spread: deadlines 100 ms apart (10 grant ends per second, far above a real deployment's rate), all grants'
    // sessions live until their own deadline.
    const spread = await openGrants(db, provider, count, 'spread');
    const start = Date.now() + 300;
    const spreadMs = await revokeAtDeadlines(provider, spread, spread.map((_, i) => start + i * 100));
    await verifyGone(db, spread);

    // Burst: every deadline at the same instant.
    const burst = await openGrants(db, provider, count, 'burst');
    const instant = Date.now() + 300;
    const burstMs = await revokeAtDeadlines(provider, burst, burst.map(() => instant));
    await verifyGone(db, burst);

    const keys = await keyCommandLatency(opts.quick ? 20 : 100);
    const sshCount = opts.quick ? 20 : 50;
    const sshMs = await sshRevocationLatencies(sshCount);
    const mysqlMs = mariadbInstalled() ? await mariadbRevocation(count) : undefined;
    return {
      grants: count,
      sessions_per_grant: 2,
      revoke_p50_ms: round(percentile(spreadMs, 50)),
      revoke_p99_ms: round(percentile(spreadMs, 99)),
      burst_revoke_p50_ms: round(percentile(burstMs, 50)),
      burst_revoke_p99_ms: round(percentile(burstMs, 99)),
      key_command_p50_ms: round(keys.p50),
      key_command_p99_ms: round(keys.p99),
      ssh_grants: sshCount,
      revoke_p50_ms_ssh: round(percentile(sshMs, 50)),
      revoke_p99_ms_ssh: round(percentile(sshMs, 99)),
      ...(mysqlMs ? { revoke_p50_ms_mysql: round(mysqlMs.p50), revoke_p99_ms_mysql: round(mysqlMs.p99) } : { revoke_p99_ms_mysql: 'skipped_no_mariadb' }),
    };
  } finally {
    await provider.close();
    await db.stop();
  }
}
