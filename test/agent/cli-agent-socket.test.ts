// `stint --agent <socket>` drives another process's agent (a demo user's, the tray app's). When that agent is not
// signed in, the CLI said "You are not signed in (profile cli). Run `stint login` first." — but `stint login` signs in
// the cli profile, not that agent, and `stint --agent <socket> login` waited silently for a sign-in page that opened
// in the other agent's window. Seen in the walkthrough of `npm start` (demo agents are signed out after a restart).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startKeyring, type KeyringInstance } from '../../dev/keyring';
import { serviceDir } from '../../dev/run-dir';
import { createAgent } from '../../agent/core/compose';
import { listenLocalSocket } from '../../agent/core/local-socket';
import { MemorySettingsStore } from '../../agent/core/settings';

const execFileP = promisify(execFile);
let keyring: KeyringInstance;
beforeAll(async () => {
  keyring = await startKeyring();
  Object.assign(process.env, keyring.env);
}, 60_000);
afterAll(async () => { await keyring?.stop(); });

describe('stint --agent with an agent that is not signed in', () => {
  it('names that agent and where to sign it in, not `stint login`; login and logout through --agent are refused at once', async () => {
    const dir = join(serviceDir('cli-agent-signed-out'), 'erin');
    // What it says needs no server: a running agent nobody has signed in yet, in a keychain namespace of its own.
    const agent = createAgent({
      settings: new MemorySettingsStore({ serverUrl: 'http://127.0.0.1:9', issuer: 'http://127.0.0.1:9', audience: 'http://127.0.0.1:9/api' }),
      profile: 'walk-signed-out', dataDir: dir, openUrl: async () => { throw new Error('no sign-in expected'); },
    });
    await agent.start();
    const socket = await listenLocalSocket({ agent, dataDir: dir });
    const stint = (...args: string[]) => execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, ...args], { timeout: 30_000, env: { ...process.env, ...keyring.env } }).catch((e) => e);
    try {
      const grants = await stint('grants');
      expect(grants.code).toBe(1);
      expect(grants.stderr).toContain(`The agent at ${socket.path} is not signed in.`);
      expect(grants.stderr).toContain('Sign in in its window');
      expect(grants.stderr).not.toContain('stint login');
      for (const command of ['login', 'logout']) {
        const refused = await stint(command);
        expect(refused.code).toBe(2);
        expect(refused.stderr).toContain(`stint ${command} signs in this terminal's own profile, not the agent at ${socket.path}`);
      }
    } finally {
      await socket.close();
      await agent.dispose();
    }
  }, 60_000);
});
