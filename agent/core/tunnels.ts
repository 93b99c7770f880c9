// Local tunnel: 127.0.0.1:<stable port> → SSH bastion (the grant's in-memory key) → database. One SSH connection
// per grant; one `forwardOut` channel per local connection. The port is stable per resource (from settings or
// derived from the resource id) so saved client configs keep working; when it is busy we take the next free one
// and say so. close() stops listening, destroys live sockets and ends the SSH connection — access ends now, not
// when the client feels like disconnecting.
import { createServer, type Server, type Socket } from 'node:net';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { AgentError } from './errors';
import { connectBastion, LOCAL_HIGH_WATER_MARK, type BastionSocket } from './tunnel-io';

export interface BastionEndpoint {
  host: string;
  port: number;
  user: string;
  /** Expected host keys (`ssh-ed25519 AAAA…` lines). When given, any other key is refused. */
  hostKeys?: string[];
}

export interface TunnelOptions {
  bastion: BastionEndpoint;
  target: { host: string; port: number };
  privateKey: Buffer;
  preferredPort: number;
  /** How many ports after the preferred one to try when it is busy. */
  fallbackPorts?: number;
  readyTimeoutMs?: number;
  onEvent?: (event: TunnelEvent) => void;
}

export type TunnelEvent =
  | { type: 'connections'; count: number }
  | { type: 'forward_failed'; message: string }
  | { type: 'closed'; unexpected: boolean; message?: string };

export interface Tunnel {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly preferredPort: number;
  /** Set when the preferred port was busy. */
  readonly message?: string;
  connections(): number;
  readonly isClosed: boolean;
  close(): Promise<void>;
  /** Resolves when the tunnel is closed, by close() or because the SSH connection ended. */
  readonly closed: Promise<{ unexpected: boolean; message?: string }>;
}

const PORT_BASE = 15432;
const PORT_SPAN = 1000;

/** A stable port for a resource: FNV-1a of its id into 15432–16431 (stable across runs and machines). */
export function derivePort(resourceId: string): number {
  let hash = 0x811c9dc5;
  for (const ch of Buffer.from(resourceId, 'utf8')) {
    hash ^= ch;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return PORT_BASE + (hash % PORT_SPAN);
}

export function portFor(resourceId: string, configured: Record<string, number>): number {
  return configured[resourceId] ?? derivePort(resourceId);
}

function listenOn(server: Server, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') resolve(false);
      else reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve(true);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host: '127.0.0.1', exclusive: true });
  });
}

async function listenStable(server: Server, preferred: number, tries: number): Promise<{ port: number; message?: string }> {
  for (let i = 0; i <= tries; i++) {
    const port = preferred + i;
    if (port > 65535) break;
    if (await listenOn(server, port)) {
      return i === 0 ? { port } : { port, message: `Port ${preferred} is in use by another program — using ${port} for this grant.` };
    }
  }
  throw new AgentError('port_unavailable', `Ports ${preferred}–${preferred + tries} are all in use by other programs. Choose another port for this resource in Settings.`);
}

function keyBlob(line: string): Buffer | undefined {
  const base64 = line.trim().split(/\s+/)[1];
  return base64 ? Buffer.from(base64, 'base64') : undefined;
}

function connectSsh(options: TunnelOptions): Promise<{ client: Client; io: BastionSocket }> {
  const { bastion } = options;
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyRejected = false;
    let settled = false;
    const fail = (error: AgentError) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(error);
    };
    const expected = (options.bastion.hostKeys ?? []).map(keyBlob).filter((b): b is Buffer => b !== undefined);
    // Never trust a host key blind: whoever could stand in for the bastion would get the grant's database password.
    if (expected.length === 0) {
      fail(new AgentError('bastion_host_key_mismatch', `The server gave no host key for the bastion ${bastion.host}, so Stint cannot tell it from an impostor — not connecting. Ask your Stint administrator to set its hostKeys.`));
      return;
    }
    // Our own socket: Nagle off (small request/response packets dominate psql), large reads, batched writes (tunnel-io.ts).
    const io = connectBastion(bastion.host, bastion.port);
    const sock = io.socket;
    sock.once('error', (cause: NodeJS.ErrnoException) => fail(new AgentError('bastion_unreachable', `The bastion ${bastion.host}:${bastion.port} cannot be reached (${cause.code ?? cause.message}).`, cause)));
    const config: ConnectConfig = {
      sock,
      username: bastion.user,
      privateKey: options.privateKey,
      readyTimeout: options.readyTimeoutMs ?? 10_000,
      // Detect a dead bastion while idle, so a silently dropped tunnel is reported.
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => (expected.some((e) => e.equals(key)) ? true : ((hostKeyRejected = true), false)),
    };
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      resolve({ client, io });
    });
    client.once('error', (cause: Error & { level?: string }) => {
      if (hostKeyRejected) return fail(new AgentError('bastion_host_key_mismatch', `The bastion ${bastion.host} presented a host key Stint does not expect — not connecting.`, cause));
      if (cause.level === 'client-authentication') return fail(new AgentError('bastion_auth_failed', 'The bastion refused this grant\'s key. The grant may have ended, or activation did not reach the bastion.', cause));
      if (cause.level === 'client-timeout') return fail(new AgentError('bastion_unreachable', `The bastion ${bastion.host}:${bastion.port} did not answer in time.`, cause));
      fail(new AgentError('tunnel_failed', `The SSH connection to the bastion failed: ${cause.message}`, cause));
    });
    client.connect(config);
  });
}

export async function openTunnel(options: TunnelOptions): Promise<Tunnel> {
  const emit = options.onEvent ?? (() => {});
  const sockets = new Set<Socket>();
  const channels = new Set<ClientChannel>();
  const server = createServer({ noDelay: true, highWaterMark: LOCAL_HIGH_WATER_MARK });
  // Connect and bind at the same time: setup time is dominated by the SSH handshake.
  const [ssh, bound] = await Promise.allSettled([connectSsh(options), listenStable(server, options.preferredPort, options.fallbackPorts ?? 20)]);
  if (ssh.status === 'rejected' || bound.status === 'rejected') {
    if (ssh.status === 'fulfilled') ssh.value.client.end();
    if (server.listening) server.close();
    throw ssh.status === 'rejected' ? ssh.reason : (bound as PromiseRejectedResult).reason;
  }
  const { client, io } = ssh.value;
  const { port, message } = bound.value;
  let isClosed = false;
  let resolveClosed!: (info: { unexpected: boolean; message?: string }) => void;
  const closed = new Promise<{ unexpected: boolean; message?: string }>((r) => (resolveClosed = r));
  const sshEnded = new Promise<void>((r) => client.once('close', () => r()));

  const shutdown = (unexpected: boolean, why?: string) => {
    if (isClosed) return;
    isClosed = true;
    server.close();
    for (const socket of sockets) socket.destroy();
    for (const channel of channels) channel.destroy();
    client.end();
    const info = why ? { unexpected, message: why } : { unexpected };
    emit({ type: 'closed', ...info });
    resolveClosed(info);
  };

  client.on('error', (error) => shutdown(true, `The connection to the bastion failed: ${error.message}`));
  client.on('close', () => shutdown(true, 'The connection to the bastion closed.'));

  server.on('connection', (socket) => {
    if (isClosed) return void socket.destroy();
    socket.setNoDelay(true);
    sockets.add(socket);
    emit({ type: 'connections', count: sockets.size });
    socket.on('error', () => {});
    socket.once('close', () => {
      sockets.delete(socket);
      if (!isClosed) emit({ type: 'connections', count: sockets.size });
    });
    client.forwardOut('127.0.0.1', socket.remotePort ?? 0, options.target.host, options.target.port, (error, channel) => {
      if (error) {
        emit({ type: 'forward_failed', message: `The bastion refused to open the connection to the database: ${error.message}` });
        socket.destroy();
        return;
      }
      if (isClosed || socket.destroyed) return void channel.destroy();
      channels.add(channel);
      channel.once('close', () => {
        channels.delete(channel);
        socket.destroy();
      });
      channel.on('error', () => socket.destroy());
      socket.once('close', () => channel.destroy());
      // Before pipe's own 'data' handlers: the packets of one bastion read reach the client in one writev, and the
      // packets of one event-loop turn reach the bastion in one.
      channel.prependListener('data', () => io.batchLocal(socket));
      socket.prependListener('data', () => io.batchOut());
      socket.pipe(channel).pipe(socket);
    });
  });

  return {
    host: '127.0.0.1',
    port,
    preferredPort: options.preferredPort,
    ...(message ? { message } : {}),
    connections: () => sockets.size,
    get isClosed() { return isClosed; },
    close: async () => {
      shutdown(false);
      await sshEnded;
    },
    closed,
  };
}
