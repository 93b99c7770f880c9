// MEDIUM (review of the first wave): the agent accepted any bastion host key unless the optional `hostKeys` was
// configured, so whoever sat on the network path could stand in for the bastion and receive a grant's database
// password. Host keys are now required in the config, handed to the agent with every grant, and the agent connects
// nowhere without one. On the real stack: the activation carries the real sshd's key; a config without keys does not
// load; an agent given no key refuses before opening a connection, and one given another key refuses the bastion.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { call, ed25519PublicKeyLine } from '../server/helpers';
import { parseConfig } from '../../server/config';
import { openTunnel } from '../../agent/core/tunnels';
import { generateGrantKey } from '../../agent/core/vault';
import { freePort } from '../../dev/ports';
import { readFileSync } from 'node:fs';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('bastion host keys are never trusted blind', () => {
  it('a bastion without host keys is refused when the config loads, naming where they come from', () => {
    const example = readFileSync('docs/config.example.yaml', 'utf8').replace(/^ {4}hostKeys: .*$/m, '');
    expect(() => parseConfig(example, 'stint.yaml')).toThrow(/bastions\.main\.hostKeys: .*ssh-keyscan -t ed25519/);
  });

  it("the activation hands the agent the bastion's real host key", async () => {
    const token = await stack.idp.tokenFor('alice');
    const request = (await call(stack.serverUrl, 'POST', '/v1/requests', { token, body: { resourceId: 'staging-users', level: 'read', reason: 'host keys' } })).body.request;
    const activated = await call(stack.serverUrl, 'POST', `/v1/requests/${request.id}/activate`, { token, body: { publicKey: ed25519PublicKeyLine() } });
    expect(activated.body.connection.bastion.hostKeys).toEqual([stack.sshd.hostKeyLine]);
  });

  it('an agent given no host key connects nowhere; given another key, it refuses the bastion', async () => {
    const bastion = { host: stack.sshd.host, port: stack.sshd.port, user: stack.sshd.user };
    const target = { host: '127.0.0.1', port: stack.pg.port };
    const key = generateGrantKey();
    await expect(openTunnel({ bastion: { ...bastion, hostKeys: [] }, target, privateKey: key.privateKey, preferredPort: await freePort() }))
      .rejects.toMatchObject({ code: 'bastion_host_key_mismatch', message: expect.stringMatching(/gave no host key .* not connecting/) });
    const impostor = generateGrantKey().publicKey;
    await expect(openTunnel({ bastion: { ...bastion, hostKeys: [impostor] }, target, privateKey: key.privateKey, preferredPort: await freePort() }))
      .rejects.toMatchObject({ code: 'bastion_host_key_mismatch' });
  });
});
