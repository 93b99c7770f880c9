// Proves each harness service really works: a query on PostgreSQL, an SSH forward through the bastion to it,
// a keychain item set/read/deleted through keytar, a token from the IdP that verifies against its JWKS, and a page
// rendered by Chromium. If one of these fails, every integration test built on it would fail less clearly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import pg from 'pg';
import { Client as SshClient } from 'ssh2';
import { generateGrantKey } from '../../agent/core/vault';
import { chromium } from 'playwright-core';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { startSshd, type SshdInstance } from '../../dev/sshd';
import { startKeyring, type KeyringInstance } from '../../dev/keyring';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { chromiumLaunchOptions } from '../../dev/chromium';
import { createServer as netServer, type AddressInfo } from 'node:net';

describe('harness', () => {
  let postgres: PostgresInstance;
  let sshd: SshdInstance;
  let keyring: KeyringInstance;
  let idp: IdpInstance;

  beforeAll(async () => {
    [postgres, keyring, idp] = await Promise.all([startPostgres(), startKeyring(), startIdp()]);
    sshd = await startSshd({ permitOpen: [`127.0.0.1:${postgres.port}`] });
  });
  afterAll(async () => {
    await Promise.allSettled([postgres?.stop(), sshd?.stop(), keyring?.stop(), idp?.close()]);
  });

  it('PostgreSQL accepts the admin over scram and refuses a wrong password', async () => {
    const rows = await postgres.query<{ version: string }>('select version()');
    expect(rows[0]!.version).toMatch(/PostgreSQL 15/);
    const hba = await postgres.query<{ auth_method: string }>('select distinct auth_method from pg_hba_file_rules');
    expect(hba.map((r) => r.auth_method)).toEqual(['scram-sha-256']);
    const bad = new pg.Client({ connectionString: postgres.adminUrl().replace(encodeURIComponent(postgres.adminPassword), 'wrong') });
    await expect(bad.connect()).rejects.toThrow(/password authentication failed/);
  });

  it('sshd forwards to the permitted database and refuses other targets', async () => {
    const keys = generateGrantKey('stint-smoke'); // ssh2's own generator spoils about one key in 256
    sshd.setAuthorizedKeys([`restrict,port-forwarding ${keys.publicKey}`]);
    const ssh = new SshClient();
    await new Promise<void>((resolve, reject) => {
      ssh.once('ready', () => resolve()).once('error', reject).connect({ host: sshd.host, port: sshd.port, username: sshd.user, privateKey: keys.privateKey });
    });
    try {
      const local = netServer((socket) => {
        ssh.forwardOut('127.0.0.1', 0, '127.0.0.1', postgres.port, (error, stream) => {
          if (error) return socket.destroy();
          socket.pipe(stream).pipe(socket);
        });
      });
      await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
      const port = (local.address() as AddressInfo).port;
      const client = new pg.Client({ connectionString: postgres.adminUrl().replace(`:${postgres.port}/`, `:${port}/`) });
      await client.connect();
      const { rows } = await client.query('select 41 + 1 as answer');
      expect(rows[0].answer).toBe(42);
      await client.end();
      local.close();
      const refused = await new Promise<Error | undefined>((resolve) => ssh.forwardOut('127.0.0.1', 0, '127.0.0.1', sshd.port, (error) => resolve(error)));
      expect(refused?.message).toMatch(/open failure|prohibited/i);
    } finally {
      ssh.end();
    }
  });

  it('keytar stores, reads and deletes an item in the gnome-keyring Secret Service', async () => {
    process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
    const keytar = (await import('keytar')).default;
    await keytar.setPassword('stint-smoke', 'alice', 's3cret');
    expect(await keytar.getPassword('stint-smoke', 'alice')).toBe('s3cret');
    expect(await keytar.deletePassword('stint-smoke', 'alice')).toBe(true);
    expect(await keytar.getPassword('stint-smoke', 'alice')).toBeNull();
  });

  it('the IdP issues a JWT access token that verifies against its JWKS, with groups', async () => {
    const token = await idp.tokenFor('bob');
    const config = await idp.clientConfig();
    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri!));
    const { payload } = await jwtVerify(token, jwks, { issuer: idp.issuer, audience: idp.audience, typ: 'at+jwt' });
    expect(payload.sub).toBe('bob');
    expect(payload.groups).toContain('dba');
  });

  it('Chromium renders a page from localhost', async () => {
    const server = createServer((_req, res) => res.end('<!doctype html><title>smoke</title><button>Go</button>'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const browser = await chromium.launch(chromiumLaunchOptions);
    try {
      const page = await browser.newPage();
      await page.goto(`http://localhost:${(server.address() as AddressInfo).port}/`);
      expect(await page.title()).toBe('smoke');
      expect(await page.getByRole('button', { name: 'Go' }).count()).toBe(1);
    } finally {
      await browser.close();
      server.close();
    }
  });
});
