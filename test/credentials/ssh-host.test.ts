// SSH target hosts (issue #23) on real parts: stock OpenSSH as the bastion AND as the target host, each with Stint's
// key program (its own token), the routes over a grant lookup the test controls, a kill companion on each, the SSH
// host provider, and the real `ssh` client run with the ssh_config snippet the agent writes. During a grant the
// printed command runs a command on the target through the bastion as the level's login; other logins are refused;
// at the end the live session is cut, the key is refused, and the end is only confirmed once the host said so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { spawn } from 'node:child_process';
import { statSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startSshd, startTargetSshd, TARGET_USER, BASTION_USER, type SshdInstance } from '../../dev/sshd';
import { serviceDir } from '../../dev/run-dir';
import { freePort } from '../../dev/ports';
import { hostNodeId } from '../../server/bastion/nodes';
import { bastionRoutes } from '../../server/bastion/routes';
import { createDbSessionStore, type BastionSessionStore } from '../../server/bastion/sessions';
import { openStore, type Store } from '../../server/storage/db';
import { startCompanion, type Companion } from '../../server/bastion/companion';
import type { SessionsEndedReport } from '../../server/bastion/session-reports';
import { createSshHostProvider } from '../../server/targets/ssh/provider';
import type { CredentialProvider } from '../../server/credentials/provider';
import { MemoryLookup } from '../../dev/memory-lookup';
import { ClientFiles } from '../../agent/core/client-files';
import { sshAlias, writeSshFiles } from '../../agent/core/ssh-config';
import { installKeysCommand, newClientKey, type InstalledKeysCommand, type ClientKey } from './helpers';

const KEY_PROGRAM = join(import.meta.dirname, '../../server/bastion/authorized-keys.sh');
const BASTION_TOKEN = 'bastion-token-0123456789abcdef';
const HOST_TOKEN = 'host-token-0123456789abcdef';
const LOGINS = { shell: [TARGET_USER] };

let app: FastifyInstance;
let sessionDb: Store;
let sessions: BastionSessionStore;
let serverUrl: string;
let bastionKeys: InstalledKeysCommand;
let hostKeys: InstalledKeysCommand;
let bastion: SshdInstance;
let target: SshdInstance;
let bastionCompanion: Companion;
let hostCompanion: Companion;
let provider: CredentialProvider;
const files = new ClientFiles(join(serviceDir('ssh-host-agent'), 'grants'));
const lookup = new MemoryLookup();
const hostReports: SessionsEndedReport[] = [];

const openSessions = async (resourceId: string, grantId: string) => (await sessions.pidsFor(hostNodeId(resourceId), [grantId])).get(grantId)?.length ?? 0;
const startHostCompanion = () => startCompanion({ serverUrl, token: HOST_TOKEN, killGraceMs: 1_000, onReported: (report) => hostReports.push(report) });

beforeAll(async () => {
  sessionDb = openStore('sqlite::memory:');
  await sessionDb.migrate();
  sessions = createDbSessionStore(sessionDb.db);
  app = Fastify();
  await app.register(bastionRoutes({
    lookup, sessions, heartbeatMs: 1_000,
    bastions: {
      main: { token: BASTION_TOKEN, users: [BASTION_USER] },
      [hostNodeId('web')]: { token: HOST_TOKEN, host: { resourceId: 'web', logins: LOGINS } },
    },
  }), { prefix: '/v1/bastion' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  serverUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  // The same key program on both, each with its own token (the host's, on the target, is the one-liner's config).
  bastionKeys = installKeysCommand(KEY_PROGRAM);
  bastionKeys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: BASTION_TOKEN });
  hostKeys = installKeysCommand(KEY_PROGRAM);
  hostKeys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: HOST_TOKEN });
  target = await startTargetSshd({ authorizedKeysCommand: { command: hostKeys.command } });
  bastion = await startSshd({ permitOpen: [`127.0.0.1:${target.port}`], authorizedKeysCommand: { command: bastionKeys.command } });
  bastionCompanion = startCompanion({ serverUrl, token: BASTION_TOKEN, killGraceMs: 1_000 });
  hostCompanion = startHostCompanion();
  await Promise.all([bastionCompanion.ready, hostCompanion.ready]);
  provider = createSshHostProvider({ hosts: { web: { host: '127.0.0.1', port: target.port, logins: LOGINS } }, openSessions });
}, 60_000);

afterAll(async () => {
  await hostCompanion?.stop();
  await bastionCompanion?.stop();
  await bastion?.stop();
  await target?.stop();
  bastionKeys?.remove();
  hostKeys?.remove();
  await app?.close();
  await sessionDb?.close();
  await files.wipeAll();
});

interface Activated { grantId: string; key: ClientKey; login: string; command: string; configFile: string }

/** What activation does for an SSH host: the provider's check, the grant live in the lookup, the agent's files. */
async function activate(grantId: string): Promise<Activated> {
  const key = newClientKey();
  const endsAt = Date.now() + 600_000;
  const issued = await provider.issue({ grantId, resourceId: 'web', level: 'shell', endsAt });
  lookup.add({ grantId, bastionId: 'main', owner: 'alice', keyBase64: key.keyBase64, endsAt, target: { host: '127.0.0.1', port: target.port }, host: { resourceId: 'web', level: 'shell' } });
  const written = await writeSshFiles(files, grantId, {
    alias: sshAlias('web'), privateKey: key.privateKey,
    bastion: { host: bastion.host, port: bastion.port, user: bastion.user, hostKeys: [bastion.hostKeyLine] },
    target: { host: '127.0.0.1', port: target.port, user: issued.username, hostKeys: [target.hostKeyLine] },
  });
  return { grantId, key, login: issued.username, ...written };
}

interface Run { code: Promise<number | null>; output: () => string; exited: () => boolean }

/** The printed command, as a user runs it in a shell, with a remote command after it. */
function runSsh(command: string, remote: string): Run {
  let output = '';
  let exited = false;
  const child = spawn('/bin/sh', ['-c', `${command} ${remote}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  const code = new Promise<number | null>((resolve) => child.once('exit', (c) => { exited = true; resolve(c); }));
  return { code, output: () => output, exited: () => exited };
}

async function sshOnce(command: string, remote: string): Promise<{ code: number | null; output: string }> {
  const run = runSsh(command, remote);
  const code = await run.code;
  return { code, output: run.output() };
}

describe('SSH target host per grant (real ssh through the bastion)', () => {
  it('the printed command runs a command on the target as the level\'s login, through the bastion', async () => {
    const grant = await activate('h-run');
    expect(grant.command).toBe(`ssh -F ${grant.configFile} stint-web`);
    const result = await sshOnce(grant.command, "'id -un; echo ran-on-target'");
    expect(result.output).toContain(`${TARGET_USER}\nran-on-target`);
    expect(result.code).toBe(0);
    // The agent's files: the key and the snippet readable by their owner only; both hosts' keys pinned.
    for (const name of ['id_ed25519', 'ssh_config', 'known_hosts']) expect(statSync(join(grant.configFile, '..', name)).mode & 0o777).toBe(0o600);
    const knownHosts = readFileSync(join(grant.configFile, '..', 'known_hosts'), 'utf8');
    expect(knownHosts).toContain(`stint-web ${target.hostKeyLine.split(' ').slice(0, 2).join(' ')}`);
    expect(knownHosts).toContain(`stint-web-bastion ${bastion.hostKeyLine.split(' ').slice(0, 2).join(' ')}`);
  });

  it('a login the grant\'s level does not name is refused, though sshd itself would let that account in', async () => {
    const grant = await activate('h-login');
    const refused = await sshOnce(grant.command.replace(' stint-web', ` -l ${BASTION_USER} stint-web`), 'true');
    expect(refused.code).toBe(255);
    expect(refused.output).toMatch(/Permission denied \(publickey\)/);
    expect((await sshOnce(grant.command, 'true')).code).toBe(0);
  });

  it('a target whose host key is not the pinned one is refused', async () => {
    const grant = await activate('h-pin');
    // As if someone stood in for the target: the key pinned for it is another host's.
    const knownHosts = join(grant.configFile, '..', 'known_hosts');
    const targetKey = target.hostKeyLine.split(' ').slice(0, 2).join(' ');
    writeFileSync(knownHosts, readFileSync(knownHosts, 'utf8').replace(`stint-web ${targetKey}`, `stint-web ${newClientKey().publicLine.split(' ').slice(0, 2).join(' ')}`));
    const result = await sshOnce(grant.command, 'true');
    expect(result.code).toBe(255);
    expect(result.output).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  it('at the grant\'s end live sessions are cut within 1 s (with a TTY or without), nothing of them is left on the host, the key is refused, and the host confirms the end', async () => {
    const grant = await activate('h-end');
    const marker = `${60 + Math.floor(Math.random() * 1000) / 1000}`;
    // An interactive session (a TTY, as a user at a terminal has) and a command run without one: the latter would
    // outlive its connection if only the bastion cut it.
    const interactive = runSsh(grant.command.replace(' stint-web', ' -tt stint-web'), `'echo ready; exec sleep ${marker}'`);
    const command = runSsh(grant.command, `'echo ready; exec sleep ${marker}'`);
    await expect.poll(() => interactive.output() + command.output(), { timeout: 10_000 }).toMatch(/ready[\s\S]*ready/);
    expect(await openSessions('web', 'h-end')).toBe(2);

    const deadline = Date.now();
    lookup.end('h-end');
    const revoked = provider.revoke({ grantId: 'h-end', resourceId: 'web', username: grant.login });
    await Promise.all([interactive.code, command.code]);
    expect(Date.now() - deadline).toBeLessThan(1_000);
    // Nothing of either session is left on the target: their commands died with them.
    await expect.poll(() => sshSleeps(marker), { timeout: 3_000 }).toEqual([]);
    // The end is confirmed by the host's companion, which ended both sessions there (before the bastion's cut).
    // (The server has the report once the revoke resolves; the companion's own callback runs after the server's
    // answer reaches it, a moment later on a busy machine.)
    await revoked;
    await expect.poll(() => hostReports.find((r) => r.grantId === 'h-end'), { timeout: 3_000 }).toMatchObject({ killed: [expect.any(Number), expect.any(Number)], closed: [] });
    // With what each session's connection carried (from the bastion: the only way in), counted at the cut.
    const report = hostReports.find((r) => r.grantId === 'h-end')!;
    expect(report.traffic?.map((t) => t.pid).sort()).toEqual([...report.killed].sort());
    for (const t of report.traffic ?? []) expect(t).toMatchObject({ from: '127.0.0.1', bytesFromClient: expect.toSatisfy((n: number) => n > 1_000), bytesToClient: expect.toSatisfy((n: number) => n > 1_000) });
    expect(await openSessions('web', 'h-end')).toBe(0);
    const again = await sshOnce(grant.command, 'true');
    expect(again.code).toBe(255);
  });

  it('a target that is down at activation: a clear refusal, no grant', async () => {
    const down = createSshHostProvider({ hosts: { web: { host: '127.0.0.1', port: await freePort(), logins: LOGINS } }, openSessions });
    await expect(down.issue({ grantId: 'h-down', resourceId: 'web', level: 'shell', endsAt: Date.now() + 60_000 }))
      .rejects.toMatchObject({ code: 'unavailable', retryable: true, message: expect.stringMatching(/SSH host web is down: .*ECONNREFUSED/) });
  });

  it('while the host\'s companion is away the end is not confirmed (retried); once it is back, it is', async () => {
    const impatient = createSshHostProvider({ hosts: { web: { host: '127.0.0.1', port: target.port, logins: LOGINS } }, openSessions, confirmWithinMs: 300 });
    const grant = await activate('h-away');
    const live = runSsh(grant.command, "'echo ready; exec sleep 60'");
    await expect.poll(() => live.output(), { timeout: 10_000 }).toContain('ready');
    await hostCompanion.stop();
    lookup.end('h-away');
    // The bastion's companion still cuts the path through the bastion, so the session goes anyway…
    await live.code;
    // …but the host has not said so: the end stays unconfirmed, and the lifecycle retries it.
    await expect(impatient.revoke({ grantId: 'h-away', resourceId: 'web', username: grant.login })).rejects.toMatchObject({ code: 'sessions_remain', retryable: true });
    hostCompanion = startHostCompanion();
    await hostCompanion.ready;
    await impatient.revoke({ grantId: 'h-away', resourceId: 'web', username: grant.login });
    expect(await openSessions('web', 'h-away')).toBe(0);
  });
});

/** Processes of the target login still running `sleep <marker>`. */
function sshSleeps(marker: string): Promise<string[]> {
  return new Promise((resolve) => {
    const child = spawn('pgrep', ['-u', TARGET_USER, '-f', `sleep ${marker}`]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.once('exit', () => resolve(out.split('\n').filter(Boolean)));
  });
}
