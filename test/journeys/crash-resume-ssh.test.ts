// Issue #21's take-back for an SSH host (#23's rekey path), on the real stack: the agent holding alice's shell on the
// staging web host is killed (SIGKILL, its own process) while an `ssh` session it opened runs on the host through the
// bastion — that session does not go through the agent, so it outlives the crash, as would the key for whoever copied
// it. The same device starts Stint again and Resume takes the grant back with a new key: the host's companion ends
// the session opened with the old key (audited as a rekey), the old key logs in nowhere, the new command does.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { runDir, serviceDir } from '../../dev/run-dir';
import { api, crashMidGrant } from './faults-support';

const sh = async (line: string) => (await promisify(execFile)('/bin/sh', ['-c', line], { timeout: 20_000 })).stdout.trim();

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('journey: take an SSH host grant back after a crash', () => {
  it('the crashed run\'s live session on the host is ended by the rekey, its key is refused, the resumed grant\'s command works', async () => {
    const DEVICE = 'device-crash-ssh';
    const copy = mkdtempSync(join(runDir(), 'copied-'));
    const dataDir = join(serviceDir('crash-resume-ssh'), 'alice');
    let live: ChildProcess | undefined;
    let exited: Promise<number> | undefined;
    let copied = '';
    const a = await crashMidGrant(stack, {
      device: DEVICE, resourceId: 'staging-web', level: 'shell', dataDir,
      whileAlive: async ({ command }) => {
        expect(command).toMatch(/^ssh -F \S+\/ssh_config stint-staging-web$/);
        expect(await sh(`${command} 'id -un'`)).toBe('stinttarget');
        // Whoever copied the grant's files (config, key, pinned host keys) before the crash.
        const grantFiles = command!.split(' ')[2]!.replace(/\/ssh_config$/, '');
        cpSync(grantFiles, copy, { recursive: true });
        writeFileSync(join(copy, 'ssh_config'), readFileSync(join(copy, 'ssh_config'), 'utf8').replaceAll(grantFiles, copy));
        copied = `ssh -F ${copy}/ssh_config stint-staging-web`;
        expect(await sh(`${copied} 'echo copied-works'`)).toBe('copied-works');
        // A live session on the host, opened with the grant's key: it does not pass through the agent.
        live = spawn('/bin/sh', ['-c', `${command!.replace(' stint-staging-web', ' -tt stint-staging-web')} 'echo ready; exec sleep 120'`], { stdio: ['ignore', 'pipe', 'pipe'] });
        let said = '';
        live.stdout!.on('data', (d: Buffer) => { said += d.toString(); });
        const session = live;
        exited = new Promise<number>((done) => session.once('exit', () => done(Date.now())));
        await expect.poll(() => said, { timeout: 15_000 }).toContain('ready');
      },
    });
    // The crash ends nothing: the session and the copied key still work.
    expect(live!.exitCode).toBeNull();
    expect(await sh(`${copied} 'echo still'`)).toBe('still');

    // The same device starts Stint again: the grant is offered, and Resume takes it back with a new key.
    const b = stack.agent('alice', { deviceId: DEVICE, dataDir });
    try {
      await b.agent.start();
      expect(b.agent.state().grants.find((g) => g.grant.id === a.grantId)).toMatchObject({ leftFromBefore: true });
      const resumedAt = Date.now();
      await b.agent.api.resumeGrant({ grantId: a.grantId });
      // The session opened with the old key is ended on the host, while the grant goes on.
      expect(await exited! - resumedAt).toBeLessThan(5_000);
      await expect(sh(`${copied} true`)).rejects.toThrow();
      const resumed = b.agent.state().grants.find((g) => g.grant.id === a.grantId)!;
      expect(resumed.grant.state).toBe('active');
      expect(await sh(`${resumed.tunnel!.command!} 'echo after-resume'`)).toBe('after-resume');

      const token = await stack.idp.tokenFor('carol');
      const audit = async () => (await api(stack, token, 'GET', `/v1/admin/audit?grantId=${a.grantId}&limit=100`)).body.entries as Array<{ action: string; detail?: Record<string, unknown> }>;
      await expect.poll(async () => (await audit()).filter((e) => e.action === 'host.session.killed' && e.detail?.cause === 'rekeyed').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
      expect((await audit()).map((e) => e.action)).toContain('grant.rekeyed');
      await b.agent.api.release({ grantId: a.grantId });
      await expect(sh(`${resumed.tunnel!.command!} true`)).rejects.toThrow();
    } finally {
      live?.kill('SIGKILL');
      rmSync(copy, { recursive: true, force: true });
      await b.agent.dispose();
    }
  }, 90_000);
});
