// Durability: a request whose TTL passes while the server is down expires within seconds of the next start
// (the real CLI in a child process, killed and restarted). Then the admin CLI: the audit chain verifies, a
// tampered or deleted row is reported as the first broken link, and the log exports as JSON lines.
// Runs on SQLite here and on PostgreSQL from test/scaleout/restart-audit.pg.test.ts (the storage URL comes from the
// grant-server harness), so the rows are read and tampered through the server's own storage layer, whatever it is.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { sql, type RawBuilder } from 'kysely';
import { AuditEntry, CreateRequestResult } from '../../shared/contract/http';
import { main, type Io } from '../../server/main';
import { loadConfig } from '../../server/config';
import { openStore } from '../../server/storage/db';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { spawnGrantServer, type SpawnedGrantServer } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { freePort } from '../../dev/ports';
import { clientFor, Tokens, until } from './helpers';

/** Run statements directly on the database a server's config points at (SQLite file or PostgreSQL database). */
async function onStorage<T>(configPath: string, fn: (run: <R>(query: RawBuilder<R>) => Promise<R[]>) => Promise<T>): Promise<T> {
  const store = openStore(loadConfig(configPath).storage.url);
  try {
    return await fn(async (query) => (await query.execute(store.db)).rows);
  } finally {
    await store.close();
  }
}

function captureIo(): Io & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l), env: {} };
}

describe('restart and audit CLI', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  let spawned: SpawnedGrantServer | undefined;
  const dataDir = serviceDir('grant-server-restart');
  let port: number;
  const overrides = { policies: { 'short-lived': { requestTtl: '3s' } } };

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    port = await freePort();
  });
  afterAll(async () => {
    await spawned?.stop();
    await idp?.close();
  });

  it('expires a request whose TTL passed while the server was down, right after restart', async () => {
    spawned = await spawnGrantServer({ idp, dataDir, port, overrides });
    const configPath = spawned.configPath;
    const alice = clientFor(spawned.url, await tokens.for('alice'));
    const created = await alice.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', deviceId: 'device-alice-1' });
    expect(created.status).toBe(201);
    const request = CreateRequestResult.parse(created.body).request;
    await spawned.stop('SIGKILL');
    spawned = undefined;

    await onStorage(configPath, async (run) => {
      const [row] = await run(sql<{ expires_at: number | string }>`select expires_at from requests where id = ${request.id}`);
      const expiresAt = Number(row!.expires_at);
      while (Date.now() < expiresAt + 300) await new Promise((r) => setTimeout(r, 100));
      // Nobody was running to expire it.
      expect(await run(sql<{ state: string }>`select state from requests where id = ${request.id}`)).toEqual([{ state: 'pending_approval' }]);
    });

    spawned = await spawnGrantServer({ idp, dataDir, port, overrides });
    const started = Date.now();
    const after = await until('the request to be expired', async () => {
      const r = (await clientFor(spawned!.url, await tokens.for('alice')).get(`/v1/requests/${request.id}`)).body.request;
      return r.state === 'expired' ? r : undefined;
    }, 5_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(after.decisionReason).toBe('request TTL passed');
    const audit = (await clientFor(spawned.url, await tokens.for('carol')).get(`/v1/audit?requestId=${request.id}`)).body.entries;
    expect(audit.map((e: AuditEntry) => [e.action, e.actor])).toEqual([['request.created', 'alice'], ['request.expired', 'system']]);
    await spawned.stop();
    spawned = undefined;
  }, 60_000);

  it('verifies the audit chain, and reports the first tampered or missing row', async () => {
    const configPath = join(dataDir, 'stint-server.yaml');
    const ok = captureIo();
    expect(await main(['audit', 'verify', '--config', configPath], ok)).toBe(0);
    expect(ok.lines[0]).toMatch(/^ok: (\d+) entries, chain intact/);
    const count = Number(/^ok: (\d+)/.exec(ok.lines[0]!)![1]);
    expect(count).toBeGreaterThanOrEqual(4);

    const exported = captureIo();
    expect(await main(['audit', 'export', '--config', configPath], exported)).toBe(0);
    const entries = exported.lines.map((l) => AuditEntry.parse(JSON.parse(l)));
    expect(entries).toHaveLength(count);
    expect(entries.every((e, i) => i === 0 || e.prevHash === entries[i - 1]!.hash)).toBe(true);

    await onStorage(configPath, async (run) => {
      await run(sql`update audit set reason = 'nothing to see' where seq = 3`);
      const edited = captureIo();
      expect(await main(['audit', 'verify', '--config', configPath], edited)).toBe(1);
      expect(edited.errors[0]).toMatch(/first bad link at seq 3: row content does not match its hash/);

      // Re-hashing the edited row to hide the edit breaks the next link instead.
      const { createHash } = await import('node:crypto');
      await run(sql`update audit set hash = ${createHash('sha256').update('forged').digest('hex')} where seq = 3`);
      const rehashed = captureIo();
      expect(await main(['audit', 'verify', '--config', configPath], rehashed)).toBe(1);
      expect(rehashed.errors[0]).toMatch(/seq 3/);

      const original = entries[2]!;
      await run(sql`update audit set reason = ${original.reason ?? null}, hash = ${original.hash} where seq = 3`);
      expect(await main(['audit', 'verify', '--config', configPath], captureIo())).toBe(0);
      await run(sql`delete from audit where seq = 2`);
      const deleted = captureIo();
      expect(await main(['audit', 'verify', '--config', configPath], deleted)).toBe(1);
      expect(deleted.errors[0]).toMatch(/first bad link at seq 2: row 2 is missing/);
    });
  });

  it('check-config names missing secrets; migrate is idempotent', async () => {
    const configPath = join(dataDir, 'stint-server.yaml');
    const missing = captureIo();
    expect(await main(['check-config', '--config', configPath], missing)).toBe(1);
    expect(missing.errors).toEqual(['resources[1].admin.url: environment variable ORDERS_ADMIN_URL is not set']);
    const present = { ...captureIo(), env: { ORDERS_ADMIN_URL: 'postgres://x@y/z' } };
    expect(await main(['check-config', '--config', configPath], present)).toBe(0);
    const migrate = captureIo();
    expect(await main(['migrate', '--config', configPath], migrate)).toBe(0);
    expect(migrate.lines).toEqual(['up to date']);
    const bad = captureIo();
    expect(await main(['serve', '--config', join(dataDir, 'nope.yaml')], bad)).toBe(1);
    expect(bad.errors[0]).toMatch(/cannot read the file \(ENOENT\)/);
  });
});
