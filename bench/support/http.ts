// What the server benchmarks share: a keep-alive HTTP client, a credential provider that does nothing (the
// benchmarks measure the lifecycle, not PostgreSQL), and fresh agent public keys.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import type { CredentialProvider } from '../../server/credentials/provider';

export const agent = new http.Agent({ keepAlive: true, maxSockets: 2_000 });

export function request(base: URL, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: base.hostname, port: base.port, method, path, agent, headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export const noop: CredentialProvider = {
  kind: 'noop',
  issue: async (input) => ({ username: `stint_g_${input.grantId.slice(-20).toLowerCase().replace(/[^a-z0-9]/g, 'x')}`, password: 'bench' }),
  extend: async () => {},
  rotate: async () => ({ password: 'bench' }),
  revoke: async () => {},
  close: async () => {},
};

export function keyLine(): string {
  const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const type = Buffer.from('ssh-ed25519');
  return `ssh-ed25519 ${Buffer.concat([u32(type.length), type, u32(32), raw]).toString('base64')} bench`;
}

/**
 * `count` SSE clients on /v1/events as one user; resolves when every one has its `: connected` comment, then calls
 * `onEvent` with each parsed envelope and the time it arrived.
 */
export async function openEventClients(base: URL, token: string, count: number, onEvent: (envelope: any, receivedAt: number) => void): Promise<{ close: () => void }> {
  const sockets: http.ClientRequest[] = [];
  let connected = 0;
  await new Promise<void>((resolve, reject) => {
    for (let i = 0; i < count; i++) {
      const req = http.get({ host: base.hostname, port: base.port, path: '/v1/events', agent, headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`events → ${res.statusCode}`));
        res.setEncoding('utf8');
        let buffer = '';
        res.on('data', (chunk: string) => {
          const now = Date.now();
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (frame.includes(': connected')) {
              if (++connected === count) resolve();
              continue;
            }
            const data = frame.split('\n').find((l) => l.startsWith('data: '));
            if (data) onEvent(JSON.parse(data.slice(6)), now);
          }
        });
      });
      req.on('error', reject);
      sockets.push(req);
    }
  });
  return { close: () => sockets.forEach((s) => s.destroy()) };
}
