// Idempotency-Key across instances (no sticky sessions): a retry that the load balancer sends to another instance
// while the first attempt is still running waits for it and replays its answer — for an activation, the same grant
// and the same one-time credentials, not a second activation refused as "already activated".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens, until } from '../server/helpers';
import { usePostgresStorage } from './pg-env';

describe('Idempotency-Key across two instances', () => {
  usePostgresStorage();
  let idp: IdpInstance;
  let tokens: Tokens;
  let a: RunningGrantServer;
  let b: RunningGrantServer;
  const providers = [new RecordingProvider(), new RecordingProvider()];
  const dataDir = serviceDir('grant-server-idempotency');

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    a = await startGrantServer({ idp, dataDir, credentials: providers[0] });
    b = await startGrantServer({ idp, dataDir, credentials: providers[1] });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await idp?.close();
  });

  it('a retry on B while A still activates replays A\'s answer: one grant, the same credentials', async () => {
    const token = await tokens.for('alice');
    const onA = clientFor(a.url, token);
    const onB = clientFor(b.url, token);
    const request = (await onA.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' })).body.request;
    expect(request.state).toBe('approved');
    // A's role creation hangs until B's retry has arrived, so the two really overlap.
    let letGo!: () => void;
    providers[0]!.holdIssue = new Promise((resolve) => { letGo = resolve; });
    const body = { publicKey: ed25519PublicKeyLine() };
    const first = onA.post(`/v1/requests/${request.id}/activate`, body, { 'idempotency-key': 'activate-1' });
    await until('A to be creating the role', async () => (await onA.get('/v1/grants')).body.grants.some((g: { requestId: string }) => g.requestId === request.id));
    const retry = onB.post(`/v1/requests/${request.id}/activate`, body, { 'idempotency-key': 'activate-1' });
    await new Promise((r) => setTimeout(r, 300));
    providers[0]!.holdIssue = undefined;
    letGo();
    const [x, y] = await Promise.all([first, retry]);
    expect([x.status, y.status]).toEqual([201, 201]);
    expect(y.headers.get('idempotent-replayed')).toBe('true');
    expect(y.body.grant.id).toBe(x.body.grant.id);
    expect(y.body.connection.dbPassword).toBe(x.body.connection.dbPassword);
    expect(providers[1]!.issued).toHaveLength(0);
    // The same key with another body is refused, on either instance.
    const other = await onB.post(`/v1/requests/${request.id}/activate`, { publicKey: ed25519PublicKeyLine() }, { 'idempotency-key': 'activate-1' });
    expect(other.status).toBe(422);
    expect(other.body.code).toBe('idempotency_key_reused');
  });
});
