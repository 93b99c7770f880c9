// End to end on real parts: stock OpenSSH as the bastion with Stint's key command, the bastion routes in a Fastify
// app over a grant lookup the test controls, the kill companion, and PostgreSQL with the per-grant role provider.
// This is the issue's acceptance: the tunnel works during a grant, only to the grant's target, never as a shell,
// and the end of the grant ends everything — the running query, new logins, new SSH logins and the live connection.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { writeFileSync, existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { startSshd, type SshdInstance } from '../../dev/sshd';
import { serviceDir } from '../../dev/run-dir';
import { freePort } from '../../dev/ports';
import { bastionRoutes } from '../../server/bastion/routes';
import { createDbSessionStore } from '../../server/bastion/sessions';
import { openStore, type Store } from '../../server/storage/db';
import { startCompanion, type Companion } from '../../server/bastion/companion';
import type { EndedEvent } from '../../server/bastion/end-feed';
import type { SessionsEndedReport } from '../../server/bastion/session-reports';
import { createPostgresProvider, type PostgresCredentialProvider } from '../../server/targets/postgres/provider';
import { MemoryLookup } from '../../dev/memory-lookup';
import type { ReportedAudit } from '../../server/lifecycle/audit';
import {
  installKeysCommand, newClientKey, sshConnect, forwardOut, localTunnel, sshExec,
  type InstalledKeysCommand, type ClientKey,
} from './helpers';

const KEY_PROGRAM = join(import.meta.dirname, '../../server/bastion/authorized-keys.sh');
const TOKEN = 'bastion-token-0123456789abcdef';

let db: PostgresInstance;
let provider: PostgresCredentialProvider;
let app: FastifyInstance;
let sessionDb: Store;
let serverUrl: string;
let installed: InstalledKeysCommand;
let sshd: SshdInstance;
let companion: Companion;
let other: Server;
let otherPort: number;
/** A service behind the bastion that counts what it receives and sends DOWN bytes to each connection. */
let bulk: Server;
let bulkPort: number;
const UP = 5_000_000;
const DOWN = 3_000_000;
const bulkReceived: number[] = [];
const audited: ReportedAudit[] = [];
const lookup = Object.assign(new MemoryLookup(), { auditReported: async (rows: readonly ReportedAudit[]) => { audited.push(...rows); } });
const handled: Array<{ event: EndedEvent; killed: number[] }> = [];
const reported: SessionsEndedReport[] = [];

beforeAll(async () => {
  db = await startPostgres();
  await db.query('create table orders (id int primary key, item text)');
  await db.query("insert into orders values (1, 'book')");
  provider = createPostgresProvider({
    resources: {
      orders: {
        adminUrl: db.adminUrl(), database: db.database,
        levels: { read: ['GRANT USAGE ON SCHEMA public TO {{role}}', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{role}}'] },
      },
    },
  });
  // Another service the bastion itself may reach (sshd's global PermitOpen allows it): only the key line forbids it.
  other = createServer((socket) => socket.end('other service\n'));
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  otherPort = (other.address() as AddressInfo).port;
  bulk = createServer((socket) => {
    const index = bulkReceived.push(0) - 1;
    socket.on('data', (chunk) => { bulkReceived[index]! += chunk.length; });
    socket.on('error', () => undefined);
    socket.write(Buffer.alloc(DOWN, 7));
  });
  await new Promise<void>((resolve) => bulk.listen(0, '127.0.0.1', resolve));
  bulkPort = (bulk.address() as AddressInfo).port;

  sessionDb = openStore('sqlite::memory:');
  await sessionDb.migrate();
  app = Fastify();
  await app.register(bastionRoutes({ lookup, bastions: { main: { token: TOKEN, users: ['stintbastion'] } }, heartbeatMs: 1_000, sessions: createDbSessionStore(sessionDb.db) }), { prefix: '/v1/bastion' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  serverUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  installed = installKeysCommand(KEY_PROGRAM);
  installed.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: TOKEN });
  sshd = await startSshd({
    permitOpen: [`127.0.0.1:${db.port}`, `127.0.0.1:${otherPort}`, `localhost:${db.port}`, `127.0.0.1:${bulkPort}`],
    authorizedKeysCommand: { command: installed.command, user: 'nobody' },
    // The backstops from docs/bastion.md (ForceCommand is left out on purpose: the key line alone must stop exec).
    extraConfig: ['AuthenticationMethods publickey', 'AllowStreamLocalForwarding no', 'PermitUserRC no', 'LoginGraceTime 20',
      'ChannelTimeout session=1m direct-tcpip=1h', 'UnusedConnectionTimeout 5m'],
  });
  companion = startCompanion({ serverUrl, token: TOKEN, killGraceMs: 1_000, sampleEveryMs: 200, onHandled: (event, killed) => handled.push({ event, killed }), onReported: (report) => reported.push(report) });
  await companion.ready;
});

afterAll(async () => {
  await companion?.stop();
  await sshd?.stop();
  installed?.remove();
  await app?.close();
  await sessionDb?.close();
  await provider?.close();
  await new Promise((resolve) => (other ? other.close(resolve) : resolve(undefined)));
  await new Promise((resolve) => (bulk ? bulk.close(resolve) : resolve(undefined)));
  await db?.stop();
});

async function activate(grantId: string): Promise<{ key: ClientKey; username: string; password: string }> {
  const key = newClientKey();
  const endsAt = Date.now() + 600_000;
  const cred = await provider.issue({ grantId, resourceId: 'orders', level: 'read', endsAt });
  lookup.add({ grantId, bastionId: 'main', owner: 'alice', keyBase64: key.keyBase64, endsAt, target: { host: '127.0.0.1', port: db.port } });
  return { key, ...cred };
}

const connect = (key: ClientKey) => sshConnect({ host: sshd.host, port: sshd.port, username: sshd.user, privateKey: key.privateKey });

describe('bastion access per grant (OpenSSH + key command + companion)', () => {
  it('during a grant, a PostgreSQL session through an ssh2 forwardOut tunnel works with the grant\'s role', async () => {
    const grant = await activate('g-tunnel');
    const ssh = await connect(grant.key);
    const tunnel = await localTunnel(ssh.client, '127.0.0.1', db.port);
    const client = new pg.Client({ host: '127.0.0.1', port: tunnel.port, database: db.database, user: grant.username, password: grant.password });
    try {
      await client.connect();
      const { rows } = await client.query('select current_user as who, (select item from orders where id = 1) as item');
      expect(rows[0]).toEqual({ who: grant.username, item: 'book' });
    } finally {
      await client.end();
      await tunnel.close();
      ssh.client.end();
    }
  });

  it('forwarding to any other host:port with the grant\'s key is refused', async () => {
    const grant = await activate('g-other');
    const ssh = await connect(grant.key);
    try {
      await expect(forwardOut(ssh.client, '127.0.0.1', otherPort)).rejects.toThrow(/open failure|prohibited/i);
      // The host must match literally, so even the same database under another name is refused.
      await expect(forwardOut(ssh.client, 'localhost', db.port)).rejects.toThrow(/open failure|prohibited/i);
      const allowed = await forwardOut(ssh.client, '127.0.0.1', db.port);
      allowed.close();
    } finally {
      ssh.client.end();
    }
  });

  it('the grant\'s key cannot run a command on the bastion', async () => {
    const grant = await activate('g-exec');
    const ssh = await connect(grant.key);
    try {
      const marker = `/tmp/stint-exec-${Date.now()}`;
      const result = await sshExec(ssh.client, `id; touch ${marker}`).catch((error: Error) => ({ code: -1, output: error.message }));
      expect(result.output).not.toMatch(/uid=/);
      expect(result.code).not.toBe(0);
      expect(existsSync(marker)).toBe(false);
    } finally {
      ssh.client.end();
    }
  });

  it('a key that owns no active grant is refused at login', async () => {
    await expect(connect(newClientKey())).rejects.toThrow(/authentication methods failed/i);
  });

  it('at the grant\'s end: the running query dies within 1 s, new logins fail, the key is refused, the live SSH connection closes, the role is gone', async () => {
    const grant = await activate('g-end');
    const ssh = await connect(grant.key);
    const tunnel = await localTunnel(ssh.client, '127.0.0.1', db.port);
    const client = new pg.Client({ host: '127.0.0.1', port: tunnel.port, database: db.database, user: grant.username, password: grant.password });
    client.on('error', () => undefined);
    await client.connect();
    const running = client.query('select pg_sleep(30)').then(() => 'finished', (error: Error) => error.message);
    await new Promise((r) => setTimeout(r, 200));

    // The deadline: the lifecycle marks the grant ended (the key stops working, the end event goes out) and
    // revokes the role, at the same instant.
    const deadline = Date.now();
    lookup.end('g-end');
    const revoked = provider.revoke({ grantId: 'g-end', resourceId: 'orders', username: grant.username });

    const outcome = await running;
    expect(Date.now() - deadline).toBeLessThan(1_000);
    expect(outcome).not.toBe('finished');
    await revoked;
    await Promise.race([ssh.closed, new Promise((r) => setTimeout(r, 5_000))]);
    expect(ssh.isClosed()).toBe(true);
    expect(Date.now() - deadline).toBeLessThan(5_000);
    // It was the companion that closed it (sshd never ends a live connection when a key goes away).
    await expect.poll(() => handled.find((h) => h.event.grantId === 'g-end')?.killed.length ?? 0, { timeout: 3_000 }).toBeGreaterThan(0);
    // …and told the server so (which audits it): the connection's recorded sshd process, found open and ended.
    const ended = handled.find((h) => h.event.grantId === 'g-end')!.event;
    await expect.poll(() => reported.find((r) => r.grantId === 'g-end'), { timeout: 3_000 }).toEqual({
      grantId: 'g-end', killed: ended.pids, closed: [],
      traffic: ended.pids.map((pid) => ({ pid, bytesFromClient: expect.any(Number), bytesToClient: expect.any(Number), from: '127.0.0.1', countedAt: expect.any(String) })),
    });
    expect((await sessionDb.db.selectFrom('bastion_sessions').select('pid').where('grant_id', '=', 'g-end').execute())).toEqual([]);

    expect(await provider.roleExists({ resourceId: 'orders', username: grant.username })).toBe(false);
    const direct = new pg.Client({ host: db.host, port: db.port, database: db.database, user: grant.username, password: grant.password });
    await expect(direct.connect()).rejects.toThrow(/password authentication failed/);
    await expect(connect(grant.key)).rejects.toThrow(/authentication methods failed/i);
    await tunnel.close();
  });

  it('ending one grant leaves another grant\'s SSH connection of the same resource open', async () => {
    const first = await activate('g-pair-1');
    const second = await activate('g-pair-2');
    const sshFirst = await connect(first.key);
    const sshSecond = await connect(second.key);
    lookup.end('g-pair-1');
    await provider.revoke({ grantId: 'g-pair-1', resourceId: 'orders', username: first.username });
    await Promise.race([sshFirst.closed, new Promise((r) => setTimeout(r, 5_000))]);
    expect(sshFirst.isClosed()).toBe(true);
    const channel = await forwardOut(sshSecond.client, '127.0.0.1', db.port);
    channel.close();
    expect(sshSecond.isClosed()).toBe(false);
    sshSecond.client.end();
  });
});

describe('the key program (run directly)', () => {
  const dir = serviceDir('keys-config');
  const config = (name: string, values: Record<string, string>) => {
    const path = join(dir, name);
    writeFileSync(path, Object.entries(values).map(([k, v]) => `${k}=${v}\n`).join(''));
    return path;
  };
  const runKeys = async (configPath: string, key: string) => {
    const started = Date.now();
    // As sshd runs it: no stdin, a minimal environment.
    const result = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
      const child = execFile('/bin/sh', [KEY_PROGRAM, '-f', configPath, 'stintbastion', 'ssh-ed25519', key], { env: {}, timeout: 10_000 },
        (_error, stdout, stderr) => resolve({ stdout, stderr }));
      child.stdin?.end();
    });
    return { ...result, ms: Date.now() - started };
  };

  it('prints exactly the grant\'s key line for an active grant\'s key', async () => {
    const grant = await activate('g-direct');
    const result = await runKeys(config('ok.env', { STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: TOKEN }), grant.key.keyBase64);
    expect(result.stdout).toMatch(new RegExp(
      `^restrict,port-forwarding,permitopen="127\\.0\\.0\\.1:${db.port}",expiry-time="\\d{14}Z",command="/usr/sbin/nologin" ssh-ed25519 ${grant.key.keyBase64.replace(/[+/]/g, '\\$&')} grant:g-direct\\n$`,
    ));
  });

  it('prints nothing when the server is down, slow, or refuses its token', async () => {
    const grant = await activate('g-fail');
    const downPort = await freePort();
    const down = await runKeys(config('down.env', { STINT_SERVER_URL: `http://127.0.0.1:${downPort}`, STINT_BASTION_TOKEN: TOKEN }), grant.key.keyBase64);
    expect(down.stdout).toBe('');
    expect(down.stderr).toBe('');

    // A server that accepts and never answers: the program must give up on its own, well before LoginGraceTime.
    const hung = createServer(() => undefined);
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    try {
      const slow = await runKeys(config('slow.env', { STINT_SERVER_URL: `http://127.0.0.1:${(hung.address() as AddressInfo).port}`, STINT_BASTION_TOKEN: TOKEN }), grant.key.keyBase64);
      expect(slow.stdout).toBe('');
      expect(slow.ms).toBeLessThan(3_500);
    } finally {
      hung.close();
    }

    const badToken = await runKeys(config('bad.env', { STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: 'not-the-token' }), grant.key.keyBase64);
    expect(badToken.stdout).toBe('');
    const missing = await runKeys(join(dir, 'no-such.env'), grant.key.keyBase64);
    expect(missing.stdout).toBe('');
  });
});

describe('bytes each way and the client\'s address in the session rows (issue #19)', () => {
  /** A grant whose one target is the bulk service; UP bytes sent through a forwarded socket, DOWN bytes received. */
  async function pushThrough(grantId: string) {
    const key = newClientKey();
    lookup.add({ grantId, bastionId: 'main', owner: 'alice', keyBase64: key.keyBase64, endsAt: Date.now() + 600_000, target: { host: '127.0.0.1', port: bulkPort } });
    const ssh = await connect(key);
    const seen = bulkReceived.length;
    const channel = await forwardOut(ssh.client, '127.0.0.1', bulkPort);
    let down = 0;
    channel.on('data', (chunk: Buffer) => { down += chunk.length; });
    channel.write(Buffer.alloc(UP, 1));
    await expect.poll(() => [bulkReceived[seen] ?? 0, down], { timeout: 15_000 }).toEqual([UP, DOWN]);
    return ssh;
  }

  /** The truth plus SSH's own framing (key exchange, packet headers, MACs): at most 2 % and 64 KiB over, never under. */
  const near = (truth: number) => expect.toSatisfy((n: number) => n >= truth && n <= truth * 1.02 + 65_536, `${truth} bytes (+ SSH framing)`);

  it('a session the grant\'s end cuts: bytesFromClient / bytesToClient as the kernel counted them at the cut, each way', async () => {
    const ssh = await pushThrough('g-bytes-killed');
    lookup.end('g-bytes-killed');
    await expect.poll(() => audited.find((r) => r.grantId === 'g-bytes-killed' && r.action === 'bastion.session.killed'), { timeout: 5_000 }).toBeDefined();
    const row = audited.find((r) => r.grantId === 'g-bytes-killed' && r.action === 'bastion.session.killed')!;
    expect(row.detail).toMatchObject({ bastionId: 'main', bytesFromClient: near(UP), bytesToClient: near(DOWN), from: '127.0.0.1' });
    expect(Date.parse(String(row.detail?.bytesCountedAt))).toBeGreaterThan(Date.now() - 10_000);
    await ssh.closed;
  });

  it('a session that closed before the grant ended: its last counted bytes each way', async () => {
    const ssh = await pushThrough('g-bytes-closed');
    // The companion reads the counters of live sessions every 200 ms here (5 s by default).
    await new Promise((r) => setTimeout(r, 600));
    ssh.client.end();
    await ssh.closed;
    await new Promise((r) => setTimeout(r, 300));
    lookup.end('g-bytes-closed');
    await expect.poll(() => audited.find((r) => r.grantId === 'g-bytes-closed' && r.action === 'bastion.session.closed'), { timeout: 5_000 }).toBeDefined();
    const row = audited.find((r) => r.grantId === 'g-bytes-closed' && r.action === 'bastion.session.closed')!;
    expect(row.detail).toMatchObject({ bytesFromClient: near(UP), bytesToClient: near(DOWN), from: '127.0.0.1' });
  });
});
