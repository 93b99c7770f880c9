// With several instances, an event from another instance can reach this one after a local event with a higher id
// (each instance publishes its own events at once). The SSE stream must still deliver it, not drop it as "old".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessEventBus } from '../../server/lifecycle/events';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { openEvents } from '../server/sse';

describe('SSE delivery order across instances', () => {
  let idp: IdpInstance;
  let server: RunningGrantServer;
  const bus = new InProcessEventBus();

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    server = await startGrantServer({ idp, overrides: { storage: { url: 'sqlite::memory:' } }, bus });
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  it('delivers an event that arrives after one with a higher id', async () => {
    const stream = await openEvents(server.url, await idp.tokenFor('alice'));
    try {
      await new Promise((r) => setTimeout(r, 100));
      const event = (id: number) => ({ id, at: Date.now(), users: ['alice'], groups: [], exclude: [], event: { type: 'approval.withdrawn' as const, requestId: `req_${id}` } });
      bus.publish([event(1_000_002)]); // local, committed second
      bus.publish([event(1_000_001)]); // from another instance, committed first, announced later
      await stream.next((e) => e.id === '1000001', 2_000);
      expect(stream.events.map((e) => e.id)).toEqual(['1000002', '1000001']);
    } finally {
      stream.close();
    }
  });
});
