// Audit streaming (#25): every audit entry and signed checkpoint reaches a real local syslog listener (UDP and TCP,
// RFC 5424, octet-counted over TCP) and an append-only JSON Lines file whose rotated parts, read oldest first, hold
// every entry in chain order; a sink that is down loses records (counted) without holding up or failing a change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { defaultStorageUrl, startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { freePort } from '../../dev/ports';
import { serviceDir, waitFor } from '../../dev/run-dir';
import { clientFor, Tokens } from './helpers';

/** RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID params] MSG */
const RFC5424 = /^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([\x21-\x7e]{1,255}) stint (\d+) ([\x21-\x7e]{1,32}) \[stint@32473 seq="(\d+)" hash="([0-9a-f]{64})"(?: prevHash="([0-9a-f]{64})")?\] ([\x20-\x7e]+)$/;

interface Parsed { pri: number; timestamp: string; msgid: string; seq: number; hash: string; msg: { type: string; entry?: { seq: number; hash: string; action: string; at: string }; checkpoint?: { seq: number; hash: string } } }

function parse(line: string): Parsed {
  const m = RFC5424.exec(line);
  if (!m) throw new Error(`not an RFC 5424 line: ${line}`);
  return { pri: Number(m[1]), timestamp: m[2]!, msgid: m[5]!, seq: Number(m[6]), hash: m[7]!, msg: JSON.parse(m[9]!) as Parsed['msg'] };
}

/** Octet-counting frames (RFC 6587 §3.4.1): "LEN SP MSG", back to back. */
function frames(buffer: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < buffer.length) {
    const space = buffer.indexOf(0x20, at);
    const length = Number(buffer.subarray(at, space).toString());
    if (space < 0 || space + 1 + length > buffer.length) break;
    out.push(buffer.subarray(space + 1, space + 1 + length).toString());
    at = space + 1 + length;
  }
  return out;
}

const metric = async (url: string, name: string, sink: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{sink="${sink}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
};

describe('audit streaming', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  let udp: UdpSocket;
  let tcp: Server;
  const udpLines: string[] = [];
  let tcpBytes = Buffer.alloc(0);
  let udpPort: number;
  let tcpPort: number;

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    udp = createSocket('udp4');
    udp.on('message', (message) => udpLines.push(message.toString()));
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    udpPort = udp.address().port;
    tcp = createServer((socket) => socket.on('data', (chunk) => { tcpBytes = Buffer.concat([tcpBytes, chunk]); }));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', () => resolve()));
    tcpPort = (tcp.address() as { port: number }).port;
  });
  afterAll(async () => {
    udp?.close();
    await new Promise((resolve) => tcp?.close(resolve));
    await idp?.close();
  });

  it('every entry and checkpoint reaches syslog (UDP, TCP) and the rotated JSON Lines file, in order', async () => {
    const dir = serviceDir('audit-stream');
    const path = join(dir, 'audit.jsonl');
    const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    let server: RunningGrantServer | undefined;
    try {
      server = await startGrantServer({
        idp,
        overrides: {
          storage: { url: await defaultStorageUrl(dir) },
          audit: {
            checkpoints: { key: 'env:STINT_TEST_CHECKPOINT_KEY', file: join(dir, 'checkpoints.jsonl'), every: 1, afterEntries: 10 },
            stream: {
              syslog: [{ host: '127.0.0.1', port: udpPort, protocol: 'udp' }, { host: '127.0.0.1', port: tcpPort, protocol: 'tcp' }],
              file: { path, maxBytes: 4096, keep: 100 },
            },
          },
        },
        env: { STINT_TEST_CHECKPOINT_KEY: key },
      });
      const alice = clientFor(server.url, await tokens.for('alice'));
      for (let i = 0; i < 25; i++) {
        const made = await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: `INC-${i}` });
        expect(made.status).toBe(201);
        await alice.post(`/v1/requests/${made.body.request.id}/cancel`, {});
      }
      await clientFor(server.url, await tokens.for('bob')).post('/v1/grants/gr_nosuchgrant0000000000/revoke', { reason: 'not an admin' });
      const carol = clientFor(server.url, await tokens.for('carol'));
      const entries = async () => (await carol.get('/v1/audit?limit=1000')).body.entries as { seq: number; hash: string; action: string; at: string }[];

      // The file: its parts, oldest first, hold every entry in chain order (and the checkpoints among them).
      const readParts = () => {
        const parts = readdirSync(dir).filter((f) => /^audit\.jsonl(\.\d+)?$/.test(f)).sort((a, b) => Number(b.split('.')[2] ?? 0) - Number(a.split('.')[2] ?? 0));
        return { parts, lines: parts.flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; seq: number; hash: string })) };
      };
      const all = await waitFor('every entry in the file, and a checkpoint', async () => {
        const db = await entries();
        const { lines } = readParts();
        const streamed = lines.filter((l) => l.type === 'entry');
        return streamed.length === db.length && lines.some((l) => l.type === 'checkpoint') ? db : undefined;
      }, 20_000, 100);
      const { parts, lines } = readParts();
      expect(parts.length).toBeGreaterThan(3);
      for (const part of parts) expect(statSync(join(dir, part)).size).toBeLessThanOrEqual(4096);
      expect(lines.filter((l) => l.type === 'entry').map((l) => [l.seq, l.hash])).toEqual(all.map((e) => [e.seq, e.hash]));
      expect(all[0]!.seq).toBe(1);
      expect(all.map((e) => e.action)).toEqual(expect.arrayContaining(['policy.version', 'request.created', 'request.cancelled', 'refused.grant.revoke']));
      const checkpoints = readFileSync(join(dir, 'checkpoints.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq: number; hash: string; sig: string });
      expect(lines.filter((l) => l.type === 'checkpoint')).toEqual(checkpoints.slice(0, lines.filter((l) => l.type === 'checkpoint').length).map((c) => ({ type: 'checkpoint', ...c })));

      // Syslog: well-formed RFC 5424 lines, one per entry, the hash in the structured data, the entry as the MSG.
      const check = (received: string[]) => {
        const parsed = received.map(parse);
        const got = parsed.filter((p) => p.msg.type === 'entry');
        expect(got.map((p) => p.seq)).toEqual(all.map((e) => e.seq));
        for (const [i, p] of got.entries()) {
          const entry = all[i]!;
          expect(p).toMatchObject({ msgid: entry.action, hash: entry.hash, timestamp: entry.at, msg: { entry: { seq: entry.seq, hash: entry.hash } } });
          // Facility 13 (log audit); refusals are notices (5), the rest info (6).
          expect(p.pri).toBe(13 * 8 + (entry.action.startsWith('refused.') ? 5 : 6));
        }
        expect(parsed.some((p) => p.msgid === 'audit.checkpoint' && p.msg.checkpoint?.hash === p.hash)).toBe(true);
      };
      await waitFor('syslog over UDP and TCP to have every entry', () => {
        const tcpLines = frames(tcpBytes);
        const count = (ls: string[]) => ls.filter((l) => !l.includes(' audit.checkpoint ')).length;
        return count(udpLines) >= all.length && count(tcpLines) >= all.length ? true : undefined;
      }, 20_000, 100);
      check(udpLines);
      check(frames(tcpBytes));
      expect(await metric(server.url, 'stint_audit_stream_sent_total', 'file')).toBeGreaterThanOrEqual(all.length);
      expect(await metric(server.url, 'stint_audit_stream_dropped_total', 'file')).toBe(0);
    } finally {
      await server?.close();
    }
  });

  it('after a restart the file resumes after its last entry: no gap, no duplicate', async () => {
    const dir = serviceDir('audit-stream-resume');
    const path = join(dir, 'audit.jsonl');
    const storage = { url: await defaultStorageUrl(dir) };
    const streamed = { storage, audit: { stream: { file: { path, maxBytes: 1_000_000, keep: 2 } } } };
    const entriesInFile = () => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq);
    const requestOn = async (server: RunningGrantServer, n: number) => {
      const alice = clientFor(server.url, await tokens.for('alice'));
      for (let i = 0; i < n; i++) expect((await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: `INC-${i}` })).status).toBe(201);
      return ((await clientFor(server.url, await tokens.for('carol')).get('/v1/audit?limit=1000')).body.entries as { seq: number }[]).map((e) => e.seq);
    };
    const first = await startGrantServer({ idp, overrides: streamed });
    try {
      const seqs = await requestOn(first, 3);
      await waitFor('the first entries in the file', () => (entriesInFile().length === seqs.length ? true : undefined), 20_000, 100);
    } finally {
      await first.close();
    }
    // Entries the stream never saw: the server ran without it for a while.
    const unstreamed = await startGrantServer({ idp, overrides: { storage } });
    try {
      await requestOn(unstreamed, 2);
    } finally {
      await unstreamed.close();
    }
    const again = await startGrantServer({ idp, overrides: streamed });
    try {
      const all = await requestOn(again, 1);
      await waitFor('every entry in the file', () => (entriesInFile().length >= all.length ? true : undefined), 20_000, 100);
      expect(entriesInFile()).toEqual(all);
    } finally {
      await again.close();
    }
  });

  it('a sink that is down drops records (counted) and never holds up or fails a change', async () => {
    const deadPort = await freePort();
    const server = await startGrantServer({
      idp,
      overrides: { audit: { stream: { syslog: [{ host: '127.0.0.1', port: deadPort, protocol: 'tcp' }], queue: 10 } } },
    });
    try {
      const alice = clientFor(server.url, await tokens.for('alice'));
      for (let i = 0; i < 15; i++) expect((await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: `INC-${i}` })).status).toBe(201);
      const sink = `syslog-tcp:127.0.0.1:${deadPort}`;
      const dropped = await waitFor('the dead sink to count its drops', async () => {
        const n = await metric(server.url, 'stint_audit_stream_dropped_total', sink);
        return n >= 15 ? n : undefined;
      }, 20_000, 100);
      expect(dropped).toBeGreaterThanOrEqual(15);
      expect(await metric(server.url, 'stint_audit_stream_sent_total', sink)).toBe(0);
    } finally {
      await server.close();
    }
  });
});
