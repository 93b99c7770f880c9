// The agent's local socket, as another process of the user meets it: only the owner can reach it, a crashed
// agent's socket is replaced, a second agent of the same profile is refused with words, and a socket in someone
// else's folder is never used. (That a real grant's tunnel is reached through it from a second process is in
// test/journeys/cli.test.ts.)
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createAgent } from '../../agent/core/compose';
import { MemorySettingsStore } from '../../agent/core/settings';
import { listenLocalSocket, socketPathFor } from '../../agent/core/local-socket';
import { connectRemoteAgent } from '../../agent/cli/remote-agent';
import { serviceDir, waitFor } from '../../dev/run-dir';
import { MemorySecretStore } from '../agent/memory-secrets';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function agentIn(dataDir: string) {
  const agent = createAgent({ settings: new MemorySettingsStore(), secrets: new MemorySecretStore(), openUrl: () => undefined, dataDir });
  await agent.start();
  cleanups.push(() => agent.dispose());
  return agent;
}

describe('agent local socket', () => {
  it('serves the AgentApi to another client of the same user, owner-only, and parses every call', async () => {
    const dir = join(serviceDir('socket'), 'agent');
    const agent = await agentIn(dir);
    const socket = await listenLocalSocket({ agent, dataDir: dir });
    cleanups.push(() => socket.close());
    expect(statSync(socket.path).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const client = (await connectRemoteAgent(socket.path))!;
    cleanups.push(() => client.dispose());
    expect(client.state().session).toEqual({ status: 'signed_out' });
    await expect(client.api.connect({ grantId: '../../etc' })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(client.api.release({ grantId: 'gr_nope' })).rejects.toMatchObject({ code: 'invalid_input', message: expect.stringMatching(/Set the Stint server address/) });
  });

  it('replaces the socket of an agent that was killed, and refuses to start a second one beside a live one', async () => {
    const dir = join(serviceDir('socket'), 'agent');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = socketPathFor(dir);
    const crashed = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)})`], { stdio: 'ignore' });
    await waitFor('the crashed agent socket', () => existsSync(path) || undefined);
    crashed.kill('SIGKILL');
    await new Promise((r) => crashed.once('exit', r));
    expect(await connectRemoteAgent(path)).toBeUndefined();

    const agent = await agentIn(dir);
    const socket = await listenLocalSocket({ agent, dataDir: dir });
    cleanups.push(() => socket.close());
    const client = (await connectRemoteAgent(path))!;
    cleanups.push(() => client.dispose());
    expect(client.state().version).toBeGreaterThanOrEqual(0);
    await expect(connectRemoteAgent(join(dir, 'nothing.sock'), true)).rejects.toThrow(/No Stint agent socket at .*Is that agent running/);

    await expect(listenLocalSocket({ agent, dataDir: dir })).rejects.toThrow(/Another Stint agent of this profile is already running/);
  });

  // Only root can hand a folder to another user (CI and this machine run as root).
  it.skipIf(process.getuid?.() !== 0)('never uses a folder of another user', async () => {
    const dir = join(serviceDir('socket'), 'theirs');
    mkdirSync(dir, { mode: 0o700 });
    const nobody = Number(execFileSync('id', ['-u', 'nobody']).toString());
    chownSync(dir, nobody, nobody);
    const agent = await agentIn(join(serviceDir('socket'), 'ours'));
    await expect(listenLocalSocket({ agent, dataDir: dir })).rejects.toThrow(/belongs to another user .*will not use an agent socket there/);
  });
});
