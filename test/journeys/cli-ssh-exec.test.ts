// `stint connect --exec` on an SSH host's grant, on the real stack: the command gets the grant's ssh_config and the
// host's alias in its environment and runs on the host through the bastion with them; the access ends with it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startStack, type Stack } from '../harness/stack';
import { listenLocalSocket } from '../../agent/core/local-socket';
import { serviceDir } from '../../dev/run-dir';

const execFileP = promisify(execFile);
let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('stint connect --exec with an SSH host (#23)', () => {
  it('connect --exec runs a command on the host with the grant\'s ssh_config and alias from the environment, then ends the access', async () => {
    const dir = join(serviceDir('cli-ssh-exec'), 'alice');
    const holder = stack.agent('alice', { dataDir: dir });
    await holder.signIn();
    const socket = await listenLocalSocket({ agent: holder.agent, dataDir: dir });
    try {
      await holder.agent.api.createRequest({ resourceId: 'staging-web', level: 'shell', reason: 'cli ssh exec', connect: true });
      const ran = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, 'connect', 'staging-web', '--exec',
        `ssh -F "$STINT_SSH_CONFIG" "$STINT_SSH_HOST" 'id -un; echo on-the-host' && echo "pg:\${PGHOST:-none}"`], { timeout: 30_000 });
      expect(ran.stdout.trim()).toBe('stinttarget\non-the-host\npg:none');
      const grant = holder.agent.state().grants.find((g) => g.grant.resourceId === 'staging-web')!;
      expect(grant.grant.state).toBe('released');
    } finally {
      await socket.close();
      await holder.agent.dispose();
    }
  }, 60_000);
});
