// Benchmark: one click to a query. AgentApi createRequest (auto-approved, no step-up) → activation (ephemeral key,
// DB role) → tunnel → first result from psql (an external process, as the user would run it).
//   click_to_query_ms_p50 (target ≤ 300), click_to_query_ms_max
// The grant server here is the test stand-in (test/agent/fake-grant-server.ts): it creates a real PostgreSQL role
// and writes the bastion's authorized_keys, but the real server's policy and audit work is not included.
import { startAgentBackend } from './support/agent-backend';
import { PG_BIN } from '../dev/postgres';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../dev/ports';
import { RUN_DIR_ENV, runDir, sweep } from '../dev/run-dir';
import { FakeSession } from '../test/agent/fake-session';
import { Agent } from '../agent/core/agent';
import { KeytarSecretStore } from '../agent/core/secrets/keytar-store';
import { MemorySettingsStore } from '../agent/core/settings';

function psql(uri: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(PG_BIN, 'psql'), [uri, '-X', '-A', '-t', '-c', 'select 42'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`psql exited ${code}: ${err}`))));
  });
}

export default async function connectBench(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const rounds = opts.quick ? 7 : 21;
  const ownRoot = !process.env[RUN_DIR_ENV];
  const root = runDir();
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const { server } = await startAgentBackend(stops);
    const agent = new Agent({
      settings: new MemorySettingsStore({ serverUrl: server.url, ports: { 'prod-orders': await freePort() } }),
      secrets: new KeytarSecretStore(`stint-bench-${randomUUID()}`), session: new FakeSession(),
    });
    stops.push(() => agent.dispose());
    await agent.start();
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const { connection } = await agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 900, reason: 'bench' });
      const { uri } = await agent.api.connectionUri({ grantId: connection!.grantId });
      if ((await psql(uri)) !== '42') throw new Error('psql did not answer 42');
      samples.push(performance.now() - t0);
      // One grant at a time per resource port, as a user would.
      await agent.api.release({ grantId: connection!.grantId });
    }
    samples.sort((a, b) => a - b);
    return {
      click_to_query_ms_p50: Math.round(samples[Math.floor(samples.length / 2)]!),
      click_to_query_ms_max: Math.round(samples.at(-1)!),
      rounds,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (ownRoot) {
      sweep(root);
      delete process.env[RUN_DIR_ENV];
    }
  }
}
