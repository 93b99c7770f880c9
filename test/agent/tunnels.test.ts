import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { startSshd, type SshdInstance } from '../../dev/sshd';
import { freePort } from '../../dev/ports';
import { openTunnel, derivePort, portFor, type TunnelEvent } from '../../agent/core/tunnels';
import { generateGrantKey } from '../../agent/core/vault';

let db: PostgresInstance;
let sshd: SshdInstance;
// A raw TCP target for the byte path: sends BLOB, then echoes whatever it gets.
const BLOB = randomBytes(24 * 1024 * 1024);
let blobServer: Server;
let blobPort: number;
const key = generateGrantKey();
const otherKey = generateGrantKey();

beforeAll(async () => {
  db = await startPostgres();
  blobServer = createServer((s) => {
    s.on('error', () => {});
    s.write(BLOB);
    s.pipe(s);
  });
  await new Promise<void>((r) => blobServer.listen(0, '127.0.0.1', () => r()));
  blobPort = (blobServer.address() as { port: number }).port;
  sshd = await startSshd({ permitOpen: [`127.0.0.1:${db.port}`, `127.0.0.1:${blobPort}`] });
  sshd.setAuthorizedKeys([`restrict,port-forwarding,permitopen="127.0.0.1:${db.port}",permitopen="127.0.0.1:${blobPort}",command="/usr/sbin/nologin" ${key.publicKey}`]);
});
afterAll(async () => {
  await sshd?.stop();
  await db?.stop();
  blobServer?.close();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Connect through the tunnel, send `up`, and collect BLOB.length + up.length bytes; `stall` pauses reading a while. */
function roundTrip(port: number, up: Buffer, stall = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let got = 0;
    let stalled = false;
    socket.on('connect', () => socket.write(up));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (stall && !stalled && got > BLOB.length / 3) {
        stalled = true;
        socket.pause();
        setTimeout(() => socket.resume(), 300);
      }
      if (got >= BLOB.length + up.length) {
        socket.destroy();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.on('error', reject);
  });
}

const bastion = () => ({ host: sshd.host, port: sshd.port, user: sshd.user, hostKeys: [sshd.hostKeyLine] });
const target = () => ({ host: '127.0.0.1', port: db.port });
const connectionRefused = (port: number) => new Promise<string>((resolve) => {
  const socket = connect(port, '127.0.0.1');
  socket.once('connect', () => { socket.destroy(); resolve('connected'); });
  socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
});

describe('tunnels through a real OpenSSH bastion to real PostgreSQL', () => {
  it('derives a stable port per resource, and settings win', () => {
    expect(derivePort('prod-orders')).toBe(derivePort('prod-orders'));
    expect(derivePort('prod-orders')).not.toBe(derivePort('prod-billing'));
    expect(derivePort('prod-orders')).toBeGreaterThanOrEqual(15432);
    expect(derivePort('prod-orders')).toBeLessThan(16432);
    expect(portFor('prod-orders', { 'prod-orders': 25432 })).toBe(25432);
  });

  it('a pg query works through the tunnel; close() kills the live session and refuses new connections', async () => {
    const preferred = await freePort();
    const events: TunnelEvent[] = [];
    const tunnel = await openTunnel({ bastion: bastion(), target: target(), privateKey: key.privateKey, preferredPort: preferred, onEvent: (e) => events.push(e) });
    expect(tunnel.port).toBe(preferred);
    expect(tunnel.message).toBeUndefined();
    const client = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: db.adminUser, password: db.adminPassword, database: db.database });
    await client.connect();
    const [row] = (await client.query('select 40 + 2 as answer')).rows;
    expect(row.answer).toBe(42);
    expect(tunnel.connections()).toBe(1);

    const clientEnded = new Promise<string>((resolve) => {
      client.once('error', (e) => resolve(`error: ${e.message}`));
      client.once('end', () => resolve('end'));
    });
    await tunnel.close();
    expect(tunnel.isClosed).toBe(true);
    expect(await clientEnded).toBeTruthy();
    await expect(client.query('select 1')).rejects.toThrow();
    expect(await connectionRefused(tunnel.port)).toBe('ECONNREFUSED');
    expect(await tunnel.closed).toEqual({ unexpected: false });
    expect(events.at(-1)).toEqual({ type: 'closed', unexpected: false });
  });

  it('relays bulk bytes intact and in order, on several connections at once, a slow reader included', async () => {
    const tunnel = await openTunnel({ bastion: bastion(), target: { host: '127.0.0.1', port: blobPort }, privateKey: key.privateKey, preferredPort: await freePort() });
    try {
      const ups = [randomBytes(3 * 1024 * 1024), randomBytes(1000), randomBytes(5 * 1024 * 1024)];
      const results = await Promise.all(ups.map((up, i) => roundTrip(tunnel.port, up, i === 2)));
      results.forEach((got, i) => {
        expect(got.length).toBe(BLOB.length + ups[i]!.length);
        expect(sha(got.subarray(0, BLOB.length))).toBe(sha(BLOB));
        expect(sha(got.subarray(BLOB.length))).toBe(sha(ups[i]!));
      });
    } finally {
      await tunnel.close();
    }
  }, 60_000);

  it('when the resource port is busy, uses the next free one and says so', async () => {
    const preferred = await freePort();
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(preferred, '127.0.0.1', () => r()));
    try {
      const tunnel = await openTunnel({ bastion: bastion(), target: target(), privateKey: key.privateKey, preferredPort: preferred });
      expect(tunnel.port).toBeGreaterThan(preferred);
      expect(tunnel.message).toBe(`Port ${preferred} is in use by another program — using ${tunnel.port} for this grant.`);
      const rows = await new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: db.adminUser, password: db.adminPassword, database: db.database });
      await rows.connect();
      expect((await rows.query('select 1 as one')).rows[0].one).toBe(1);
      await rows.end();
      await tunnel.close();
    } finally {
      squatter.close();
    }
  });

  it('a key the bastion does not know fails with bastion_auth_failed and leaves nothing listening', async () => {
    const preferred = await freePort();
    await expect(openTunnel({ bastion: bastion(), target: target(), privateKey: otherKey.privateKey, preferredPort: preferred }))
      .rejects.toMatchObject({ code: 'bastion_auth_failed' });
    expect(await connectionRefused(preferred)).toBe('ECONNREFUSED');
  });

  it('refuses a bastion whose host key is not the expected one', async () => {
    await expect(openTunnel({ bastion: { ...bastion(), hostKeys: [otherKey.publicKey] }, target: target(), privateKey: key.privateKey, preferredPort: await freePort() }))
      .rejects.toMatchObject({ code: 'bastion_host_key_mismatch' });
  });

  it('an unreachable bastion is reported as such', async () => {
    await expect(openTunnel({ bastion: { ...bastion(), port: await freePort() }, target: target(), privateKey: key.privateKey, preferredPort: await freePort() }))
      .rejects.toMatchObject({ code: 'bastion_unreachable' });
  });

  it('a target the bastion does not permit: the local connection is closed and the failure reported', async () => {
    const events: TunnelEvent[] = [];
    const tunnel = await openTunnel({ bastion: bastion(), target: { host: '127.0.0.1', port: db.port + 1 }, privateKey: key.privateKey, preferredPort: await freePort(), onEvent: (e) => events.push(e) });
    const client = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: db.adminUser, password: db.adminPassword, database: db.database, connectionTimeoutMillis: 5000 });
    await expect(client.connect()).rejects.toThrow();
    expect(events.some((e) => e.type === 'forward_failed')).toBe(true);
    await tunnel.close();
  });
});
