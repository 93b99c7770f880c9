// The bastion routes on their own (Fastify inject + a real listener for SSE) over a real SQLite session store, and
// the companion's catch-up after a lost stream, with a fake process table so no real process is touched.
import { afterEach, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { BastionEndedEvent } from '../../server/bastion/end-routes';
import { authorizedKeyLine, sshExpiryTime } from '../../server/bastion/key-lines';
import { bastionRoutes } from '../../server/bastion/routes';
import { startCompanion } from '../../server/bastion/companion';
import type { ProcessTable } from '../../server/bastion/processes';
import { createDbSessionStore } from '../../server/bastion/sessions';
import { openStore, type Store } from '../../server/storage/db';
import { MemoryLookup } from '../../dev/memory-lookup';
import { newClientKey } from './helpers';

const TOKENS = { east: 'token-east-aaaaaaaaaaaaaaaa', west: 'token-west-bbbbbbbbbbbbbbbb' };
const apps: FastifyInstance[] = [];
const stores: Store[] = [];

async function openSessionDb(): Promise<Store> {
  const store = openStore('sqlite::memory:');
  await store.migrate();
  stores.push(store);
  return store;
}

async function makeApp(lookup: MemoryLookup, port = 0, db?: Store): Promise<{ app: FastifyInstance; url: string; db: Store }> {
  const app = Fastify();
  const store = db ?? await openSessionDb();
  await app.register(bastionRoutes({
    lookup, heartbeatMs: 200, sessions: createDbSessionStore(store.db),
    bastions: { east: { token: TOKENS.east }, west: { token: TOKENS.west, users: ['stint'] } },
  }), { prefix: '/v1/bastion' });
  await app.listen({ port, host: '127.0.0.1' });
  apps.push(app);
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, db: store };
}

afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  for (const store of stores.splice(0)) await store.close();
});

const endsAt = Date.parse('2031-02-03T04:05:06.789Z');

function grantOn(lookup: MemoryLookup, grantId: string, bastionId = 'east') {
  const key = newClientKey();
  lookup.add({ grantId, bastionId, owner: 'alice', keyBase64: key.keyBase64, endsAt, target: { host: '10.1.2.3', port: 5432 } });
  return key;
}

const keysUrl = (key: string, extra = '') => `/v1/bastion/authorized-keys?user=stint&type=ssh-ed25519&key=${encodeURIComponent(key)}${extra}`;

describe('bastion routes', () => {
  it('answers the key command with exactly one restricted line for an active grant\'s key', async () => {
    const lookup = new MemoryLookup();
    const { app } = await makeApp(lookup);
    const key = grantOn(lookup, 'g1');
    const response = await app.inject({ url: keysUrl(key.keyBase64), headers: { authorization: `Bearer ${TOKENS.east}` } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain/);
    expect(response.body).toBe(
      `restrict,port-forwarding,permitopen="10.1.2.3:5432",expiry-time="20310203040506Z",command="/usr/sbin/nologin" ssh-ed25519 ${key.keyBase64} grant:g1\n`,
    );
  });

  it('answers an empty body for unknown keys, other key types, other bastions\' grants, ended grants and other users', async () => {
    const lookup = new MemoryLookup();
    const { app } = await makeApp(lookup);
    const key = grantOn(lookup, 'g1');
    const westKey = grantOn(lookup, 'g-west', 'west');
    const east = { authorization: `Bearer ${TOKENS.east}` };
    const west = { authorization: `Bearer ${TOKENS.west}` };
    const bodies = await Promise.all([
      app.inject({ url: keysUrl(newClientKey().keyBase64), headers: east }),
      app.inject({ url: keysUrl(key.keyBase64).replace('ssh-ed25519', 'ssh-rsa'), headers: east }),
      app.inject({ url: keysUrl(key.keyBase64), headers: west }),
      app.inject({ url: keysUrl('not base64!'), headers: east }),
      app.inject({ url: keysUrl(westKey.keyBase64).replace('user=stint', 'user=root'), headers: west }),
    ]);
    for (const response of bodies) {
      expect(response.statusCode).toBe(200);
      expect(response.body).toBe('');
    }
    expect((await app.inject({ url: keysUrl(westKey.keyBase64), headers: west })).body).toContain('grant:g-west');
    lookup.end('g1');
    expect((await app.inject({ url: keysUrl(key.keyBase64), headers: east })).body).toBe('');
  });

  it('refuses a missing or wrong bastion token with 401 and an empty body', async () => {
    const lookup = new MemoryLookup();
    const { app } = await makeApp(lookup);
    const key = grantOn(lookup, 'g1');
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${TOKENS.east}`, `Bearer ${TOKENS.east}x`]) {
      const response = await app.inject({ url: keysUrl(key.keyBase64), headers: authorization ? { authorization } : {} });
      expect(response.statusCode).toBe(401);
      expect(response.body).toBe('');
    }
    expect((await app.inject({ url: '/v1/bastion/ended?since=2020-01-01T00:00:00Z' })).statusCode).toBe(401);
  });

  it('reports ends with the sshd pids the key command recorded, to the grant\'s bastion only', async () => {
    const lookup = new MemoryLookup();
    const { app } = await makeApp(lookup);
    const key = grantOn(lookup, 'g1');
    const other = grantOn(lookup, 'g2');
    const east = { authorization: `Bearer ${TOKENS.east}` };
    await app.inject({ url: keysUrl(key.keyBase64, '&pid=4242'), headers: east });
    await app.inject({ url: keysUrl(key.keyBase64, '&pid=4242'), headers: east }); // sshd runs the command twice
    await app.inject({ url: keysUrl(other.keyBase64, '&pid=5151'), headers: east });
    await app.inject({ method: 'POST', url: '/v1/bastion/sessions', payload: { grantId: 'g1', pid: 4343 }, headers: east });
    // pid 5151 exits and is reused by a connection of g1: it must no longer count for g2.
    await app.inject({ url: keysUrl(key.keyBase64, '&pid=5151'), headers: east });
    const before = new Date();
    lookup.end('g1');
    lookup.end('g2');
    const response = await app.inject({ url: `/v1/bastion/ended?since=${new Date(before.getTime() - 1).toISOString()}`, headers: east });
    const events = (response.json() as { events: BastionEndedEvent[] }).events;
    expect(events.map((e) => [e.grantId, e.pids.sort()])).toEqual([['g1', [4242, 4343, 5151]], ['g2', []]]);
    expect(events[0]!.keyBase64).toBe(key.keyBase64);
    const west = await app.inject({ url: `/v1/bastion/ended?since=${before.toISOString()}`, headers: { authorization: `Bearer ${TOKENS.west}` } });
    expect(west.json()).toEqual({ events: [] });
    expect((await app.inject({ url: '/v1/bastion/ended?since=yesterday', headers: east })).statusCode).toBe(400);
  });

  it('still answers the key line when the session store fails, and tells the bastion to retry what it cannot serve', async () => {
    const lookup = new MemoryLookup();
    const { app, db } = await makeApp(lookup);
    const key = grantOn(lookup, 'g1');
    const east = { authorization: `Bearer ${TOKENS.east}` };
    await db.close(); // every session query now fails
    const response = await app.inject({ url: keysUrl(key.keyBase64, '&pid=4242'), headers: east });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('grant:g1');
    const post = await app.inject({ method: 'POST', url: '/v1/bastion/sessions', payload: { grantId: 'g1', pid: 4343 }, headers: east });
    expect(post.statusCode).toBe(503);
    expect(post.json()).toMatchObject({ code: 'storage_unavailable' });
    lookup.end('g1');
    const ended = await app.inject({ url: '/v1/bastion/ended?since=2020-01-01T00:00:00Z', headers: east });
    expect(ended.statusCode).toBe(503);
  });

  it('refuses the login when the grant ended while its connection was being recorded', async () => {
    // The end can commit (and its pids be read) between the key lookup and the recording of the pid: that
    // connection would outlive the grant, so the key command is answered with nothing instead.
    class EndsDuringLookup extends MemoryLookup {
      endAfterLookup: string | undefined;
      override async findActiveGrantByKey(bastionId: string, keyType: string, keyBase64: string) {
        const grant = await super.findActiveGrantByKey(bastionId, keyType, keyBase64);
        if (grant && grant.grantId === this.endAfterLookup) {
          this.endAfterLookup = undefined;
          this.end(grant.grantId);
        }
        return grant;
      }
    }
    const lookup = new EndsDuringLookup();
    const { app } = await makeApp(lookup);
    const key = grantOn(lookup, 'g1');
    const east = { authorization: `Bearer ${TOKENS.east}` };
    lookup.endAfterLookup = 'g1';
    expect((await app.inject({ url: keysUrl(key.keyBase64, '&pid=4242'), headers: east })).body).toBe('');
    // A grant that does not end meanwhile is answered as usual, pid recorded.
    const live = grantOn(lookup, 'g2');
    expect((await app.inject({ url: keysUrl(live.keyBase64, '&pid=4242'), headers: east })).body).toContain('grant:g2');
  });

  it('closes a bastion\'s stream when an end\'s pids cannot be read, so its companion catches up instead', async () => {
    const lookup = new MemoryLookup();
    const { url, db } = await makeApp(lookup);
    grantOn(lookup, 'g1');
    const controller = new AbortController();
    const response = await fetch(`${url}/v1/bastion/events`, { headers: { authorization: `Bearer ${TOKENS.east}` }, signal: controller.signal });
    let text = '';
    const closed = (async () => {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString();
      return 'closed';
    })();
    try {
      await expect.poll(() => text).toContain(': connected');
      await db.close();
      lookup.end('g1');
      await expect(Promise.race([closed, new Promise((r) => setTimeout(() => r('still open'), 3_000))])).resolves.toBe('closed');
      expect(text).not.toContain('event: ended');
    } finally {
      controller.abort();
      await closed.catch(() => undefined);
    }
  });

  it('writes no key line when the grant\'s target could inject sshd options', () => {
    const key = newClientKey().keyBase64;
    const grant = { grantId: 'g', owner: 'a', endsAt, target: { host: 'db"',  port: 5432 } };
    expect(authorizedKeyLine(grant, key)).toBeUndefined();
    expect(authorizedKeyLine({ ...grant, target: { host: 'db.internal', port: 0 } }, key)).toBeUndefined();
    expect(authorizedKeyLine({ ...grant, target: { host: '::1', port: 5432 } }, key)).toContain('permitopen="[::1]:5432"');
    expect(authorizedKeyLine({ ...grant, target: { host: 'db.internal', port: 5432 } }, `${key}\nssh-ed25519 AAAA`)).toBeUndefined();
    expect(authorizedKeyLine({ ...grant, target: { host: 'db.internal', port: 5432 }, endsAt: Number.NaN }, key)).toBeUndefined();
    expect(sshExpiryTime(Date.parse('2030-12-31T23:59:59.999Z'))).toBe('20301231235959Z');
  });
});

describe('kill companion', () => {
  function fakeProcesses(tree: Record<number, { title: string; parent?: number }>) {
    const alive = new Set(Object.keys(tree).map(Number));
    const table: ProcessTable = {
      name: (pid) => (alive.has(pid) ? 'sshd' : undefined),
      title: (pid) => (alive.has(pid) ? tree[pid]!.title : undefined),
      children: (pid) => [...alive].filter((p) => tree[p]!.parent === pid),
      running: (pid) => alive.has(pid),
    };
    const signals: Array<[number, string]> = [];
    const kill = (pid: number, signal: NodeJS.Signals) => {
      if (!alive.has(pid)) throw Object.assign(new Error('ESRCH'), { code: 'ESRCH' });
      signals.push([pid, signal]);
      if (signal === 'SIGTERM' && !tree[pid]!.title.includes('stubborn')) alive.delete(pid);
      if (signal === 'SIGKILL') alive.delete(pid);
    };
    return { table, kill, signals, alive };
  }

  it('ends the connection processes of an ended grant, live and after a lost stream, never the listener', async () => {
    const lookup = new MemoryLookup();
    // The session database outlives one server process, so the catch-up after the restart has the pids.
    const store = await openSessionDb();
    const first = await makeApp(lookup, 0, store);
    const port = (first.app.server.address() as AddressInfo).port;
    const key = grantOn(lookup, 'g-live');
    const later = grantOn(lookup, 'g-later');
    const east = { authorization: `Bearer ${TOKENS.east}` };
    await first.app.inject({ url: keysUrl(key.keyBase64, '&pid=100'), headers: east });
    await first.app.inject({ url: keysUrl(later.keyBase64, '&pid=200'), headers: east });
    await first.app.inject({ url: keysUrl(later.keyBase64, '&pid=1'), headers: east }); // refused (pid ≥ 2)
    await first.app.inject({ url: keysUrl(later.keyBase64, '&pid=300'), headers: east });
    const procs = fakeProcesses({
      100: { title: 'sshd: stint [priv]' },
      101: { title: 'sshd: stint', parent: 100 },
      200: { title: 'sshd: stint [priv] stubborn' },
      300: { title: 'sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups' },
    });
    const handled: string[] = [];
    const companion = startCompanion({
      serverUrl: first.url, token: TOKENS.east, kill: procs.kill, processes: procs.table, killGraceMs: 100,
      minBackoffMs: 50, maxBackoffMs: 100, idleTimeoutMs: 1_000, onHandled: (event) => handled.push(event.grantId),
    });
    try {
      await companion.ready;
      lookup.end('g-live');
      await expect.poll(() => handled, { timeout: 3_000 }).toContain('g-live');
      expect(procs.signals).toEqual(expect.arrayContaining([[100, 'SIGTERM'], [101, 'SIGTERM']]));
      expect(procs.alive.has(100) || procs.alive.has(101)).toBe(false);

      // The server goes away; a grant ends meanwhile; the companion reconnects and catches up.
      await first.app.close();
      apps.splice(apps.indexOf(first.app), 1);
      lookup.end('g-later');
      await new Promise((r) => setTimeout(r, 150)); // the companion is now retrying against a closed port
      await makeApp(lookup, port, store);
      await expect.poll(() => handled, { timeout: 5_000 }).toContain('g-later');
      await expect.poll(() => procs.alive.has(200), { timeout: 2_000 }).toBe(false);
      expect(procs.signals).toEqual(expect.arrayContaining([[200, 'SIGTERM'], [200, 'SIGKILL']]));
      expect(procs.alive.has(300)).toBe(true);
      expect(procs.signals.some(([pid]) => pid === 300)).toBe(false);
    } finally {
      await companion.stop();
    }
  });
});
