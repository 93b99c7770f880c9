import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { startKeyring, type KeyringInstance } from '../../dev/keyring';
import { run } from '../../dev/process';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { Vault, generateGrantKey, GRANT_ACCOUNT_PREFIX } from '../../agent/core/vault';
import { MemoryClipboard } from '../../agent/core/clipboard';
import { utils as ssh2Utils } from 'ssh2';

let keyring: KeyringInstance;
let service: string;
let store: KeytarSecretStore;

beforeAll(async () => {
  keyring = await startKeyring();
  Object.assign(process.env, keyring.env); // before keytar's first call
  service = `stint-test-${randomUUID()}`;
  store = new KeytarSecretStore(service);
});
afterAll(async () => {
  await keyring?.stop();
});

/** What the OS keychain holds, read with another program than the one under test. */
async function keychainHas(account: string): Promise<boolean> {
  const result = await run('secret-tool', ['lookup', 'service', service, 'account', account], { env: { ...process.env, ...keyring.env } });
  return result.code === 0 && result.stdout.length > 0;
}

function secretsFor(grantId: string) {
  const key = generateGrantKey();
  return { dbUser: `stint_${grantId}`, dbPassword: `pw-${randomUUID()}`, ...key, uri: undefined as string | undefined };
}

describe('vault with the real keychain (gnome-keyring via keytar)', () => {
  it('generates an OpenSSH ed25519 key pair in memory', () => {
    const { privateKey, publicKey } = generateGrantKey();
    expect(publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+( .*)?$/);
    expect(privateKey.toString()).toContain('BEGIN OPENSSH PRIVATE KEY');
  });

  it('every generated key is one the SSH client accepts (ssh2 alone spoils about one in 256)', () => {
    // 3,000 keys: with the spoiled ones let through, all of them passing would be a one-in-100,000 chance.
    for (let i = 0; i < 3_000; i++) {
      const { privateKey, publicKey } = generateGrantKey();
      const parsed = ssh2Utils.parseKey(privateKey);
      expect(parsed instanceof Error ? parsed.message : 'ok').toBe('ok');
      expect(Buffer.from(publicKey.split(' ')[1]!, 'base64')).toHaveLength(51);
    }
  });

  it('keeps DB credentials in memory and in the keychain; wipe removes both, zeroes the key and clears the clipboard', async () => {
    const clipboard = new MemoryClipboard();
    const vault = new Vault({ secrets: store, clipboard });
    const secrets = secretsFor('g1');
    await vault.put('g1', secrets);
    vault.setUri('g1', `postgres://${secrets.dbUser}:${secrets.dbPassword}@127.0.0.1:15432/app`);
    expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}g1`)).toBe(true);
    expect(await vault.copyUri('g1')).toBe(true);
    expect(clipboard.text).toContain(secrets.dbPassword);

    const report = await vault.wipe('g1');
    expect(report).toEqual({ grantId: 'g1', memory: true, keychain: true, clipboard: true });
    expect(vault.get('g1')).toBeUndefined();
    expect(secrets.privateKey.every((b) => b === 0)).toBe(true);
    expect(clipboard.text).toBe('');
    expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}g1`)).toBe(false);
    // Twice is harmless.
    expect(await vault.wipe('g1')).toEqual({ grantId: 'g1', memory: false, keychain: false, clipboard: false });
  });

  it('leaves the clipboard alone when the user copied something else since', async () => {
    const clipboard = new MemoryClipboard();
    const vault = new Vault({ secrets: store, clipboard });
    await vault.put('g2', secretsFor('g2'));
    vault.setUri('g2', 'postgres://x');
    await vault.copyUri('g2');
    clipboard.writeText('the user copied this');
    expect((await vault.wipe('g2')).clipboard).toBe(false);
    expect(clipboard.text).toBe('the user copied this');
  });

  it('on start, wipes grant items left in the keychain by a crashed run, and nothing else', async () => {
    const crashed = new Vault({ secrets: store });
    await crashed.put('old-1', secretsFor('old-1'));
    await crashed.put('old-2', secretsFor('old-2'));
    await store.set('refresh-token', 'not a grant item');
    // A new process: a new vault over the same keychain.
    const vault = new Vault({ secrets: store });
    await vault.put('live', secretsFor('live'));
    expect((await vault.wipeLeftovers()).sort()).toEqual(['old-1', 'old-2']);
    expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}old-1`)).toBe(false);
    expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}old-2`)).toBe(false);
    expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}live`)).toBe(true);
    expect(await store.get('refresh-token')).toBe('not a grant item');
    await vault.wipeAll();
    expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}live`)).toBe(false);
    await store.delete('refresh-token');
  });

  it('two agent processes of one profile side by side: neither start-up nor exit takes the other\'s grant; a crashed one\'s is wiped', async () => {
    const holderScript = fileURLToPath(new URL('./fixtures/grant-holder.ts', import.meta.url));
    const startHolder = async (grantId: string) => {
      const child = spawn(process.execPath, ['--import', 'tsx', holderScript, service, grantId], { env: { ...process.env, ...keyring.env }, stdio: ['pipe', 'pipe', 'pipe'] });
      const said = (word: string) => new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => { out += d; if (out.includes(word)) resolve(); });
        child.once('exit', (code) => reject(new Error(`holder exited ${code} before saying ${word}`)));
      });
      await said('held');
      return { child, said };
    };
    const other = await startHolder('theirs');
    try {
      // This process starts: its leftover wipe leaves the record of the live one alone.
      const mine = new Vault({ secrets: store });
      expect(await mine.wipeLeftovers()).toEqual([]);
      expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}theirs`)).toBe(true);
      await mine.put('mine', secretsFor('mine'));
      // It ends every grant it knows and exits (the grant list from the server names the other's grant too).
      expect((await mine.wipe('theirs')).keychain).toBe(false);
      await mine.wipeAll();
      expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}mine`)).toBe(false);
      expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}theirs`)).toBe(true);

      // The other one's quit takes its own record only; a third started meanwhile keeps its.
      const third = await startHolder('third');
      other.child.stdin.write('quit\n');
      await other.said('quit');
      expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}theirs`)).toBe(false);
      expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}third`)).toBe(true);

      // The third crashes: its record is a leftover now, wiped by the next start.
      third.child.kill('SIGKILL');
      await new Promise((resolve) => third.child.once('exit', resolve));
      expect(await new Vault({ secrets: store }).wipeLeftovers()).toEqual(['third']);
      expect(await keychainHas(`${GRANT_ACCOUNT_PREFIX}third`)).toBe(false);
    } finally {
      other.child.kill('SIGKILL');
    }
  }, 30_000);

  it('with no keychain service reachable, fails with a clear typed error (and writes no file)', async () => {
    const probe = fileURLToPath(new URL('./fixtures/keychain-probe.ts', import.meta.url));
    const env = { ...process.env, ...keyring.env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/stint-bus', DISPLAY: '' };
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', probe, service], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.on('error', reject);
      child.on('close', () => resolve(text));
    });
    const result = JSON.parse(out.trim().split('\n').pop()!);
    expect(result).toMatchObject({ ok: false, code: 'keychain_unavailable' });
    expect(result.message).toMatch(/keychain is not available/);
  });
});
