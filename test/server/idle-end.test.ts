// Idle end (policy `idleEnd`, issue #21): the real grant server in-process with an injected clock; agents' heartbeats
// over its HTTP API. A grant whose agent has been silent longer than the policy's idleEnd is ended with reason
// `idle`, on the audit record; one whose agent heartbeats goes on; a policy without idleEnd never ends a grant for
// silence.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { FakeClock } from '../../dev/fake-clock';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens } from './helpers';

const MIN = 60_000;

describe('idle end', () => {
  let idp: IdpInstance;
  let server: RunningGrantServer;
  let tokens: Tokens;
  const clock = new FakeClock(Date.now());
  // Approved at once, an hour long; idle after 2 minutes without a heartbeat. staging-users keeps its policy (no idleEnd).
  const overrides = {
    policies: {
      'short-lived': {
        approvals: [], autoApprove: { when: { riskBelow: 101 } }, duration: { default: '1h', max: '2h' }, extend: { maxTotal: '3h', reapproval: false },
        requestTtl: '1h', activationWindow: '1h', idleEnd: '2m',
      },
      'staging-self-service': { autoApprove: { when: { riskBelow: 101 } } },
    },
  };

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    server = await startGrantServer({ idp, overrides, credentials: new RecordingProvider(), clock });
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  const grantOn = async (who: string, resourceId: string) => {
    const api = clientFor(server.url, await tokens.for(who));
    const created = await api.post('/v1/requests', { resourceId, level: 'read', reason: 'idle test' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const activated = await api.post(`/v1/requests/${created.body.request.id}/activate`, { publicKey: ed25519PublicKeyLine(who) });
    expect(activated.status, JSON.stringify(activated.body)).toBe(201);
    return activated.body.grant.id as string;
  };

  it('ends a grant whose agent fell silent, with reason idle, and only that one', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    const beating = await grantOn('alice', 'quick-orders');
    const silent = await grantOn('alice', 'quick-orders');
    const noIdlePolicy = await grantOn('alice', 'staging-users');
    const erins = await grantOn('erin', 'staging-users');

    clock.advance(90_000);
    // The heartbeat counts only the caller's own active grants: erin's is not alice's to keep alive.
    const beat = await alice.post('/v1/grants/heartbeat', { grantIds: [beating, erins] });
    expect(beat.status).toBe(200);
    expect(beat.body).toEqual({ seen: [beating] });

    // 150 s since the silent one started, 60 s since the other's heartbeat.
    clock.advance(MIN);
    await server.lifecycle.sweep(false);
    const state = async (id: string) => (await alice.get(`/v1/grants/${id}`)).body.grant;
    expect(await state(silent)).toMatchObject({ state: 'ended', endReason: 'idle' });
    expect(await state(beating)).toMatchObject({ state: 'active' });

    // No heartbeat for more than 2 minutes: that one is idle too. The policy without idleEnd never ends for silence.
    clock.advance(2 * MIN + 1_000);
    await server.lifecycle.sweep(false);
    expect(await state(beating)).toMatchObject({ state: 'ended', endReason: 'idle' });
    expect(await state(noIdlePolicy)).toMatchObject({ state: 'active' });

    // On the audit record as ended by the system for idleness; the credentials are revoked as at any end.
    const audit = (await alice.get(`/v1/audit?grantId=${silent}`)).body.entries as { action: string; reason?: string; actor: string }[];
    expect(audit).toEqual(expect.arrayContaining([expect.objectContaining({ action: 'grant.ended', reason: 'idle' })]));
    await expect.poll(async () => (await state(silent)).revocation).toBe('done');
  });

  it('a server that was down does not count its own downtime as the agents\' silence', async () => {
    const grantId = await grantOn('alice', 'quick-orders');
    // The server is down for 10 minutes (no heartbeat can reach it), then starts again on the same storage.
    await server.close();
    clock.advance(10 * MIN);
    server = await startGrantServer({ idp, overrides, credentials: new RecordingProvider(), clock, dataDir: server.dataDir });
    await server.lifecycle.sweep(false);
    const state = async () => (await clientFor(server.url, await tokens.for('alice')).get(`/v1/grants/${grantId}`)).body.grant;
    expect(await state()).toMatchObject({ state: 'active' });
    // Silent for idleEnd after the restart: idle then.
    clock.advance(2 * MIN + 1_000);
    await server.lifecycle.sweep(false);
    expect(await state()).toMatchObject({ state: 'ended', endReason: 'idle' });
  });

  it('refuses a policy whose idleEnd is shorter than two heartbeats', async () => {
    await expect(startGrantServer({ idp, overrides: { policies: { 'short-lived': { ...overrides.policies['short-lived'], idleEnd: '30s' } } }, credentials: new RecordingProvider() }))
      .rejects.toThrow(/idleEnd.*at least 1m/);
  });
});
