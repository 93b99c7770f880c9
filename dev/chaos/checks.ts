// What the chaos run checks after a grant's deadline, each from outside the grant server and the agent, the way
// someone holding a copy of the grant's credentials would try them:
//   login    — a real password login to the database as the grant's role
//   backends — the role's backends in pg_stat_activity (a session opened before the deadline and still running)
//   bastion  — a real ssh2 login to the bastion with the grant's private key
//   keychain — the agent's keychain item for the grant, read through the agent's own store (KeytarSecretStore)
// Each answers alive / dead, or unknown when the database is down (nothing can be said, nor used, then).
import pg from 'pg';
import { createRequire } from 'node:module';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { GRANT_ACCOUNT_PREFIX } from '../../agent/core/vault';
import type { PostgresInstance } from '../postgres';

export type Verdict = 'alive' | 'dead' | 'unknown';

type Ssh2 = typeof import('ssh2');
const { Client: SshClient } = createRequire(import.meta.url)('ssh2') as Ssh2;

/** Whether the role's password still opens a session (a refused password or role is dead; no database is unknown). */
export async function loginWorks(db: PostgresInstance, user: string, password: string): Promise<Verdict> {
  const client = new pg.Client({ host: db.host, port: db.port, database: db.database, user, password, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.end().catch(() => undefined);
    return 'alive';
  } catch (error) {
    const code = (error as { code?: string }).code;
    // 28P01 password failed / 28000 role may not log in (NOLOGIN, expired) / 3D000 and 42704 gone.
    if (code && /^(28|3D|42)/.test(code)) return 'dead';
    // 57P03: starting up after a crash; no connection at all: down.
    return 'unknown';
  }
}

/** How many backends of the role are still running, asked as the admin (unknown while the database is down). */
export async function backendsAlive(admin: pg.Pool, user: string): Promise<Verdict> {
  try {
    const { rows } = await admin.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where usename = $1', [user]);
    return rows[0]!.n > 0 ? 'alive' : 'dead';
  } catch {
    return 'unknown';
  }
}

/** Whether the bastion still lets this key in (a real SSH login; the bastion down answers unknown). */
export function bastionAccepts(bastion: { host: string; port: number; user: string }, privateKey: string): Promise<Verdict> {
  return new Promise((resolve) => {
    const client = new SshClient();
    let settled = false;
    const done = (verdict: Verdict) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end();
      resolve(verdict);
    };
    // The key command fails closed within its own 2 s timeout: a login still undecided after that is not passing.
    const timer = setTimeout(() => done('unknown'), 8_000);
    client.on('ready', () => done('alive'));
    // Refused by the key check, or no bastion listening at all (killed, restarting): the key does not pass.
    client.on('error', (error: Error & { level?: string; code?: string }) => done(error.level === 'client-authentication' || error.code === 'ECONNREFUSED' ? 'dead' : 'unknown'));
    client.connect({ host: bastion.host, port: bastion.port, username: bastion.user, privateKey, readyTimeout: 7_000 });
  });
}

/** Whether the agent's keychain still holds an item of this grant. */
export async function keychainHolds(service: string, grantId: string): Promise<Verdict> {
  const held = await new KeytarSecretStore(service).get(GRANT_ACCOUNT_PREFIX + grantId);
  return held === undefined ? 'dead' : 'alive';
}

/** The grant ids whose items are in the agent's keychain. */
export async function keychainGrants(service: string): Promise<string[]> {
  const accounts = await new KeytarSecretStore(service).list();
  return accounts.filter((a) => a.startsWith(GRANT_ACCOUNT_PREFIX)).map((a) => a.slice(GRANT_ACCOUNT_PREFIX.length));
}
