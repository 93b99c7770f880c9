// Revocation latency for SSH target hosts (issue #23): from a grant's deadline to "no live session on the target",
// over grants that each hold one interactive `ssh` session (the real client, through the bastion with ProxyJump,
// from the ssh_config snippet the agent writes) running a command on the target. Stock OpenSSH as bastion and target,
// each with Stint's key program and kill companion; the end is announced at each deadline as the lifecycle does.
// "No live session" = the client's ssh has exited (its connection is cut) AND the target's sshd process that served
// the session (the pid its key program recorded) is gone.
import Fastify from 'fastify';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startSshd, startTargetSshd, BASTION_USER, TARGET_USER } from '../dev/sshd';
import { installKeysCommand } from '../dev/keys-command';
import { serviceDir } from '../dev/run-dir';
import { MemoryLookup } from '../dev/memory-lookup';
import { hostNodeId } from '../server/bastion/nodes';
import { bastionRoutes } from '../server/bastion/routes';
import { createDbSessionStore } from '../server/bastion/sessions';
import { startCompanion } from '../server/bastion/companion';
import { openStore } from '../server/storage/db';
import { ClientFiles } from '../agent/core/client-files';
import { sshAlias, writeSshFiles } from '../agent/core/ssh-config';
import { generateGrantKey } from '../agent/core/vault';

interface LiveSession { grantId: string; child: ChildProcess; exited: Promise<number>; hostPid: number }

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Deadline → no live session, in ms, for each of `count` grants whose deadlines are `spacingMs` apart. */
export async function sshRevocationLatencies(count: number, spacingMs = 100): Promise<number[]> {
  const stops: Array<() => Promise<unknown> | unknown> = [];
  try {
    const sessionDb = openStore('sqlite::memory:');
    await sessionDb.migrate();
    stops.push(() => sessionDb.close());
    const sessions = createDbSessionStore(sessionDb.db);
    const lookup = new MemoryLookup();
    const app = Fastify();
    await app.register(bastionRoutes({
      lookup, sessions,
      bastions: {
        b: { token: 'bench-bastion-token', users: [BASTION_USER] },
        [hostNodeId('web')]: { token: 'bench-host-token', host: { resourceId: 'web', logins: { shell: [TARGET_USER] } } },
      },
    }), { prefix: '/v1/bastion' });
    await app.listen({ port: 0, host: '127.0.0.1' });
    stops.push(() => app.close());
    const serverUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const program = join(import.meta.dirname, '../server/bastion/authorized-keys.sh');
    const bastionKeys = installKeysCommand(program);
    const hostKeys = installKeysCommand(program);
    stops.push(() => bastionKeys.remove(), () => hostKeys.remove());
    bastionKeys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: 'bench-bastion-token' });
    hostKeys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: 'bench-host-token' });
    const target = await startTargetSshd({ authorizedKeysCommand: { command: hostKeys.command } });
    stops.push(() => target.stop());
    const bastion = await startSshd({ permitOpen: [`127.0.0.1:${target.port}`], authorizedKeysCommand: { command: bastionKeys.command } });
    stops.push(() => bastion.stop());
    const companions = [startCompanion({ serverUrl, token: 'bench-bastion-token' }), startCompanion({ serverUrl, token: 'bench-host-token' })];
    stops.push(() => Promise.all(companions.map((c) => c.stop())));
    await Promise.all(companions.map((c) => c.ready));
    const files = new ClientFiles(join(serviceDir('bench-ssh-agent'), 'grants'));
    stops.push(() => files.wipeAll());

    const open = async (i: number): Promise<LiveSession> => {
      const grantId = `ssh-${i}`;
      const pair = generateGrantKey('stint-bench');
      const keyBase64 = pair.publicKey.split(' ')[1]!;
      lookup.add({ grantId, bastionId: 'b', owner: 'alice', keyBase64, endsAt: Date.now() + 3_600_000, target: { host: '127.0.0.1', port: target.port }, host: { resourceId: 'web', level: 'shell' } });
      const { command } = await writeSshFiles(files, grantId, {
        alias: sshAlias('web'), privateKey: pair.privateKey.toString('utf8'),
        bastion: { host: bastion.host, port: bastion.port, user: bastion.user, hostKeys: [bastion.hostKeyLine] },
        target: { host: '127.0.0.1', port: target.port, user: TARGET_USER, hostKeys: [target.hostKeyLine] },
      });
      const child = spawn('/bin/sh', ['-c', `${command.replace(' stint-web', ' -tt stint-web')} 'echo ready; exec sleep 600'`], { stdio: ['ignore', 'pipe', 'ignore'] });
      const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(performance.timeOrigin + performance.now())));
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ready')) resolve(); });
        void exited.then(() => reject(new Error(`ssh for ${grantId} exited before its session was up`)));
      });
      const hostPid = (await sessions.pidsFor(hostNodeId('web'), [grantId])).get(grantId)?.[0];
      if (!hostPid) throw new Error(`no target session recorded for ${grantId}`);
      return { grantId, child, exited, hostPid };
    };
    const live: LiveSession[] = [];
    for (let i = 0; i < count; i += 5) live.push(...await Promise.all(Array.from({ length: Math.min(5, count - i) }, (_, j) => open(i + j))));
    stops.push(() => { for (const s of live) s.child.kill('SIGKILL'); });

    const start = Date.now() + 300;
    return await Promise.all(live.map(async (session, i) => {
      const deadline = start + i * spacingMs;
      await sleep(Math.max(0, deadline - Date.now()));
      lookup.end(session.grantId, deadline);
      const clientGone = await session.exited;
      while (existsSync(`/proc/${session.hostPid}`)) await sleep(2);
      const hostGone = performance.timeOrigin + performance.now();
      return Math.max(clientGone, hostGone) - deadline;
    }));
  } finally {
    for (const stop of stops.reverse()) await Promise.resolve().then(stop).catch(() => undefined);
  }
}
