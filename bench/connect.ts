// Benchmark: one click to a query, on the real grant server in-process (its policy, risk, storage, audit and a real
// PostgreSQL role per grant), the real OpenSSH bastion with Stint's key command and the agent signed in through the
// dev IdP. The click is the AgentApi createRequest call (auto-approved, no step-up) → activation (ephemeral key,
// DB role) → tunnel → first result from psql (an external process, as the user would run it).
//   click_to_query_ms_p50 (target ≤ 300), click_to_query_ms_p99, click_to_query_ms_max
import { startAgentBackend, signedInAgent } from './support/agent-backend';
import { PG_BIN } from '../dev/postgres';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../dev/ports';
import { RUN_DIR_ENV, runDir, sweep } from '../dev/run-dir';

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

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export default async function connectBench(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const rounds = opts.quick ? 7 : 21;
  const ownRoot = !process.env[RUN_DIR_ENV];
  const root = runDir();
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const { backend, server } = await startAgentBackend(stops);
    const { agent } = await signedInAgent(backend, server, stops, { ports: { 'prod-orders': await freePort() } });
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
      click_to_query_ms_p50: Math.round(percentile(samples, 50)),
      click_to_query_ms_p99: Math.round(percentile(samples, 99)),
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
