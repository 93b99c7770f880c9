// The Prometheus metrics admins watch (#25), scraped from /metrics while real actions happen: requests waiting (by
// state), active grants, how long an ended grant has waited for its credentials to be revoked, and refused step-up
// proofs (from the real step-up service).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { defaultStorageUrl, merge, startGrantServer, testConfig, type RunningGrantServer } from '../../dev/grant-server';
import { freePort } from '../../dev/ports';
import { serviceDir, waitFor } from '../../dev/run-dir';
import { validateConfig } from '../../server/config';
import { productionEffects } from '../../server/main';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens } from './helpers';

const sample = async (url: string, series: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
};

describe('metrics admins watch', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  let server: RunningGrantServer;
  const provider = new RecordingProvider();

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    const port = await freePort();
    const env = { STINT_TEST_TOTP_KEY: randomBytes(32).toString('hex'), ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders' };
    const config = validateConfig(merge(testConfig(idp, await defaultStorageUrl(serviceDir('grant-server-metrics')), port), {
      webauthn: { rpId: 'localhost', origins: ['http://localhost:5173'] },
      stepup: { totpKey: 'env:STINT_TEST_TOTP_KEY' },
      policies: { 'staging-self-service': { stepUp: { request: 'always', methods: ['totp'] } } },
    }), 'metrics test');
    // The real step-up service, as `stint-server serve` builds it.
    server = await startGrantServer({ idp, config, port, credentials: provider, stepUp: productionEffects(config, env).stepUp, env });
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  it('pending requests, active grants and the revocation backlog move with real actions', async () => {
    const pending = () => sample(server.url, 'stint_requests_pending{state="pending_approval"}');
    const active = () => sample(server.url, 'stint_grants_active');
    const backlog = () => sample(server.url, 'stint_revocation_backlog_age_seconds');
    expect([await pending(), await active(), await backlog()]).toEqual([0, 0, 0]);

    const alice = clientFor(server.url, await tokens.for('alice'));
    const request = (await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-7' })).body.request;
    expect(await pending()).toBe(1);
    await clientFor(server.url, await tokens.for('bob')).post(`/v1/requests/${request.id}/approve`, {});
    await clientFor(server.url, await tokens.for('dave')).post(`/v1/requests/${request.id}/approve`, {});
    expect(await pending()).toBe(0);
    const activated = await alice.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() });
    expect(activated.status).toBe(201);
    expect(await active()).toBe(1);

    // The database refuses the first two revocations: the ended grant waits, and the backlog's age shows it.
    provider.failRevoke = 2;
    const revoked = await clientFor(server.url, await tokens.for('carol')).post(`/v1/grants/${activated.body.grant.id}/revoke`, { reason: 'metrics test' });
    expect(revoked.status).toBe(200);
    expect(await active()).toBe(0);
    await waitFor('the backlog to age', async () => ((await backlog()) >= 1 ? true : undefined), 10_000, 100);
    await waitFor('the revocation to go through and the backlog to empty', async () => ((await backlog()) === 0 ? true : undefined), 15_000, 200);
    expect(provider.revoked.map((r) => r.grantId)).toContain(activated.body.grant.id);
  });

  it('counts refused step-up proofs by what they were for and why', async () => {
    const series = 'stint_stepup_failures_total{kind="request",code="stepup_invalid"}';
    expect(await sample(server.url, series)).toBe(0);
    const alice = clientFor(server.url, await tokens.for('alice'));
    const request = (await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' })).body.request;
    expect(request.state).toBe('pending_stepup');
    expect(await sample(server.url, 'stint_requests_pending{state="pending_stepup"}')).toBe(1);
    const proof = await alice.post(`/v1/requests/${request.id}/stepup`, { method: 'totp', challengeId: 'ch_not_a_challenge_of_alice', code: '123456' });
    expect(proof.body.code).toBe('stepup_invalid');
    expect(await sample(server.url, series)).toBe(1);
  });
});
