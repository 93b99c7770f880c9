// The sshd pids a bastion's key command reports live in the database: the end event a bastion streams from one
// instance carries the pids recorded through another instance, and pids recorded before a restart are still there
// after it (PostgreSQL with two instances; SQLite for the restart on one).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDbSessionStore } from '../../server/bastion/sessions';
import type { BastionEndedEvent } from '../../server/bastion/end-routes';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { BASTION_TOKEN, startGrantServer, type RunningGrantServer, type StartOptions } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens, until } from '../server/helpers';
import { usePostgresStorage } from './pg-env';
import { bastionStream } from './bastion-stream';

const bastion = { authorization: `Bearer ${BASTION_TOKEN}` };
// Grants that stay active until the test releases them, without approvals.
const overrides = {
  policies: {
    'short-lived': {
      approvals: [], autoApprove: { when: { riskBelow: 101 } }, duration: { default: '10m', max: '1h' },
      requestTtl: '1m', activationWindow: '1m', extend: { maxTotal: '2h', reapproval: false },
    },
  },
};

/** An active grant of alice's, activated on `url` with a fresh key; returns its id and the key's base64 body. */
async function activeGrant(url: string, token: string, label: string): Promise<{ grantId: string; key: string }> {
  const client = clientFor(url, token);
  const created = await client.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', reason: label });
  expect(created.status).toBe(201);
  const line = ed25519PublicKeyLine(label);
  const activated = await client.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: line });
  expect(activated.status).toBe(201);
  return { grantId: activated.body.grant.id as string, key: line.split(' ')[1]! };
}

/** What sshd's AuthorizedKeysCommand asks, with the pid of the connection's sshd process. */
async function keyLookup(url: string, key: string, pid: number): Promise<string> {
  const response = await fetch(`${url}/v1/bastion/authorized-keys?user=stintbastion&type=ssh-ed25519&key=${encodeURIComponent(key)}&pid=${pid}`, { headers: bastion });
  expect(response.status).toBe(200);
  return response.text();
}

async function release(url: string, token: string, grantId: string): Promise<void> {
  expect((await clientFor(url, token).post(`/v1/grants/${grantId}/release`, {})).status).toBe(200);
}

async function endEventFor(stream: { ended: () => BastionEndedEvent[] }, grantId: string): Promise<BastionEndedEvent> {
  return until(`the end of ${grantId} on the bastion stream`, () => stream.ended().find((e) => e.grantId === grantId), 5_000);
}

/** A pid recorded through `server`, which then restarts on the same data dir: the end streamed after still has it. */
async function pidSurvivesRestart(start: () => Promise<RunningGrantServer>, server: RunningGrantServer, token: string): Promise<RunningGrantServer> {
  const { grantId, key } = await activeGrant(server.url, token, 'before restart');
  expect(await keyLookup(server.url, key, 7001)).toContain(`grant:${grantId}`);
  await server.close();
  const restarted = await start();
  const stream = await bastionStream(restarted.url);
  try {
    await release(restarted.url, token, grantId);
    expect((await endEventFor(stream, grantId)).pids).toEqual([7001]);
  } finally {
    stream.close();
  }
  return restarted;
}

describe('bastion sessions on one PostgreSQL shared by two instances', () => {
  usePostgresStorage();
  let idp: IdpInstance;
  let tokens: Tokens;
  let a: RunningGrantServer;
  let b: RunningGrantServer;
  const dataDir = serviceDir('grant-server-bastion-sessions');
  const startOn = (): Promise<RunningGrantServer> => startGrantServer({ idp, dataDir, overrides, credentials: new RecordingProvider() } satisfies StartOptions);

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    a = await startOn();
    b = await startOn();
    expect(a.config.storage.url).toMatch(/^postgres/);
    expect(b.config.storage.url).toBe(a.config.storage.url);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await idp?.close();
  });

  it('streams from A the pids that key lookups on B recorded, for a grant released on B', async () => {
    const alice = await tokens.for('alice');
    const stream = await bastionStream(a.url);
    try {
      const { grantId, key } = await activeGrant(b.url, alice, 'pids on B');
      const other = await activeGrant(a.url, alice, 'still active');
      expect(await keyLookup(b.url, key, 4242)).toContain(`grant:${grantId}`);
      expect(await keyLookup(b.url, key, 4242)).toContain(`grant:${grantId}`); // sshd runs the command twice
      const posted = await fetch(`${b.url}/v1/bastion/sessions`, { method: 'POST', headers: { ...bastion, 'content-type': 'application/json' }, body: JSON.stringify({ grantId, pid: 4343 }) });
      expect(posted.status).toBe(204);
      // pid 5151 served another grant first, then exited and was reused by a connection of this grant.
      expect(await keyLookup(a.url, other.key, 5151)).toContain(`grant:${other.grantId}`);
      expect(await keyLookup(b.url, key, 5151)).toContain(`grant:${grantId}`);

      await release(b.url, alice, grantId);
      const event = await endEventFor(stream, grantId);
      expect(event.pids.sort()).toEqual([4242, 4343, 5151]);
      expect(event.keyBase64).toBe(key);
      // The catch-up a reconnecting companion makes, on either instance, has the same pids.
      const since = new Date(Date.parse(event.at) - 1).toISOString();
      for (const url of [a.url, b.url]) {
        const caughtUp = await (await fetch(`${url}/v1/bastion/ended?since=${since}`, { headers: bastion })).json() as { events: BastionEndedEvent[] };
        expect(caughtUp.events.find((e) => e.grantId === grantId)?.pids.sort()).toEqual([4242, 4343, 5151]);
      }

      // The other grant lost pid 5151 to the reuse: its end (released on A, streamed by A) names no process.
      await release(a.url, alice, other.grantId);
      expect((await endEventFor(stream, other.grantId)).pids).toEqual([]);

      // Each session is opened in the audit log once, whichever instance heard of it and however often.
      const opened = await a.server.store.db.selectFrom('audit').select(['detail']).where('grant_id', '=', grantId)
        .where('action', '=', 'bastion.session.opened').orderBy('seq').execute();
      expect(opened.map((row) => (JSON.parse(row.detail!) as { pid: number }).pid).sort()).toEqual([4242, 4343, 5151]);
    } finally {
      stream.close();
    }
  });

  it('audits a session once when both instances hear of it at the same moment', async () => {
    const alice = await tokens.for('alice');
    const { grantId, key } = await activeGrant(a.url, alice, 'race');
    const lookups = await Promise.all([a.url, b.url, a.url, b.url].map((url) => keyLookup(url, key, 6161)));
    for (const line of lookups) expect(line).toContain(`grant:${grantId}`);
    const opened = await b.server.store.db.selectFrom('audit').select(['seq']).where('grant_id', '=', grantId).where('action', '=', 'bastion.session.opened').execute();
    expect(opened).toHaveLength(1);
    const stream = await bastionStream(b.url);
    try {
      await release(a.url, alice, grantId);
      expect((await endEventFor(stream, grantId)).pids).toEqual([6161]);
    } finally {
      stream.close();
    }
  });

  it('lists on either instance the grants with live sessions and their current deadlines, an extension on the other included', async () => {
    const alice = await tokens.for('alice');
    const { grantId, key } = await activeGrant(a.url, alice, 'live deadline');
    expect(await keyLookup(a.url, key, 8181)).toContain(`grant:${grantId}`);
    const live = async (url: string) => ((await (await fetch(`${url}/v1/bastion/live`, { headers: bastion })).json()) as { grants: Array<{ grantId: string; endsAt: string; pids: number[] }> })
      .grants.find((g) => g.grantId === grantId);
    const before = await live(b.url);
    expect(before?.pids).toEqual([8181]);
    const extended = await clientFor(b.url, alice).post(`/v1/grants/${grantId}/extend`, { durationSeconds: 600 });
    expect(extended.status).toBe(200);
    expect(Date.parse(extended.body.grant.endsAt)).toBe(Date.parse(before!.endsAt) + 600_000);
    for (const url of [a.url, b.url]) expect(await live(url)).toEqual({ grantId, endsAt: extended.body.grant.endsAt, pids: [8181] });
    // Ended: no longer live anywhere (its end event carries the pids instead).
    await release(a.url, alice, grantId);
    for (const url of [a.url, b.url]) expect(await live(url)).toBeUndefined();
  });

  it('prunes the pids of grants that ended longer ago than the retention, keeping active grants\' pids', async () => {
    const alice = await tokens.for('alice');
    const ended = await activeGrant(a.url, alice, 'to prune');
    const active = await activeGrant(a.url, alice, 'to keep');
    await keyLookup(a.url, ended.key, 8001);
    await keyLookup(b.url, active.key, 8002);
    await release(b.url, alice, ended.grantId);
    await new Promise((r) => setTimeout(r, 5)); // the end strictly before the cutoff "now"
    const sessions = createDbSessionStore(a.server.store.db);
    expect(await sessions.prune(3_600_000)).toBe(0); // within the retention: the companion may still catch up
    expect(await sessions.prune(0)).toBeGreaterThanOrEqual(1);
    const left = await sessions.pidsFor('main', [ended.grantId, active.grantId]);
    expect(left.get(ended.grantId)).toBeUndefined();
    expect(left.get(active.grantId)).toEqual([8002]);
  });

  it('still streams the pids recorded before the instance restarted', async () => {
    a = await pidSurvivesRestart(startOn, a, await tokens.for('alice'));
  });
});

describe('bastion sessions on SQLite across a restart', () => {
  let idp: IdpInstance;
  let server: RunningGrantServer;
  const dataDir = serviceDir('grant-server-bastion-sessions-sqlite');
  const startOn = (): Promise<RunningGrantServer> => startGrantServer({ idp, dataDir, overrides, credentials: new RecordingProvider() });

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    server = await startOn();
    expect(server.config.storage.url).toMatch(/^sqlite:/);
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  it('still streams the pids recorded before the server restarted', async () => {
    server = await pidSurvivesRestart(startOn, server, await new Tokens(idp).for('alice'));
  });
});
