// What the agent benchmarks run against: the real services and the real grant server of dev/agent-backend.ts, on a
// catalog with one production database that engineers get at once (no approver, no step-up: the benchmarks time the
// agent's path, and a human's approval would be most of the number), and agents signed in as alice through the dev
// IdP. Each piece's stop goes onto `stops` for the benchmark's own teardown.
import { randomUUID } from 'node:crypto';
import { startAgentBackend as startBackend, type AgentBackend, type BackendServer, type Catalog } from '../../dev/agent-backend';
import { Agent, type AgentOptions } from '../../agent/core/agent';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { MemorySettingsStore } from '../../agent/core/settings';
import type { Clock } from '../../shared/domain/clock';

export const BENCH_CATALOG: Catalog = {
  resources: [{ id: 'prod-orders', policy: 'engineers-at-once' }],
  policies: {
    'engineers-at-once': { requesters: ['engineers'], duration: { default: '1h', max: '4h' }, autoApprove: { when: { groups: ['engineers'] } } },
  },
};

export async function startAgentBackend(stops: Array<() => Promise<unknown>>, catalog: Catalog = BENCH_CATALOG): Promise<{ backend: AgentBackend; server: BackendServer }> {
  const backend = await startBackend();
  stops.push(() => backend.stop());
  const server = await backend.startServer(catalog);
  return { backend, server };
}

/**
 * A started agent of `user`'s, signed in with its real OIDC session (the refresh token in a keychain namespace of its
 * own), on `server`; `ports` are its preferred tunnel ports per resource.
 */
export async function signedInAgent(backend: AgentBackend, server: BackendServer, stops: Array<() => Promise<unknown>>, options: {
  user?: string; ports: Record<string, number>; clock?: Clock; onEnded?: AgentOptions['onEnded'];
}): Promise<{ agent: Agent; secrets: KeytarSecretStore; service: string }> {
  const service = `stint-bench-${randomUUID()}`;
  const secrets = new KeytarSecretStore(service);
  const session = backend.session(options.user ?? 'alice', { secrets, ...(options.clock ? { clock: options.clock } : {}) });
  const agent = new Agent({
    settings: new MemorySettingsStore({ serverUrl: server.url, ports: options.ports }), secrets, session,
    ...(options.clock ? { clock: options.clock } : {}), ...(options.onEnded ? { onEnded: options.onEnded } : {}),
  });
  stops.push(() => agent.dispose());
  await agent.start();
  await agent.api.signIn({});
  return { agent, secrets, service };
}
