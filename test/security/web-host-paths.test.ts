// Any web page the user visits can send requests to the agent's web host on localhost. A malformed path (/%zz)
// used to throw in decodeURIComponent inside the request handler and take the agent down with it. Every path,
// generated or hand-picked, now gets an answer (400/403/404 for anything that is not a file we serve) and the
// host keeps serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import fc from 'fast-check';
import { startWebHost, type WebHost } from '../../agent/web/host';
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
