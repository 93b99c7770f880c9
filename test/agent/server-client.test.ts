// The grant client and the event stream against a small real HTTP server that plays the grant server's part
// (answers shaped by the contract, or deliberately not).
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ApiClient } from '../../agent/core/api-client';
import { AgentError } from '../../agent/core/errors';
import { EventStream, type StreamStatus } from '../../agent/core/event-stream';
import { systemClock } from '../../shared/domain/clock';
import type { ServerEventEnvelope } from '../../shared/contract/events';
import { freePort } from '../../dev/ports';
import { request, grant, T0, iso } from './builders';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;
let server: Server;
let port: number;
let handler: Handler;
const seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }> = [];

async function listen(p?: number) {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  port = p ?? await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
}
const json = (res: ServerResponse, status: number, value: unknown, type = 'application/json') => {
  res.writeHead(status, { 'content-type': type });
  res.end(typeof value === 'string' ? value : JSON.stringify(value));
};
const closeServer = () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });

beforeEach(async () => { seen.length = 0; await listen(); });
afterEach(async () => { await closeServer(); });

const me = { sub: 'alice', email: 'alice@example.com', groups: ['engineers'], admin: false, approver: false, serverTime: iso(T0) };

function client(extra: Partial<ConstructorParameters<typeof ApiClient>[0]> = {}) {
  const times: number[][] = [];
  const api = new ApiClient({
    baseUrl: `http://127.0.0.1:${port}`, deviceId: 'device-1234', accessToken: async () => 'token-1',
    onServerTime: (s, r, u) => times.push([s, r, u]), ...extra,
  });
  return { api, times };
}

describe('grant client', () => {
  it('sends the bearer token and device id, parses with the contract, and learns the server clock from Date', async () => {
    handler = (req, res) => json(res, 200, me);
    const { api, times } = client();
    expect(await api.me()).toEqual(me);
    expect(seen[0]!.headers.authorization).toBe('Bearer token-1');
    expect(seen[0]!.headers['x-stint-device-id']).toBe('device-1234');
    expect(times).toHaveLength(1);
    expect(Math.abs(times[0]![0]! - Date.now())).toBeLessThan(2000);
    expect(times[0]![2]).toBe(1000);
  });

  it('creates a request with the device id in the body and an idempotency key', async () => {
    handler = (req, res) => json(res, 201, { request: request('r1', { state: 'approved' }), grant: grant('g1', T0 + 3600_000) });
    const { api } = client();
    const out = await api.createRequest({ resourceId: 'prod-orders', level: 'write', reason: 'INC-1' });
    expect(out.grant?.id).toBe('g1');
    expect(JSON.parse(seen[0]!.body)).toMatchObject({ resourceId: 'prod-orders', deviceId: 'device-1234' });
    expect(seen[0]!.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('after a 401, refreshes the token once and retries', async () => {
    handler = (req, res) => (req.headers.authorization === 'Bearer fresh' ? json(res, 200, { grants: [] }) : json(res, 401, { type: 'about:blank', title: 'Unauthorized', status: 401, code: 'unauthorized' }));
    let refreshed = 0;
    const { api } = client({ refreshAccessToken: async () => { refreshed++; return 'fresh'; } });
    expect(await api.grants()).toEqual([]);
    expect(refreshed).toBe(1);
  });

  it('passes the server\'s problem through: its code is the server\'s code, with every member it sent (#20)', async () => {
    const problem = { type: 'https://stint.dev/problems/stepup_invalid', title: 'Step-up proof refused', status: 403, code: 'stepup_invalid', detail: 'That code is not right. 2 attempts left.', reason: 'wrong_code', attemptsLeft: 2 };
    handler = (req, res) => json(res, 403, problem, 'application/problem+json');
    const { api } = client();
    const error = await api.release('g1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentError);
    expect(error).toMatchObject({ code: 'stepup_invalid', message: 'That code is not right. 2 attempts left.', status: 403 });
    expect((error as AgentError).toProblem()).toEqual(problem);
  });

  it('a code this agent does not know, or a refusal that is no problem, is server_error with the status and the words', async () => {
    handler = (req, res) => json(res, 409, { type: 'about:blank', title: 'Conflict', status: 409, code: 'from_a_newer_server', detail: 'This grant has already ended.' }, 'application/problem+json');
    const { api } = client();
    await expect(api.release('g1')).rejects.toMatchObject({ code: 'server_error', message: 'This grant has already ended.', status: 409 });
    handler = (req, res) => json(res, 502, '<html>bad gateway</html>', 'text/html');
    await expect(api.release('g1')).rejects.toMatchObject({ code: 'server_error', message: 'The server answered HTTP 502.', status: 502 });
  });

  it('reports malformed answers (not JSON, wrong shape) as malformed_response instead of crashing', async () => {
    handler = (req, res) => json(res, 200, '<html>proxy login</html>', 'text/html');
    const { api } = client();
    await expect(api.me()).rejects.toMatchObject({ code: 'malformed_response' });
    handler = (req, res) => json(res, 200, { grants: [{ id: 'g1', endsAt: 'tomorrow' }] });
    const error = await api.grants().catch((e) => e);
    expect(error).toMatchObject({ code: 'malformed_response' });
    expect(error.message).toMatch(/grants\.0\./);
  });

  it('a server that cannot be reached gives server_unreachable (after one retry that reuses the idempotency key)', async () => {
    await closeServer();
    const reach: boolean[] = [];
    const keys: string[] = [];
    const recording: typeof fetch = async (input, init) => {
      keys.push(String((init?.headers as Record<string, string>)['idempotency-key']));
      return fetch(input, init);
    };
    const { api } = client({ fetch: recording, onReachable: (r) => reach.push(r) });
    await expect(api.cancel('r1')).rejects.toMatchObject({ code: 'server_unreachable', message: expect.stringMatching(/still ends on time/) });
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBe(keys[1]);
    expect(reach).toEqual([false]);
    await listen(port);
  });
});

describe('event stream', () => {
  it('reads SSE framing as servers write it: comments, CRLF split across writes, multi-line data, retry', async () => {
    const envelope = (id: number): ServerEventEnvelope => ({ id: String(id), at: iso(T0), event: { type: 'grant.updated', grant: grant(`g${id}`, T0 + 3600_000) } });
    const json = JSON.stringify(envelope(7));
    const cut = json.indexOf(',"at"') + 1; // between two JSON members, where a line break is allowed
    const [head, tail] = [json.slice(0, cut), json.slice(cut)];
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`: hello\r\nretry: 2000\r\nid: 7\r\ndata: ${head}\r`);
      setTimeout(() => { res.write(`\ndata: ${tail}\r\n\r\n`); res.write(`data: ${JSON.stringify(envelope(8))}\n\n`); }, 20);
    };
    const events: ServerEventEnvelope[] = [];
    const problems: string[] = [];
    const stream = new EventStream({
      url: `http://127.0.0.1:${port}/v1/events`, headers: async () => ({}), clock: systemClock,
      onEvent: (e) => events.push(e), onProblem: (e) => problems.push(e.code), initialBackoffMs: 20,
    });
    stream.start();
    // The first event's JSON was cut in two by a data line break: joined with "\n", which JSON allows between tokens.
    await expect.poll(() => events.map((e) => e.id), { timeout: 5000 }).toEqual(['7', '8']);
    stream.stop();
    expect(problems).toEqual([]);
  });

  it('delivers events, reconnects after the server drops it and resumes with Last-Event-ID; skips malformed events', async () => {
    const envelope = (id: number): ServerEventEnvelope => ({ id: String(id), at: iso(T0), event: { type: 'grant.updated', grant: grant(`g${id}`, T0 + 3600_000) } });
    const frame = (id: number) => `id: ${id}\nevent: grant.updated\ndata: ${JSON.stringify(envelope(id))}\n\n`;
    let connections = 0;
    handler = (req, res) => {
      connections++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (connections === 1) {
        res.write(': connected\n\n');
        res.write(frame(1));
        res.write(`id: 2\ndata: {"id":"2","event":{"type":"nonsense"}}\n\n`);
        res.end(frame(3)); // the server goes away after event 3
      } else {
        res.write(frame(Number(req.headers['last-event-id']) + 1));
      }
    };
    const events: string[] = [];
    const problems: string[] = [];
    const statuses: StreamStatus[] = [];
    const stream = new EventStream({
      url: `http://127.0.0.1:${port}/v1/events`, headers: async () => ({ authorization: 'Bearer t' }), clock: systemClock,
      onEvent: (e) => events.push(e.id), onProblem: (e) => problems.push(e.code), onStatus: (s) => statuses.push(s), initialBackoffMs: 20,
    });
    stream.start();
    await expect.poll(() => events, { timeout: 5000 }).toEqual(['1', '3', '4']);
    stream.stop();
    expect(problems).toEqual(['malformed_response']);
    expect(seen[1]!.headers['last-event-id']).toBe('3');
    expect(seen[0]!.headers.authorization).toBe('Bearer t');
    expect(statuses[0]).toBe('connecting');
    expect(statuses).toContain('online');
  });

  it('a refused stream reports the server\'s own problem, not a bare status', async () => {
    handler = (_req, res) => json(res, 503, { type: 'https://stint.dev/problems/storage_unavailable', title: 'Storage unavailable', status: 503, code: 'storage_unavailable', detail: 'the database is not answering' });
    const errors: string[] = [];
    const stream = new EventStream({
      url: `http://127.0.0.1:${port}/v1/events`, headers: async () => ({}), clock: systemClock,
      onEvent: () => {}, onStatus: (_s, e) => { if (e) errors.push(`${e.code}: ${e.message}`); }, initialBackoffMs: 20,
    });
    stream.start();
    await expect.poll(() => errors[0], { timeout: 3000 }).toBe('storage_unavailable: the database is not answering');
    stream.stop();
  });

  it('goes offline when the server is down, backs off, and comes back online by itself', async () => {
    await closeServer();
    const statuses: StreamStatus[] = [];
    const stream = new EventStream({
      url: `http://127.0.0.1:${port}/v1/events`, headers: async () => ({}), clock: systemClock,
      onEvent: () => {}, onStatus: (s) => statuses.push(s), initialBackoffMs: 20, maxBackoffMs: 100,
    });
    stream.start();
    await expect.poll(() => stream.status, { timeout: 3000 }).toBe('offline');
    handler = (req, res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.write(': hi\n\n'); };
    await listen(port);
    await expect.poll(() => stream.status, { timeout: 5000 }).toBe('online');
    stream.stop();
    expect(statuses).toEqual(['connecting', 'offline', 'online']);
  });

  it('refreshes the token after a 401 and reconnects', async () => {
    let token = 'old';
    handler = (req, res) => {
      if (req.headers.authorization !== 'Bearer new') return json(res, 401, { type: 'about:blank', title: 'Unauthorized', status: 401, code: 'unauthorized' });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': ok\n\n');
    };
    const stream = new EventStream({
      url: `http://127.0.0.1:${port}/v1/events`, headers: async () => ({ authorization: `Bearer ${token}` }), clock: systemClock,
      refreshAccessToken: async () => { token = 'new'; }, onEvent: () => {}, initialBackoffMs: 10,
    });
    stream.start();
    await expect.poll(() => stream.status, { timeout: 3000 }).toBe('online');
    stream.stop();
  });
});
