// Any web page the user visits can send requests to the agent's web host on localhost. A malformed path (/%zz)
// used to throw in decodeURIComponent inside the request handler and take the agent down with it. Every path,
// generated or hand-picked, now gets an answer (400/403/404 for anything that is not a file we serve) and the
// host keeps serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import fc from 'fast-check';
import WebSocket from 'ws';
import { startWebHost, type WebHost } from '../../agent/web/host';
import { WEB_HOST_ROUTES } from '../../agent/web/routes';
import { ScriptedAgent } from '../e2e/fixtures/scripted-agent';

let host: WebHost;
beforeAll(async () => { host = await startWebHost({ staticDir: 'renderer', agent: new ScriptedAgent() }); });
afterAll(async () => { await host.close(); });

/** A raw GET with the path exactly as given (no client-side normalisation), from a page on the web host's Host. */
function get(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: host.port, path, method: 'GET', headers: { host: `localhost:${host.port}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web host paths', () => {
  it('answers malformed percent-encoding with 400 and keeps serving', async () => {
    for (const path of ['/%zz', '/%', '/%E0%A4%A', '/assets/%c0%af..%c0%af']) expect(await get(path), path).toBe(400);
    expect(await get('/index.html')).toBe(200);
  });

  it('never fails on generated paths: always an answer below 500, and the UI still loads after', async () => {
    const segment = fc.oneof(fc.string(), fc.constantFrom('..', '%2e%2e', '%2f', '%00', '%zz', '%', '.', '//', '\\'));
    await fc.assert(fc.asyncProperty(fc.array(segment, { maxLength: 5 }), async (parts) => {
      const path = `/${parts.map((p) => p.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c))).join('/')}`;
      const status = await get(path);
      expect(status, path).toBeGreaterThanOrEqual(200);
      expect(status, path).toBeLessThan(500);
    }), { numRuns: 300 });
    expect(await get('/')).toBe(200);
  });
});

/** Open a WebSocket to `path` with these headers; resolve with how it went: refused at the upgrade, or closed/welcomed. */
function socket(path: string, headers: Record<string, string>, hello?: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${host.port}${path}`, { headers });
    ws.on('unexpected-response', (_req, res) => resolve(`refused ${res.statusCode}`));
    ws.on('error', () => resolve('error'));
    ws.on('open', () => { if (hello !== undefined) ws.send(JSON.stringify({ type: 'hello', token: hello })); });
    ws.on('message', (data) => { resolve(String((JSON.parse(data.toString()) as { type: string }).type)); ws.close(); });
    ws.on('close', (code) => resolve(`closed ${code}`));
  });
}

describe('the web host\'s route table (every route declares who may use it; nothing else is answered)', () => {
  const own = () => ({ host: `localhost:${host.port}`, origin: `http://localhost:${host.port}` });

  it('declares exactly the UI files and the AgentApi socket', () => {
    expect(WEB_HOST_ROUTES.map((r) => `${r.kind} ${r.methods.join('/')} ${r.path} ${r.access}`)).toEqual([
      'websocket GET /agent page-with-token',
      'http GET/HEAD * loopback-page',
    ]);
  });

  it('each route refuses a caller without its requirement', async () => {
    // loopback-page: another Host (a DNS-rebinding page) is refused.
    const rebinding = await new Promise<number>((resolve) => {
      request({ host: '127.0.0.1', port: host.port, path: '/', headers: { host: 'evil.example' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).end();
    });
    expect(rebinding).toBe(403);
    // page-with-token: another Origin is refused at the upgrade; our Origin without the token is closed; with it, welcome.
    expect(await socket('/agent', { ...own(), origin: 'http://evil.example' })).toBe('refused 403');
    const wrong = (host.token[0] === 'A' ? 'B' : 'A') + host.token.slice(1);
    expect(await socket('/agent', own(), wrong)).toBe('closed 4401');
    expect(await socket('/agent', own(), host.token)).toBe('welcome');
  });

  it('what is not declared is refused: other methods, upgrades elsewhere', async () => {
    const post = await new Promise<{ status: number; allow?: string }>((resolve) => {
      request({ host: '127.0.0.1', port: host.port, path: '/', method: 'POST', headers: { host: `localhost:${host.port}` } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, allow: res.headers.allow });
      }).end();
    });
    expect(post).toEqual({ status: 405, allow: 'GET, HEAD' });
    expect(await socket('/agent/../admin', own(), host.token)).toBe('refused 403');
    expect(await socket('/', own(), host.token)).toBe('refused 403');
  });
});
