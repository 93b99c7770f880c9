// The grant server's close ends: deploy restarts and SIGTERM wait for it. It used to wait on an event stream whose
// request was still being authenticated when close began (it opened after the open streams were ended, and nothing
// ended it), and on a connection that had not sent its first request (Node's close ends idle ones only).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { testConfig } from '../../dev/grant-server';
import { freePort } from '../../dev/ports';
import { serviceDir } from '../../dev/run-dir';
import { buildServer } from '../../server/app';
import { validateConfig } from '../../server/config';
import { join } from 'node:path';
import { startStack } from '../harness/stack';
import { runCli } from '../../agent/cli/main';
import { connect } from 'node:net';

let idp: IdpInstance;
beforeAll(async () => { idp = await startIdp(); }, 60_000);
afterAll(async () => { await idp?.close(); });

/** Resolves within `ms`, or says what did not end. */
const within = <T>(ms: number, what: string, promise: Promise<T>) => Promise.race([
  promise,
  new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms).unref()),
]);

/** A grant server on the test catalog, listening; `jwks` replaces its key set. */
async function serve(jwks?: JWTVerifyGetKey) {
  const port = await freePort();
  const config = validateConfig(testConfig(idp, `sqlite:${join(serviceDir('close'), 'stint.db')}`, port), 'test config');
  const server = await buildServer({ config, ...(jwks ? { jwks } : {}), env: { ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders' } });
  await server.app.listen({ host: '127.0.0.1', port });
  return { server, port };
}

it('closes while a client is connected that has not sent a request: the connection is ended', async () => {
  const { server, port } = await serve();
  const socket = connect(port, '127.0.0.1');
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    await within(5_000, 'the server\'s close', server.close());
    await within(5_000, 'the silent connection', ended);
  } finally {
    socket.destroy();
  }
}, 60_000);

it('closes while an event stream is still being authenticated: the stream ends and close completes', async () => {
  // The IdP's real key set, held until the test lets it answer: the stream's request waits in its token check.
  const keys = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
  let asked!: () => void;
  const keyAsked = new Promise<void>((resolve) => { asked = resolve; });
  let answer!: () => void;
  const answered = new Promise<void>((resolve) => { answer = resolve; });
  const jwks: JWTVerifyGetKey = async (header, token) => { asked(); await answered; return keys(header, token); };
  const { server, port } = await serve(jwks);
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
    // Its connection, answered while closing, is not kept for a next request (the client's pool would hold it 4 s).
    const started = Date.now();
    await within(5_000, 'the server\'s close', closing);
    expect(Date.now() - started).toBeLessThan(2_000);
  } finally {
    answer();
    if (!closing) await server.close();
  }
}, 60_000);

it('on the real stack, stop ends at once after agents were disposed (one never signed in, one on a dead server, the CLI\'s own)', async () => {
  const stack = await startStack();
  let stopped = false;
  try {
    const first = stack.agent('alice');
    await first.signIn();
    await first.agent.dispose();
    // Started again, it restores alice's session from the keychain and goes online; bob never signs in.
    const restored = stack.agent('alice');
    await restored.agent.start();
    const never = stack.agent('bob');
    never.settings.update({ serverUrl: `http://127.0.0.1:${await freePort()}` });
    await never.agent.start();
    await restored.agent.dispose();
    await never.agent.dispose();
    // The CLI's own agent, on a profile that never signed in.
    const said: string[] = [];
    expect(await runCli(['grants', '--config-dir', serviceDir('cli-never')], { out: (l) => said.push(l), err: (l) => said.push(l) })).toBe(1);
    // A spare connection of the in-process HTTP pool, with no request on it, held the server's close until the
    // pool dropped it (4 s here; a client that keeps it would hold it for ever).
    const started = Date.now();
    await within(10_000, 'the stack\'s stop', stack.stop());
    stopped = true;
    expect(Date.now() - started).toBeLessThan(3_000);
  } finally {
    if (!stopped) await stack.stop();
  }
}, 120_000);
