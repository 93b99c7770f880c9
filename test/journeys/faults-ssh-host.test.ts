// Bad input for SSH hosts (issue #23) on the real stack: the grant server, the bastion and the target host's sshd with
// their companions, the real `ssh` with the files the agent writes. A host whose companion cannot confirm a grant's
// end keeps the grant "ending" (revocation retrying; the key refused from the first instant) until it can; a host
// that is down at activation refuses it with a clear problem, and the grant is not active.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { AuditEntry, Connection } from '../../shared/contract/http';
import { ClientFiles } from '../../agent/core/client-files';
import { sshAlias, writeSshFiles } from '../../agent/core/ssh-config';
import { serviceDir } from '../../dev/run-dir';
import { startStack, type Stack } from '../harness/stack';
import { call } from '../server/helpers';
import { newClientKey } from '../credentials/helpers';

const sh = async (line: string) => (await promisify(execFile)('/bin/sh', ['-c', line], { timeout: 20_000 })).stdout.trim();

let stack: Stack;
let files: ClientFiles;
beforeAll(async () => {
  stack = await startStack();
  files = new ClientFiles(join(serviceDir('ssh-faults-agent'), 'grants'));
}, 120_000);
afterAll(async () => { await stack?.stop(); });

/** alice's request on the staging SSH host, activated with a fresh key: the answer, and the ssh command when active. */
async function activate(token: string, reason: string, durationSeconds?: number): Promise<{ status: number; body: any; command?: string }> {
  const request = (await call(stack.serverUrl, 'POST', '/v1/requests', { token, body: { resourceId: 'staging-web', level: 'shell', reason, ...(durationSeconds ? { durationSeconds } : {}) } })).body.request;
  const key = newClientKey();
  const activated = await call(stack.serverUrl, 'POST', `/v1/requests/${request.id}/activate`, { token, body: { publicKey: key.publicLine } });
  if (activated.status !== 201) return activated;
  const connection = activated.body.connection as Connection;
  // What the agent's ssh kind writes from the activation's answer: both hosts' keys come with it.
  const { command } = await writeSshFiles(files, activated.body.grant.id, {
    alias: sshAlias('staging-web'), privateKey: key.privateKey, bastion: connection.bastion,
    target: { host: connection.target.host, port: connection.target.port, user: connection.dbUser, hostKeys: connection.target.hostKeys! },
  });
  return { ...activated, command };
}

const grantOf = async (token: string, id: string) => (await call(stack.serverUrl, 'GET', `/v1/grants/${id}`, { token })).body.grant;

describe('SSH host faults', () => {
  it('a host that cannot confirm the end keeps the grant ending, retried, its key refused at once; when the host is back the end completes', async () => {
    const alice = await stack.idp.tokenFor('alice');
    const carol = await stack.idp.tokenFor('carol');
    const grant = await activate(alice, 'host away at the end');
    expect(grant.status).toBe(201);
    const grantId = grant.body.grant.id as string;
    const live = spawn('/bin/sh', ['-c', `${grant.command!.replace(' stint-staging-web', ' -tt stint-staging-web')} 'echo ready; exec sleep 120'`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    live.stdout.on('data', (d: Buffer) => { said += d.toString(); });
    const exited = new Promise((resolve) => live.once('exit', resolve));
    await expect.poll(() => said, { timeout: 15_000 }).toContain('ready');

    await stack.hostCompanion.stop();
    expect((await call(stack.serverUrl, 'POST', `/v1/grants/${grantId}/release`, { token: alice, body: {} })).status).toBe(200);
    // The key is refused at once (the server no longer answers for it), and the bastion's companion cut the jump.
    await expect(sh(`${grant.command} true`)).rejects.toThrow();
    await exited;
    // …but the host has not confirmed: the grant is ended and still "ending" (its revocation retried).
    await expect.poll(async () => (await grantOf(alice, grantId)).revocation, { timeout: 15_000 }).toBe('retrying');
    expect(await grantOf(alice, grantId)).toMatchObject({ state: 'released' });
    const failed = (await call(stack.serverUrl, 'GET', `/v1/audit?grantId=${grantId}&limit=500`, { token: carol })).body.entries as AuditEntry[];
    expect(failed.find((e) => e.action === 'grant.revoke_failed')?.reason).toMatch(/SSH host staging-web has not confirmed that 1 session\(s\) of the grant ended/);

    await stack.hostCompanion.start();
    await expect.poll(async () => (await grantOf(alice, grantId)).revocation, { timeout: 20_000 }).toBe('done');
    const audit = (await call(stack.serverUrl, 'GET', `/v1/audit?grantId=${grantId}&limit=500`, { token: carol })).body.entries as AuditEntry[];
    expect(audit.map((e) => e.action)).toEqual(expect.arrayContaining(['host.session.opened', 'grant.credentials_revoked']));
    expect(audit.filter((e) => /^host\.session\.(killed|closed)$/.test(e.action))).toHaveLength(1);
  }, 90_000);

  it('a login the level does not name is refused on the host; the grant\'s own login works', async () => {
    const alice = await stack.idp.tokenFor('alice');
    const grant = await activate(alice, 'wrong login');
    expect(await sh(`${grant.command} id -un`)).toBe('stinttarget');
    await expect(sh(`${grant.command!.replace(' stint-staging-web', ' -l stintbastion stint-staging-web')} id -un`)).rejects.toThrow(/Permission denied \(publickey\)/);
    await call(stack.serverUrl, 'POST', `/v1/grants/${grant.body.grant.id}/release`, { token: alice, body: {} });
  }, 60_000);

  it('with the grant server down across the deadline, the host\'s companion ends a command without a TTY there, before the bastion\'s cut (the host first, as when the server ends it)', async () => {
    const alice = await stack.idp.tokenFor('alice');
    const grant = await activate(alice, 'server down at the end', 8);
    expect(grant.status).toBe(201);
    const grantId = grant.body.grant.id as string;
    const endsAt = Date.parse(grant.body.grant.endsAt);
    // No TTY: were the bastion's cut first, the host's sshd would exit and leave this command running there.
    const marker = `sleep ${100 + (Date.now() % 100_000)}.5`;
    const onHost = () => sh(`pgrep -x -f '${marker}' || true`);
    const live = spawn('/bin/sh', ['-c', `${grant.command} 'echo ready; exec ${marker}'`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    live.stdout.on('data', (d: Buffer) => { said += d.toString(); });
    const exited = new Promise<number>((resolve) => live.once('exit', () => resolve(Date.now())));
    await expect.poll(() => said, { timeout: 15_000 }).toContain('ready');
    expect(await onHost()).not.toBe('');

    // What each companion reads (every 2 s): the same deadline, and the bastion acts after the host.
    const liveOn = async (token: string) => ((await (await fetch(`${stack.serverUrl}/v1/bastion/live`, { headers: { authorization: `Bearer ${token}` } })).json()) as { grants: Array<{ grantId: string; endsAt: string; afterMs?: number }> })
      .grants.find((g) => g.grantId === grantId);
    expect(await liveOn(stack.nodeTokens.host)).toMatchObject({ endsAt: grant.body.grant.endsAt });
    expect((await liveOn(stack.nodeTokens.host))?.afterMs).toBeUndefined();
    expect(await liveOn(stack.nodeTokens.bastion)).toMatchObject({ endsAt: grant.body.grant.endsAt, afterMs: 500 });
    await new Promise((r) => setTimeout(r, 2_500));
    await stack.stopServer();
    expect(Date.now()).toBeLessThan(endsAt - 1_000);
    const exitAt = await exited;
    expect(exitAt).toBeGreaterThanOrEqual(endsAt);
    expect(exitAt - endsAt).toBeLessThan(2_000);
    expect(await onHost()).toBe('');

    // Back: the grant ends on the server, and the host's cut is in the audit log (the jump through the bastion had
    // closed by itself when the host session ended, before the bastion's own cut was due).
    await stack.startServer();
    const carol = await stack.idp.tokenFor('carol');
    const actions = async () => ((await call(stack.serverUrl, 'GET', `/v1/audit?grantId=${grantId}&limit=500`, { token: carol })).body.entries as AuditEntry[]).map((e) => e.action);
    await expect.poll(actions, { timeout: 15_000, interval: 250 }).toEqual(expect.arrayContaining(['host.session.killed']));
    await expect.poll(async () => (await actions()).filter((a) => /^bastion\.session\.(killed|closed)$/.test(a)), { timeout: 15_000, interval: 250 }).toHaveLength(1);
  }, 60_000);

  // Last: the host's sshd does not come back (a new one would have another host key than the one pinned).
  it('a host that is down at activation: a clear problem, and no active grant', async () => {
    const alice = await stack.idp.tokenFor('alice');
    await stack.target.stop();
    const refused = await activate(alice, 'host down');
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'credentials_failed', detail: expect.stringMatching(/SSH host staging-web is down: 127\.0\.0\.1:\d+ cannot be reached \(ECONNREFUSED\)/) });
    expect(await grantOf(alice, refused.body.grantId)).toMatchObject({ state: 'failed' });
  }, 60_000);
});
