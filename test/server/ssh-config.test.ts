// An SSH host in the config (issue #23): what a valid one becomes, the mistakes named with their path (no host keys to
// pin, a login that is not one, a level without a login), and a server that refuses to start when a host's token is
// another node's (a token is also who the caller is).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError, parseConfig, validateConfig } from '../../server/config';
import { buildServer } from '../../server/app';

const example = parseDocument(readFileSync('docs/config.example.yaml', 'utf8')).toJSON() as { resources: Array<Record<string, any>> } & Record<string, unknown>;
const host = example.resources.find((r) => r.kind === 'ssh')!;
const ENV = { STINT_DEMO_TOTP_KEY: 'k'.repeat(43), STINT_DEMO_BASTION_TOKEN: 'bastion-token', STINT_DEMO_HOST_TOKEN: 'host-token', STINT_DEMO_ORDERS_ADMIN: 'postgres://a@127.0.0.1:1/orders', STINT_DEMO_USERS_ADMIN: 'postgres://a@127.0.0.1:1/users' };

/** The example with its SSH host changed. */
const withHost = (change: (h: Record<string, any>) => void) => {
  const copy = structuredClone(example);
  change(copy.resources.find((r) => r.kind === 'ssh')!);
  return copy;
};

function issues(input: unknown): string[] {
  try {
    validateConfig(input, 'test');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected the config to be refused');
}

describe('SSH hosts in the config', () => {
  it('the example\'s host: its target, pinned keys, token and the logins of each level', () => {
    const config = parseConfig(readFileSync('docs/config.example.yaml', 'utf8'));
    const parsed = config.resources.find((r) => r.id === host.id)!;
    expect(parsed).toMatchObject({ kind: 'ssh', target: { host: '127.0.0.1', port: 7823, hostKeys: [expect.stringMatching(/^ssh-ed25519 /)] }, token: 'env:STINT_DEMO_HOST_TOKEN', levels: { shell: ['stinttarget'] } });
  });

  it('names each mistake with its path', () => {
    const index = example.resources.indexOf(host);
    expect(issues(withHost((h) => { delete h.target.hostKeys; }))).toEqual([`resources[${index}].target.hostKeys: required: the host's keys (ssh-keyscan -t ed25519 <host> prints them): agents never trust a host key blind`]);
    expect(issues(withHost((h) => { h.levels = { shell: ['Root Admin'] }; }))).toEqual([`resources[${index}].levels.shell[0]: a login name like deploy (lower case, digits, _ . -)`]);
    expect(issues(withHost((h) => { h.levels = { shell: [] }; }))).toEqual([`resources[${index}].levels.shell: at least one login`]);
    expect(issues(withHost((h) => { delete h.token; }))).toEqual([`resources[${index}].token: required (expected string)`]);
    expect(issues(withHost((h) => { h.kind = 'telnet'; }))[0]).toMatch(/expected one of the kinds: postgres, ssh/);
  });

  it('a server whose SSH host shares a token with the bastion does not start', async () => {
    const config = validateConfig({ ...withHost(() => undefined), storage: { url: 'sqlite::memory:' } });
    await expect(buildServer({ config, env: { ...ENV, STINT_DEMO_HOST_TOKEN: 'bastion-token' } })).rejects.toThrow(/every bastion and SSH host needs a token of its own/);
  });
});
