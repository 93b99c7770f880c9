// `stint` on the real stack: a session restored from the keychain, resources listed, and `request` holding a tunnel
// in the foreground until the access ends — the URI works while it runs, and the command returns when it ends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startStack, type Stack } from '../harness/stack';
import { runCli } from '../../electron/hosts/cli/main';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
  // Sign in once (as `stint login` would); later commands restore the session from the keychain.
  const first = stack.agent('alice');
  await first.signIn();
  await first.agent.dispose();
}, 120_000);
afterAll(async () => { await stack?.stop(); });

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

describe('stint CLI', () => {
  it('lists what alice may request, as JSON', async () => {
    const r = io();
    expect(await runCli(['resources', '--json'], r.io, () => stack.agent('alice').agent)).toBe(0);
    expect(JSON.parse(r.out[0]!).map((x: { id: string }) => x.id).sort()).toEqual(['prod-orders', 'staging-users']);
  });

  it('refuses bad input before touching anything: a wrong duration, a deny without reason', async () => {
    const r = io();
    expect(await runCli(['request', 'staging-users', '--for', '5 parsecs'], r.io, () => { throw new Error('no agent needed'); })).toBe(2);
    expect(r.err[0]).toMatch(/--for "5 parsecs" is not a duration like/);
    expect(await runCli(['deny', 'req_1'], r.io, () => { throw new Error('no agent needed'); })).toBe(2);
    expect(r.err[1]).toMatch(/needs --reason/);
  });

  it('request holds the tunnel until the deadline, then returns', async () => {
    const r = io();
    const running = runCli(['request', 'staging-users', '--for', '6s', '--reason', 'cli check', '--json'], r.io, () => stack.agent('alice').agent);
    await expect.poll(() => r.out.length, { timeout: 20_000 }).toBe(1);
    const { uri, port } = JSON.parse(r.out[0]!);
    expect(uri).toContain(`@127.0.0.1:${port}/users`);
    const client = new pg.Client({ connectionString: uri });
    client.on('error', () => undefined);
    await client.connect();
    expect((await client.query('select count(*)::int as n from users')).rows[0].n).toBe(25);
    await client.end();
    expect(await running).toBe(0);
    await expect(new pg.Client({ connectionString: uri }).connect()).rejects.toThrow();
  }, 40_000);
});
