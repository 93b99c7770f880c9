// The grant server's close ends: deploy restarts and SIGTERM wait for it. An event stream whose request was still
// being authenticated when close began used to open after the open streams were ended — nothing ended it, and
// close waited for its connection forever.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { testConfig } from '../../dev/grant-server';
import { freePort } from '../../dev/ports';
import { serviceDir } from '../../dev/run-dir';
import { buildServer } from '../../server/app';
import { validateConfig } from '../../server/config';
import { join } from 'node:path';

let idp: IdpInstance;
beforeAll(async () => { idp = await startIdp(); }, 60_000);
afterAll(async () => { await idp?.close(); });

/** Resolves within `ms`, or says what did not end. */
const within = <T>(ms: number, what: string, promise: Promise<T>) => Promise.race([
  promise,
  new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms).unref()),
]);

it('closes while an event stream is still being authenticated: the stream ends and close completes', async () => {
  const port = await freePort();
  const config = validateConfig(testConfig(idp, `sqlite:${join(serviceDir('close'), 'stint.db')}`, port), 'test config');
  // The IdP's real key set, held until the test lets it answer: the stream's request waits in its token check.
  const keys = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
  let asked!: () => void;
  const keyAsked = new Promise<void>((resolve) => { asked = resolve; });
  let answer!: () => void;
  const answered = new Promise<void>((resolve) => { answer = resolve; });
  const jwks: JWTVerifyGetKey = async (header, token) => { asked(); await answered; return keys(header, token); };
  const server = await buildServer({ config, jwks, env: { ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders' } });
  await server.app.listen({ host: '127.0.0.1', port });
  let closing: Promise<void> | undefined;
  try {
    const token = await idp.tokenFor('alice');
    const stream = fetch(`http://127.0.0.1:${port}/v1/events`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    await keyAsked;
    closing = server.close();
    answer();
    const response = await within(5_000, 'the stream request', stream);
    // The agent sees a stream that ends at once, as after any end, and reconnects.
    expect(response.status).toBe(200);
    expect(await within(5_000, 'the stream', response.text())).toContain(': connected');
    await within(5_000, 'the server\'s close', closing);
  } finally {
    answer();
    if (!closing) await server.close();
  }
}, 60_000);
