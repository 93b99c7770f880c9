// Benchmark: CPU the agent uses while nothing happens, with 3 active grants (3 tunnels, their deadline timers, the
// event stream), measured in a process of its own (the harness services and the real grant server stay here). Real
// clock. The agent signs in here first (the refresh token goes to the keychain); the measured process restores that
// session at its start, as a restarted agent does.
//   idle_cpu_pct (target < 0.5)
import { randomUUID } from 'node:crypto';
import { startAgentBackend } from './support/agent-backend';
import { KeytarSecretStore } from '../agent/core/secrets/keytar-store';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { build } from 'esbuild';
import { freePort } from '../dev/ports';
import { RUN_DIR_ENV, runDir, sweep } from '../dev/run-dir';

export default async function idleBench(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const seconds = opts.quick ? 10 : 30;
  const ownRoot = !process.env[RUN_DIR_ENV];
  const root = runDir();
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const { backend, server } = await startAgentBackend(stops);
    const service = `stint-bench-${randomUUID()}`;
    await backend.session('alice', { secrets: new KeytarSecretStore(service) }).signIn();
    // Plain node on a bundle, as the agent ships: a TypeScript loader (tsx) alone costs ~0.7 % CPU at idle on Node 20.
    const bundle = join(fileURLToPath(new URL('../node_modules/.cache/stint-bench/', import.meta.url)), 'idle-agent.mjs');
    await build({ entryPoints: [fileURLToPath(new URL('./support/idle-agent.ts', import.meta.url))], bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outfile: bundle, logLevel: 'error' });
    const child = spawn(process.execPath, [bundle,
      JSON.stringify({ serverUrl: server.url, port: await freePort(), seconds, service, issuer: backend.idp.issuer, clientId: backend.idp.clientId, audience: backend.idp.audience })], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env } });
    stops.push(async () => void child.kill());
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await new Promise((r) => child.once('close', r));
    const { open, cpuMs, wallMs } = JSON.parse(out.trim().split('\n').pop()!) as { open: number; cpuMs: number; wallMs: number };
    if (open !== 3) throw new Error(`expected 3 open tunnels, found ${open}`);
    return {
      idle_cpu_pct: Math.round((cpuMs / wallMs) * 100 * 1000) / 1000,
      seconds,
      grants: 3,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (ownRoot) {
      sweep(root);
      delete process.env[RUN_DIR_ENV];
    }
  }
}
