// LOW (review of the first wave): the bastion ignored the login user name — a grant's key was served for any account
// sshd asked about, so it opened `root@bastion` as well as the bastion's own login. Each bastion now serves keys only
// for its configured login user. On the real stack: the same grant key is served for `stintbastion` and for nobody
// else (a wrong user, or none).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { call, ed25519PublicKeyLine } from '../server/helpers';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('bastion login user', () => {
  it("serves a grant's key for the bastion's login user only", async () => {
    const token = await stack.idp.tokenFor('alice');
    const request = (await call(stack.serverUrl, 'POST', '/v1/requests', { token, body: { resourceId: 'staging-users', level: 'read', reason: 'bastion user' } })).body.request;
    const publicKey = ed25519PublicKeyLine();
    expect((await call(stack.serverUrl, 'POST', `/v1/requests/${request.id}/activate`, { token, body: { publicKey } })).status).toBe(201);
    const key = publicKey.split(' ')[1]!;
    const keysFor = async (user?: string) => {
      const query = new URLSearchParams({ type: 'ssh-ed25519', key, ...(user ? { user } : {}) });
      const answer = await call(stack.serverUrl, 'GET', `/v1/bastion/authorized-keys?${query}`, { token: 'stack-bastion-token-0123456789abcdef' });
      expect(answer.status).toBe(200);
      return String(answer.body);
    };
    expect(await keysFor(stack.config.bastions.main!.user)).toContain(key);
    expect(await keysFor('root')).toBe('');
    expect(await keysFor()).toBe('');
  });
});
