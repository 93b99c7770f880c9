// Taking a grant back (rekey, issue #21) on a real bastion: stock OpenSSH with Stint's key command and the kill
// companion, in front of the real grant server and PostgreSQL. An SSH connection opened with the old key before the
// rekey is cut at once (the key alone only stops new logins), and audited as such; the new key's connection works.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import pg from 'pg';
import { ActivateResult, AuditList, CreateRequestResult } from '../../shared/contract/http';
import type { PostgresInstance } from '../../dev/postgres';
import { startSshd, type SshdInstance } from '../../dev/sshd';
import { BASTION_TOKEN, type RunningGrantServer } from '../../dev/grant-server';
import { startRekeyStack, type RekeyStack } from './rekey-stack';
import { startCompanion, type Companion } from '../../server/bastion/companion';
import { clientFor, Tokens } from '../server/helpers';
import { installKeysCommand, localTunnel, newClientKey, sshConnect, type ClientKey, type InstalledKeysCommand } from './helpers';

let db: PostgresInstance;
let server: RunningGrantServer;
let tokens: Tokens;
let stack: RekeyStack | undefined;
let installed: InstalledKeysCommand;
let sshd: SshdInstance;
let companion: Companion;

beforeAll(async () => {
  stack = await startRekeyStack();
  ({ db, server, tokens } = stack);
  installed = installKeysCommand(join(import.meta.dirname, '../../server/bastion/authorized-keys.sh'));
  installed.writeConfig({ STINT_SERVER_URL: server.url, STINT_BASTION_TOKEN: BASTION_TOKEN });
  sshd = await startSshd({ permitOpen: [`127.0.0.1:${db.port}`], authorizedKeysCommand: { command: installed.command, user: 'nobody' } });
  companion = startCompanion({ serverUrl: server.url, token: BASTION_TOKEN, killGraceMs: 1_000 });
  await companion.ready;
}, 60_000);

afterAll(async () => {
  await companion?.stop();
  await sshd?.stop();
  installed?.remove();
  await stack?.stop();
});

/** psql's part: a query through an SSH tunnel opened with this key, as the agent opens it. */
async function tunnelled(key: ClientKey, user: string, password: string) {
  const ssh = await sshConnect({ host: sshd.host, port: sshd.port, username: sshd.user, privateKey: key.privateKey });
  const tunnel = await localTunnel(ssh.client, '127.0.0.1', db.port);
  const client = new pg.Client({ host: '127.0.0.1', port: tunnel.port, database: db.database, user, password });
  client.on('error', () => undefined);
  await client.connect();
  return { ssh, tunnel, client };
}

describe('rekey on a real bastion', () => {
  it('cuts the SSH connection opened with the old key within 1 s, audited, while the new key\'s connection works', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    const created = await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    const request = CreateRequestResult.parse(created.body).request;
    const oldKey = newClientKey();
    const activated = await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: oldKey.publicLine });
    expect(activated.status, JSON.stringify(activated.body)).toBe(201);
    const { grant, connection } = ActivateResult.parse(activated.body);
    const old = await tunnelled(oldKey, connection.dbUser, connection.dbPassword);
    expect((await old.client.query('select count(*)::int as n from users')).rows[0].n).toBe(2);

    const newKey = newClientKey();
    const started = Date.now();
    const answer = await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey: newKey.publicLine });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const rekeyed = ActivateResult.parse(answer.body);
    // The old connection: cut by the companion (sshd itself never ends a live connection when a key goes away).
    await Promise.race([old.ssh.closed, new Promise((r) => setTimeout(r, 3_000))]);
    expect(old.ssh.isClosed()).toBe(true);
    expect(Date.now() - started).toBeLessThan(1_000);
    await old.tunnel.close();

    // The new key's connection works, and stays up: the grant goes on.
    const fresh = await tunnelled(newKey, rekeyed.connection.dbUser, rekeyed.connection.dbPassword);
    expect((await fresh.client.query('select current_user as who')).rows[0].who).toBe(connection.dbUser);
    await new Promise((r) => setTimeout(r, 300));
    expect(fresh.ssh.isClosed()).toBe(false);

    // On the record: the old key's session, killed because the grant was taken back.
    await expect.poll(async () => AuditList.parse((await alice.get(`/v1/audit?grantId=${grant.id}`)).body).entries
      .filter((e) => e.action.startsWith('bastion.session.')).map((e) => [e.action, e.detail?.cause]), { timeout: 5_000 })
      .toEqual(expect.arrayContaining([['bastion.session.killed', 'rekeyed']]));
    const killed = AuditList.parse((await alice.get(`/v1/audit?grantId=${grant.id}`)).body).entries.filter((e) => e.action === 'bastion.session.killed');
    expect(killed).toHaveLength(1);
    expect(killed[0]!.detail).toMatchObject({ bastionId: 'main', from: '127.0.0.1', bytesFromClient: expect.any(Number), bytesToClient: expect.any(Number) });

    await fresh.client.end();
    fresh.ssh.client.end();
    await fresh.tunnel.close();
  });
});
