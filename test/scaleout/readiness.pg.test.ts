// PostgreSQL going away and coming back: readiness fails (503, a clear problem) while the database is unreachable
// and recovers on its own; the pool reconnects, and so does the event bus's LISTEN connection, so events raised
// on one instance reach another's SSE clients again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateRequestResult } from '../../shared/contract/http';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { call, clientFor, Tokens, until } from '../server/helpers';
import { openEvents } from '../server/sse';
import { usePostgresStorage } from './pg-env';

describe('PostgreSQL down and back', () => {
  const { pg } = usePostgresStorage();
  let idp: IdpInstance;
  let tokens: Tokens;
  let a: RunningGrantServer;
  let b: RunningGrantServer;
  const dataDir = serviceDir('grant-server-readiness');
  const overrides = { storage: { pool: { max: 4, connectTimeoutMs: 1_000 } } };

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    a = await startGrantServer({ idp, dataDir, overrides });
    b = await startGrantServer({ idp, dataDir, overrides });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await idp?.close();
  });

  it('is not ready while the database is down, and recovers with events crossing instances again', async () => {
    expect((await call(a.url, 'GET', '/readyz')).status).toBe(200);
    await pg().pause();
    try {
      const down = await until('readiness to fail', async () => {
        const answer = await call(a.url, 'GET', '/readyz');
        return answer.status === 503 ? answer : undefined;
      }, 10_000);
      expect(down.contentType).toContain('application/problem+json');
      expect(down.body.code).toBe('storage_unavailable');
      expect(JSON.stringify(down.body)).not.toContain(pg().adminPassword);
      // No driver text or host names for a public probe (#19): the log has the why.
      expect(down.body.detail).toBe('storage is not reachable');
      // Liveness is not readiness: the process itself is fine.
      expect((await call(a.url, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await pg().resume();
    }
    await until('readiness to recover', async () => (await call(a.url, 'GET', '/readyz')).status === 200, 15_000);

    const alice = await tokens.for('alice');
    const bobOnA = await openEvents(a.url, await tokens.for('bob'));
    try {
      // The LISTEN connection reconnects with backoff; retry creating on B until A hears about it.
      const heard = await until('an event from B to reach A after the outage', async () => {
        const created = await clientFor(b.url, alice).post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-42 after outage' });
        if (created.status !== 201) return undefined;
        const id = CreateRequestResult.parse(created.body).request.id;
        return bobOnA.next((e) => e.event.type === 'approval.asked' && e.event.request.id === id, 2_000).catch(() => undefined);
      }, 20_000);
      expect(heard.event.type).toBe('approval.asked');
    } finally {
      bobOnA.close();
    }
  }, 60_000);
});
