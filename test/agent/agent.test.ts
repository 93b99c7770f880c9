// The Agent end to end below the shells, against the real grant server (in-process, its own catalog, SQLite in
// memory, a PostgreSQL role per grant), the real OpenSSH bastion with Stint's key command, real PostgreSQL and the
// real gnome-keyring; the agent signs in with its real OIDC session on the dev IdP. The agent's time comes from a
// FakeClock, so deadlines, suspend and clock jumps are instant; what the server does on cue (approve, die) is done
// to the real server: a DBA approves over its API, the server is stopped.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { startAgentBackend, type AgentBackend, type BackendServer, type Catalog } from '../../dev/agent-backend';
import { freePort } from '../../dev/ports';
import { run } from '../../dev/process';
import { FakeClock } from '../../dev/fake-clock';
import { Agent } from '../../agent/core/agent';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import type { SecretStore } from '../../agent/core/secrets/secret-store';
import { MemorySettingsStore } from '../../agent/core/settings';
import { MemoryClipboard } from '../../agent/core/clipboard';
import { AgentError } from '../../agent/core/errors';
import type { AgentEvent, AgentNotification } from '../../shared/contract/agent';
import { MemorySecretStore } from './memory-secrets';

let backend: AgentBackend;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => { backend = await startAgentBackend(); });
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});
afterAll(async () => { await backend?.stop(); });

const MIN = 60_000;

/** prod-orders: approved at once for engineers, extended without re-approval; prod-billing: a DBA approves. */
const CATALOG: Catalog = {
  resources: [{ id: 'prod-orders', policy: 'self-service' }, { id: 'prod-billing', policy: 'dba-approves' }],
  policies: {
    'self-service': {
      requesters: ['engineers'], duration: { default: '1h', max: '4h' },
      autoApprove: { when: { groups: ['engineers'] } }, extend: { maxTotal: '8h', reapproval: false },
    },
    'dba-approves': { requesters: ['engineers'], duration: { default: '1h', max: '4h' }, approvals: [{ from: 'dba', count: 1 }] },
  },
};

async function startServer(): Promise<BackendServer> {
  const server = await backend.startServer(CATALOG);
  cleanup.push(() => server.kill());
  return server;
}

/** A signed-in agent (alice) on `server`; `service` is its keychain namespace (a second agent on the same one is a restart). */
async function setup(options: { server?: BackendServer; service?: string; secrets?: SecretStore; deviceId?: string } = {}) {
  const server = options.server ?? await startServer();
  const service = options.service ?? `stint-agent-${randomUUID()}`;
  const secrets = options.secrets ?? new KeytarSecretStore(service);
  const clock = new FakeClock();
  const clipboard = new MemoryClipboard();
  const ports = { 'prod-orders': await freePort(), 'prod-billing': await freePort() };
  const session = backend.session('alice', { secrets, clock });
  const agent = new Agent({
    settings: new MemorySettingsStore({ serverUrl: server.url, ports, ...(options.deviceId ? { deviceId: options.deviceId } : {}) }), secrets, clock, clipboard,
    session, eventStream: { initialBackoffMs: 10, maxBackoffMs: 50 },
  });
  const events: AgentEvent[] = [];
  agent.subscribe((e) => events.push(e));
  cleanup.push(() => agent.dispose());
  await agent.start();
  // A restart finds the session in the keychain; a first start signs in through the IdP's pages.
  if (agent.state().session.status !== 'signed_in') await agent.api.signIn({});
  const notifications = () => events.filter((e): e is Extract<AgentEvent, { type: 'notification' }> => e.type === 'notification').map((e) => e.notification);
  const keychainHas = async (grantId: string) => {
    const r = await run('secret-tool', ['lookup', 'service', service, 'account', `grant:${grantId}`], { env: { ...process.env, ...backend.keyring.env } });
    return r.code === 0 && r.stdout.length > 0;
  };
  const grantView = (grantId: string) => agent.state().grants.find((g) => g.grant.id === grantId);
  /** The grant as the server has it, asked with the agent's own token. */
  const serverGrant = async (grantId: string) => {
    const response = await fetch(`${server.url}/v1/grants/${grantId}`, { headers: { authorization: `Bearer ${await session.accessToken()}` } });
    return (await response.json()).grant as { state: string };
  };
  return { agent, server, clock, clipboard, secrets, service, ports, events, notifications, keychainHas, grantView, serverGrant };
}

/** A DBA (bob, a real IdP login) approves the request through the server's API. */
async function approveAsDba(server: BackendServer, requestId: string) {
  const response = await fetch(`${server.url}/v1/requests/${requestId}/approve`, {
    method: 'POST', headers: { authorization: `Bearer ${await backend.idp.tokenFor('bob')}`, 'content-type': 'application/json' }, body: '{}',
  });
  expect(response.status, await response.clone().text()).toBe(200);
}

async function pgClient(agent: Agent, grantId: string) {
  const { uri } = await agent.api.connectionUri({ grantId });
  const client = new pg.Client({ connectionString: uri });
  await client.connect();
  return client;
}
const refused = (port: number) => new Promise<string>((resolve) => {
  const s = connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve('connected'); });
  s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
});
const kinds = (ns: AgentNotification[]) => ns.map((n) => n.kind);

describe('Agent', () => {
  it('request → auto-approve → tunnel → psql query → deadline: socket closed, key wiped, keychain item gone', async () => {
    const t = await setup();
    const out = await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'write', durationSeconds: 15 * 60, reason: 'INC-1' });
    expect(out.request.state).toBe('approved');
    const conn = out.connection!;
    expect(conn).toMatchObject({ host: '127.0.0.1', port: t.ports['prod-orders'], database: backend.pg.database });
    const client = await pgClient(t.agent, conn.grantId);
    expect((await client.query('select current_user as u')).rows[0].u).toBe(conn.user);
    const view = t.grantView(conn.grantId)!;
    expect(view.tunnel).toMatchObject({ status: 'open', port: conn.port });
    expect(view.localState).toBe('active');
    expect(JSON.stringify(t.agent.state())).not.toContain((await t.agent.api.connectionUri({ grantId: conn.grantId })).uri.split(':')[2]!.split('@')[0]);
    expect(await t.keychainHas(conn.grantId)).toBe(true);
    await t.agent.api.copyConnectionUri({ grantId: conn.grantId });
    expect(t.clipboard.text).toContain('postgres://');
    // The URI holds the password: its copy is on the audit record, as a reveal in the app is.
    const revealed = await t.server.server.store.db.selectFrom('audit').select('action').where('grant_id', '=', conn.grantId).where('action', '=', 'grant.password_revealed').execute();
    expect(revealed).toHaveLength(1);

    const clientGone = new Promise((resolve) => client.once('error', resolve));
    t.clock.advance(10 * MIN);
    expect(t.grantView(conn.grantId)!.warnedMinutes).toBe(5);
    t.clock.advance(5 * MIN);
    await expect.poll(() => t.grantView(conn.grantId)?.localState).toBe('ended');
    await clientGone;
    await expect.poll(() => refused(conn.port)).toBe('ECONNREFUSED');
    expect(await t.keychainHas(conn.grantId)).toBe(false);
    expect(t.clipboard.text).toBe('');
    await expect(t.agent.api.connectionUri({ grantId: conn.grantId })).rejects.toMatchObject({ code: 'not_found' });
    expect(kinds(t.notifications())).toEqual(['expiring', 'expiring', 'ended']);
    expect(t.notifications().at(-1)!.body).toBe('prod-orders access ended — tunnel closed, credentials wiped');
  });

  it('server killed before the deadline: local access still ends on time, and the state says offline', async () => {
    const t = await setup();
    const { connection } = await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 10 * 60, reason: 'x' });
    await t.server.kill();
    await expect.poll(() => t.agent.state().server.status).toBe('offline');
    t.clock.advance(10 * MIN);
    await expect.poll(() => t.grantView(connection!.grantId)?.localState).toBe('ended');
    expect(await refused(connection!.port)).toBe('ECONNREFUSED');
    expect(await t.keychainHas(connection!.grantId)).toBe(false);
  });

  it('a resume from sleep past the deadline ends access at once; a wall clock moved forward ends it early', async () => {
    const t = await setup();
    const a = (await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 30 * 60, reason: 'x' })).connection!;
    t.clock.suspend(31 * MIN);
    t.agent.resume();
    await expect.poll(() => t.grantView(a.grantId)?.localState).toBe('ended');
    expect(await refused(a.port)).toBe('ECONNREFUSED');

    const b = (await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 30 * 60, reason: 'x' })).connection!;
    t.clock.jumpWall(45 * MIN);
    t.agent.clockChanged();
    await expect.poll(() => t.grantView(b.grantId)?.localState).toBe('ended');
    // The server, whose clock did not move, is told: its role is dropped now, not 30 minutes later.
    await expect.poll(async () => (await t.serverGrant(b.grantId)).state).toBe('released');
    // Moving it back changes nothing: it stays ended.
    t.clock.jumpWall(-45 * MIN);
    t.agent.clockChanged();
    expect(t.grantView(b.grantId)?.localState).toBe('ended');
  });

  it('heartbeats the grants it holds every 30 s (idle end), and stops once access has ended', async () => {
    const t = await setup();
    const { grantId } = (await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 3600, reason: 'x' })).connection!;
    const seenAt = async () => (await t.server.server.store.db.selectFrom('grants').select('agent_seen_at').where('id', '=', grantId).executeTakeFirstOrThrow()).agent_seen_at;
    expect(await seenAt()).toBeNull();
    t.clock.advance(30_000);
    await expect.poll(seenAt).not.toBeNull();
    const first = Number(await seenAt());
    t.clock.advance(30_000);
    await expect.poll(async () => Number(await seenAt())).toBeGreaterThan(first);
    await t.agent.api.release({ grantId });
    const last = Number(await seenAt());
    t.clock.advance(60_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(Number(await seenAt())).toBe(last);
  });

  it('a request approved later (event stream) connects by itself and notifies with the local address', async () => {
    const t = await setup();
    const { request } = await t.agent.api.createRequest({ resourceId: 'prod-billing', level: 'write', durationSeconds: 3600, reason: 'INC-2' });
    expect(request.state).toBe('pending_approval');
    expect(t.agent.state().requests.map((r) => r.state)).toEqual(['pending_approval']);
    await expect.poll(() => t.agent.state().server.status).toBe('online');
    await approveAsDba(t.server, request.id);
    await expect.poll(() => t.agent.state().grants[0]?.tunnel?.status, { timeout: 5000 }).toBe('open');
    const approved = t.notifications().find((n) => n.kind === 'approved');
    expect(approved?.body).toBe(`prod-billing is ready — 127.0.0.1:${t.ports['prod-billing']}, 1h`);
    const client = await pgClient(t.agent, t.agent.state().grants[0]!.grant.id);
    expect((await client.query('select 1 as one')).rows[0].one).toBe(1);
    await client.end();
  });

  it('End now: local access ends first, the server is told, and no "ended" notification for your own action', async () => {
    const t = await setup();
    const { connection } = await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 3600, reason: 'x' });
    const { grant } = await t.agent.api.release({ grantId: connection!.grantId });
    expect(grant.state).toBe('released');
    expect((await t.serverGrant(connection!.grantId)).state).toBe('released');
    expect(await refused(connection!.port)).toBe('ECONNREFUSED');
    expect(await t.keychainHas(connection!.grantId)).toBe(false);
    expect(kinds(t.notifications())).toEqual([]);
  });

  it('a server extension moves the deadline by exactly the extension', async () => {
    const t = await setup();
    const { connection } = await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 10 * 60, reason: 'x' });
    await t.agent.api.extend({ grantId: connection!.grantId, durationSeconds: 10 * 60 });
    t.clock.advance(15 * MIN);
    expect(t.grantView(connection!.grantId)?.localState).toBe('active');
    t.clock.advance(5 * MIN);
    await expect.poll(() => t.grantView(connection!.grantId)?.localState).toBe('ended');
  });

  it('publishes each grant\'s phase the moment it changes: ending soon at the warning, active again once extended, ended at the deadline', async () => {
    const t = await setup();
    const later = (await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 30 * 60, reason: 'x' })).connection!;
    const { grantId } = (await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 10 * 60, reason: 'x' })).connection!;
    // Published in the order hosts list them: soonest end first.
    expect(t.agent.state().grants.map((g) => g.grant.id)).toEqual([grantId, later.grantId]);
    /** The phase in the last snapshot published (what every host shows), not one built on request. */
    const published = (id = grantId) => {
      const last = t.events.filter((e): e is Extract<AgentEvent, { type: 'state' }> => e.type === 'state').at(-1)!;
      return last.state.grants.find((g) => g.grant.id === id)?.phase;
    };
    expect(published()).toBe('active');
    t.clock.advance(5 * MIN - 1_000);
    expect(published()).toBe('active');
    t.clock.advance(1_000);
    // Published by the warning itself, with its notification: nothing else happened in between.
    expect(published()).toBe('ending_soon');
    expect(t.grantView(grantId)).toMatchObject({ phase: 'ending_soon', warnedMinutes: 5 });
    expect(kinds(t.notifications())).toEqual(['expiring']);

    // Extended past the warning: no longer ending soon, and warned again as the new end nears.
    await t.agent.api.extend({ grantId, durationSeconds: 10 * 60 });
    expect(published()).toBe('active');
    expect(t.grantView(grantId)!.warnedMinutes).toBeUndefined();
    t.clock.advance(10 * MIN);
    expect(published()).toBe('ending_soon');
    expect(kinds(t.notifications())).toEqual(['expiring', 'expiring']);

    // The 1-minute warning (still ending soon), then the deadline: ended, published once the tunnel is closed and the
    // secrets are wiped.
    t.clock.advance(4 * MIN);
    expect(t.grantView(grantId)).toMatchObject({ phase: 'ending_soon', warnedMinutes: 1 });
    t.clock.advance(MIN);
    await expect.poll(() => published()).toBe('ended');
    expect(kinds(t.notifications())).toEqual(['expiring', 'expiring', 'expiring', 'ended']);
    // The other grant goes on, now first in the list.
    expect(t.agent.state().grants.map((g) => [g.grant.id, g.phase])).toEqual([[later.grantId, 'active'], [grantId, 'ended']]);

    // The wall clock moved far past the other one's end: clockChanged() publishes it ended at once.
    t.clock.jumpWall(2 * 3600_000);
    t.agent.clockChanged();
    expect(published(later.grantId)).toBe('ended');
  });

  it('restart after a crash: the new process wipes the grant secrets the old one left in the keychain', async () => {
    const first = await setup();
    const { connection } = await first.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 3600, reason: 'x' });
    expect(await first.keychainHas(connection!.grantId)).toBe(true);
    // The first process "crashes" (never disposes); a new one starts over the same keychain, and the server still
    // lists the grant as active.
    const second = await setup({ server: first.server, service: first.service });
    expect(await second.keychainHas(connection!.grantId)).toBe(false);
    expect(second.agent.state().grants.find((g) => g.grant.id === connection!.grantId)?.tunnel).toBeUndefined();
  });

  it('restart after a crash: this device\'s grant is offered as left from before and Resume takes it back with new keys; another device\'s is not', async () => {
    const first = await setup({ deviceId: 'device-laptop-1' });
    const { connection } = await first.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 3600, reason: 'x' });
    const grantId = connection!.grantId;
    const oldUri = (await first.agent.api.connectionUri({ grantId })).uri;
    const oldSession = await pgClient(first.agent, grantId);
    oldSession.on('error', () => undefined);
    const elsewhere = await setup({ server: first.server, deviceId: 'device-desktop-2' });
    const otherId = (await elsewhere.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 3600, reason: 'y' })).connection!.grantId;

    // The first process "crashes" (never disposes); the same device starts again over the same keychain.
    const second = await setup({ server: first.server, service: first.service, deviceId: 'device-laptop-1' });
    expect(second.grantView(grantId)).toMatchObject({ localState: 'active', phase: 'active', leftFromBefore: true, grant: { state: 'active', deviceId: 'device-laptop-1' } });
    expect(second.grantView(grantId)?.tunnel).toBeUndefined();
    expect(second.grantView(otherId)).toMatchObject({ localState: 'active', grant: { deviceId: 'device-desktop-2' } });
    expect(second.grantView(otherId)?.leftFromBefore).toBeUndefined();
    await expect(second.agent.api.connect({ grantId })).rejects.toMatchObject({ code: 'not_found', message: expect.stringMatching(/Stint stopped while this access was active/) });
    await expect(second.agent.api.connect({ grantId: otherId })).rejects.toMatchObject({ code: 'not_found', message: expect.stringMatching(/another device/) });
    // Another device's live grant is not this agent's to take back.
    await expect(second.agent.api.resumeGrant({ grantId: otherId })).rejects.toMatchObject({ code: 'not_found' });
    expect((await elsewhere.agent.api.connectionUri({ grantId: otherId })).uri).toBeTruthy();

    const resumed = await second.agent.api.resumeGrant({ grantId });
    expect(resumed).toMatchObject({ grantId, host: '127.0.0.1', port: second.ports['prod-orders'], user: connection!.user });
    expect(second.grantView(grantId)).toMatchObject({ localState: 'active', tunnel: { status: 'open', port: resumed.port } });
    expect(second.grantView(grantId)?.leftFromBefore).toBeUndefined();
    expect(await second.keychainHas(grantId)).toBe(true);
    const fresh = await pgClient(second.agent, grantId);
    expect((await fresh.query('select current_user as u')).rows[0].u).toBe(connection!.user);
    await fresh.end();
    // The old credentials are dead: the session they opened was ended, and the old password logs in no more.
    await expect(oldSession.query('select 1')).rejects.toThrow();
    const again = new pg.Client({ connectionString: oldUri });
    await expect(again.connect()).rejects.toThrow(/password authentication failed/);
    expect((await second.serverGrant(grantId)).state).toBe('active');
    await second.agent.api.release({ grantId });
  });

  it('sign-out ends every grant and wipes every local secret', async () => {
    const t = await setup();
    const { connection } = await t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 3600, reason: 'x' });
    await t.agent.api.signOut({});
    expect(await refused(connection!.port)).toBe('ECONNREFUSED');
    expect(await t.secrets.list()).toEqual([]);
    expect(t.agent.state().session.status).toBe('signed_out');
    expect(t.agent.state().grants).toEqual([]);
    await expect(t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', reason: 'x' })).rejects.toMatchObject({ code: 'not_signed_in' });
  });

  it('a locked keychain at activation: a clear error, and no access is left open (no fallback to memory or files)', async () => {
    const keychain = new MemorySecretStore();
    const t = await setup({ secrets: keychain });
    // Signed in while it was open; locked by the time a grant's secrets are to be stored.
    keychain.set = async () => { throw new AgentError('keychain_locked', 'The system keychain is locked — unlock it and try again.'); };
    await expect(t.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', reason: 'x' })).rejects.toMatchObject({ code: 'keychain_locked' });
    expect(await refused(t.ports['prod-orders'])).toBe('ECONNREFUSED');
    expect(t.agent.state().grants.map((g) => g.localState)).toEqual(['ended']);
  });

  it('an approver\'s inbox says before they click whether approving needs a step-up, and the server then asks exactly that', async () => {
    const server = await backend.startServer({
      resources: [{ id: 'prod-billing', policy: 'dba-approves' }, { id: 'prod-ledger', policy: 'dba-approves-verified' }],
      policies: {
        'dba-approves': { requesters: ['engineers'], duration: { default: '1h', max: '4h' }, approvals: [{ from: 'dba', count: 1 }] },
        'dba-approves-verified': { requesters: ['engineers'], duration: { default: '1h', max: '4h' }, approvals: [{ from: 'dba', count: 1 }], stepUp: { approve: 'always', methods: ['webauthn', 'totp'] } },
      },
    });
    cleanup.push(() => server.kill());
    const clock = new FakeClock();
    const secrets = new MemorySecretStore();
    const bob = new Agent({
      settings: new MemorySettingsStore({ serverUrl: server.url }), secrets, clock, clipboard: new MemoryClipboard(),
      session: backend.session('bob', { secrets, clock }), eventStream: { initialBackoffMs: 10, maxBackoffMs: 50 },
    });
    cleanup.push(() => bob.dispose());
    await bob.start();
    await bob.api.signIn({});
    await expect.poll(() => bob.state().server.status).toBe('online');

    // alice asks for both over the server's API; bob's agent learns of them from its event stream.
    const ask = async (resourceId: string) => {
      const response = await fetch(`${server.url}/v1/requests`, {
        method: 'POST', headers: { authorization: `Bearer ${await backend.idp.tokenFor('alice')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ resourceId, level: 'read', reason: 'INC-7' }),
      });
      expect(response.status, await response.clone().text()).toBe(201);
      return (await response.json()).request.id as string;
    };
    const billing = await ask('prod-billing');
    const ledger = await ask('prod-ledger');
    const inbox = () => Object.fromEntries(bob.state().approvals.map((r) => [r.id, r.approvalStepUp]));
    const expected = { [billing]: { required: false, methods: [] }, [ledger]: { required: true, methods: ['webauthn', 'totp'] } };
    await expect.poll(inbox, { timeout: 5000 }).toEqual(expected);
    // A reload (the list, not the events) says the same.
    await bob.api.refresh({});
    expect(inbox()).toEqual(expected);

    // And it is what approving meets: the verified one needs a step-up (this backend has no step-up, so the server
    // says it cannot give one; test/server/stepup.test.ts asks for the proof), the other one is approved as it is.
    await expect(bob.api.approve({ requestId: ledger })).rejects.toMatchObject({ code: 'stepup_unavailable', message: expect.stringContaining('approving needs a step-up') });
    expect((await bob.api.approve({ requestId: billing })).request.approvals.map((a) => a.approver)).toEqual(['bob']);
  });

  it('rejects invalid input with a typed error', async () => {
    const t = await setup();
    await expect(t.agent.api.createRequest({ resourceId: 'no spaces allowed', level: 'read', reason: 'x' })).rejects.toMatchObject({ code: 'invalid_input' });
  });
});
