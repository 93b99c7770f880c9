// Test helpers for the credentials/bastion tests: the key program installed where sshd accepts it, and an ssh2 tunnel
// like the agent's. The grant lookup the tests control is dev/memory-lookup.ts (the revocation benchmark uses it too).
import { createServer, type Server, type AddressInfo } from 'node:net';
import ssh2, { type Client, type ClientChannel } from 'ssh2';
import { generateGrantKey } from '../../agent/core/vault';

export interface ClientKey {
  privateKey: string;
  publicLine: string;
  keyBase64: string;
}

export function newClientKey(): ClientKey {
  // The agent's generator: ssh2's own spoils about one key in 256 (see generateGrantKey), which made tests flaky.
  const pair = generateGrantKey('stint-test');
  const keyBase64 = pair.publicKey.split(' ')[1]!;
  return { privateKey: pair.privateKey.toString('utf8'), publicLine: pair.publicKey, keyBase64 };
}

export { installKeysCommand, type InstalledKeysCommand } from '../../dev/keys-command';

export interface SshSession {
  client: Client;
  closed: Promise<void>;
  isClosed: () => boolean;
}

export function sshConnect(options: { host: string; port: number; username: string; privateKey: string }): Promise<SshSession> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let closed = false;
    const closedPromise = new Promise<void>((r) => client.once('close', () => { closed = true; r(); }));
    client.once('ready', () => resolve({ client, closed: closedPromise, isClosed: () => closed }));
    client.once('error', reject);
    client.connect({ ...options, readyTimeout: 10_000 });
  });
}

export function forwardOut(client: Client, host: string, port: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, host, port, (error, channel) => (error ? reject(error) : resolve(channel)));
  });
}

/** A local listener that forwards each connection through the SSH client, like the agent's tunnel (psql target). */
export async function localTunnel(client: Client, host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    client.forwardOut('127.0.0.1', 0, host, port, (error, channel) => {
      if (error) return socket.destroy();
      socket.pipe(channel).pipe(socket);
      channel.on('close', () => socket.destroy());
      socket.on('close', () => channel.close());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Run a command over SSH; resolves with its output and exit code, or rejects when the server refuses. */
export function sshExec(client: Client, command: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, stream) => {
      if (error) return reject(error);
      let output = '';
      let code: number | null = null;
      stream.on('data', (d: Buffer) => (output += d.toString()));
      stream.stderr.on('data', (d: Buffer) => (output += d.toString()));
      stream.on('exit', (c: number | null) => (code = c));
      stream.on('close', () => resolve({ code, output }));
    });
  });
}
