// Issue #19 (review of the first wave): SSH use through the bastion was not in the audit log. On the real stack —
// OpenSSH as the bastion with Stint's key command and kill companion — every connection made with a grant's key is a
// `bastion.session.opened` row in the hash chain (once per connection, though sshd asks the key command twice), and
// the grant's end adds what became of each: `bastion.session.killed` for a connection the companion found open and
// closed, `bastion.session.closed` for one that had closed before. The chain still verifies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../shared/contract/http';
import { verifyAudit } from '../../server/lifecycle/audit';
import { sshFingerprint } from '../../server/bastion/key-lines';
import { startStack, type Stack } from '../harness/stack';
import { call } from '../server/helpers';
import { forwardOut, newClientKey, sshConnect, type ClientKey } from '../credentials/helpers';

const BASTION_TOKEN = 'stack-bastion-token-0123456789abcdef';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

/** An active staging grant of alice's (auto-approved), activated with a fresh key whose private half the test holds. */
async function activeGrant(token: string, reason: string): Promise<{ grantId: string; key: ClientKey }> {
  const request = (await call(stack.serverUrl, 'POST', '/v1/requests', { token, body: { resourceId: 'staging-users', level: 'read', reason } })).body.request;
  const key = newClientKey();
  const activated = await call(stack.serverUrl, 'POST', `/v1/requests/${request.id}/activate`, { token, body: { publicKey: key.publicLine } });
  expect(activated.status).toBe(201);
  return { grantId: activated.body.grant.id as string, key };
}

const auditOf = async (grantId: string, token: string): Promise<AuditEntry[]> => {
  const answer = await call(stack.serverUrl, 'GET', `/v1/audit?grantId=${grantId}&limit=500`, { token });
  expect(answer.status).toBe(200);
  return answer.body.entries as AuditEntry[];
};
const bastionRows = (entries: AuditEntry[]) => entries.filter((e) => e.action.startsWith('bastion.session.'));

describe('bastion sessions in the audit log', () => {
  it('opens a row per SSH connection through the bastion and closes it at the grant\'s end: killed if open, closed if gone', async () => {
    const alice = await stack.idp.tokenFor('alice');
    const carol = await stack.idp.tokenFor('carol'); // an admin: sees every row
    const { grantId, key } = await activeGrant(alice, 'bastion audit');
    const connect = () => sshConnect({ host: stack.sshd.host, port: stack.sshd.port, username: stack.sshd.user, privateKey: key.privateKey });

    // One connection that ends before the grant does, one still open (and used) when it ends.
    const early = await connect();
    early.client.end();
    await early.closed;
    const live = await connect();
    const channel = await forwardOut(live.client, '127.0.0.1', stack.ports.pg);
    channel.close();

    // Written before sshd got the key line: there once the login is.
    const opened = bastionRows(await auditOf(grantId, carol));
    expect(opened.map((e) => e.action)).toEqual(['bastion.session.opened', 'bastion.session.opened']);
    // Once per connection, though sshd runs the key command twice for each; each names the sshd process serving it.
    const pids = opened.map((e) => e.detail?.pid as number);
    expect(new Set(pids).size).toBe(2);
    for (const row of opened) {
      expect(row).toMatchObject({
        actor: 'bastion:main', subject: 'alice', grantId,
        detail: { bastionId: 'main', user: stack.sshd.user, via: 'key-lookup', pid: expect.any(Number), keyFingerprint: sshFingerprint(key.keyBase64) },
      });
    }
    // The fingerprint is the one sshd logs for the login, next to the client's address (which sshd does not pass on).
    expect(stack.sshd.output()).toContain(`Accepted publickey for ${stack.sshd.user} from 127.0.0.1 port`);
    expect(stack.sshd.output()).toContain(sshFingerprint(key.keyBase64));
    // The owner sees the sessions of her grant too (she is their subject).
    expect(bastionRows(await auditOf(grantId, alice)).map((e) => e.action)).toEqual(['bastion.session.opened', 'bastion.session.opened']);

    // The grant ends: the companion closes the live connection and reports what became of both.
    expect((await call(stack.serverUrl, 'POST', `/v1/grants/${grantId}/release`, { token: alice, body: {} })).status).toBe(200);
    await Promise.race([live.closed, new Promise((r) => setTimeout(r, 8_000))]);
    expect(live.isClosed()).toBe(true);
    await expect.poll(async () => bastionRows(await auditOf(grantId, carol)).length, { timeout: 10_000 }).toBe(4);
    const rows = bastionRows(await auditOf(grantId, carol));
    const [earlyPid, livePid] = pids; // in the order the connections were made
    const ends = rows.filter((e) => e.action !== 'bastion.session.opened');
    expect(ends).toEqual(expect.arrayContaining([
      expect.objectContaining({ action: 'bastion.session.closed', actor: 'bastion:main', subject: 'alice', resourceId: 'staging-users', detail: expect.objectContaining({ pid: earlyPid }) }),
      expect.objectContaining({ action: 'bastion.session.killed', actor: 'bastion:main', subject: 'alice', resourceId: 'staging-users', detail: expect.objectContaining({ pid: livePid }) }),
    ]));
    expect(ends.find((e) => e.action === 'bastion.session.killed')?.reason).toMatch(/^the grant ended/);
    // In the chain after the grant's end.
    const released = (await auditOf(grantId, carol)).find((e) => e.action === 'grant.released');
    expect(ends.every((e) => e.seq > released!.seq)).toBe(true);

    const verified = await verifyAudit(stack.server().store.db);
    expect(verified).toMatchObject({ ok: true });
  }, 60_000);

  it('a bastion\'s report writes rows only about sessions it recorded for that grant, and only once the grant has ended', async () => {
    const alice = await stack.idp.tokenFor('alice');
    const carol = await stack.idp.tokenFor('carol');
    const { grantId, key } = await activeGrant(alice, 'bastion report');
    const bastion = (method: string, path: string, body?: unknown) => call(stack.serverUrl, method, path, { token: BASTION_TOKEN, ...(body !== undefined ? { body } : {}) });
    // A key program that knows the client's address may send it; it goes on the row.
    const query = new URLSearchParams({ user: stack.sshd.user, type: 'ssh-ed25519', key: key.keyBase64, pid: '4000001', from: '192.0.2.7' });
    expect(String((await bastion('GET', `/v1/bastion/authorized-keys?${query}`)).body)).toContain(`grant:${grantId}`);
    expect(String((await bastion('GET', `/v1/bastion/authorized-keys?${query}`)).body)).toContain(`grant:${grantId}`); // sshd's second run
    expect((await bastion('POST', '/v1/bastion/sessions', { grantId, pid: 4000002, user: stack.sshd.user })).status).toBe(204);
    const opened = bastionRows(await auditOf(grantId, carol));
    expect(opened.map((e) => [e.action, e.detail?.pid, e.detail?.via, e.detail?.from])).toEqual([
      ['bastion.session.opened', 4000001, 'key-lookup', '192.0.2.7'],
      ['bastion.session.opened', 4000002, 'report', undefined],
    ]);

    // While the grant is active its sessions are not over.
    expect(await bastion('POST', '/v1/bastion/sessions/ended', { grantId, killed: [4000001] })).toMatchObject({ status: 409, body: { code: 'grant_active' } });
    expect(await bastion('POST', '/v1/bastion/sessions/ended', { grantId: 'grt_no_such_grant', killed: [4000001] })).toMatchObject({ status: 404 });
    expect((await call(stack.serverUrl, 'POST', `/v1/grants/${grantId}/release`, { token: alice, body: {} })).status).toBe(200);
    // The stack's companion reports these two as closed (no such processes) on its own; this report may come first.
    const report = await bastion('POST', '/v1/bastion/sessions/ended', { grantId, killed: [4000001, 4999999], closed: [4000002] });
    expect(report.status).toBe(200);
    expect(report.body.ignored).toContain(4999999);
    await expect.poll(async () => bastionRows(await auditOf(grantId, carol)).length, { timeout: 10_000 }).toBe(4);
    // Once recorded, an end is not recorded again (a restarting companion catches up on recent ends).
    expect((await bastion('POST', '/v1/bastion/sessions/ended', { grantId, killed: [4000001], closed: [4000002] })).body).toEqual({ audited: 0, ignored: [4000001, 4000002] });
    const rows = bastionRows(await auditOf(grantId, carol));
    expect(rows.filter((e) => e.detail?.pid === 4999999)).toEqual([]);
    expect(rows.filter((e) => e.action !== 'bastion.session.opened').map((e) => e.detail?.pid).sort()).toEqual([4000001, 4000002]);
    expect(await verifyAudit(stack.server().store.db)).toMatchObject({ ok: true });
  }, 60_000);
});
